"""The README is the manual: its task and accounts examples, exactly as printed, must pass
`herald check`. The test takes the first ```toml block after the headings "### A sending task"
and "### Accounts", writes them as task.toml and accounts.toml, creates the files they name (a
recipient list with a column for every placeholder, the bodies, attachments and blacklist) and
sets the environment variables of their secrets.

Usage: test_readme.py HERALD_BINARY README  (run by ctest with Debian's /usr/bin/python3)
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERALD = None
README = None
BUILT_IN_PLACEHOLDERS = {"task_title", "subject", "recipient"}


def toml_block_after(text, heading):
    start = text.index(heading + "\n")
    match = re.compile(r"```toml\n(.*?)```", re.S).search(text, start)
    return match.group(1)


class ReadmeExamplesTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-readme-")
        with open(README, encoding="utf-8") as f:
            readme = f.read()
        self.task_text = toml_block_after(readme, "### A sending task")
        self.accounts_text = toml_block_after(readme, "### Accounts")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(path, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as f:
            f.write(data)
        return path

    def test_the_examples_pass_check_as_printed(self):
        task = self.write("task.toml", self.task_text)
        self.write("accounts.toml", self.accounts_text)
        placeholders = set(re.findall(r"\{%\s*([A-Za-z0-9_]+)", self.task_text)) - BUILT_IN_PLACEHOLDERS
        columns = ["email"] + sorted(placeholders - {"email"})
        rows = [",".join(columns)]
        for i in range(3):
            rows.append(",".join(["member%d@example.net" % i] + ["value%d" % i] * (len(columns) - 1)))
        for name in re.findall(r'^(?:file|text_file|html_file)\s*=\s*"([^"]+)"', self.task_text, re.M):
            self.write(name, "\n".join(rows) + "\n" if name.endswith(".csv") else "Hello {%email%}\n")
        attachments = re.search(r"^attachments\s*=\s*(.*)$", self.task_text, re.M).group(1)
        for name in re.findall(r'"([^"]+\.pdf)"', attachments):
            self.write(name, b"%PDF-1.4\n%%EOF\n")
        for name in re.findall(r'"([^"]+)"', re.search(r"^blacklists\s*=\s*(.*)$", self.task_text, re.M).group(1)):
            self.write(name, "*@blocked.example\n")
        env = dict(os.environ)
        for variable in re.findall(r'_env\s*=\s*"([A-Z0-9_]+)"', self.accounts_text):
            env[variable] = "not-a-real-secret"

        check = subprocess.run([HERALD, "check", task], cwd=self.dir, capture_output=True, text=True, timeout=60,
                               env=env)
        self.assertEqual(check.returncode, 0, "the README's examples fail `herald check`:\n" + check.stdout +
                         check.stderr)
        self.assertIn("ready to send", check.stdout)


if __name__ == "__main__":
    HERALD = os.path.abspath(sys.argv[1])
    README = os.path.abspath(sys.argv[2])
    unittest.main(argv=sys.argv[:1], verbosity=2)
