"""Storage faults, end to end through the `herald` command: a full disk under the pickup folder,
the backup folder and the store (each a small tmpfs made by the test), the store locked by another
process, a store that is damaged or from a newer version, a symbolic link planted in the backup
folder. In every case herald stops taking new
work, says what happened naming the file, keeps every result it has, and the next run after the
fault is gone finishes the task: no recipient lost, none marked sent without its message, and
every message written twice is one herald counts as a possible duplicate.

Usage: test_faults.py HERALD_BINARY EXAMPLE_DIR  (run by ctest as root: it mounts tmpfs; the
link test runs as any user)
"""

import csv
import email
import email.policy
import io
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

HERALD = None
EXAMPLE = None

EXIT_CONFIG = 3
EXIT_STOPPED = 5


def run(*args, timeout=120):
    return subprocess.run([HERALD, *args], capture_output=True, text=True, timeout=timeout)


class SmallDisk:
    """A tmpfs of `size` mounted on `path`, unmounted by close()."""

    def __init__(self, path, size):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path], check=True,
                       capture_output=True)
        self.path = path

    def resize(self, size):
        subprocess.run(["mount", "-o", f"remount,size={size}", self.path], check=True, capture_output=True)

    def fill(self):
        """Writes a filler file until the disk is full; returns its path."""
        filler = os.path.join(self.path, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        return filler

    def close(self):
        subprocess.run(["umount", self.path], capture_output=True)


def parse(path):
    with open(path, "rb") as f:
        message = email.message_from_binary_file(f, policy=email.policy.strict)
    for part in message.walk():
        if part.defects:
            raise AssertionError(f"{path}: {part.defects}")
    return message


class FaultTestCase(unittest.TestCase):
    """The example mailing in a temporary folder, and what every fault test checks."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-faults-")
        self.example = os.path.join(self.dir, "newsletter")
        shutil.copytree(EXAMPLE, self.example, ignore=shutil.ignore_patterns("out"))
        self.task = os.path.join(self.example, "task.toml")
        self.disks = []
        with open(os.path.join(self.example, "recipients.csv"), encoding="utf-8") as f:
            self.recipients = len(list(csv.DictReader(f)))

    def tearDown(self):
        for disk in self.disks:
            disk.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def small_disk(self, name, size):
        try:
            disk = SmallDisk(os.path.join(self.dir, name), size)
        except subprocess.CalledProcessError as error:
            self.skipTest(f"cannot mount a tmpfs here: {error.stderr.decode(errors='replace').strip()}")
        self.disks.append(disk)
        return disk

    def configure(self, pickup=None, store=None, backup=None):
        """Points the example's pickup folder, store and backup folder elsewhere."""
        with open(self.task, encoding="utf-8") as f:
            task = f.read()
        if store:
            task = task.replace('store = "out/herald.db"', f'store = "{store}"')
        if backup:
            task = task.replace('folder = "out/backup"', f'folder = "{backup}"')
        with open(self.task, "w", encoding="utf-8") as f:
            f.write(task)
        if pickup:
            accounts = os.path.join(self.example, "accounts.toml")
            with open(accounts, encoding="utf-8") as f:
                text = f.read()
            with open(accounts, "w", encoding="utf-8") as f:
                f.write(text.replace('folder = "out/pickup"', f'folder = "{pickup}"'))
        self.pickup = pickup or os.path.join(self.example, "out", "pickup")

    def delivered(self):
        """Recipient address -> number of complete messages in the pickup folder."""
        counts = {}
        for name in sorted(os.listdir(self.pickup)):
            if not name.endswith(".eml"):
                continue
            to = parse(os.path.join(self.pickup, name))["To"].addresses[0].addr_spec
            counts[to] = counts.get(to, 0) + 1
        return counts

    def exported(self):
        result = run("export", self.task)
        self.assertEqual(result.returncode, 0, result.stderr)
        return list(csv.DictReader(io.StringIO(result.stdout)))

    def check_nothing_falsely_sent(self):
        """Every recipient the store calls sent has its message in the folder."""
        delivered = self.delivered()
        for row in self.exported():
            if row["status"] == "sent":
                self.assertIn(row["address"], delivered, f"{row['address']} is marked sent without a message")
        return delivered

    def finish_and_check(self):
        """The run after the fault: everything sent, every duplicate reported."""
        result = run("send", self.task)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        rows = self.exported()
        self.assertEqual(len(rows), self.recipients)
        self.assertEqual({r["status"] for r in rows}, {"sent"}, "no recipient lost")
        delivered = self.delivered()
        self.assertEqual(len(delivered), self.recipients)
        duplicates = sum(n - 1 for n in delivered.values())
        reported = sum(1 for r in rows if r["possible_duplicate"] == "yes")
        self.assertLessEqual(duplicates, reported, "every message written twice is reported")


class LinkInTheBackupFolderTest(FaultTestCase):
    def test_a_link_planted_at_the_task_title_stops_the_run_and_nothing_is_written_through_it(self):
        # Someone who can write in the backup folder makes <backup>/<task title> a link elsewhere;
        # herald (often root) must not write the backups into the link's target.
        self.configure()
        backup = os.path.join(self.example, "out", "backup")
        elsewhere = os.path.join(self.dir, "elsewhere")
        os.makedirs(backup)
        os.makedirs(elsewhere)
        link = os.path.join(backup, "Autumn newsletter 2026")
        os.symlink(elsewhere, link)
        result = run("send", self.task)
        self.assertEqual(result.returncode, EXIT_STOPPED, result.stdout + result.stderr)
        self.assertIn(link + ": a symbolic link", result.stderr)
        self.assertEqual(os.listdir(elsewhere), [], "nothing written through the link")
        sent_before = len(self.check_nothing_falsely_sent())
        self.assertLess(sent_before, self.recipients, "the run stopped early")

        os.unlink(link)
        self.finish_and_check()
        # The messages sent before the stop have no backup (as after a full disk); the rest have.
        backups = os.listdir(os.path.join(backup, "Autumn newsletter 2026"))
        self.assertEqual(len(backups), self.recipients - sent_before)
        self.assertEqual(os.listdir(elsewhere), [])


@unittest.skipUnless(os.geteuid() == 0, "mounting a tmpfs needs root (CI runs as root)")
class StorageFaultTest(FaultTestCase):
    def test_full_pickup_folder_stops_the_run_and_the_next_run_sends_the_rest(self):
        disk = self.small_disk("pickup", "48k")
        self.configure(pickup=disk.path)
        result = run("send", self.task)
        self.assertEqual(result.returncode, EXIT_STOPPED, result.stdout + result.stderr)
        self.assertIn(disk.path, result.stderr)
        self.assertRegex(result.stderr, r"(?i)no space left|disk is full")
        sent_before = len(self.check_nothing_falsely_sent())
        self.assertGreater(sent_before, 0)
        self.assertLess(sent_before, self.recipients)
        rows = self.exported()
        self.assertNotIn("deferred", {r["status"] for r in rows},
                         "a full disk here is not the recipients' fault: they stay unsent, no attempt used")

        disk.resize("8m")
        self.finish_and_check()

    def test_full_backup_folder_stops_the_run_and_keeps_the_results(self):
        disk = self.small_disk("backup", "32k")
        self.configure(backup=disk.path)
        result = run("send", self.task)
        self.assertEqual(result.returncode, EXIT_STOPPED, result.stdout + result.stderr)
        self.assertRegex(result.stderr, r"(?i)backup")
        self.assertRegex(result.stderr, r"(?i)no space left|disk is full")
        sent_before = len(self.check_nothing_falsely_sent())
        self.assertLess(sent_before, self.recipients)

        disk.resize("8m")
        self.finish_and_check()

    def test_full_disk_under_the_store_stops_the_run_and_loses_nothing(self):
        disk = self.small_disk("store", "2m")
        store = os.path.join(disk.path, "herald.db")
        self.configure(store=store)
        # The first run imports the list and sends a few; then the disk fills up.
        limited = self.task + ".limited.toml"
        with open(self.task, encoding="utf-8") as f:
            text = f.read()
        with open(limited, "w", encoding="utf-8") as f:
            f.write(text.replace("[sending]\n", "[sending]\nlimit = 5\n"))
        first = run("send", limited)
        self.assertEqual(first.returncode, 4, first.stdout + first.stderr)  # incomplete: the rest waits
        self.assertEqual(len(self.delivered()), 5)

        filler = disk.fill()
        result = run("send", self.task)
        self.assertNotEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(store, result.stderr)
        self.assertRegex(result.stderr, r"(?i)full|no space")
        self.assertNotIn("Traceback", result.stderr)

        os.unlink(filler)
        self.check_nothing_falsely_sent()
        self.finish_and_check()

    def test_store_locked_by_another_process_is_reported_and_nothing_is_sent(self):
        self.configure()
        store = os.path.join(self.example, "out", "herald.db")
        limited = self.task + ".limited.toml"
        with open(self.task, encoding="utf-8") as f:
            text = f.read()
        with open(limited, "w", encoding="utf-8") as f:
            f.write(text.replace("[sending]\n", "[sending]\nlimit = 1\n"))
        self.assertEqual(run("send", limited).returncode, 4)
        before = len(self.delivered())

        # Another process holds the write lock for longer than herald's busy timeout.
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import sqlite3, sys, time\n"
             "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "db.execute('BEGIN EXCLUSIVE')\n"
             "print('locked', flush=True)\n"
             "sys.stdin.read()\n",
             store], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(holder.stdout.readline().strip(), "locked")
            result = run("send", self.task)
            self.assertNotEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn(store, result.stderr)
            self.assertRegex(result.stderr, r"(?i)locked|busy|another process")
            self.assertEqual(len(self.delivered()), before, "nothing is sent while the store cannot record it")
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)
            holder.stdout.close()
        self.finish_and_check()

    def test_damaged_store_and_store_from_a_newer_version_are_refused_naming_the_file(self):
        self.configure()
        store = os.path.join(self.example, "out", "herald.db")
        os.makedirs(os.path.dirname(store), exist_ok=True)
        with open(store, "wb") as f:
            f.write(b"SQLite format 3\0" + os.urandom(4096))
        result = run("send", self.task)
        self.assertEqual(result.returncode, EXIT_CONFIG, result.stdout + result.stderr)
        self.assertIn(store, result.stderr)
        self.assertFalse(os.path.isdir(self.pickup) and os.listdir(self.pickup), "nothing sent")

        os.unlink(store)
        self.assertEqual(run("send", self.task).returncode, 0)
        db = sqlite3.connect(store)
        db.execute("PRAGMA user_version = 999")
        db.commit()
        db.close()
        result = run("send", self.task)
        self.assertEqual(result.returncode, EXIT_CONFIG, result.stdout + result.stderr)
        self.assertIn(store, result.stderr)
        self.assertRegex(result.stderr, r"(?i)newer")


if __name__ == "__main__":
    HERALD = os.path.abspath(sys.argv.pop(1))
    EXAMPLE = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
