#!/usr/bin/env bash
# Installs every Debian 12 package that yubin's build, tests, benchmarks and
# quick start need. Idempotent: packages already present are skipped, so
# `make run` / `make test` can call it every time at almost no cost.
# Usage: contrib/install-deps.sh [--force]   (as root, or with sudo available)
set -euo pipefail

PKGS=(
  # toolchain
  build-essential g++ cmake make pkg-config git clang libclang-rt-14-dev
  # libraries (ARCHITECTURE.md "Library notes")
  libuv1-dev libssl-dev liblmdb-dev lmdb-utils libc-ares-dev libspf2-dev libopendkim-dev
  libopendmarc-dev libgtest-dev libgmock-dev libtomlplusplus-dev libfmt-dev libspdlog-dev
  libcli11-dev libexpected-dev libcrypt-dev zlib1g-dev nlohmann-json3-dev
  # real peers and clients for integration tests (TESTING.md §0)
  openssl ca-certificates dnsmasq-base bind9-dnsutils iproute2 procps psmisc
  spfquery opendkim-tools python3 python3-dkim python3-dnspython python3-aiosmtpd
  dovecot-imapd dovecot-pop3d postfix swaks libnet-ssleay-perl libio-socket-ssl-perl
  libauthen-sasl-perl libnet-dns-perl curl mutt neomutt fetchmail procmail isync
  getmail6 offlineimap3 strace
)

missing=()
for p in "${PKGS[@]}"; do
  if [[ "${1:-}" == "--force" ]] || ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# Debian's postfix asks a question on install unless told "No configuration".
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
