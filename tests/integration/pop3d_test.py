"""yubin-pop3d against real clients (Python poplib, fetchmail, getmail6, curl,
openssl s_client) and raw sockets: STLS and implicit TLS, the maildrop
snapshot, exact octet counts, deletions only at QUIT (nothing on a cut
connection), [IN-USE] across sessions, bad input and delayed login failures,
and a 1,000-message maildrop downloaded and deleted.

POP3 deletions are checked through the store with `yubin --json mailbox
list` (the same counters IMAP will read): imapd does not exist yet."""
import json
import os
import poplib
import pwd
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from yubintest import YUBIN, TempDirTest  # noqa: E402

POP3D = os.environ.get("YUBIN_POP3D", "yubin-pop3d")
USER = "bob@example.test"
PASSWORD = "bob pw"  # a space: PASS takes the rest of the line (RFC 1939 §7)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_cert(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=mail.example.test",
                    "-addext", "subjectAltName=DNS:mail.example.test,IP:127.0.0.1"],
                   check=True, capture_output=True)
    os.chmod(key, 0o644)  # throwaway: read after the privilege drop
    os.chmod(cert, 0o644)
    return cert, key


def message(n, body_lines=3, extra=""):
    lines = [f"From: sender{n}@remote.test", f"To: {USER}", f"Subject: message {n}",
             f"Message-ID: <m{n}@remote.test>", ""]
    lines += [f"line {i} of message {n}" for i in range(body_lines)]
    lines += [".a line that starts with a dot", "..two dots", "end"]
    return "\n".join(lines) + "\n" + extra


class RawPop3:
    """A byte-exact client: returns replies as the server sent them."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("closed; buffered %r" % self.buf[:200])
        self.buf += chunk

    def line(self, timeout=15):
        while b"\r\n" not in self.buf:
            self._fill(timeout)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def body(self, timeout=15):
        """The bytes of a multi-line reply before the terminating '.CRLF'."""
        if self.buf.startswith(b".\r\n"):
            self.buf = self.buf[3:]
            return b""
        while b"\r\n.\r\n" not in self.buf:
            self._fill(timeout)
        data, self.buf = self.buf.split(b"\r\n.\r\n", 1)
        return data + b"\r\n"

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def cmd(self, text):
        self.send(text)
        return self.line()

    def close(self):
        self.sock.close()


class Pop3dTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.root = os.geteuid() == 0
        self.user = "nobody" if self.root else pwd.getpwuid(os.geteuid()).pw_name
        pw = pwd.getpwnam(self.user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        os.chmod(self.tmp, 0o755)
        if self.root:
            os.chown(self.tmp, self.uid, self.gid)
        self.cert, self.key = make_cert(self.tmp)
        self.pop3_port, self.pop3s_port = free_port(), free_port()
        self.config = os.path.join(self.tmp, "yubin.toml")
        self.proc = None
        self.write_config()
        self.cli("domain", "add", "example.test")
        self.cli("user", "add", USER, stdin=PASSWORD + "\n")
        self.cli("user", "add", "alice@example.test", stdin="alice pw\n")

    # ---- helpers ----

    def write_config(self, plaintext=False, delay="0s", max_errors=10, idle="30s", extra=""):
        with open(self.config, "w") as f:
            f.write(f"""[server]
hostname = "mail.example.test"
state_dir = "{self.tmp}"
user = "{self.user}"
shutdown_timeout = "5s"
[store]
path = "{self.tmp}/store"
map_size_mb = 512
[tls]
cert = "{self.cert}"
key = "{self.key}"
[pop3d]
pop3 = ["127.0.0.1:{self.pop3_port}"]
pop3s = ["127.0.0.1:{self.pop3s_port}"]
idle_timeout = "{idle}"
allow_plaintext_auth_from_loopback = {"true" if plaintext else "false"}
auth_failure_delay = "{delay}"
max_errors = {max_errors}
{extra}""")

    def as_daemon_user(self):
        if self.root:
            os.setgid(self.gid)
            os.setuid(self.uid)

    def cli(self, *args, stdin=None, check=True):
        # As the daemon's user, so the store files stay writable for it.
        proc = subprocess.run([YUBIN, "--config", self.config, *args], input=stdin,
                              capture_output=True, text=True, timeout=60,
                              preexec_fn=self.as_daemon_user)
        if check:
            self.assertEqual(proc.returncode, 0, f"yubin {args}: {proc.stderr}")
        return proc

    def deliver(self, text, to=USER):
        self.cli("deliver", to, stdin=text)

    def inbox(self, user=USER):
        out = self.cli("--json", "mailbox", "list", user).stdout
        return {b["name"]: b for b in json.loads(out)}["INBOX"]

    def start(self):
        self.log_path = os.path.join(self.tmp, "pop3d.log")
        self.log_file = open(self.log_path, "wb")
        self.addCleanup(self.log_file.close)
        self.proc = subprocess.Popen([POP3D, "--config", self.config], stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        self.addCleanup(self.stop)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail("yubin-pop3d exited: " + self.log())
            if self.log().count("listening") >= 2:
                return
            time.sleep(0.05)
        self.fail("yubin-pop3d did not start: " + self.log())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, text, count=1, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            time.sleep(0.05)
        self.fail(f"{text!r} not logged {count}x: " + self.log())

    def ctx(self):
        return ssl.create_default_context(cafile=self.cert)

    def raw_tls(self):
        sock = socket.create_connection(("127.0.0.1", self.pop3s_port))
        c = RawPop3(self.ctx().wrap_socket(sock, server_hostname="mail.example.test"))
        self.addCleanup(c.close)
        self.assertTrue(c.line().startswith("+OK "))
        return c

    def raw_plain(self):
        c = RawPop3(socket.create_connection(("127.0.0.1", self.pop3_port)))
        self.addCleanup(c.close)
        self.assertTrue(c.line().startswith("+OK "))
        return c

    def login_raw(self, c):
        self.assertEqual(c.cmd("USER " + USER), "+OK send PASS")
        reply = c.cmd("PASS " + PASSWORD)
        self.assertTrue(reply.startswith("+OK logged in"), reply)

    def poplib_stls(self):
        p = poplib.POP3("127.0.0.1", self.pop3_port, timeout=15)
        p.stls(context=self.ctx())
        p.user(USER)
        p.pass_(PASSWORD)
        return p

    def poplib_ssl(self):
        p = poplib.POP3_SSL("127.0.0.1", self.pop3s_port, context=self.ctx(), timeout=15)
        p.user(USER)
        p.pass_(PASSWORD)
        return p

    # ---- tests ----

    def test_poplib_stls_and_pop3s(self):
        for n in range(1, 4):
            self.deliver(message(n))
        self.start()
        p = self.poplib_stls()
        caps = p.capa()
        for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION"):
            self.assertIn(cap, caps)
        self.assertNotIn("STLS", caps)  # already under TLS; and no USER in TRANSACTION
        count, size = p.stat()
        self.assertEqual(count, 3)
        listing = p.list()[1]
        self.assertEqual(len(listing), 3)
        self.assertEqual(sum(int(l.split()[1]) for l in listing), size)
        uidls = [l.split()[1] for l in p.uidl()[1]]
        self.assertEqual(len(set(uidls)), 3)
        for n in range(1, 4):
            lines = p.retr(n)[1]
            self.assertEqual(lines[0], b"Return-Path: <>")
            text = b"\n".join(lines).decode()
            self.assertIn(f"Subject: message {n}", text)
            self.assertTrue(text.endswith(message(n).rstrip("\n")), text)
        top = p.top(2, 1)[1]
        self.assertIn(b"Subject: message 2", top)
        self.assertEqual(top[-2:], [b"", b"line 0 of message 2"])
        p.quit()
        q = self.poplib_ssl()
        self.assertEqual([l.split()[1] for l in q.uidl()[1]], uidls, "UIDL stable across sessions")
        q.quit()
        self.assertEqual(self.inbox()["messages"], 3, "nothing deleted")

    def test_octet_counts_are_exact(self):
        self.deliver(message(1))
        self.deliver(message(2, body_lines=2000, extra=".\n.\n"))
        self.start()
        c = self.raw_tls()
        self.login_raw(c)
        stat = c.cmd("STAT").split()
        self.assertEqual(c.cmd("LIST"), f"+OK 2 messages ({stat[2]} octets)")
        sizes = dict(l.split() for l in c.body().decode().splitlines())
        total = 0
        for n in ("1", "2"):
            reply = c.cmd("RETR " + n)
            self.assertEqual(reply, f"+OK {sizes[n]} octets")
            data = c.body()
            self.assertEqual(len(data), int(sizes[n]), "RETR octets = LIST octets = bytes sent")
            self.assertIn(b"\r\n..a line that starts with a dot\r\n", data)
            self.assertNotIn(b"\n\n", data.replace(b"\r\n", b""))
            total += len(data)
        self.assertEqual(int(stat[2]), total)
        self.assertEqual(c.cmd("QUIT"), "+OK bye")

    def test_plaintext_login_needs_tls_unless_configured(self):
        self.start()
        c = self.raw_plain()
        c.send("CAPA")
        self.assertEqual(c.line(), "+OK capability list follows")
        caps = c.body().decode().split("\r\n")
        self.assertIn("STLS", caps)
        self.assertNotIn("USER", caps)
        self.assertNotIn("SASL PLAIN", caps)
        self.assertTrue(c.cmd("USER " + USER).startswith("-ERR [AUTH] "))
        self.assertTrue(c.cmd("AUTH PLAIN AGJvYkBleGFtcGxlLnRlc3QAYm9iIHB3").startswith("-ERR [AUTH]"))
        self.assertTrue(c.cmd("APOP bob 0123456789abcdef0123456789abcdef").startswith("-ERR"))
        # STLS, then the same login works; pipelined plaintext after STLS is dropped.
        c.send("STLS\r\nUSER " + USER + "\r\nPASS " + PASSWORD)
        self.assertEqual(c.line(), "+OK begin TLS negotiation")
        tls = RawPop3(self.ctx().wrap_socket(c.sock, server_hostname="mail.example.test"))
        self.assertEqual(tls.cmd("PASS " + PASSWORD), "-ERR USER first")
        self.login_raw(tls)
        self.wait_log("plaintext_after_stls_dropped")
        tls.cmd("QUIT")
        # With allow_plaintext_auth_from_loopback, loopback clients may log in in clear.
        self.stop()
        self.write_config(plaintext=True)
        self.start()
        c = self.raw_plain()
        self.login_raw(c)
        self.assertEqual(c.cmd("QUIT"), "+OK bye")

    def test_auth_plain_with_initial_response(self):
        self.deliver(message(1))
        self.start()
        c = self.raw_tls()
        import base64
        ir = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()).decode()
        self.assertTrue(c.cmd("AUTH PLAIN " + ir).startswith("+OK logged in, 1 messages"))
        self.assertEqual(c.cmd("QUIT"), "+OK bye")

    def test_in_use_across_sessions(self):
        self.start()
        first = self.raw_tls()
        self.login_raw(first)
        second = self.raw_tls()
        self.assertEqual(second.cmd("USER " + USER), "+OK send PASS")
        self.assertEqual(second.cmd("PASS " + PASSWORD),
                         "-ERR [IN-USE] the maildrop is in use by another session")
        # Another user is not affected.
        self.assertEqual(second.cmd("USER alice@example.test"), "+OK send PASS")
        self.assertTrue(second.cmd("PASS alice pw").startswith("+OK logged in"))
        self.assertEqual(first.cmd("QUIT"), "+OK bye")
        third = self.raw_tls()
        self.login_raw(third)
        third.cmd("QUIT")
        # A lock file per user under <state_dir>/pop3-locks (for several processes).
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "pop3-locks", USER + ".lock")))

    def test_in_use_across_processes(self):
        # A second daemon process on other ports, same store and state dir.
        self.start()
        first = self.raw_tls()
        self.login_raw(first)
        other_pop3, other_pop3s = free_port(), free_port()
        other_cfg = os.path.join(self.tmp, "other.toml")
        with open(self.config) as f, open(other_cfg, "w") as g:
            g.write(f.read().replace(str(self.pop3_port), str(other_pop3))
                    .replace(str(self.pop3s_port), str(other_pop3s)))
        log = open(os.path.join(self.tmp, "other.log"), "wb")
        self.addCleanup(log.close)
        other = subprocess.Popen([POP3D, "--config", other_cfg], stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: (other.kill(), other.wait()))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                sock = socket.create_connection(("127.0.0.1", other_pop3s), timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        c = RawPop3(self.ctx().wrap_socket(sock, server_hostname="mail.example.test"))
        self.addCleanup(c.close)
        c.line()
        c.cmd("USER " + USER)
        self.assertEqual(c.cmd("PASS " + PASSWORD),
                         "-ERR [IN-USE] the maildrop is in use by another session")
        first.cmd("QUIT")
        self.wait_log("disconnect")
        c.cmd("USER " + USER)
        self.assertTrue(c.cmd("PASS " + PASSWORD).startswith("+OK logged in"))

    def test_snapshot_and_deletions_at_quit_only(self):
        for n in range(1, 4):
            self.deliver(message(n))
        self.start()
        c = self.raw_tls()
        self.login_raw(c)
        c.send("UIDL")
        c.line()
        before = c.body().decode().split("\r\n")[:-1]
        self.assertEqual(c.cmd("DELE 1"), "+OK message 1 deleted")
        self.assertEqual(c.cmd("DELE 3"), "+OK message 3 deleted")
        # Mail arriving now shows up at the next login, not in this session.
        self.deliver(message(4))
        self.assertEqual(self.inbox()["messages"], 4, "DELE alone removes nothing")
        self.assertEqual(c.cmd("STAT").split()[1], "1")
        self.assertEqual(c.cmd("LIST 4"), "-ERR no such message")
        self.assertEqual(c.cmd("QUIT"), "+OK bye, 1 messages left")
        self.wait_log("update")
        self.assertEqual(self.inbox()["messages"], 2, "expunged at QUIT")
        d = self.raw_tls()
        self.login_raw(d)
        d.send("UIDL")
        d.line()
        after = d.body().decode().split("\r\n")[:-1]
        self.assertEqual(len(after), 2)
        self.assertEqual(after[0].split()[1], before[1].split()[1], "same id for the same message")
        self.assertNotIn(after[1].split()[1], [b.split()[1] for b in before])
        d.cmd("QUIT")

    def test_cut_mid_retr_deletes_nothing(self):
        for n in range(1, 4):
            self.deliver(message(n, body_lines=30000))  # ~1 MiB each
        self.start()
        c = self.raw_tls()
        self.login_raw(c)
        c.cmd("DELE 1")
        c.cmd("DELE 2")
        c.send("RETR 3")
        c.line()
        c._fill(10)  # part of the message, then the client vanishes
        c.sock.close()
        self.wait_log("disconnect")
        self.assertEqual(self.inbox()["messages"], 3)
        d = self.raw_tls()
        self.login_raw(d)
        self.assertEqual(d.cmd("STAT").split()[1], "3")
        d.cmd("QUIT")
        self.assertNotIn("update", self.log().split("disconnect")[0])

    def test_idle_timeout_deletes_nothing(self):
        self.deliver(message(1))
        self.write_config(idle="1s")
        self.start()
        c = self.raw_tls()
        self.login_raw(c)
        c.cmd("DELE 1")
        self.assertEqual(c.line(timeout=10),
                         "-ERR [SYS/TEMP] idle for too long, closing; nothing was deleted")
        self.wait_log("disconnect")
        self.assertEqual(self.inbox()["messages"], 1)

    def test_bad_input_then_too_many_errors(self):
        self.deliver(message(1))
        self.write_config(max_errors=6)
        self.start()
        c = self.raw_tls()
        self.assertEqual(c.cmd("STAT"), "-ERR not logged in")
        self.assertEqual(c.cmd("FOO bar"), "-ERR unknown command")
        self.assertEqual(c.cmd("X" * 5000), "-ERR line too long")
        self.login_raw(c)
        self.assertEqual(c.cmd("RETR 2"), "-ERR no such message")
        self.assertEqual(c.cmd("TOP 1"), "-ERR usage: TOP message lines")
        # Pipelined: answers in order.
        c.send("NOOP\r\nLIST 1\r\nBAD\r\nNOOP")
        self.assertEqual(c.line(), "+OK")
        self.assertTrue(c.line().startswith("+OK 1 "))
        self.assertEqual(c.line(), "-ERR unknown command (too many errors, closing)")
        with self.assertRaises(EOFError):
            c.line()
        self.assertEqual(self.inbox()["messages"], 1)

    def test_failed_logins_are_delayed_more_each_time(self):
        self.write_config(delay="1s")
        self.start()
        c = self.raw_tls()
        times = []
        for _ in range(2):
            c.cmd("USER " + USER)
            t = time.monotonic()
            self.assertEqual(c.cmd("PASS wrong"), "-ERR [AUTH] authentication failed")
            times.append(time.monotonic() - t)
        self.assertGreaterEqual(times[0], 0.9)
        self.assertGreaterEqual(times[1], 1.9)
        # An unknown user gets the same answer.
        c.cmd("USER nobody@example.test")
        self.assertEqual(c.cmd("PASS x"), "-ERR [AUTH] authentication failed")
        self.login_raw(c)  # the right password still works afterwards

    def test_login_delay_and_expire_announced_and_enforced(self):
        self.write_config(extra='expire = "NEVER"\nlogin_delay = "1h"\n')
        self.start()
        c = self.raw_tls()
        c.send("CAPA")
        c.line()
        caps = c.body().decode().split("\r\n")
        self.assertIn("EXPIRE NEVER", caps)
        self.assertIn("LOGIN-DELAY 3600", caps)
        self.login_raw(c)
        c.cmd("QUIT")
        d = self.raw_tls()
        d.cmd("USER " + USER)
        self.assertTrue(d.cmd("PASS " + PASSWORD).startswith("-ERR [LOGIN-DELAY]"))

    def test_fetchmail_keep_uidl_then_delete(self):
        for n in range(1, 4):
            self.deliver(message(n))
        self.start()
        mbox = os.path.join(self.tmp, "fetchmail.mbox")

        def fetch(keep):
            rc = os.path.join(self.tmp, "fetchmailrc")
            with open(rc, "w") as f:
                f.write(f"""set no bouncemail
set no syslog
defaults
  timeout 20
  sslproto TLS1.2+
  sslcertck
  sslcertfile {self.cert}
  {"keep" if keep else "no keep fetchall"}
poll mail.example.test via 127.0.0.1 service {self.pop3_port} protocol POP3 auth password uidl
  user "{USER}" there with password "{PASSWORD}" is "root" here
  sslcommonname mail.example.test
  mda "/usr/bin/formail >> {mbox}"
""")
            os.chmod(rc, 0o600)
            env = dict(os.environ, FETCHMAILHOME=self.tmp)
            return subprocess.run(["fetchmail", "-f", rc, "--nodetach", "--idfile",
                                   os.path.join(self.tmp, "fetchids")],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  env=env, timeout=60)

        r = fetch(keep=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.mbox_count(mbox), 3)
        r = fetch(keep=True)
        self.assertEqual(r.returncode, 1, "uidl: no new mail " + r.stdout + r.stderr)
        self.deliver(message(4))
        r = fetch(keep=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.mbox_count(mbox), 4)
        self.assertEqual(self.inbox()["messages"], 4)
        r = fetch(keep=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.mbox_count(mbox), 8)
        self.assertEqual(self.inbox()["messages"], 0, "fetchmail deleted everything")
        with open(mbox) as f:
            text = f.read()
        self.assertIn("\n.a line that starts with a dot\n", text, "dot-stuffing undone")

    def mbox_count(self, path):
        if not os.path.exists(path):
            return 0
        with open(path, errors="replace") as f:
            return len(re.findall(r"^From ", f.read(), re.M))

    def test_getmail_pop3_and_pop3ssl(self):
        for n in range(1, 4):
            self.deliver(message(n))
        self.write_config(plaintext=True)  # getmail6 has no STLS
        self.start()
        gdir = os.path.join(self.tmp, "getmail")
        os.mkdir(gdir)
        mbox = os.path.join(self.tmp, "getmail.mbox")
        open(mbox, "w").close()
        os.chown(mbox, self.uid, self.gid)

        def run(retriever, port, delete, ssl_lines=""):
            with open(os.path.join(gdir, "rc"), "w") as f:
                f.write(f"""[retriever]
type = {retriever}
server = 127.0.0.1
port = {port}
username = {USER}
password = {PASSWORD}
{ssl_lines}
[destination]
type = Mboxrd
path = {mbox}
user = {self.user}
[options]
read_all = {"true" if delete else "false"}
delete = {"true" if delete else "false"}
""")
            return subprocess.run(["getmail", "--getmaildir", gdir, "--rcfile", "rc", "--quiet"],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=60)

        r = run("SimplePOP3Retriever", self.pop3_port, delete=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.mbox_count(mbox), 3)
        r = run("SimplePOP3Retriever", self.pop3_port, delete=False)
        self.assertEqual(self.mbox_count(mbox), 3, "nothing new: " + r.stdout + r.stderr)
        r = run("SimplePOP3SSLRetriever", self.pop3s_port, delete=True,
                ssl_lines=f"ca_certs = {self.cert}\nssl_cert_hostname = mail.example.test")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.mbox_count(mbox), 6)
        self.assertEqual(self.inbox()["messages"], 0)

    def test_curl_pop3_and_pop3s(self):
        for n in range(1, 3):
            self.deliver(message(n))
        self.start()
        base = ["curl", "-sS", "--cacert", self.cert, "--user", f"{USER}:{PASSWORD}"]

        def curl(*args):
            r = subprocess.run(base + list(args), capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.decode()

        listing = curl("--ssl-reqd", f"pop3://127.0.0.1:{self.pop3_port}/")
        self.assertEqual(len(listing.strip().splitlines()), 2)
        msg = curl("--ssl-reqd", f"pop3://127.0.0.1:{self.pop3_port}/2")
        self.assertIn("Subject: message 2", msg)
        self.assertIn("\r\n.a line that starts with a dot\r\n", msg)
        uidl = curl("--ssl-reqd", f"pop3://127.0.0.1:{self.pop3_port}/", "-X", "UIDL")
        self.assertEqual(len(uidl.strip().splitlines()), 2)
        top = curl(f"pop3s://127.0.0.1:{self.pop3s_port}/", "-X", "TOP 1 0")
        self.assertIn("Subject: message 1", top)
        self.assertNotIn("line 0", top)
        self.assertEqual(curl(f"pop3s://127.0.0.1:{self.pop3s_port}/"), listing)
        # A wrong password: curl's "Login denied".
        r = subprocess.run(["curl", "-sS", "--cacert", self.cert, "--user", f"{USER}:bad",
                            f"pop3s://127.0.0.1:{self.pop3s_port}/"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 67, r.stderr)

    def test_openssl_s_client_starttls(self):
        self.deliver(message(1))
        self.start()
        script = f"sleep 0.5; printf 'USER {USER}\\nPASS {PASSWORD}\\nSTAT\\nQUIT\\n'; sleep 1"
        r = subprocess.run(f"({script}) | openssl s_client -connect 127.0.0.1:{self.pop3_port} "
                           f"-starttls pop3 -CAfile {self.cert} -verify_return_error "
                           f"-verify_hostname mail.example.test -quiet -crlf -ign_eof",
                           shell=True, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("+OK logged in, 1 messages", r.stdout)
        self.assertIn("+OK 1 ", r.stdout)
        self.assertIn("+OK bye", r.stdout)

    def test_thousand_messages_downloaded_and_deleted(self):
        # Through the CLI's local delivery agent: 10 bodies, each to 100
        # plus-addresses of bob (all resolve to his INBOX), so 1,000 messages
        # cost 10 processes.
        start = time.monotonic()
        for batch in range(10):
            body = message(batch, body_lines=40)
            self.cli("deliver", *[f"bob+{batch}x{i}@example.test" for i in range(100)], stdin=body)
        sys.stderr.write(f"\n  1000 deliveries: {time.monotonic() - start:.1f} s\n")
        self.assertEqual(self.inbox()["messages"], 1000)
        self.start()
        p = self.poplib_ssl()
        count, size = p.stat()
        self.assertEqual(count, 1000)
        t = time.monotonic()
        uidls = {l.split()[1] for l in p.uidl()[1]}
        self.assertEqual(len(uidls), 1000)
        delivered_to = set()
        for n in range(1, 1001):
            resp, lines, octets = p.retr(n)
            delivered_to.update(l for l in lines if l.startswith(b"Delivered-To: "))
            p.dele(n)
        p.quit()
        sys.stderr.write(f"  1000 RETR+DELE+QUIT: {time.monotonic() - t:.2f} s, {size} octets\n")
        self.assertEqual(len(delivered_to), 1000, "every message, each once")
        self.assertEqual(self.inbox()["messages"], 0)
        self.assertEqual(self.inbox()["size_bytes"], 0)

    def test_sigterm_closes_sessions_without_deleting(self):
        self.deliver(message(1))
        self.start()
        c = self.raw_tls()
        self.login_raw(c)
        c.cmd("DELE 1")
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(c.line(), "-ERR [SYS/TEMP] server shutting down, nothing was deleted")
        self.assertEqual(self.proc.wait(timeout=15), 0)
        self.assertEqual(self.inbox()["messages"], 1)


if __name__ == "__main__":
    unittest.main()
