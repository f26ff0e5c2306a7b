"""End-to-end tests of what the `herald` command line says: a mistyped command gets the one it
was probably meant to be, every command's --help lists what its own exit codes mean, and times are
local with their UTC offset.

Usage: test_commands.py HERALD_BINARY EXAMPLE_DIR  (run by ctest with Debian's /usr/bin/python3)
"""

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

HERALD = None
EXAMPLE = None
COMMANDS = ["send", "check", "preview", "status", "export", "cancel", "resume", "test-account"]


def run(*args, env=None, cwd=None):
    return subprocess.run([HERALD, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def exit_codes(help_text):
    """{code: meaning} from the "Exit codes:" block at the end of a --help text."""
    block = help_text[help_text.index("Exit codes:"):]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^  ([0-9])  (.+)$", block, re.M)}


class MistypedCommandTest(unittest.TestCase):
    def test_suggests_the_closest_command_and_lists_them(self):
        for typo, meant in [("sned", "send"), ("staus", "status"), ("exprot", "export"), ("chekc", "check"),
                            ("preveiw", "preview"), ("cancle", "cancel")]:
            result = run(typo, "task.toml")
            self.assertEqual(result.returncode, 2, typo)
            self.assertIn(f'"{typo}" is not a command; did you mean `herald {meant}`?', result.stderr)
            self.assertIn("the commands are: " + ", ".join(COMMANDS), result.stderr)
            self.assertNotIn("A subcommand is required", result.stderr)

    def test_no_suggestion_for_a_word_unlike_any_command(self):
        result = run("frobnicate")
        self.assertEqual(result.returncode, 2)
        self.assertNotIn("did you mean", result.stderr)
        self.assertIn("the commands are: ", result.stderr)


class HelpTest(unittest.TestCase):
    def test_every_command_lists_its_own_exit_codes(self):
        helps = {}
        for command in COMMANDS:
            result = run(command, "--help")
            self.assertEqual(result.returncode, 0, command)
            codes = exit_codes(result.stdout)
            self.assertIn(0, codes, command)
            self.assertEqual(codes[1], "herald itself failed (a bug or an unexpected system error)", command)
            self.assertEqual(codes[2], "the command line is wrong", command)
            self.assertIn(3, codes, command)
            helps[command] = codes
        self.assertIn(4, helps["send"])
        self.assertIn(5, helps["send"])
        self.assertIn("not accepted", helps["test-account"][4])
        self.assertIn("not ready", helps["check"][3])
        self.assertIn("no row", helps["preview"][3])
        for command in ["check", "preview", "status", "export", "cancel"]:
            self.assertNotIn(4, helps[command], f"{command} never exits with 4")
        for command in COMMANDS:
            if command != "send":
                self.assertNotIn("the run finished", "\n".join(helps[command].values()), command)


class TimesTest(unittest.TestCase):
    """Every time herald prints is local time with its offset from UTC."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-commands-")
        self.example = os.path.join(self.dir, "newsletter")
        shutil.copytree(EXAMPLE, self.example, ignore=shutil.ignore_patterns("out"))
        self.task = os.path.join(self.example, "task.toml")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_status_prints_local_times_with_their_offset(self):
        self.assertEqual(run("send", self.task).returncode, 0)
        store = os.path.join(self.example, "out", "herald.db")
        with sqlite3.connect(store) as db:  # 2030-01-01 00:00:00 UTC
            db.execute("INSERT INTO destination_backoff VALUES (?, ?, ?, ?, ?, ?, ?)",
                       ("direct", "dead.example", 2, 1893456000000, 0, "", "connect: refused"))
        for tz, want in [("UTC0", "2030-01-01 00:00:00+00:00"), ("CET-1CEST,M3.5.0,M10.5.0/3", "2030-01-01 01:00:00+01:00"),
                         ("NST3:30NDT,M3.2.0,M11.1.0", "2029-12-31 20:30:00-03:30")]:
            status = run("status", self.task, env=dict(os.environ, TZ=tz))
            self.assertEqual(status.returncode, 0, status.stderr)
            line = next(l for l in status.stdout.splitlines() if "dead.example" in l)
            self.assertIn(want, line, tz)


if __name__ == "__main__":
    HERALD = os.path.abspath(sys.argv.pop(1))
    EXAMPLE = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
