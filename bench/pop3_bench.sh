#!/bin/bash
# POP3 download-and-delete benchmark, yubin-pop3d side by side with Dovecot's
# pop3d on this machine, with the same messages (issue #6):
#   COUNT (1000) messages of SIZE (100 KiB) in one maildrop; a poplib client
#   logs in, STAT/LIST/UIDL, RETRs every message, DELEs every one, QUITs.
# The client and the figures are ../shared/bench/mail/pop3_bench.py (the
# project's shared benchmark kit); bench/pop3_populate.py fills the maildrops
# without SMTP. Reference first, then yubin, then the reference again: quote
# ratios, absolute figures drift on shared machines.
#
# usage: bench/pop3_bench.sh YUBIN_POP3D YUBIN [COUNT] [SIZE] [RUNS]
# Run as root (Dovecot and the privilege drop); uses only loopback and
# stops only the processes it started.
set -euo pipefail
POP3D=$(readlink -f "${1:?yubin-pop3d binary}")
YUBIN=$(readlink -f "${2:?yubin binary}")
COUNT=${3:-1000}
SIZE=${4:-102400}
RUNS=${5:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
KIT=${MB_KIT:-/work/shared/bench/mail}
export MB_ROOT=${MB_ROOT:-/tmp/yubin-pop3-bench.$$}
export MB_RESULTS=$MB_ROOT/results MB_RUNS=$RUNS MB_QUIET_MAX_WAIT=${MB_QUIET_MAX_WAIT:-10}
mkdir -p "$MB_ROOT" "$MB_RESULTS"
chmod 755 "$MB_ROOT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

YPID=
cleanup() {
  [ -n "$YPID" ] && kill "$YPID" 2>/dev/null && wait "$YPID" 2>/dev/null || true
  MB_POP3_PORT=$DV_POP3 MB_IMAP_PORT=$DV_IMAP "$KIT/dovecot_instance.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# ---- Dovecot (reference) ----
DV_POP3=$(free_port); DV_IMAP=$(free_port)
dovecot_run() {
  MB_LABEL=dovecot-2.3 MB_POP3_PORT=$DV_POP3 python3 "$KIT/pop3_bench.py" --port "$DV_POP3" \
    --user pop1 --count "$COUNT" --size "$SIZE" --runs "$RUNS" \
    --populate-cmd "python3 $HERE/pop3_populate.py --count $COUNT --size $SIZE --maildir $MB_ROOT/mail/example.test/pop1"
}
MB_POP3_PORT=$DV_POP3 MB_IMAP_PORT=$DV_IMAP "$KIT/dovecot_instance.sh" setup
MB_POP3_PORT=$DV_POP3 MB_IMAP_PORT=$DV_IMAP "$KIT/dovecot_instance.sh" start
dovecot_run

# ---- yubin-pop3d ----
Y=$MB_ROOT/yubin
mkdir -p "$Y"
chown nobody:nogroup "$Y"
Y_POP3=$(free_port); Y_POP3S=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$Y/key.pem" -out "$Y/cert.pem" -days 2 \
  -subj /CN=mail.example.test >/dev/null 2>&1
chmod 644 "$Y/key.pem" "$Y/cert.pem"
cat > "$Y/yubin.toml" <<EOT
[server]
hostname = "mail.example.test"
state_dir = "$Y"
user = "nobody"
[store]
path = "$Y/store"
map_size_mb = 2048
[log]
level = "warn"
[tls]
cert = "$Y/cert.pem"
key = "$Y/key.pem"
[pop3d]
pop3 = ["127.0.0.1:$Y_POP3"]
pop3s = ["127.0.0.1:$Y_POP3S"]
allow_plaintext_auth_from_loopback = true
EOT
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
as_nobody "$YUBIN" --config "$Y/yubin.toml" domain add example.test >/dev/null
echo pass | as_nobody "$YUBIN" --config "$Y/yubin.toml" user add pop1@example.test >/dev/null
"$POP3D" --config "$Y/yubin.toml" 2>"$Y/pop3d.log" &
YPID=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $Y_POP3), 1)" 2>/dev/null && break
  sleep 0.1
done
MB_LABEL=yubin MB_POP3_PORT=$Y_POP3 python3 "$KIT/pop3_bench.py" --port "$Y_POP3" \
  --user pop1@example.test --count "$COUNT" --size "$SIZE" --runs "$RUNS" \
  --populate-cmd "setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 $HERE/pop3_populate.py --count $COUNT --size $SIZE --yubin $YUBIN --config $Y/yubin.toml --rcpt pop1@example.test"

# ---- Dovecot again ----
dovecot_run

echo
echo "== POP3: $COUNT x $SIZE bytes, login + STAT/LIST/UIDL + RETR all + DELE all + QUIT =="
python3 - "$MB_RESULTS/results.tsv" <<'PY'
import re, sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = {}
for r in rows:
    if r[2] == "pop3-poplib" and r[4] == "download_delete_rate":
        note = r[8]
        total = float(re.search(r"total=([\d.]+)s", note).group(1))
        mbs = float(re.search(r"\(([\d.]+) MB/s\)", note).group(1))
        by.setdefault(r[1], []).append((total, mbs, note))
for label, v in by.items():
    totals = [t for t, _, _ in v]
    rates = [m for _, m, _ in v]
    print(f"{label:12s} runs={len(v)}  total median {statistics.median(totals):.3f} s "
          f"(min {min(totals):.3f}, max {max(totals):.3f})  RETR {statistics.median(rates):.1f} MB/s")
PY
echo "(raw rows: $MB_RESULTS/results.tsv)"
