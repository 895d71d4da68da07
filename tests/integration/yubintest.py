"""Shared helpers for yubin's integration tests: locating binaries, temp
state directories, and running the `yubin` CLI as a real process."""
import os
import shutil
import subprocess
import tempfile
import unittest

YUBIN = os.environ.get("YUBIN_BIN", "yubin")
SOURCE_DIR = os.environ.get("YUBIN_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


class TempDirTest(unittest.TestCase):
    """A test case with a fresh temporary directory per test, removed after."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="yubin-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def write_minimal_config(self):
        path = os.path.join(self.tmp, "yubin.toml")
        with open(path, "w") as f:
            f.write(f'[server]\nstate_dir = "{self.tmp}"\nhostname = "mail.example.test"\n'
                    f'[store]\npath = "{self.tmp}/store"\nmap_size_mb = 64\n')
        return path

    def yubin(self, *args, config=None, stdin=None, check=None):
        """Runs the CLI; returns CompletedProcess. check=True/False asserts the exit status."""
        cmd = [YUBIN]
        if config:
            cmd += ["--config", config]
        cmd += list(args)
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
        if check is True:
            self.assertEqual(proc.returncode, 0, f"{cmd} failed: {proc.stderr}")
        elif check is False:
            self.assertNotEqual(proc.returncode, 0, f"{cmd} unexpectedly succeeded: {proc.stdout}")
        return proc
