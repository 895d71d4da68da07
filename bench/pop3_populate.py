#!/usr/bin/env python3
"""Fills one POP3 maildrop with COUNT messages of about SIZE bytes, for
bench/pop3_bench.sh (pop3_bench.py's --populate-cmd). No SMTP server is
needed (yubin-smtpd does not exist yet), and both servers get byte-identical
messages:
  --maildir DIR   writes Maildir files into DIR/new (Dovecot's store);
  --yubin BIN --config CFG --rcpt USER@DOMAIN
                  stores them with `yubin deliver`, 100 plus-addresses of the
                  user per call (all land in the INBOX), so 1,000 messages cost
                  10 processes.
Message n is the same text in both modes (LF line ends; each server stores
its own line-end form)."""
import argparse
import os
import subprocess
import time

ap = argparse.ArgumentParser()
ap.add_argument("--count", type=int, default=1000)
ap.add_argument("--size", type=int, default=102400)
ap.add_argument("--maildir")
ap.add_argument("--owner", type=int, default=65534, help="uid/gid for --maildir files")
ap.add_argument("--yubin")
ap.add_argument("--config")
ap.add_argument("--rcpt", default="pop1@example.test")
a = ap.parse_args()


def message(n):
    head = (f"From: a@x.test\nTo: {a.rcpt}\nSubject: bench message {n}\n"
            f"Message-ID: <bench{n}.{time.time_ns()}@x.test>\n\n")
    line = ("0123456789abcdefghijklmnopqrstuvwxyz" * 2)[:70] + "\n"
    body = []
    size = len(head)
    while size < a.size:
        body.append(line)
        size += len(line)
    return head + "".join(body)


if a.maildir:
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(a.maildir, sub), exist_ok=True)
        os.chown(os.path.join(a.maildir, sub), a.owner, a.owner)
    os.chown(a.maildir, a.owner, a.owner)
    for n in range(a.count):
        name = f"{time.time_ns()}.M{n}P{os.getpid()}.bench"
        tmp = os.path.join(a.maildir, "tmp", name)
        with open(tmp, "w") as f:
            f.write(message(n))
        os.chown(tmp, a.owner, a.owner)
        os.rename(tmp, os.path.join(a.maildir, "new", name))
elif a.yubin:
    local, domain = a.rcpt.split("@")
    for start in range(0, a.count, 100):
        batch = range(start, min(a.count, start + 100))
        # One body per call: the 100 recipients share it, as one SMTP
        # transaction to 100 recipients would.
        rcpts = [f"{local}+b{n}@{domain}" for n in batch]
        subprocess.run([a.yubin, "--config", a.config, "deliver", *rcpts],
                       input=message(start).encode(), check=True, stdout=subprocess.DEVNULL)
else:
    ap.error("--maildir or --yubin is required")
