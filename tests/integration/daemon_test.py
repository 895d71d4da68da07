"""The daemon skeleton every yubin daemon inherits, proven with real processes
and real TLS clients through yubin-testd (tests/integration/testd/testd.cc):
bind-then-drop privileges, STARTTLS hygiene, SIGHUP reload of certificates and
limits without dropping sessions, graceful SIGTERM, idle timeouts, IPv6."""
import hashlib
import os
import pwd
import signal
import socket
import ssl
import subprocess
import sys
import time
import unittest
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from yubintest import TempDirTest  # noqa: E402

TESTD = os.environ.get("YUBIN_TESTD", "yubin-testd")


def free_port(low=20000, high=60000, family=socket.AF_INET, host="127.0.0.1"):
    for port in range(low, high):
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port")


def make_cert(directory, name):
    cert, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={name}.example.test",
                    "-addext", "subjectAltName=DNS:mail.example.test,IP:127.0.0.1"],
                   check=True, capture_output=True)
    os.chmod(key, 0o644)  # throwaway test key: the daemon re-reads it after dropping root
    return cert, key


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


class LineClient:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self, timeout=10):
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("connection closed; buffered: %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def close(self):
        self.sock.close()


class DaemonSkeleton(TempDirTest):
    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)
        self.cert_a = make_cert(self.tmp, "a")
        self.cert_b = make_cert(self.tmp, "b")
        self.cert, self.key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        self.use_cert(self.cert_a)
        self.root = os.geteuid() == 0
        # As root, listen on a privileged port to prove bind-before-drop.
        self.plain_port = free_port(600, 1000) if self.root else free_port()
        self.tls_port = free_port(self.plain_port + 1)
        self.config = os.path.join(self.tmp, "yubin.toml")
        self.write_config()
        self.proc = None

    def use_cert(self, pair):
        for src, dst in zip(pair, (self.cert, self.key)):
            with open(src, "rb") as f, open(dst + ".tmp", "wb") as g:
                g.write(f.read())
            os.chmod(dst + ".tmp", 0o644)
            os.replace(dst + ".tmp", dst)

    def write_config(self, per_ip=3, idle="30s", extra=""):
        user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        with open(self.config, "w") as f:
            f.write(f"""[server]
hostname = "mail.example.test"
state_dir = "{self.tmp}"
user = "{user}"
shutdown_timeout = "10s"
[tls]
cert = "{self.cert}"
key = "{self.key}"
[smtpd]
mx = ["127.0.0.1:{self.plain_port}", "[::1]:{self.plain_port}"]
submission = []
submissions = ["127.0.0.1:{self.tls_port}"]
max_connections_per_ip = {per_ip}
idle_timeout = "{idle}"
{extra}""")

    def start(self):
        self.log_path = os.path.join(self.tmp, "testd.log")
        self.log_file = open(self.log_path, "wb")
        self.addCleanup(self.log_file.close)
        self.proc = subprocess.Popen([TESTD, "--config", self.config], stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_daemon)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail("testd exited: " + self.log())
            if self.log().count("listening") >= 3:
                return
            time.sleep(0.05)
        self.fail("testd did not start: " + self.log())

    def stop_daemon(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, text, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.05)
        self.fail(f"{text!r} not logged: " + self.log())

    def plain(self, host="127.0.0.1", family=socket.AF_INET):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.connect((host, self.plain_port))
        c = LineClient(s)
        self.addCleanup(c.close)
        return c

    def tls_context(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def implicit_tls(self):
        raw = socket.create_connection(("127.0.0.1", self.tls_port))
        s = self.tls_context().wrap_socket(raw, server_hostname="mail.example.test")
        c = LineClient(s)
        self.addCleanup(c.close)
        return c, fingerprint(s.getpeercert(binary_form=True))

    def cert_fingerprint(self, pair):
        with open(pair[0]) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        return fingerprint(der)

    # ---- tests ----

    def test_binds_then_drops_privileges(self):
        self.start()
        c = self.plain()
        self.assertEqual(c.line(), "+OK testd ready")
        self.assertEqual(c.cmd("PING"), "+OK PONG")
        with open(f"/proc/{self.proc.pid}/status") as f:
            status = dict(l.split(":", 1) for l in f if ":" in l)
        uids = status["Uid"].split()
        expected = pwd.getpwnam("nobody").pw_uid if self.root else os.geteuid()
        self.assertEqual(set(map(int, uids)), {expected}, status["Uid"])
        if self.root:
            self.assertLess(self.plain_port, 1024)
            self.assertIn("dropped_root=yes", self.log())

    def test_ipv6_listener(self):
        self.start()
        c = self.plain("::1", socket.AF_INET6)
        self.assertEqual(c.line(), "+OK testd ready")
        self.assertEqual(c.cmd("PING"), "+OK PONG")

    def test_starttls_discards_pipelined_plaintext(self):
        self.start()
        c = self.plain()
        self.assertEqual(c.line(), "+OK testd ready")
        self.assertEqual(c.cmd("TLS"), "-ERR plain")
        # A command injected behind STARTTLS in the same packet must be dropped
        # (RFC 3207 §4.2), never answered, neither in plaintext nor after TLS.
        c.sock.sendall(b"STARTTLS\r\nPING\r\n")
        self.assertEqual(c.line(), "+OK go")
        self.assertEqual(c.buf, b"")
        tls = self.tls_context().wrap_socket(c.sock, server_hostname="mail.example.test")
        t = LineClient(tls)
        self.addCleanup(t.close)
        reply = t.cmd("TLS")
        self.assertTrue(reply.startswith("+OK tls=TLSv1."), reply)
        self.assertEqual(t.cmd("PING"), "+OK PONG")
        self.wait_log("plaintext_after_starttls_dropped")

    def test_tls_below_1_2_is_refused(self):
        self.start()
        ctx = self.tls_context()
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        raw = socket.create_connection(("127.0.0.1", self.tls_port))
        self.addCleanup(raw.close)
        with self.assertRaises((ssl.SSLError, ConnectionResetError, EOFError, OSError)):
            s = ctx.wrap_socket(raw, server_hostname="mail.example.test")
            self.addCleanup(s.close)
            LineClient(s).line()

    def test_sighup_swaps_certificate_without_dropping_sessions(self):
        self.start()
        old, fp = self.implicit_tls()
        self.assertEqual(fp, self.cert_fingerprint(self.cert_a))
        self.assertEqual(old.line(), "+OK testd ready")
        self.use_cert(self.cert_b)
        self.proc.send_signal(signal.SIGHUP)
        self.wait_log("reloaded")
        new, fp = self.implicit_tls()
        self.assertEqual(fp, self.cert_fingerprint(self.cert_b))
        self.assertEqual(new.line(), "+OK testd ready")
        # The session opened before the reload carries on.
        self.assertEqual(old.cmd("PING"), "+OK PONG")
        self.assertEqual(new.cmd("PING"), "+OK PONG")

    def test_sighup_applies_new_limits(self):
        self.start()
        clients = [self.plain() for _ in range(3)]
        for c in clients:
            self.assertEqual(c.line(), "+OK testd ready")
        extra = self.plain()
        self.assertEqual(extra.line(), "-ERR busy")
        self.write_config(per_ip=5)
        self.proc.send_signal(signal.SIGHUP)
        self.wait_log("reloaded")
        more = [self.plain() for _ in range(2)]
        for c in more:
            self.assertEqual(c.line(), "+OK testd ready")
        self.assertEqual(self.plain().line(), "-ERR busy")
        for c in clients:
            self.assertEqual(c.cmd("PING"), "+OK PONG")

    def test_invalid_reload_is_ignored(self):
        self.start()
        c = self.plain()
        self.assertEqual(c.line(), "+OK testd ready")
        with open(self.config, "a") as f:
            f.write("bogus_key = 1\n")
        self.proc.send_signal(signal.SIGHUP)
        self.wait_log("reload_failed")
        self.assertIn("smtpd.bogus_key", self.log())
        self.assertEqual(c.cmd("PING"), "+OK PONG")
        self.assertEqual(self.plain().line(), "+OK testd ready")
        self.assertIsNone(self.proc.poll())

    def test_sigterm_finishes_transactions_in_flight(self):
        self.start()
        busy = self.plain()
        idle = self.plain()
        self.assertEqual(busy.line(), "+OK testd ready")
        self.assertEqual(idle.line(), "+OK testd ready")
        busy.sock.sendall(b"SLOW 1500\r\n")
        time.sleep(0.2)
        self.proc.send_signal(signal.SIGTERM)
        # The idle session is closed politely at once ...
        self.assertEqual(idle.line(), "-ERR shutting down")
        # ... no new connection is accepted ...
        time.sleep(0.2)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", self.plain_port), timeout=2).close()
        # ... and the transaction in flight completes before the daemon exits 0.
        self.assertEqual(busy.line(), "+OK slow done")
        self.assertEqual(self.proc.wait(timeout=15), 0, self.log())
        self.assertIn("stopped", self.log())

    def test_idle_timeout(self):
        self.write_config(idle="1s")
        self.start()
        c = self.plain()
        self.assertEqual(c.line(), "+OK testd ready")
        started = time.monotonic()
        self.assertEqual(c.line(timeout=5), "-ERR timeout")
        self.assertGreaterEqual(time.monotonic() - started, 0.8)
        with self.assertRaises(EOFError):
            c.line(timeout=5)

    def test_bad_config_refuses_to_start(self):
        self.write_config(extra="max_recipients = 5\n")
        proc = subprocess.run([TESTD, "--config", self.config], capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 78)
        self.assertRegex(proc.stderr, r"yubin\.toml:\d+: smtpd\.max_recipients")

    def test_missing_certificate_refuses_to_start(self):
        os.unlink(self.key)
        proc = subprocess.run([TESTD, "--config", self.config], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("tls", proc.stderr.lower())


if __name__ == "__main__":
    unittest.main()
