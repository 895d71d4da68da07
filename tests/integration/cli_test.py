"""The `yubin` admin CLI as a real process against a real LMDB store."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from yubintest import YUBIN, TempDirTest  # noqa: E402


class DomainCommands(TempDirTest):
    def test_add_list_remove(self):
        cfg = self.write_minimal_config()
        self.yubin("domain", "add", "Example.COM", config=cfg, check=True)
        self.yubin("domain", "add", "other.test", config=cfg, check=True)
        out = self.yubin("--json", "domain", "list", config=cfg, check=True).stdout
        self.assertEqual(sorted(json.loads(out)), ["example.com", "other.test"])
        dup = self.yubin("domain", "add", "example.com", config=cfg, check=False)
        self.assertIn("yubin:", dup.stderr)
        self.yubin("domain", "remove", "other.test", config=cfg, check=True)
        out = self.yubin("domain", "list", config=cfg, check=True).stdout
        self.assertEqual(out.split(), ["example.com"])
        self.yubin("domain", "remove", "nosuch.test", config=cfg, check=False)

    def test_domain_with_users_cannot_be_removed(self):
        cfg = self.write_minimal_config()
        self.yubin("domain", "add", "example.com", config=cfg, check=True)
        self.yubin("user", "add", "alice@example.com", config=cfg, stdin="pw-1\n", check=True)
        self.yubin("domain", "remove", "example.com", config=cfg, check=False)
        self.yubin("user", "remove", "alice@example.com", config=cfg, check=True)
        self.yubin("domain", "remove", "example.com", config=cfg, check=True)


class UserCommands(TempDirTest):
    def setUp(self):
        super().setUp()
        self.cfg = self.write_minimal_config()
        self.yubin("domain", "add", "example.com", config=self.cfg, check=True)

    def test_password_from_stdin_is_hashed_and_verifies(self):
        self.yubin("user", "add", "Alice@Example.com", config=self.cfg, stdin="s3cret pass\n", check=True)
        self.yubin("user", "verify", "alice@example.com", config=self.cfg, stdin="s3cret pass\n", check=True)
        bad = self.yubin("user", "verify", "alice@example.com", config=self.cfg, stdin="wrong\n", check=False)
        self.assertIn("does not match", bad.stderr)
        # The hash, not the password, is what the store keeps.
        with open(os.path.join(self.tmp, "store", "data.mdb"), "rb") as f:
            data = f.read()
        self.assertNotIn(b"s3cret pass", data)
        self.assertIn(b"$y$", data)

    def test_passwd_changes_password(self):
        self.yubin("user", "add", "bob@example.com", config=self.cfg, stdin="old\n", check=True)
        self.yubin("user", "passwd", "bob@example.com", config=self.cfg, stdin="new\n", check=True)
        self.yubin("user", "verify", "bob@example.com", config=self.cfg, stdin="new\n", check=True)
        self.yubin("user", "verify", "bob@example.com", config=self.cfg, stdin="old\n", check=False)
        self.yubin("user", "passwd", "nobody@example.com", config=self.cfg, stdin="x\n", check=False)

    def test_generated_password_is_printed_and_works(self):
        out = self.yubin("--json", "user", "add", "carol@example.com", "--generate-password",
                         "--quota", "10", config=self.cfg, check=True).stdout
        record = json.loads(out)
        self.assertEqual(record["address"], "carol@example.com")
        self.assertEqual(record["quota_bytes"], 10 * 1024 * 1024)
        self.assertGreaterEqual(len(record["password"]), 16)
        self.yubin("user", "verify", "carol@example.com", config=self.cfg,
                   stdin=record["password"] + "\n", check=True)

    def test_password_is_never_taken_from_the_command_line(self):
        r = self.yubin("user", "add", "dave@example.com", "--password", "x", config=self.cfg, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.yubin("user", "verify", "dave@example.com", config=self.cfg, stdin="x\n", check=False)

    def test_errors(self):
        r = self.yubin("user", "add", "eve@unknown.test", config=self.cfg, stdin="pw\n", check=False)
        self.assertIn("unknown.test", r.stderr)
        self.yubin("user", "add", "not-an-address", config=self.cfg, stdin="pw\n", check=False)
        self.yubin("user", "add", "frank@example.com", config=self.cfg, stdin="", check=False)  # no password
        self.yubin("user", "add", "gina@example.com", config=self.cfg, stdin="pw\n", check=True)
        self.yubin("user", "add", "gina@example.com", config=self.cfg, stdin="pw\n", check=False)
        self.yubin("user", "remove", "nobody@example.com", config=self.cfg, check=False)

    def test_list_json(self):
        for name in ("a", "b"):
            self.yubin("user", "add", f"{name}@example.com", config=self.cfg, stdin="pw\n", check=True)
        self.yubin("domain", "add", "other.test", config=self.cfg, check=True)
        self.yubin("user", "add", "c@other.test", config=self.cfg, stdin="pw\n", check=True)
        users = json.loads(self.yubin("--json", "user", "list", config=self.cfg, check=True).stdout)
        self.assertEqual(sorted(u["address"] for u in users), ["a@example.com", "b@example.com", "c@other.test"])
        users = json.loads(self.yubin("--json", "user", "list", "other.test", config=self.cfg, check=True).stdout)
        self.assertEqual([u["address"] for u in users], ["c@other.test"])
        self.assertNotIn("password_hash", users[0])

    def test_default_mailboxes_with_special_use(self):
        self.yubin("user", "add", "h@example.com", config=self.cfg, stdin="pw\n", check=True)
        boxes = json.loads(self.yubin("--json", "mailbox", "list", "h@example.com", config=self.cfg,
                                      check=True).stdout)
        by_name = {b["name"]: b for b in boxes}
        self.assertEqual(set(by_name), {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"})
        self.assertEqual(by_name["Sent"]["special_use"], "\\Sent")
        self.assertEqual(by_name["Junk"]["special_use"], "\\Junk")
        self.assertTrue(all(b["subscribed"] for b in boxes))
        self.assertTrue(all(b["messages"] == 0 for b in boxes))
        self.yubin("mailbox", "list", "nobody@example.com", config=self.cfg, check=False)

    def test_concurrent_cli_processes_share_the_store(self):
        procs = [subprocess.Popen([YUBIN, "--config", self.cfg, "user", "add", f"u{i}@example.com"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for i in range(8)]
        for p in procs:
            out, err = p.communicate("pw\n", timeout=60)
            self.assertEqual(p.returncode, 0, err)
        users = json.loads(self.yubin("--json", "user", "list", config=self.cfg, check=True).stdout)
        self.assertEqual(len(users), 8)


class AliasCommands(TempDirTest):
    def test_add_list_remove_and_catch_all(self):
        cfg = self.write_minimal_config()
        self.yubin("domain", "add", "example.com", config=cfg, check=True)
        self.yubin("user", "add", "alice@example.com", config=cfg, stdin="pw\n", check=True)
        self.yubin("alias", "add", "postmaster@example.com", "alice@example.com", config=cfg, check=True)
        self.yubin("alias", "add", "@example.com", "alice@example.com", config=cfg, check=True)
        self.yubin("alias", "add", "sales@example.com", "someone@remote.test", config=cfg, check=True)
        aliases = json.loads(self.yubin("--json", "alias", "list", config=cfg, check=True).stdout)
        pairs = sorted((a["source"], a["target"]) for a in aliases)
        self.assertEqual(pairs, [("@example.com", "alice@example.com"),
                                 ("postmaster@example.com", "alice@example.com"),
                                 ("sales@example.com", "someone@remote.test")])
        self.yubin("alias", "add", "x@remote.test", "alice@example.com", config=cfg, check=False)
        self.yubin("alias", "remove", "@example.com", config=cfg, check=True)
        aliases = json.loads(self.yubin("--json", "alias", "list", config=cfg, check=True).stdout)
        self.assertEqual(len(aliases), 2)
        text = self.yubin("alias", "list", "example.com", config=cfg, check=True).stdout
        self.assertIn("postmaster@example.com -> alice@example.com", text)


class DeliverCommand(TempDirTest):
    MESSAGE = ("From: a@remote.test\nTo: alice@example.com\nSubject: hello\n"
               "Content-Type: text/plain\n\nbody line\n.leading dot\n")

    def setUp(self):
        super().setUp()
        self.cfg = self.write_minimal_config()
        self.yubin("domain", "add", "example.com", config=self.cfg, check=True)
        for u in ("alice", "bob"):
            self.yubin("user", "add", f"{u}@example.com", config=self.cfg, stdin="pw\n", check=True)

    def boxes(self, user):
        out = self.yubin("--json", "mailbox", "list", user, config=self.cfg, check=True).stdout
        return {b["name"]: b for b in json.loads(out)}

    def test_delivers_to_several_users_aliases_and_plus_tags(self):
        self.yubin("alias", "add", "team@example.com", "bob@example.com", config=self.cfg, check=True)
        self.yubin("deliver", "-f", "a@remote.test", "alice@example.com", "team@example.com",
                   "alice+archive@example.com", config=self.cfg, stdin=self.MESSAGE, check=True)
        alice, bob = self.boxes("alice@example.com"), self.boxes("bob@example.com")
        self.assertEqual(alice["INBOX"]["messages"], 1)
        self.assertEqual(alice["INBOX"]["unseen"], 1)
        self.assertEqual(alice["Archive"]["messages"], 1, "plus tag selects the mailbox")
        self.assertEqual(bob["INBOX"]["messages"], 1, "alias fans out")
        # Size counts CRLF line ends and the per-recipient Return-Path/Delivered-To.
        crlf_size = len(self.MESSAGE.replace("\n", "\r\n"))
        prefix = len("Return-Path: <a@remote.test>\r\nDelivered-To: alice@example.com\r\n")
        self.assertEqual(alice["INBOX"]["size_bytes"], crlf_size + prefix)

    def test_unknown_recipient_is_exit_67_and_nothing_is_stored(self):
        r = self.yubin("deliver", "nobody@example.com", config=self.cfg, stdin=self.MESSAGE, check=False)
        self.assertEqual(r.returncode, 67)
        r = self.yubin("deliver", "x@remote.test", config=self.cfg, stdin=self.MESSAGE, check=False)
        self.assertEqual(r.returncode, 67)
        self.assertEqual(self.boxes("alice@example.com")["INBOX"]["messages"], 0)

    def test_mailbox_option_and_size_limit(self):
        self.yubin("deliver", "-m", "Junk", "alice@example.com", config=self.cfg, stdin=self.MESSAGE,
                   check=True)
        self.assertEqual(self.boxes("alice@example.com")["Junk"]["messages"], 1)
        r = self.yubin("deliver", "--max-size", "20", "alice@example.com", config=self.cfg,
                       stdin=self.MESSAGE, check=False)
        self.assertEqual(r.returncode, 65)


class ConfigCommands(TempDirTest):
    def test_check_reports_file_line_key(self):
        path = os.path.join(self.tmp, "bad.toml")
        with open(path, "w") as f:
            f.write('[server]\nstate_dir = "/tmp"\nhostnme = "x"\n[smtpd]\nmax_message_size = -5\n')
        r = self.yubin("config", "check", config=path, check=False)
        self.assertIn(f"{path}:3: server.hostnme", r.stderr)
        self.assertIn(f"{path}:5: smtpd.max_message_size", r.stderr)
        # Any command refuses to run with a bad config.
        r = self.yubin("domain", "list", config=path, check=False)
        self.assertIn("server.hostnme", r.stderr)

    def test_check_accepts_shipped_default(self):
        default = os.path.join(os.environ.get("YUBIN_SOURCE_DIR", "."), "conf", "yubin.toml")
        r = self.yubin("config", "check", config=default, check=True)
        self.assertIn("ok", r.stdout)

    def test_show_renders_a_loadable_config(self):
        cfg = self.write_minimal_config()
        shown = self.yubin("config", "show", config=cfg, check=True).stdout
        path = os.path.join(self.tmp, "shown.toml")
        with open(path, "w") as f:
            f.write(shown)
        self.yubin("config", "check", config=path, check=True)
        self.assertIn("mail.example.test", shown)


if __name__ == "__main__":
    unittest.main()
