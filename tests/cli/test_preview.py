"""End-to-end tests of `herald preview`: the .eml it writes is the message `herald send` writes
for that recipient (byte for byte but for Date and Message-ID), parses cleanly with Python's email
package, carries the overrides of the account the router picks, and the summary shows the envelope,
the decoded headers and bodies. A missing row or address is an error with exit code 3; nothing is
stored or sent.

Usage: test_preview.py HERALD_BINARY EXAMPLE_DIR  (run by ctest with Debian's /usr/bin/python3)
"""

import csv
import email
import email.policy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERALD = None
EXAMPLE = None


def run(*args, cwd=None):
    return subprocess.run([HERALD, *args], capture_output=True, timeout=120, cwd=cwd)


def parse(raw):
    """The message, parsed by Python's email package, with no defect anywhere."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for part in message.walk():
        assert part.defects == [], part.defects
    return message


def preview(test, task, folder, *args):
    """`herald preview TASK -o FILE ARGS`: the .eml it wrote and the summary; exit code 0 expected."""
    output = os.path.join(folder, "preview.eml")
    result = run("preview", task, "-o", output, *args)
    test.assertEqual(result.returncode, 0, result.stderr.decode())
    with open(output, "rb") as f:
        return f.read(), result.stdout.decode()


def without_date_and_message_id(raw):
    return re.sub(rb"^(Date|Message-ID): [^\r\n]*\r\n", b"", raw, flags=re.M)


class PreviewExampleTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-preview-")
        self.example = os.path.join(self.dir, "newsletter")
        shutil.copytree(EXAMPLE, self.example, ignore=shutil.ignore_patterns("out"))
        self.task = os.path.join(self.example, "task.toml")
        with open(os.path.join(self.example, "recipients.csv"), encoding="utf-8") as f:
            self.rows = list(csv.DictReader(f))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def preview(self, *args):
        return preview(self, self.task, self.dir, *args)

    def test_the_preview_is_the_message_send_writes(self):
        raw, _ = self.preview("--row", "3")
        self.assertEqual(run("send", self.task).returncode, 0)
        pickup = os.path.join(self.example, "out", "pickup")
        sent = None
        for name in os.listdir(pickup):
            with open(os.path.join(pickup, name), "rb") as f:
                candidate = f.read()
            if parse(candidate)["To"].addresses[0].addr_spec == "jose.garcia@example.net":
                sent = candidate
        self.assertIsNotNone(sent)
        self.assertEqual(without_date_and_message_id(raw), without_date_and_message_id(sent))

    def test_the_preview_parses_and_is_personalised(self):
        raw, summary = self.preview("--row", "3")
        self.assertNotRegex(raw, rb"(?<!\r)\n", "bare LF")
        message = email.message_from_bytes(raw, policy=email.policy.strict)
        for part in message.walk():
            self.assertEqual(part.defects, [])
        row = self.rows[2]
        to = message["To"].addresses[0]
        self.assertEqual((to.display_name, to.addr_spec), (f"{row['firstname']} {row['lastname']}", row["email"]))
        self.assertEqual(str(message["Subject"]), f"{row['firstname']}, our autumn programme — Herbstprogramm 2026")
        self.assertEqual(message["Message-ID"], "<preview.3@example.org>")
        text = message.get_body(("plain",)).get_content()
        self.assertIn(f"Dear {row['firstname']} {row['lastname']},", text)
        self.assertIn(f"programme for {row['city']} ", text)
        html = message.get_body(("html",)).get_content()
        self.assertIn(row["firstname"], html)
        [attachment] = list(message.iter_attachments())
        self.assertEqual(attachment.get_filename(), "Veranstaltungsprogramm Herbst – 2026.pdf")

        # The summary: the envelope, headers decoded, the text part decoded, the HTML part's text.
        self.assertIn("account:   pickup (pickup, ", summary)
        self.assertIn("MAIL FROM: <news@example.org>", summary)
        self.assertIn("RCPT TO:   <jose.garcia@example.net>", summary)
        self.assertIn("  Subject: José, our autumn programme — Herbstprogramm 2026\n", summary)
        self.assertIn("  To: José García <jose.garcia@example.net>\n", summary)
        self.assertIn("  | Dear José García,\n", summary)
        self.assertIn("  | autumn is here, and with it our programme for Sevilla", summary)
        self.assertRegex(summary, r"html part \([0-9,]+ bytes, quoted-printable as sent\), its text:\n  \| Dear José García,")
        self.assertIn("Reading «Grüße aus der Ferne»", summary)
        self.assertIn("attachment: Veranstaltungsprogramm Herbst – 2026.pdf (application/pdf,", summary)
        self.assertIn("nothing was sent", summary)

    def test_to_picks_the_first_row_with_the_address(self):
        raw, summary = self.preview("--to", "Jose.Garcia@EXAMPLE.net")
        self.assertEqual(parse(raw)["Message-ID"], "<preview.3@example.org>")
        self.assertIn("row 3 of", summary)

    def test_default_output_and_standard_output(self):
        result = run("preview", self.task, "--row", "1", cwd=self.dir)
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        with open(os.path.join(self.dir, "newsletter-autumn-2026-preview.eml"), "rb") as f:
            written = f.read()
        self.assertEqual(parse(written)["To"].addresses[0].addr_spec, self.rows[0]["email"])
        self.assertIn(b"newsletter-autumn-2026-preview.eml", result.stdout)

        piped = run("preview", self.task, "--row", "1", "-o", "-")
        self.assertEqual(piped.returncode, 0, piped.stderr.decode())
        self.assertEqual(without_date_and_message_id(piped.stdout), without_date_and_message_id(written))
        self.assertIn(b"MAIL FROM: <news@example.org>", piped.stderr)

    def test_a_missing_row_or_address_is_an_error_and_nothing_is_stored(self):
        missing = run("preview", self.task, "--row", "51")
        self.assertEqual(missing.returncode, 3)
        self.assertIn(b"there is no row 51 in ", missing.stderr)
        self.assertIn(b"it has 50 data row(s)", missing.stderr)
        nobody = run("preview", self.task, "--to", "nobody@example.com")
        self.assertEqual(nobody.returncode, 3)
        self.assertIn(b'no row of ', nobody.stderr)
        self.assertIn(b'has the address nobody@example.com in column "email"', nobody.stderr)
        self.assertEqual(run("preview", self.task, "--row", "0").returncode, 2)
        self.assertEqual(run("preview", self.task, "--to", "not an address").returncode, 2)
        self.assertFalse(os.path.exists(os.path.join(self.example, "out")), "no store, no pickup folder")


class PreviewAccountTest(unittest.TestCase):
    """The account the router picks for the recipient changes the message as it would in a send."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-preview-")
        with open(os.path.join(self.dir, "recipients.csv"), "w", encoding="utf-8") as f:
            f.write("email,name,note\nanna@example.com,Anna,\nbob@partner.example,Bob,\x1b[2J\nnot-an-address,X,\n")
        with open(os.path.join(self.dir, "accounts.toml"), "w") as f:
            f.write('[[account]]\nname = "partners"\nkind = "pickup"\nfolder = "partners"\n'
                    'only_recipients = ["*@partner.example"]\nfixed_sender = "relay@partner.example"\n'
                    'default_reply_to = "Office <office@example.org>"\ndefault_sender_name = "Example Office"\n'
                    '[[account]]\nname = "others"\nkind = "pickup"\nfolder = "others"\n')
        self.task = os.path.join(self.dir, "task.toml")
        with open(self.task, "w") as f:
            f.write('id = "routed"\n[message]\nfrom = "news@example.org"\nsubject = "Hello {%name%}"\n'
                    'text = "Hello {%name%} {%note%}"\n[recipients]\nfile = "recipients.csv"\n')

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def preview(self, *args):
        raw, summary = preview(self, self.task, self.dir, *args)
        return parse(raw), summary

    def test_the_routed_accounts_overrides(self):
        message, summary = self.preview("--to", "bob@partner.example")
        self.assertEqual(str(message["From"]), "Example Office <relay@partner.example>")
        self.assertEqual(str(message["Reply-To"]), "Office <office@example.org>")
        self.assertIn("account:   partners (pickup, ", summary)
        self.assertIn("MAIL FROM: <relay@partner.example>", summary)
        # A control sequence from the list reaches the terminal escaped.
        self.assertNotIn("\x1b", summary)
        self.assertIn("Hello Bob \\x1B[2J", summary)

        message, summary = self.preview("--row", "1")
        self.assertEqual(str(message["From"]), "news@example.org")
        self.assertIsNone(message["Reply-To"])
        self.assertIn("account:   others (pickup, ", summary)
        self.assertIn("MAIL FROM: <news@example.org>", summary)

    def test_a_row_that_cannot_be_sent_to_names_its_line(self):
        result = run("preview", self.task, "--row", "3")
        self.assertEqual(result.returncode, 3)
        self.assertRegex(result.stderr.decode(), r"row 3 of .*recipients\.csv \(line 4\) cannot be sent to: "
                                                 r"column \"email\": ")


if __name__ == "__main__":
    HERALD = os.path.abspath(sys.argv.pop(1))
    EXAMPLE = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
