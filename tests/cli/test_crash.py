"""The crash test of herald's delivery guarantees (docs/design.md, "What herald is for"):
`herald send` of a 5,000-recipient task over SMTP with parallel sends is killed with SIGKILL at 20
random moments, restarted after each, then run to the end, against a sink that counts deliveries
per recipient (counting_sink.py). Once personalised (8 sends at once, one recipient each), once in
turbo mode (4 at once, 10 recipients per transaction). Checked:

- no recipient lost: every one delivered at least once, and all sent in the store;
- the duplicates are exactly the ones herald cannot avoid: after each kill, `herald export` lists
  the recipients still in flight, each an attempt whose result herald never wrote; those the sink
  had received during that run are sent again by the next run, and nothing else is. The sum of
  (deliveries - 1) over the recipients equals the number of such recipients over all kills, every
  recipient left in flight is marked as a possible duplicate, and each recipient's attempts are 1 +
  its attempts left in flight;
- what herald reports: each restart says how many recipients were in flight (the number export
  showed), and `herald status` counts the distinct possible duplicates;
- the in-flight bound: at no kill were more than concurrency x recipients per message in flight,
  so the duplicates never exceed 20 x that bound.

The kills land at random moments spread over the task: most when the sink's deliveries reach a
random count (plus a random few milliseconds), a fifth a random time after a start (start-up,
import, recovery). The seed is printed; HERALD_CRASH_SEED=N repeats a run's choices.

Usage: test_crash.py HERALD_BINARY  (run by ctest with Debian's /usr/bin/python3)
"""

import csv
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERALD = None
SINK_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "counting_sink.py")

COUNT = 5000
KILLS = 20
TIME_LIMIT = 240  # seconds for each test, a guard; each takes well under a minute


class CountingSink:
    """counting_sink.py in a process of its own, stopped by its pid."""

    def __init__(self, folder, personal):
        self.progress_file = os.path.join(folder, "progress")
        open(self.progress_file, "wb").close()
        self.log = open(os.path.join(folder, "sink.log"), "wb")
        self.process = subprocess.Popen(
            ["/usr/bin/python3", SINK_SCRIPT, "--progress", self.progress_file, "--lifetime", str(TIME_LIMIT + 60)]
            + (["--personal"] if personal else []),
            stdout=subprocess.PIPE, stderr=self.log)
        ready, _, _ = select.select([self.process.stdout], [], [], 15)
        line = self.process.stdout.readline().decode() if ready else ""
        match = re.match(r"smtp=(\d+) control=(\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError("the counting sink did not start: %r" % line)
        self.port, self.control_port = int(match.group(1)), int(match.group(2))

    def deliveries(self):
        """Recipients delivered so far (cheap: the size of the progress file)."""
        return os.path.getsize(self.progress_file)

    def ask(self, command):
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=10) as control:
            control.sendall(command.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = control.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def settled_counts(self, timeout=15):
        """The counts once no SMTP connection is open: after herald died, nothing can change them."""
        deadline = time.monotonic() + timeout
        while self.ask("STATE")["active"] > 0:
            if time.monotonic() > deadline:
                raise AssertionError("the sink still has connections open %ds after herald ended" % timeout)
            time.sleep(0.005)
        return self.ask("COUNTS")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.log.close()


def address(i):
    return "r%05d@example.com" % i


class CrashTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-crash-")
        self.herald = None
        self.sink = None
        self.addresses = [address(i) for i in range(COUNT)]
        with open(os.path.join(self.dir, "recipients.csv"), "w") as f:
            f.write("email,name\n")
            for i, recipient in enumerate(self.addresses):
                f.write("%s,Reader %d\n" % (recipient, i))
        self.task = os.path.join(self.dir, "task.toml")

    def tearDown(self):
        if self.herald is not None and self.herald.poll() is None:
            self.herald.kill()
            self.herald.wait()
        if self.sink is not None:
            self.sink.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_configuration(self, turbo, concurrency, per_message):
        self.sink = CountingSink(self.dir, personal=not turbo)
        with open(os.path.join(self.dir, "accounts.toml"), "w") as f:
            # security = "none": plain SMTP, allowed explicitly; the sink is on loopback.
            f.write('[[account]]\nname = "sink"\nkind = "smtp"\nhost = "127.0.0.1"\nport = %d\n'
                    'security = "none"\nhelo_name = "crash.herald.test"\ntimeout = "10s"\n'
                    'max_connections = %d\nrecipients_per_message = %d\n'
                    % (self.sink.port, concurrency, per_message))
        if turbo:
            message = 'subject = "News"\ntext = "Dear reader,\\nthis is for everyone.\\n"\n'
        else:
            message = 'subject = "Hello {%name%}"\ntext = "Dear {%name%},\\nthis is for {%recipient%}.\\n"\n'
        with open(self.task, "w") as f:
            f.write('id = "crash"\n[message]\nfrom = "news@example.com"\n' + message +
                    '[recipients]\nfile = "recipients.csv"\n'
                    '[sending]\nmode = "%s"\nconcurrency = %d\n' % ("turbo" if turbo else "personalised", concurrency))

    def start_herald(self, run):
        output = open(os.path.join(self.dir, "run-%02d.log" % run), "wb")
        self.herald = subprocess.Popen([HERALD, "send", "-q", self.task], stdout=output, stderr=subprocess.STDOUT)
        output.close()
        return self.herald

    def run_output(self, run):
        with open(os.path.join(self.dir, "run-%02d.log" % run), encoding="utf-8", errors="replace") as f:
            return f.read()

    def export(self):
        """Every recipient's row of `herald export`, by address; {} when no task is stored yet."""
        out = os.path.join(self.dir, "export.csv")
        result = subprocess.run([HERALD, "export", self.task, "-o", out], capture_output=True, text=True,
                                timeout=60)
        if result.returncode != 0:
            # A kill before herald stored the task leaves no task (or no store) to export.
            self.assertIn("no task", result.stderr + result.stdout)
            return {}
        with open(out, newline="", encoding="utf-8") as f:
            return {row["address"]: row for row in csv.DictReader(f)}

    def kill_moments(self, rng):
        """KILLS moments spread over the task: most when the sink's deliveries reach a random
        number (plus a random few milliseconds), a fifth a random time after the start. Timed
        kills only in the first half of the task: a run that has little left can finish within
        0.1 s (turbo sends 1,500 recipients in that time) and would not be killed."""
        targets = sorted(rng.sample(range(1, COUNT * 9 // 10), KILLS))
        return [("time", rng.uniform(0, 0.1)) if target < COUNT // 2 and rng.random() < 0.25
                else ("deliveries", target, rng.uniform(0, 0.005))
                for target in targets]

    def wait_for(self, moment, process):
        """Waits for `moment` of the run started last; returns it in words, for the log."""
        if moment[0] == "time":
            time.sleep(moment[1])
            return "%.0f ms after the start" % (moment[1] * 1000)
        _, target, extra = moment
        target = max(target, self.sink.deliveries() + 1)  # at least one delivery into the run
        deadline = time.monotonic() + 60
        while self.sink.deliveries() < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(extra)
        return "%d deliveries + %.1f ms" % (target, extra * 1000)

    def crash_and_check(self, turbo, concurrency, per_message):
        in_flight_bound = concurrency * per_message
        self.write_configuration(turbo, concurrency, per_message)
        seed = int(os.environ.get("HERALD_CRASH_SEED", str(int(time.time() * 1000) % 1_000_000_007)))
        rng = random.Random(seed)
        print("\ncrash test seed: %d (HERALD_CRASH_SEED=%d repeats it)" % (seed, seed), file=sys.stderr)
        context = "seed %d" % seed
        began = time.monotonic()

        counts = {}         # the sink's counts at the last kill, per recipient
        in_flight_at = []   # per kill: {recipient: attempts} of those in flight in the store
        duplicated_at = []  # per kill: those of them the sink had received in that run
        for kill, moment in enumerate(self.kill_moments(rng), start=1):
            self.assertLess(time.monotonic() - began, TIME_LIMIT, context)
            process = self.start_herald(kill)
            said = self.wait_for(moment, process)
            self.assertIsNone(process.poll(), "%s: herald ended before kill %d (%s); output:\n%s"
                              % (context, kill, said, self.run_output(kill)))
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            self.assertEqual(process.returncode, -signal.SIGKILL, context)

            settled = self.sink.settled_counts()
            rows = self.export()
            self.assertEqual({row["status"] for row in rows.values()} - {"unsent", "in-flight", "sent"}, set(),
                             "%s: kill %d: only unsent, in flight or sent" % (context, kill))
            # A recipient in flight is one attempt (its number: `attempts`) whose result herald never
            # wrote. A run killed before its start-up put the last kill's in-flight recipients back
            # shows the same attempts again.
            in_flight = {a: int(row["attempts"]) for a, row in rows.items() if row["status"] == "in-flight"}
            carried = in_flight_at and in_flight == in_flight_at[-1]
            new_counts = settled["counts"]
            duplicated = {a for a in in_flight if new_counts.get(a, 0) > counts.get(a, 0)}
            print("kill %2d at %-28s in flight %2d%s, of which delivered %d; %d delivered so far"
                  % (kill, said, len(in_flight), " (the same as at the last kill)" if carried else "",
                     len(duplicated), settled["deliveries"]), file=sys.stderr)
            self.assertLessEqual(len(in_flight), in_flight_bound,
                                 "%s: kill %d: more in flight than the bound" % (context, kill))
            in_flight_at.append(in_flight)
            duplicated_at.append(duplicated)
            counts = new_counts

        final = self.start_herald(KILLS + 1)
        final.wait(timeout=max(10, TIME_LIMIT - (time.monotonic() - began)))
        self.herald = None
        self.assertEqual(final.returncode, 0, "%s: the last run:\n%s" % (context, self.run_output(KILLS + 1)))
        elapsed = time.monotonic() - began
        settled = self.sink.settled_counts()
        counts = settled["counts"]

        # Nothing lost, nothing foreign, every personal message to the recipient it names.
        self.assertEqual(sorted(counts), self.addresses, "%s: every recipient delivered, no other" % context)
        self.assertEqual(settled["mixups"], 0, "%s: a message named another recipient than its envelope" % context)
        rows = self.export()
        self.assertEqual({row["status"] for row in rows.values()}, {"sent"}, context)

        # The duplicates are exactly the attempts in flight at a kill that had reached the sink.
        duplicates = sum(n - 1 for n in counts.values())
        expected = sum(len(d) for d in duplicated_at)
        self.assertEqual(duplicates, expected, "%s: duplicates at the sink vs in flight there at a kill" % context)
        # Every attempt left in flight by a kill, as (recipient, attempts): each is sent again.
        unrecorded = {(r, a) for f in in_flight_at for r, a in f.items()}
        possible = {r for r, _ in unrecorded}
        self.assertLessEqual(duplicates, len(unrecorded), context)
        for recipient in self.addresses:
            resent = sum(r == recipient for r, _ in unrecorded)
            self.assertEqual(int(rows[recipient]["attempts"]), 1 + resent, "%s: %s" % (context, recipient))
            self.assertEqual(rows[recipient]["possible_duplicate"], "yes" if recipient in possible else "no",
                             "%s: %s" % (context, recipient))
            self.assertLessEqual(counts[recipient] - 1, resent, "%s: %s" % (context, recipient))

        # What herald said: a restart that got through its start-up, the number in flight (a run
        # killed before may not have said it); `herald status`, the distinct possible duplicates.
        reported_by_runs = 0
        for run in range(2, KILLS + 2):
            said = re.search(r"(\d+) recipient\(s\) were in flight", self.run_output(run))
            if said or run == KILLS + 1:
                self.assertEqual(int(said.group(1)) if said else 0, len(in_flight_at[run - 2]),
                                 "%s: run %d:\n%s" % (context, run, self.run_output(run)))
                reported_by_runs += int(said.group(1)) if said else 0
        status = subprocess.run([HERALD, "status", self.task], capture_output=True, text=True, timeout=60)
        self.assertEqual(status.returncode, 0, status.stdout + status.stderr)
        said = re.search(r"possible duplicates: (\d+)", status.stdout)
        self.assertEqual(int(said.group(1)) if said else 0, len(possible), "%s:\n%s" % (context, status.stdout))
        self.assertLessEqual(duplicates, KILLS * in_flight_bound, context)

        print("crash test (%s, concurrency %d, %d per message): %d recipients, %d kills, %.1f s; deliveries %d; "
              "duplicates seen %d; herald reported %d in flight over the restarts (%d distinct possible "
              "duplicates); most in flight at a kill %d (bound %d)"
              % ("turbo" if turbo else "personalised", concurrency, per_message, COUNT, KILLS, elapsed,
                 settled["deliveries"], duplicates, reported_by_runs, len(possible),
                 max(len(f) for f in in_flight_at), in_flight_bound), file=sys.stderr)

    def test_personalised_kill_9_at_twenty_random_moments_loses_nothing_and_counts_every_duplicate(self):
        self.crash_and_check(turbo=False, concurrency=8, per_message=1)

    def test_turbo_kill_9_at_twenty_random_moments_loses_nothing_and_counts_every_duplicate(self):
        self.crash_and_check(turbo=True, concurrency=4, per_message=10)


if __name__ == "__main__":
    HERALD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
