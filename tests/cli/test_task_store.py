"""End-to-end tests of what herald keeps in its store about tasks, through the `herald` command:
stores created by sends started at the same moment, reading commands that never create a store,
and an empty store file that is never taken for a new store.

Usage: test_task_store.py HERALD_BINARY  (run by ctest with Debian's /usr/bin/python3)
"""

import csv
import io
import os
import re
import select
import shutil
import socket
import json
import subprocess
import sys
import tempfile
import unittest

HERALD = None
SINK_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "counting_sink.py")
EXIT_CONFIG = 3
EXIT_INCOMPLETE = 4


def run(*args, cwd=None, timeout=120):
    return subprocess.run([HERALD, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class CountingSink:
    """counting_sink.py in a process of its own, stopped by its pid."""

    def __init__(self, folder):
        self.log = open(os.path.join(folder, "sink.log"), "wb")
        self.process = subprocess.Popen(["/usr/bin/python3", SINK_SCRIPT, "--lifetime", "600"],
                                        stdout=subprocess.PIPE, stderr=self.log)
        ready, _, _ = select.select([self.process.stdout], [], [], 15)
        line = self.process.stdout.readline().decode() if ready else ""
        match = re.match(r"smtp=(\d+) control=(\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError("the counting sink did not start: %r" % line)
        self.port, self.control_port = int(match.group(1)), int(match.group(2))

    def counts(self):
        """Deliveries per recipient."""
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=10) as control:
            control.sendall(b"COUNTS\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = control.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)["counts"]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process.stdout.close()
        self.log.close()


class SendsStartedTogetherTest(unittest.TestCase):
    """Two tasks sharing one accounts file, so one store and its sending limits, sent at the same
    moment against a store that does not exist yet."""

    ROUNDS = 50  # the second starts a millisecond or two after the first, in the thick of it
    PER_TASK = 5
    LIMIT = 6  # per hour, for both tasks together: fewer than the 10 recipients

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-store-cli-")
        self.sink = CountingSink(self.dir)

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
            counts = self.sink.counts()
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


class ReadingCommandsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-store-cli-")
        write(os.path.join(self.dir, "accounts.toml"),
              '[[account]]\nname = "pickup"\nkind = "pickup"\nfolder = "pickup"\n')
        write(os.path.join(self.dir, "recipients.csv"), "email\nann@example.com\nbob@example.com\n")
        self.task = os.path.join(self.dir, "task.toml")
        write(self.task, '[message]\nfrom = "news@example.com"\nsubject = "News"\ntext = "Hello"\n'
                         '[recipients]\nfile = "recipients.csv"\n')
        self.store = os.path.join(self.dir, "herald.db")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

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
        self.assertFalse(os.path.exists(os.path.join(self.dir, "pickup")), "nothing sent")

        os.unlink(self.store)
        sent = run("send", self.task)
        self.assertEqual(sent.returncode, 0, sent.stdout + sent.stderr)
        self.assertEqual(len(os.listdir(os.path.join(self.dir, "pickup"))), 2)


class CancelAndResumeTest(unittest.TestCase):
    COUNT = 6

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-store-cli-")
        write(os.path.join(self.dir, "accounts.toml"),
              '[[account]]\nname = "pickup"\nkind = "pickup"\nfolder = "pickup"\n')
        write(os.path.join(self.dir, "recipients.csv"),
              "email\n" + "".join("r%d@example.com\n" % i for i in range(self.COUNT)))
        self.task = os.path.join(self.dir, "task.toml")
        write(self.task, 'id = "news"\n[message]\nfrom = "news@example.com"\nsubject = "News"\ntext = "Hello"\n'
                         '[recipients]\nfile = "recipients.csv"\n[sending]\nlimit = 2\n')
        self.pickup = os.path.join(self.dir, "pickup")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_resume_undoes_cancel_and_the_next_send_sends_them(self):
        self.assertEqual(run("send", self.task).returncode, EXIT_INCOMPLETE)
        self.assertEqual(len(os.listdir(self.pickup)), 2)
        cancelled = run("cancel", self.task)
        self.assertEqual(cancelled.returncode, 0, cancelled.stderr)
        self.assertIn("4 recipient(s) cancelled", cancelled.stdout)
        self.assertEqual(run("send", self.task).returncode, 0, "a cancelled task is done")
        self.assertEqual(len(os.listdir(self.pickup)), 2)

        # By task id and store, as status takes them.
        resumed = run("resume", "news", "--store", os.path.join(self.dir, "herald.db"))
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertIn("task news: 4 cancelled recipient(s) back to unsent", resumed.stdout)
        status = run("status", self.task)
        self.assertRegex(status.stdout, r"unsent\s+4\b")
        self.assertNotIn("cancelled", status.stdout)

        self.assertEqual(run("send", self.task).returncode, EXIT_INCOMPLETE)  # the limit: 2 a run
        self.assertEqual(run("send", self.task).returncode, 0)
        self.assertEqual(len(os.listdir(self.pickup)), self.COUNT, "each sent once")
        again = run("resume", self.task)
        self.assertEqual(again.returncode, 0)
        self.assertIn("0 cancelled recipient(s)", again.stdout)

    def test_resume_of_an_unknown_task_fails(self):
        self.assertEqual(run("send", self.task).returncode, EXIT_INCOMPLETE)
        missing = run("resume", "no-such-task", "--store", os.path.join(self.dir, "herald.db"))
        self.assertEqual(missing.returncode, EXIT_CONFIG)
        self.assertIn("no task 'no-such-task'", missing.stderr)


class RejectedRowsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-store-cli-")
        write(os.path.join(self.dir, "accounts.toml"),
              '[[account]]\nname = "pickup"\nkind = "pickup"\nfolder = "pickup"\n')
        self.task = os.path.join(self.dir, "task.toml")
        write(self.task, '[message]\nfrom = "news@example.com"\nsubject = "News"\ntext = "Hello {%name%}"\n'
                         '[recipients]\nfile = "recipients.csv"\n')
        self.pickup = os.path.join(self.dir, "pickup")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_list(self, text):
        with open(os.path.join(self.dir, "recipients.csv"), "wb") as f:
            f.write(text)

    def test_they_are_kept_shown_exported_and_make_the_run_incomplete(self):
        self.write_list(b"email,name\nann@example.com,Ann\nbob@,Bob\ncarl@example.com,Carl,extra\n"
                        b"d\xffra@example.com,Dora\neve@example.com,Eve\n")
        sent = run("send", self.task)
        self.assertEqual(sent.returncode, EXIT_INCOMPLETE, sent.stdout + sent.stderr)
        self.assertEqual(len(os.listdir(self.pickup)), 2)
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
        self.assertEqual(len(os.listdir(self.pickup)), 2)

        # The list fixed: its next import replaces the rejected rows, the fixed rows are sent.
        self.write_list(b"email,name\nann@example.com,Ann\nbob@example.com,Bob\ncarl@example.com,Carl\n"
                        b"dora@example.com,Dora\neve@example.com,Eve\n")
        fixed = run("send", self.task)
        self.assertEqual(fixed.returncode, 0, fixed.stdout + fixed.stderr)
        self.assertEqual(len(os.listdir(self.pickup)), 5)
        self.assertNotIn("rejected", run("status", self.task).stdout)


if __name__ == "__main__":
    HERALD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
