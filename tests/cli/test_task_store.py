"""End-to-end tests of what herald keeps in its store about tasks, through the `herald` command:
stores created by sends started at the same moment (their shared limit counted at a sink),
reading commands that never create a store, an empty store file never taken for a new store, the
identity of a task's mailing (two folders' task files, an edited task file, a store of the
previous version), cancel and resume, and the rows of a recipient list that are rejected.

Usage: test_task_store.py HERALD_BINARY  (run by ctest with Debian's /usr/bin/python3)
"""

import csv
import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

from test_crash import CountingSink

HERALD = None
EXIT_CONFIG = 3
EXIT_INCOMPLETE = 4


def run(*args, cwd=None, timeout=120):
    return subprocess.run([HERALD, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class FolderTest(unittest.TestCase):
    """A fresh folder with an accounts file of one pickup account ("pickup" beside it)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-store-cli-")
        write(os.path.join(self.dir, "accounts.toml"),
              '[[account]]\nname = "pickup"\nkind = "pickup"\nfolder = "pickup"\n')
        self.pickup = os.path.join(self.dir, "pickup")
        self.store = os.path.join(self.dir, "herald.db")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def sent(self):
        """Messages written to the pickup folder."""
        return len(os.listdir(self.pickup)) if os.path.isdir(self.pickup) else 0


class SendsStartedTogetherTest(unittest.TestCase):
    """Two tasks sharing one accounts file, so one store and its sending limits, sent at the same
    moment against a store that does not exist yet."""

    ROUNDS = 50  # the second starts a millisecond or two after the first, in the thick of it
    PER_TASK = 5
    LIMIT = 6  # per hour, for both tasks together: fewer than the 10 recipients

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-store-cli-")
        self.sink = CountingSink(self.dir, personal=False)

    def tearDown(self):
        self.sink.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def make_round(self, round_number):
        folder = os.path.join(self.dir, "round-%02d" % round_number)
        write(os.path.join(folder, "accounts.toml"),
              '[[account]]\nname = "sink"\nkind = "smtp"\nhost = "127.0.0.1"\nport = %d\nsecurity = "none"\n'
              'helo_name = "store.herald.test"\nlimits = ["%d/hour"]\n' % (self.sink.port, self.LIMIT))
        tasks = []
        for name in ("spring", "autumn"):
            addresses = ["%s-%02d-%d@example.com" % (name, round_number, i) for i in range(self.PER_TASK)]
            write(os.path.join(folder, name, "recipients.csv"), "email\n" + "".join(a + "\n" for a in addresses))
            task = os.path.join(folder, name, "task.toml")
            write(task, 'id = "%s"\naccounts = "../accounts.toml"\n[message]\nfrom = "news@example.com"\n'
                        'subject = "News"\ntext = "Hello"\n[recipients]\nfile = "recipients.csv"\n'
                        '[sending]\non_limit = "stop"\n' % name)
            tasks.append((task, addresses))
        return folder, tasks

    def test_both_send_and_their_shared_limit_holds(self):
        for round_number in range(self.ROUNDS):
            folder, tasks = self.make_round(round_number)
            processes = [subprocess.Popen([HERALD, "send", "-q", task], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True) for task, _ in tasks]
            results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in processes]
            for p in processes:
                p.stdout.close()
                p.stderr.close()
            counts = self.sink.ask("COUNTS")["counts"]
            delivered = 0
            for (task, addresses), (code, out, err) in zip(tasks, results):
                context = "round %d, %s: exit %d\n%s%s" % (round_number, task, code, out, err)
                sent = sum(counts.get(a, 0) for a in addresses)
                delivered += sent
                self.assertIn(code, (0, EXIT_INCOMPLETE), context)
                self.assertEqual(code == 0, sent == self.PER_TASK, context)
                self.assertRegex(out, r"sent\s+%d\b" % sent, context)
            self.assertEqual(delivered, self.LIMIT, "round %d: the limit holds and is used in full" % round_number)
            self.assertEqual(max(counts.values()), 1)
            self.assertEqual([f for f in os.listdir(folder) if ".creating-" in f], [],
                             "round %d: nothing left of the store's creation" % round_number)


class ReadingCommandsTest(FolderTest):
    def setUp(self):
        super().setUp()
        write(os.path.join(self.dir, "recipients.csv"), "email\nann@example.com\nbob@example.com\n")
        self.task = os.path.join(self.dir, "task.toml")
        write(self.task, '[message]\nfrom = "news@example.com"\nsubject = "News"\ntext = "Hello"\n'
                         '[recipients]\nfile = "recipients.csv"\n')

    def test_they_never_create_a_store(self):
        for command in (["status", self.task], ["status", "some-task"], ["export", self.task],
                        ["cancel", self.task], ["resume", self.task]):
            result = run(*command, cwd=self.dir)
            self.assertEqual(result.returncode, EXIT_CONFIG, command)
            self.assertIn("herald.db' does not exist", result.stderr, command)
            self.assertIn("the first `herald send`", result.stderr, command)
            self.assertFalse(os.path.exists(self.store), "%s created a store" % command)

    def test_an_empty_store_file_is_refused_by_every_command(self):
        open(self.store, "wb").close()
        for command in (["status", self.task], ["export", self.task], ["cancel", self.task], ["resume", self.task],
                        ["send", self.task]):
            result = run(*command, cwd=self.dir)
            self.assertEqual(result.returncode, EXIT_CONFIG, command)
            self.assertIn("herald.db' is empty (0 bytes)", result.stderr, command)
            self.assertEqual(os.path.getsize(self.store), 0, command)
        self.assertEqual(self.sent(), 0)

        os.unlink(self.store)
        sent = run("send", self.task)
        self.assertEqual(sent.returncode, 0, sent.stdout + sent.stderr)
        self.assertEqual(self.sent(), 2)


class MailingIdentityTest(FolderTest):
    """Two mailings in two folders sharing one accounts file (so one store), and a task file
    edited for another mailing."""

    def write_task(self, folder, subject, addresses):
        write(os.path.join(self.dir, folder, "recipients.csv"), "email\n" + "".join(a + "\n" for a in addresses))
        task = os.path.join(self.dir, folder, "task.toml")
        write(task, 'title = "%s news"\naccounts = "../accounts.toml"\n[message]\nfrom = "news@example.com"\n'
                    'subject = "%s"\ntext = "Hello"\n[recipients]\nfile = "recipients.csv"\n' % (folder, subject))
        return task

    def test_two_folders_are_two_mailings_and_an_edited_one_is_refused_until_accepted(self):
        spring = self.write_task("spring", "Spring", ["ann@example.com", "bob@example.com"])
        autumn = self.write_task("autumn", "Autumn", ["ann@example.com", "cat@example.com"])
        for task in (spring, autumn):
            result = run("send", task)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn("this run: 2 sent", result.stdout)
        self.assertEqual(self.sent(), 4)

        status = run("status", spring)
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertIn("task spring-task: 2 recipient(s)", status.stdout)
        self.assertRegex(status.stdout, r"title\s+spring news\n")
        self.assertRegex(status.stdout, r"task file\s+%s\n" % re.escape(spring))
        self.assertRegex(status.stdout, r"first run\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d\n")
        self.assertRegex(status.stdout, r"last run\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d\n")

        # Edited for the next mailing: refused, naming the stored one, and nothing is sent.
        self.write_task("spring", "Summer", ["ann@example.com", "bob@example.com", "dan@example.com"])
        refused = run("send", spring)
        self.assertEqual(refused.returncode, EXIT_CONFIG, refused.stdout + refused.stderr)
        for part in ('describes another mailing than the one stored as task "spring-task"',
                     'stored: "spring news" from %s, first run ' % spring, "2 of 2 recipient(s) sent",
                     "changed: subject", 'id = "..."', "herald send %s --accept-changes" % spring):
            self.assertIn(part, refused.stderr)
        self.assertEqual(self.sent(), 4)

        accepted = run("send", spring, "--accept-changes")
        self.assertEqual(accepted.returncode, 0, accepted.stdout + accepted.stderr)
        self.assertIn("this run: 1 sent", accepted.stdout)
        self.assertEqual(self.sent(), 5)
        self.assertEqual(run("send", spring).returncode, 0)

    def test_a_task_of_a_store_made_by_the_previous_version_is_adopted(self):
        spring = self.write_task("spring", "Spring", ["ann@example.com", "bob@example.com"])
        self.assertEqual(run("send", spring).returncode, 0)
        # As the previous version left it: the default id was the file's name, and the store
        # knew nothing of the task file or the mailing.
        with sqlite3.connect(self.store) as db:
            db.execute("UPDATE tasks SET id = 'task', task_file = '', fingerprint = '', last_run_at = NULL")
        self.assertIn("not recorded yet", run("status", "task", "--store", self.store).stdout)

        self.write_task("spring", "Spring", ["ann@example.com", "bob@example.com", "cat@example.com"])
        adopted = run("send", spring)
        self.assertEqual(adopted.returncode, 0, adopted.stdout + adopted.stderr)
        self.assertIn("task task:", adopted.stdout)
        self.assertIn("this run: 1 sent", adopted.stdout)
        status = run("status", spring)
        self.assertIn("task task: 3 recipient(s)", status.stdout)
        self.assertRegex(status.stdout, r"task file\s+%s\n" % re.escape(spring))

        autumn = self.write_task("autumn", "Autumn", ["ann@example.com"])
        other = run("send", autumn)
        self.assertEqual(other.returncode, 0, other.stdout + other.stderr)
        self.assertIn("task autumn-task:", other.stdout)
        self.assertEqual(self.sent(), 4)


class CancelAndResumeTest(FolderTest):
    COUNT = 6

    def setUp(self):
        super().setUp()
        write(os.path.join(self.dir, "recipients.csv"),
              "email\n" + "".join("r%d@example.com\n" % i for i in range(self.COUNT)))
        self.task = os.path.join(self.dir, "task.toml")
        write(self.task, 'id = "news"\n[message]\nfrom = "news@example.com"\nsubject = "News"\ntext = "Hello"\n'
                         '[recipients]\nfile = "recipients.csv"\n[sending]\nlimit = 2\n')

    def test_resume_undoes_cancel_and_the_next_send_sends_them(self):
        self.assertEqual(run("send", self.task).returncode, EXIT_INCOMPLETE)
        self.assertEqual(self.sent(), 2)
        cancelled = run("cancel", self.task)
        self.assertEqual(cancelled.returncode, 0, cancelled.stderr)
        self.assertIn("4 recipient(s) cancelled", cancelled.stdout)
        self.assertEqual(run("send", self.task).returncode, 0, "a cancelled task is done")
        self.assertEqual(self.sent(), 2)

        # By task id and store, as status takes them.
        resumed = run("resume", "news", "--store", self.store)
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertIn("task news: 4 cancelled recipient(s) back to unsent", resumed.stdout)
        status = run("status", self.task)
        self.assertRegex(status.stdout, r"unsent\s+4\b")
        self.assertNotIn("cancelled", status.stdout)

        self.assertEqual(run("send", self.task).returncode, EXIT_INCOMPLETE)  # the limit: 2 a run
        self.assertEqual(run("send", self.task).returncode, 0)
        self.assertEqual(self.sent(), self.COUNT, "each sent once")
        again = run("resume", self.task)
        self.assertEqual(again.returncode, 0)
        self.assertIn("0 cancelled recipient(s)", again.stdout)

    def test_resume_of_an_unknown_task_fails(self):
        self.assertEqual(run("send", self.task).returncode, EXIT_INCOMPLETE)
        missing = run("resume", "no-such-task", "--store", self.store)
        self.assertEqual(missing.returncode, EXIT_CONFIG)
        self.assertIn("no task 'no-such-task'", missing.stderr)


class RejectedRowsTest(FolderTest):
    def setUp(self):
        super().setUp()
        self.task = os.path.join(self.dir, "task.toml")
        write(self.task, '[message]\nfrom = "news@example.com"\nsubject = "News"\ntext = "Hello {%name%}"\n'
                         '[recipients]\nfile = "recipients.csv"\nencoding = "utf-8"\n')

    def write_list(self, text):
        with open(os.path.join(self.dir, "recipients.csv"), "wb") as f:
            f.write(text)

    def test_they_are_kept_shown_exported_and_make_the_run_incomplete(self):
        self.write_list(b"email,name\nann@example.com,Ann\nbob@,Bob\ncarl@example.com,Carl,extra\n"
                        b"d\xffra@example.com,Dora\neve@example.com,Eve\n")
        sent = run("send", self.task)
        self.assertEqual(sent.returncode, EXIT_INCOMPLETE, sent.stdout + sent.stderr)
        self.assertEqual(self.sent(), 2)
        self.assertRegex(sent.stdout, r"rejected\s+3\b")
        self.assertIn("3 bad row(s) rejected", sent.stderr)

        status = run("status", self.task, "--list")
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertRegex(status.stdout, r"rejected\s+3\b")
        lines = [l for l in status.stdout.splitlines() if l.strip().startswith("rejected ") and " line " in l]
        self.assertEqual(len(lines), 3, status.stdout)
        self.assertRegex(lines[0], r"bob@\s+line 3: column \"email\"")
        self.assertRegex(lines[1], r"carl@example.com\s+line 4: expected 2 fields")
        self.assertRegex(lines[2], r"d\\xFFra@example.com\s+line 5: .*UTF-8")

        exported = run("export", self.task)
        self.assertEqual(exported.returncode, 0, exported.stderr)
        table = list(csv.reader(io.StringIO(exported.stdout)))
        self.assertEqual({len(row) for row in table}, {len(table[0])}, "every row has every column")
        rows = list(csv.DictReader(io.StringIO(exported.stdout)))
        self.assertEqual(len(rows), 5)
        rejected = [r for r in rows if r["status"] == "rejected"]
        self.assertEqual([(r["address"], r["line"]) for r in rejected],
                         [("bob@", "3"), ("carl@example.com", "4"), ("d\\xFFra@example.com", "5")])
        self.assertIn("column \"email\"", rejected[0]["last_error"])
        self.assertEqual((rejected[0]["email"], rejected[0]["name"]), ("bob@", "Bob"))
        self.assertEqual(rejected[0]["attempts"], "0")

        # Sending again sends nothing and still says the task is not complete.
        again = run("send", self.task)
        self.assertEqual(again.returncode, EXIT_INCOMPLETE, again.stdout + again.stderr)
        self.assertEqual(self.sent(), 2)

        # The list fixed: its next import replaces the rejected rows, the fixed rows are sent.
        self.write_list(b"email,name\nann@example.com,Ann\nbob@example.com,Bob\ncarl@example.com,Carl\n"
                        b"dora@example.com,Dora\neve@example.com,Eve\n")
        fixed = run("send", self.task)
        self.assertEqual(fixed.returncode, 0, fixed.stdout + fixed.stderr)
        self.assertEqual(self.sent(), 5)
        self.assertNotIn("rejected", run("status", self.task).stdout)


if __name__ == "__main__":
    HERALD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
