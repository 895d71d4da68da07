"""`yubin run`, the quick start: state preparation, the printed credentials,
supervision of daemons (with stand-in daemon scripts) and clean shutdown."""
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from yubintest import YUBIN, TempDirTest  # noqa: E402


def wait_for(predicate, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


# A stand-in daemon: records its start, SIGHUPs and clean SIGTERM exit in a log.
FAKE_DAEMON = """#!/bin/sh
log="$FAKE_LOG"
echo "start $$ $*" >> "$log"
trap 'echo "hup $$" >> "$log"' HUP
trap 'echo "term $$" >> "$log"; exit 0' TERM
while :; do sleep 0.05; done
"""


class QuickStart(TempDirTest):
    def start(self, env=None):
        proc = subprocess.Popen([YUBIN, "run", "--state", "var"], cwd=self.tmp, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        proc.output = []

        def pump():
            for line in proc.stdout:
                proc.output.append(line)
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        proc.reader = reader
        ok = wait_for(lambda: any("Press Ctrl-C" in l for l in proc.output) or proc.poll() is not None,
                      timeout=60)
        self.assertTrue(ok and proc.poll() is None, "yubin run did not come up: " + "".join(proc.output))
        return proc

    def stop(self, proc, sig=signal.SIGINT):
        proc.send_signal(sig)
        proc.wait(timeout=30)
        proc.reader.join(timeout=10)
        proc.stdout.close()
        return proc.returncode, "".join(proc.output)

    def credentials(self):
        with open(os.path.join(self.tmp, "var", "demo-credentials")) as f:
            return f.read()

    def test_prepares_state_prints_password_and_stops_on_ctrl_c(self):
        proc = self.start()
        text = self.credentials()
        lines = text.splitlines()
        self.assertEqual(len(lines), 2, text)
        self.assertEqual(lines[0], "user=demo@example.test")
        self.assertTrue(lines[1].startswith("password="))
        password = lines[1][len("password="):]
        self.assertGreaterEqual(len(password), 16)
        mode = stat.S_IMODE(os.stat(os.path.join(self.tmp, "var", "demo-credentials")).st_mode)
        self.assertEqual(mode & 0o077, 0, "credentials must not be readable by others")
        config = os.path.join(self.tmp, "var", "yubin.toml")
        # The password works against the store the suite uses.
        self.yubin("user", "verify", "demo@example.test", config=config, stdin=password + "\n", check=True)
        # The certificate is real, self-signed, and names the loopback addresses.
        cert = os.path.join(self.tmp, "var", "tls", "cert.pem")
        x509 = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-text"], capture_output=True,
                              text=True, check=True).stdout
        self.assertIn("IP Address:127.0.0.1", x509)
        self.assertIn("DNS:localhost", x509)
        key = os.path.join(self.tmp, "var", "tls", "key.pem")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode) & 0o077, 0)
        rc, out = self.stop(proc)
        self.assertEqual(rc, 0, out)
        self.assertIn(password, out, "the password is printed")
        self.assertIn("2525", out)
        self.assertIn("2993", out)

        # A second run keeps the state and the same password; SIGTERM stops it too.
        proc = self.start()
        self.assertEqual(self.credentials(), text)
        rc, out = self.stop(proc, signal.SIGTERM)
        self.assertEqual(rc, 0, out)

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_as_root_daemons_get_an_unprivileged_user(self):
        # A reachable state directory: the daemons start as root, bind, and drop to
        # the system user "yubin", which owns the whole state tree.
        os.chmod(self.tmp, 0o755)
        libexec, log = self.fake_daemons(("pop3d",))
        proc = self.start(env=dict(os.environ, YUBIN_LIBEXEC_DIR=libexec, FAKE_LOG=log))
        rc, out = self.stop(proc)
        self.assertEqual(rc, 0, out)
        import pwd
        yubin = pwd.getpwnam("yubin")
        with open(os.path.join(self.tmp, "var", "yubin.toml")) as f:
            self.assertIn('user = "yubin"', f.read())
        for root, dirs, files in os.walk(os.path.join(self.tmp, "var")):
            for name in dirs + files:
                self.assertEqual(os.lstat(os.path.join(root, name)).st_uid, yubin.pw_uid, name)
        with open(log) as f:
            starts = [l for l in f if l.startswith("start ")]
        self.assertTrue(starts)
        self.assertNotIn("--allow-root", starts[0])
        self.assertIn("daemons run as      yubin", out)

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_as_root_with_unreachable_state_runs_daemons_as_root_loudly(self):
        os.chmod(self.tmp, 0o700)  # like a checkout under /root
        libexec, log = self.fake_daemons(("pop3d",))
        proc = self.start(env=dict(os.environ, YUBIN_LIBEXEC_DIR=libexec, FAKE_LOG=log))
        rc, out = self.stop(proc)
        self.assertEqual(rc, 0, out)
        self.assertIn("WARNING", out)
        with open(log) as f:
            starts = [l for l in f if l.startswith("start ")]
        self.assertIn("--allow-root", starts[0])

    def fake_daemons(self, names):
        libexec = os.path.join(self.tmp, "libexec")
        os.makedirs(libexec, exist_ok=True)
        os.chmod(libexec, 0o755)
        for name in names:
            path = os.path.join(libexec, f"yubin-{name}")
            with open(path, "w") as f:
                f.write(FAKE_DAEMON)
            os.chmod(path, 0o755)
        return libexec, os.path.join(self.tmp, "daemons.log")

    def test_supervises_daemons(self):
        libexec, log = self.fake_daemons(("smtpd", "imapd"))
        env = dict(os.environ, YUBIN_LIBEXEC_DIR=libexec, FAKE_LOG=log)
        proc = self.start(env=env)

        def entries(kind):
            if not os.path.exists(log):
                return []
            with open(log) as f:
                return [l.split() for l in f if l.startswith(kind + " ")]

        self.assertTrue(wait_for(lambda: len(entries("start")) == 2), "".join(proc.output))
        for e in entries("start"):
            self.assertIn("--config", e)
            self.assertTrue(e[-1].endswith("var/yubin.toml"))
        # SIGHUP is forwarded to every daemon.
        proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: len(entries("hup")) == 2))
        # A daemon that dies is restarted.
        victim = int(entries("start")[0][1])
        os.kill(victim, signal.SIGKILL)
        self.assertTrue(wait_for(lambda: len(entries("start")) == 3, timeout=10))
        # Ctrl-C stops every running daemon with SIGTERM and exits 0.
        rc, out = self.stop(proc)
        self.assertEqual(rc, 0, out)
        running = {int(e[1]) for e in entries("start")} - {victim}
        terminated = {int(e[1]) for e in entries("term")}
        self.assertEqual(running, terminated, out)


if __name__ == "__main__":
    unittest.main()
