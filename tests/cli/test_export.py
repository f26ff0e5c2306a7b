"""End-to-end tests of `herald export`: sent recipients carry no error, and the CSV reads back
exactly — with Python's csv module, in the recipient list's own dialect by default, and with a
UTF-8 byte-order mark and the locale's list separator for a spreadsheet (--excel). The task is
sent to a real SMTP server (Debian's python3-aiosmtpd, in a thread of this process) that accepts
every recipient but one.

Usage: test_export.py HERALD_BINARY  (run by ctest with Debian's /usr/bin/python3)
"""

import asyncio
import codecs
import csv
import datetime
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

from aiosmtpd.smtp import SMTP

HERALD = None

# Values a spreadsheet user's list holds: the delimiters, quotes, line breaks, blanks at the ends,
# non-ASCII text.
ROWS = [
    ["email", "name", "note"],
    ["ok1@example.com", "Müller, Anna", 'She said "hi"; then left'],
    ["ok2@example.com", "Zoë", "line one\nline two"],
    ["refused@example.com", "Jürgen", " leading and trailing space "],
    ["ok3@example.com", "日本語", "tab\there, and ; both"],
]


class Handler:
    """Accepts every recipient but refused@example.com."""

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("refused@"):
            return "550 5.1.1 <refused@example.com>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Ok: queued as 4711"


class SmtpServer:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(self.loop.create_server(
            lambda: SMTP(Handler(), hostname="sink.herald.test"), host="127.0.0.1", port=0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.server.close()


def environment(**variables):
    """The environment without any locale setting, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_NUMERIC", "LANG", "LANGUAGE")}
    env.update(variables)
    return env


def run(*args, env=None):
    return subprocess.run([HERALD, *args], capture_output=True, timeout=120, env=env or environment())


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = SmtpServer()
        cls.dir = tempfile.mkdtemp(prefix="herald-export-")
        with open(os.path.join(cls.dir, "recipients.csv"), "w", encoding="utf-8", newline="") as f:
            csv.writer(f, delimiter=";", lineterminator="\r\n").writerows(ROWS)
        with open(os.path.join(cls.dir, "accounts.toml"), "w") as f:
            f.write('[[account]]\nname = "relay"\nkind = "smtp"\nhost = "127.0.0.1"\nport = %d\nsecurity = "none"\n'
                    % cls.server.port)
        cls.task = os.path.join(cls.dir, "task.toml")
        with open(cls.task, "w") as f:
            f.write('id = "export-test"\n[message]\nfrom = "news@example.org"\nsubject = "Hello {%name%}"\n'
                    'text = "Hello {%name%}"\n[recipients]\nfile = "recipients.csv"\n'
                    '[sending]\nretries = 0\n')
        sent = run("send", cls.task)
        assert sent.returncode == 4, sent.stdout.decode() + sent.stderr.decode()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def export(self, *args, env=None):
        result = run("export", self.task, *args, env=env)
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        return result.stdout

    def check_reads_back(self, raw, delimiter):
        """`raw` read by Python's csv module gives every recipient's values exactly."""
        self.assertTrue(raw.endswith(b"\r\n"))
        self.assertNotIn(b"\r\n", raw.replace(b"\r\n", b""), "lines end with CRLF")
        text = raw.decode("utf-8-sig")
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
        header = records[0]
        self.assertEqual(header[:10], ["address", "status", "attempts", "reply_code", "enhanced_status", "last_error",
                                       "account", "updated_at", "possible_duplicate", "line"])
        self.assertEqual(header[10:], ROWS[0])
        self.assertEqual(len(records), len(ROWS))
        for record in records[1:]:
            self.assertEqual(len(record), len(header), record)
            self.assertIn(record[10:], ROWS[1:])
            self.assertEqual(record[0], record[10])
        return [dict(zip(header, record)) for record in records[1:]]

    def test_sent_recipients_have_no_error(self):
        rows = {r["address"]: r for r in self.check_reads_back(self.export(), ";")}
        for address in ("ok1@example.com", "ok2@example.com", "ok3@example.com"):
            self.assertEqual(rows[address]["status"], "sent")
            self.assertEqual((rows[address]["reply_code"], rows[address]["enhanced_status"],
                              rows[address]["last_error"]), ("", "", ""), address)
        refused = rows["refused@example.com"]
        self.assertEqual(refused["status"], "failed")
        self.assertEqual((refused["reply_code"], refused["enhanced_status"]), ("550", "5.1.1"))
        self.assertIn("mailbox unavailable", refused["last_error"])

    def test_uses_the_recipient_lists_delimiter_by_default(self):
        raw = self.export()
        self.assertFalse(raw.startswith(codecs.BOM_UTF8), "no byte-order mark unless asked for")
        self.assertTrue(raw.startswith(b"address;status;attempts;"), raw[:40])
        self.check_reads_back(raw, ";")

    def test_a_task_named_by_id_is_written_with_commas(self):
        result = run("export", "export-test", "--store", os.path.join(self.dir, "herald.db"))
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        self.check_reads_back(result.stdout, ",")

    def test_excel_writes_a_bom_and_the_locales_list_separator(self):
        cases = [
            (dict(LANG="de_DE.UTF-8"), ";"),
            (dict(LANG="fr_FR.UTF-8"), ";"),
            (dict(LANG="it_IT.UTF-8"), ";"),
            (dict(LANG="es_ES.UTF-8"), ";"),
            (dict(LANG="nl_NL.UTF-8"), ";"),
            (dict(LANG="pl_PL.UTF-8"), ";"),
            (dict(LANG="pt_BR.UTF-8"), ";"),
            (dict(LANG="de_CH.UTF-8"), ","),  # the Swiss write 1'234.5
            (dict(LANG="es_MX.UTF-8"), ","),
            (dict(LANG="en_US.UTF-8"), ","),
            (dict(LANG="en_GB.UTF-8"), ","),
            (dict(LANG="C.UTF-8"), ","),
            (dict(), ","),
            (dict(LANG="en_US.UTF-8", LC_NUMERIC="de_DE.UTF-8"), ";"),
            (dict(LANG="de_DE.UTF-8", LC_ALL="en_US.UTF-8"), ","),
        ]
        for variables, delimiter in cases:
            with self.subTest(**variables):
                output = os.path.join(self.dir, "excel.csv")
                self.export("--excel", "-o", output, env=environment(**variables))
                with open(output, "rb") as f:
                    raw = f.read()
                self.assertTrue(raw.startswith(codecs.BOM_UTF8))
                self.assertTrue(raw[3:].startswith(("address%sstatus" % delimiter).encode()), raw[:40])
                self.check_reads_back(raw, delimiter)

    def test_delimiter_option_forces_the_delimiter(self):
        self.check_reads_back(self.export("--delimiter", "tab"), "\t")
        self.check_reads_back(self.export("--delimiter", ","), ",")
        raw = self.export("--excel", "--delimiter", ",", env=environment(LANG="de_DE.UTF-8"))
        self.assertTrue(raw.startswith(codecs.BOM_UTF8 + b"address,status"))
        self.assertEqual(run("export", self.task, "--delimiter", "|").returncode, 2)

    def test_updated_at_is_local_time_with_its_offset(self):
        raw = self.export(env=environment(TZ="CET-1CEST,M3.5.0,M10.5.0/3"))
        for row in self.check_reads_back(raw, ";"):
            updated = datetime.datetime.fromisoformat(row["updated_at"])
            self.assertIn(updated.utcoffset(), (datetime.timedelta(hours=1), datetime.timedelta(hours=2)))
            age = datetime.datetime.now(datetime.timezone.utc) - updated
            self.assertLess(abs(age.total_seconds()), 600, row["updated_at"])


if __name__ == "__main__":
    HERALD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
