"""SMTP accounts end to end through the `herald` command:

- a connection lost after the final dot: the server may have taken the message, so herald sends
  it again and counts the recipient as a possible duplicate (`herald status`, `herald export`);
- a relay account without helo_name on a machine whose name has no dot: `herald check`,
  `herald send` and `herald test-account` warn, naming the account and the setting. The machine
  name is set in a UTS namespace of the test's own (unshare -u, as root).

The SMTP server is python3-aiosmtpd in this process, on 127.0.0.1 with a port the system picks.

Usage: test_smtp_accounts.py HERALD_BINARY  (run by ctest with Debian's /usr/bin/python3)
"""

import asyncio
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

from aiosmtpd.smtp import SMTP

HERALD = None

RECIPIENTS = ["ann@example.org", "bob@example.org", "cid@example.org"]
DROPPED = "bob@example.org"


class DropOnceHandler:
    """Accepts every message, except that the first one for DROPPED is received in full and then
    the connection is cut before the reply to its final dot."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received = []  # the recipients of every complete message, in order
        self.dropped = False

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.extend(envelope.rcpt_tos)
            drop = DROPPED in envelope.rcpt_tos and not self.dropped
            self.dropped = self.dropped or drop
        if drop:
            server.transport.abort()
        return "250 2.0.0 Ok: queued"

    def count(self, address):
        with self.lock:
            return self.received.count(address)


class SmtpServer:
    """aiosmtpd with `handler` on its own event loop thread."""

    def __init__(self, handler):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(self.loop.create_server(
                lambda: SMTP(handler, hostname="aiosmtpd.herald.test", decode_data=False), host="127.0.0.1",
                port=0))
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        if not ready.wait(15):
            raise RuntimeError("the SMTP server did not start")
        self.port = self.server.sockets[0].getsockname()[1]

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def run(*args, hostname=None, timeout=120):
    """Runs herald; with `hostname`, in a UTS namespace where the machine is called that."""
    command = [HERALD, *args]
    if hostname is not None:
        command = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


class SmtpAccountTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-smtp-")
        self.handler = DropOnceHandler()
        self.server = SmtpServer(self.handler)
        with open(os.path.join(self.dir, "recipients.csv"), "w") as f:
            f.write("email\n" + "".join(address + "\n" for address in RECIPIENTS))
        self.task = os.path.join(self.dir, "task.toml")
        with open(self.task, "w") as f:
            f.write('id = "smtp"\n[message]\nfrom = "news@example.com"\nsubject = "Hello"\n'
                    'text = "Hello {%recipient%}\\n"\n[recipients]\nfile = "recipients.csv"\n'
                    '[sending]\nconcurrency = 1\nretries = 2\nretry_delay = "0s"\n')
        self.write_accounts(helo_name="mail.herald.test")

    def tearDown(self):
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_accounts(self, helo_name):
        # security = "none": plain SMTP, allowed explicitly; the server is on loopback.
        with open(os.path.join(self.dir, "accounts.toml"), "w") as f:
            f.write('[[account]]\nname = "relay"\nkind = "smtp"\nhost = "127.0.0.1"\nport = %d\n'
                    'security = "none"\ntimeout = "10s"\n' % self.server.port)
            if helo_name:
                f.write('helo_name = "%s"\n' % helo_name)

    def export(self):
        out = os.path.join(self.dir, "export.csv")
        result = run("export", self.task, "-o", out)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        with open(out, newline="", encoding="utf-8") as f:
            return {row["address"]: row for row in csv.DictReader(f)}

    def test_a_connection_lost_after_the_final_dot_is_sent_again_as_a_possible_duplicate(self):
        send = run("send", self.task)
        self.assertEqual(send.returncode, 0, send.stdout + send.stderr)
        self.assertTrue(self.handler.dropped, "the server never cut a connection")
        self.assertEqual(self.handler.count(DROPPED), 2, "received in full twice: once cut off, once answered")

        status = run("status", self.task)
        self.assertEqual(status.returncode, 0, status.stdout + status.stderr)
        self.assertRegex(status.stdout, r"sent\s+3\b")
        self.assertRegex(status.stdout, r"possible duplicates: 1\b")

        rows = self.export()
        self.assertEqual(sorted(rows), sorted(RECIPIENTS))
        for address, row in rows.items():
            self.assertEqual(row["status"], "sent", address)
            self.assertEqual(row["possible_duplicate"], "yes" if address == DROPPED else "no", address)
        self.assertEqual(rows[DROPPED]["attempts"], "2")

    def test_a_relay_account_greeting_with_a_bare_machine_name_is_warned_about(self):
        probe = run("--version", hostname="vm")
        if probe.returncode != 0:
            self.skipTest("cannot set the machine name in a namespace of its own: " + probe.stderr.strip())
        self.write_accounts(helo_name=None)
        warning = 'account "relay" sets no helo_name, so herald greets its server with this machine\'s name, ' \
                  '"EHLO vm"'
        setting = 'helo_name = "mail.example.org"'

        check = run("check", self.task, hostname="vm")
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn(warning, check.stdout)
        self.assertIn(setting, check.stdout)

        send = run("send", self.task, hostname="vm")
        self.assertIn(warning, send.stderr)
        self.assertEqual(send.stderr.count(warning), 1, "once per run")

        test = run("test-account", os.path.join(self.dir, "accounts.toml"), "relay", "--from", "news@example.com",
                   "--to", "ann@example.org", hostname="vm")
        self.assertEqual(test.returncode, 0, test.stdout + test.stderr)
        self.assertIn(warning, test.stdout)

        # A name with a dot, or a helo_name of the account's own: no warning.
        check = run("check", self.task, hostname="host.herald.test")
        self.assertNotIn("helo_name", check.stdout + check.stderr)
        self.write_accounts(helo_name="mail.herald.test")
        check = run("check", self.task, hostname="vm")
        self.assertNotIn("helo_name", check.stdout + check.stderr)


if __name__ == "__main__":
    HERALD = os.path.abspath(sys.argv.pop(1))
    unittest.main()
