#!/usr/bin/env python3
"""What every command-line test shares: the ardkit binary and test plugins under test, a small
experiment, and a test case with a scratch folder and the one-line error check. Each
test_COMMAND.py beside it holds the tests of one command."""
import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

ARDKIT = None
TEST_PLUGINS = None
SET_ASIDE = "warning: plugin library set aside, its plugins are unavailable: "

TINY = """
[run]
name = "tiny"
seed = 1
[data]
plugin = "synthetic"
train_size = 256
validation = 32
test_size = 64
[student]
plugin = "small_cnn"
conv1 = 16
conv2 = 16
hidden = 64
[objective]
plugin = "pgd_at"
[attack]
plugin = "pgd"
eps = 0.1
steps = 2
step_size = 0.125
[train]
epochs = 2
batch_size = 32
[[eval]]
plugin = "fgsm"
eps = 0.1
[[eval]]
plugin = "pgd"
name = "pgd10"
eps = 0.1
steps = 10
"""


def run(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([ARDKIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


class CliCase(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ardkit-cli-"))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = self.dir / name
        path.write_text(text)
        return path

    def write_datafree(self, extra=""):
        """A data-free student ("df", ARD on DFAD's images) of a teacher experiment ("teacher",
        trained first by the same command); `extra` is appended to the student's file."""
        self.write("teacher.toml", TINY.replace('name = "tiny"', 'name = "teacher"'))
        return self.write("datafree.toml", TINY.replace('name = "tiny"', 'name = "df"')
                          .replace('plugin = "pgd_at"', 'plugin = "ard"') + """
[teacher]
experiment = "teacher.toml"
[generator]
plugin = "dfad"
latent_dim = 16
width = 8
iterations = 3
student_steps = 2
""" + extra)

    def completed_runs(self):
        out = []
        for status in (self.dir / "runs").glob("*/status.json"):
            if json.loads(status.read_text()).get("state") == "completed":
                out.append(status.parent)
        return out

    def interrupt_within_seconds(self, proc, limit=15):
        """SIGINT to a process still running; it must exit 130 within `limit` seconds. Returns
        its stderr."""
        self.assertIsNone(proc.poll())
        sent = time.time()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        self.assertLess(time.time() - sent, limit, err)
        self.assertEqual(proc.returncode, 130, err)
        return err

    def assert_error(self, result, code, *fragments, runs_allowed=False):
        self.assertEqual(result.returncode, code, result.stderr)
        # A plugin library set aside is announced by every command (its own test checks that).
        lines = [l for l in result.stderr.splitlines()
                 if l.strip() and not l.startswith(SET_ASIDE)]
        self.assertEqual(len(lines), 1, f"expected one error line, got: {result.stderr!r}")
        self.assertTrue(lines[0].startswith("ardkit: error: "), lines[0])
        for fragment in fragments:
            self.assertIn(fragment, lines[0])
        if not runs_allowed:
            self.assertEqual(self.completed_runs(), [])


def main(module):
    """Runs a test module: `--list` prints one CLASS.METHOD per line (tests/CMakeLists.txt makes
    each its own CTest entry, so `ctest -j` spreads them and each has its own timeout); otherwise
    --ardkit and --test-plugins name what is tested, and the rest goes to unittest."""
    global ARDKIT, TEST_PLUGINS
    if sys.argv[1:] == ["--list"]:
        for suite in unittest.defaultTestLoader.loadTestsFromModule(module):
            for case in suite:
                print(case.id().split(".", 1)[1])
        sys.exit(0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--ardkit", required=True)
    parser.add_argument("--test-plugins", required=True)
    args, rest = parser.parse_known_args()
    ARDKIT, TEST_PLUGINS = str(Path(args.ardkit).resolve()), str(Path(args.test_plugins).resolve())
    unittest.main(module=module, argv=[sys.argv[0], "-v", *rest])
