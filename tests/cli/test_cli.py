"""End-to-end tests of the `herald` command: the example mailing through a pickup folder, every
message checked by Python's email parser; recipient lists and bodies in the encodings Excel and
editors save; resuming after `kill -9` and after Ctrl-C; status, export, check and exit codes.

Usage: test_cli.py HERALD_BINARY EXAMPLE_DIR  (run by ctest with Debian's /usr/bin/python3)
"""

import csv
import email
import email.policy
import hashlib
import io
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

HERALD = None
EXAMPLE = None


def run(*args, cwd=None, timeout=120):
    return subprocess.run([HERALD, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def pickup_files(folder):
    if not os.path.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if f.endswith(".eml"))


def recipient_of(path):
    with open(path, "rb") as f:
        message = email.message_from_binary_file(f, policy=email.policy.default)
    return message["To"].addresses[0].addr_spec


class ExampleMailingTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-cli-")
        self.example = os.path.join(self.dir, "newsletter")
        shutil.copytree(EXAMPLE, self.example, ignore=shutil.ignore_patterns("out"))
        self.task = os.path.join(self.example, "task.toml")
        self.pickup = os.path.join(self.example, "out", "pickup")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_sends_fifty_messages_once_and_they_parse_cleanly(self):
        check = run("check", self.task)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn("50 composed, 0 would fail", check.stdout)
        self.assertEqual(pickup_files(self.pickup), [], "check sends nothing")

        sent = run("send", self.task)
        self.assertEqual(sent.returncode, 0, sent.stdout + sent.stderr)
        files = pickup_files(self.pickup)
        self.assertEqual(len(files), 50)

        status = run("status", self.task)
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertRegex(status.stdout, r"sent\s+50\b")

        again = run("send", self.task)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("this run: 0 sent", again.stdout)
        self.assertEqual(len(pickup_files(self.pickup)), 50, "a second send sends nothing more")

        with open(os.path.join(self.example, "recipients.csv"), encoding="utf-8") as f:
            rows = {r["email"]: r for r in csv.DictReader(f)}
        with open(os.path.join(self.example, "programme.pdf"), "rb") as f:
            pdf_digest = hashlib.sha256(f.read()).hexdigest()
        seen = set()
        for name in files:
            with open(os.path.join(self.pickup, name), "rb") as f:
                raw = f.read()
            self.assertNotRegex(raw, rb"(?<!\r)\n", f"{name}: bare LF")
            self.assertNotRegex(raw, rb"\r(?!\n)", f"{name}: bare CR")
            message = email.message_from_bytes(raw, policy=email.policy.strict)
            for part in message.walk():
                self.assertEqual(part.defects, [], f"{name}: {part.defects}")
            to = message["To"].addresses[0]
            # The CSV holds Unicode domains; the message their A-labels.
            row = next(r for a, r in rows.items() if a.split("@")[0] == to.username)
            want_name = f"{row['firstname']} {row['lastname']}".strip()
            self.assertEqual(to.display_name, want_name, name)
            subject = str(message["Subject"])
            self.assertIn("Herbstprogramm 2026", subject)
            self.assertTrue(subject.startswith(row["firstname"] or "Dear member"), subject)
            text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
            self.assertIn(f"programme for {row['city']} ", text)
            self.assertIn("\n.This line starts with a dot", text)
            self.assertIn("\n.\n", text)
            html = message.get_body(("html",)).get_content()
            if "<b>" in row["lastname"]:
                self.assertIn("Test &lt;b&gt;HTML&lt;/b&gt;", html)
            attachments = list(message.iter_attachments())
            self.assertEqual(len(attachments), 1)
            self.assertEqual(attachments[0].get_filename(), "Veranstaltungsprogramm Herbst – 2026.pdf")
            self.assertEqual(hashlib.sha256(attachments[0].get_content()).hexdigest(), pdf_digest)
            seen.add(to.addr_spec)
        self.assertEqual(len(seen), 50)

    def test_export_lists_every_recipient_with_its_status(self):
        self.assertEqual(run("send", self.task).returncode, 0)
        exported = run("export", self.task)
        self.assertEqual(exported.returncode, 0, exported.stderr)
        rows = list(csv.DictReader(io.StringIO(exported.stdout)))
        self.assertEqual(len(rows), 50)
        self.assertEqual({r["status"] for r in rows}, {"sent"})
        self.assertIn("firstname", rows[0])
        self.assertEqual(rows[0]["email"].split("@")[0], rows[0]["address"].split("@")[0])

    def test_status_by_task_id_and_store(self):
        self.assertEqual(run("send", self.task).returncode, 0)
        store = os.path.join(self.example, "out", "herald.db")
        status = run("status", "newsletter-autumn-2026", "--store", store)
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertRegex(status.stdout, r"sent\s+50\b")
        missing = run("status", "no-such-task", "--store", store)
        self.assertEqual(missing.returncode, 3)
        self.assertIn("no task \"no-such-task\"", missing.stderr)


    def test_status_lists_the_domains_direct_delivery_backs_off(self):
        self.assertEqual(run("send", self.task).returncode, 0)
        store = os.path.join(self.example, "out", "herald.db")
        # As a direct account's run records a domain none of whose mail exchangers answered
        # (store.h, "Destination backoff"); an independent writer: Python's sqlite3.
        with sqlite3.connect(store) as db:
            db.execute("INSERT INTO destination_backoff VALUES (?, ?, ?, ?, ?, ?, ?)",
                       ("direct", "dead.example", 2, 1893499200000, 0, "",
                        "connect: no mail exchanger of dead.example could be used"))
        status = run("status", self.task)
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertIn("domains not tried again before", status.stdout)
        line = next(l for l in status.stdout.splitlines() if "dead.example" in l)
        self.assertIn('account "direct", 2 failure(s) in a row', line)
        self.assertIn("no mail exchanger of dead.example could be used", line)
        self.assertIn("2030-01-01", line)

    def test_check_refuses_what_send_refuses_with_the_same_message(self):
        # An account of a kind this build cannot send through yet (here as the secondary of the
        # task's account): check finds it before send would, and says what send says.
        with open(os.path.join(self.example, "accounts.toml"), "a") as f:
            f.write('secondary = "exchange"\n\n[[account]]\nname = "exchange"\nkind = "ews"\n'
                    'url = "https://mail.example.com/EWS/Exchange.asmx"\nusername = "news"\n'
                    'password_file = "secret.txt"\n')
        with open(os.path.join(self.example, "secret.txt"), "w") as f:
            f.write("not a real password\n")
        self.rewrite_task_accounts('["pickup"]')
        check = run("check", self.task)
        self.assertEqual(check.returncode, 3, check.stdout + check.stderr)
        self.assertIn('account "exchange": this build of herald cannot send through ews accounts yet', check.stderr)
        self.assertNotIn("ready to send", check.stdout)
        send = run("send", self.task)
        self.assertEqual(send.returncode, 3, send.stdout + send.stderr)
        self.assertEqual(check.stderr, send.stderr, "the same message")
        self.assertEqual(pickup_files(self.pickup), [], "nothing was sent")

    def test_check_refuses_attachments_over_every_accounts_max_message_size(self):
        with open(os.path.join(self.example, "accounts.toml"), "a") as f:
            f.write('max_message_size = "500B"\n')
        check = run("check", self.task)
        self.assertEqual(check.returncode, 3, check.stdout + check.stderr)
        self.assertIn("the attachments make every message at least", check.stderr)
        self.assertIn('over the max_message_size of 500 bytes of account "pickup"', check.stderr)
        self.assertEqual(check.stderr, run("send", self.task).stderr, "the same message")

    def test_an_account_that_fails_is_told_once_and_its_recipients_wait_for_the_next_run(self):
        with socket.socket() as probe:  # a port on which nothing listens: connections are refused
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with open(os.path.join(self.example, "accounts.toml"), "w") as f:
            f.write(f'[[account]]\nname = "relay"\nkind = "smtp"\nhost = "127.0.0.1"\nport = {port}\n'
                    'security = "none"\nhelo_name = "cli.herald.test"\n')
        sent = run("send", self.task)
        self.assertEqual(sent.returncode, 4, sent.stdout + sent.stderr)
        self.assertIn("50 recipient(s) wait for account relay, which failed: connect: ", sent.stdout)
        self.assertIn("once it is fixed, run the same command again", sent.stdout)
        self.assertNotIn("next retry due", sent.stdout)
        told = [line for line in sent.stderr.splitlines() if 'account "relay"' in line]
        self.assertEqual(len(told), 1, sent.stderr)
        self.assertNotIn("deferred ", sent.stderr, "no line per recipient")
        exported = list(csv.DictReader(io.StringIO(run("export", self.task).stdout)))
        self.assertEqual({(r["status"], r["attempts"]) for r in exported}, {("deferred", "0")})

    def rewrite_task_accounts(self, names):
        with open(self.task, encoding="utf-8") as f:
            text = f.read()
        with open(self.task, "w", encoding="utf-8") as f:
            f.write(text.replace("[sending]\n", f"[sending]\naccounts = {names}\n"))


class LargeTaskTest(unittest.TestCase):
    """A task big enough to interrupt while it runs."""

    COUNT = 1500

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-cli-")
        with open(os.path.join(self.dir, "recipients.csv"), "w") as f:
            f.write("email,name\n")
            for i in range(self.COUNT):
                f.write(f"r{i:05d}@example.com,Reader {i}\n")
        with open(os.path.join(self.dir, "accounts.toml"), "w") as f:
            f.write('[[account]]\nname = "pickup"\nkind = "pickup"\nfolder = "pickup"\n')
        self.task = os.path.join(self.dir, "task.toml")
        with open(self.task, "w") as f:
            f.write('id = "big"\n[message]\nfrom = "news@example.com"\nsubject = "Hi {%name%}"\n'
                    'text = "Hello {%name%}"\n[recipients]\nfile = "recipients.csv"\n')
        self.pickup = os.path.join(self.dir, "pickup")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def start_and_stop_after(self, files, sig):
        process = subprocess.Popen([HERALD, "send", self.task], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        deadline = time.monotonic() + 60
        while len(pickup_files(self.pickup)) < files and time.monotonic() < deadline:
            if process.poll() is not None:
                break
            time.sleep(0.005)
        process.send_signal(sig)
        out, err = process.communicate(timeout=60)
        return process.returncode, out, err

    def possible_duplicates(self):
        status = run("status", self.task)
        match = re.search(r"possible duplicates: (\d+)", status.stdout)
        return int(match.group(1)) if match else 0

    def test_kill_9_then_resume_sends_only_the_rest(self):
        code, _, _ = self.start_and_stop_after(200, signal.SIGKILL)
        self.assertEqual(code, -signal.SIGKILL)
        written = len(pickup_files(self.pickup))
        self.assertLess(written, self.COUNT, "the kill came too late to test anything")

        resumed = run("send", self.task)
        self.assertEqual(resumed.returncode, 0, resumed.stdout + resumed.stderr)
        files = pickup_files(self.pickup)
        recipients = [recipient_of(os.path.join(self.pickup, f)) for f in files]
        self.assertEqual(len(set(recipients)), self.COUNT, "no recipient lost")
        duplicates = len(recipients) - self.COUNT
        reported = self.possible_duplicates()
        self.assertLessEqual(duplicates, reported, "every duplicate is reported")
        self.assertLessEqual(reported, 1, "at most the one send under way (concurrency 1)")

    def test_interrupt_finishes_the_send_under_way_and_loses_nothing(self):
        code, _, err = self.start_and_stop_after(200, signal.SIGINT)
        self.assertEqual(code, 5, err)
        self.assertIn("interrupted", err)
        self.assertEqual(self.possible_duplicates(), 0)
        status = run("status", self.task)
        self.assertNotIn("in-flight", status.stdout)

        resumed = run("send", self.task)
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertEqual(resumed.stdout.count("recovered"), 0)
        recipients = [recipient_of(os.path.join(self.pickup, f)) for f in pickup_files(self.pickup)]
        self.assertEqual(sorted(recipients), sorted(set(recipients)), "a clean stop duplicates nothing")
        self.assertEqual(len(recipients), self.COUNT)


class FilesFromOtherProgramsTest(unittest.TestCase):
    """Recipient lists as Excel saves them outside the English-speaking world, and an HTML body in a
    Central European code page with no text body: read, sent, and every message parsed."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-encodings-")
        self.write("accounts.toml", '[[account]]\nname = "pickup"\nkind = "pickup"\nfolder = "out/pickup"\n')
        html = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1250">'
                '<title>Zpravodaj</title></head><body><h1>Dobrý den, {%Vorname%}!</h1>'
                '<p>Šťastný nový rok přeje Dvořák &amp; syn.</p>'
                '<p><a href="https://example.org/u?id={%E-Mail%}">Odhlásit</a></p></body></html>')
        with open(os.path.join(self.dir, "body.html"), "wb") as f:
            f.write(html.encode("cp1250"))
        self.write("task.toml", 'title = "Novoroční zpravodaj"\n[message]\nfrom = "news@example.org"\n'
                                'to_name = "{%Vorname%} {%Nachname%}"\nsubject = "Zpravodaj"\n'
                                'html_file = "body.html"\n[recipients]\nfile = "list.csv"\n'
                                'address_column = "E-Mail"\n')
        self.rows = [("juergen@example.de", "Jürgen", "Müller"), ("zoe@example.fr", "Zoë", "Besançon"),
                     ("plain@example.com", "Anna", "Smith")]

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        with open(os.path.join(self.dir, name), "w", encoding="utf-8") as f:
            f.write(text)

    def send_and_check(self, list_bytes, read_as):
        with open(os.path.join(self.dir, "list.csv"), "wb") as f:
            f.write(list_bytes)
        task = os.path.join(self.dir, "task.toml")
        check = run("check", task)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn(f"(read as {read_as}), 0 bad", check.stdout)
        self.assertIn("(read as windows-1250 (declared by the file's <meta>))", check.stdout)
        sent = run("send", task)
        self.assertEqual(sent.returncode, 0, sent.stdout + sent.stderr)
        pickup = os.path.join(self.dir, "out", "pickup")
        self.assertEqual(len(pickup_files(pickup)), len(self.rows))
        names = {}
        for name in pickup_files(pickup):
            with open(os.path.join(pickup, name), "rb") as f:
                message = email.message_from_binary_file(f, policy=email.policy.strict)
            for part in message.walk():
                self.assertEqual(part.defects, [], f"{name}: {part.defects}")
            self.assertEqual(message.get_content_type(), "multipart/alternative")
            to = message["To"].addresses[0]
            names[to.addr_spec] = to.display_name
            text = message.get_body(("plain",)).get_content()
            first = to.display_name.split(" ")[0]
            self.assertEqual(text.replace("\r\n", "\n"),
                             f"Dobrý den, {first}!\n\nŠťastný nový rok přeje Dvořák & syn.\n\n"
                             f"Odhlásit (https://example.org/u?id={to.addr_spec})\n")
            html = message.get_body(("html",)).get_content()
            self.assertIn('charset=utf-8">', html)
            self.assertIn("Šťastný nový rok", html)
        self.assertEqual(names, {a: f"{f} {l}" for a, f, l in self.rows})

    def test_windows_1252_list_from_excel_in_western_europe(self):
        text = "E-Mail;Vorname;Nachname\r\n" + "".join(";".join(r) + "\r\n" for r in self.rows)
        self.send_and_check(text.encode("cp1252"),
                            "windows-1252 (the file is not UTF-8; recipients.fallback_encoding)")

    def test_unicode_text_list_from_excel(self):
        text = "E-Mail\tVorname\tNachname\r\n" + "".join("\t".join(r) + "\r\n" for r in self.rows)
        self.send_and_check(b"\xff\xfe" + text.encode("utf-16-le"), "UTF-16LE (byte-order mark)")


class CommandLineTest(unittest.TestCase):
    def test_exit_codes(self):
        self.assertEqual(run().returncode, 2)
        self.assertEqual(run("send").returncode, 2)
        self.assertEqual(run("frobnicate").returncode, 2)
        self.assertEqual(run("--help").returncode, 0)
        self.assertIn("Exit codes", run("send", "--help").stdout)
        with tempfile.TemporaryDirectory() as d:
            bad = os.path.join(d, "task.toml")
            with open(bad, "w") as f:
                f.write('[message]\nfrom = "x"\n')
            result = run("check", bad)
            self.assertEqual(result.returncode, 3)
            self.assertIn("task.toml:2:", result.stderr)


if __name__ == "__main__":
    HERALD = os.path.abspath(sys.argv.pop(1))
    EXAMPLE = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
