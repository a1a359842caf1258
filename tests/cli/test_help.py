#!/usr/bin/env python3
"""`ardkit --help`, `plugins list` and `plugins show`: what a newcomer reads first."""
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import cli_case as cli
from cli_case import SET_ASIDE, TINY, CliCase, run


class Help(CliCase):
    def test_help_everywhere(self):
        self.assertEqual(run("--help").returncode, 0)
        for command in ("run", "validate", "plugins", "report", "eval", "export", "analyze", "grid"):
            result = run(command, "--help")
            self.assertEqual(result.returncode, 0, command)
            self.assertIn("usage: ardkit " + command, result.stdout)
        self.assertIn("--set", run("run", "--help").stdout)
        version = run("--version")
        self.assertEqual(version.returncode, 0, version.stderr)
        self.assertRegex(version.stdout, r"^ardkit \d+\.\d+\.\d+ \(commit \w+, LibTorch [\d.]+, plugin ABI \d+\)")
        result = run("rnu")
        self.assertEqual(result.returncode, 2)
        self.assertIn("did you mean 'run'?", result.stderr)

    def test_man_page_and_bash_completion(self):
        page = Path(cli.ARDKIT).resolve().parent.parent / "share/man/man1/ardkit.1"
        self.assertTrue(page.exists(), "the build writes the man page (help2man, from tools/setup.sh)")
        text = page.read_text()
        for fragment in (".TH ARDKIT", ".SS ardkit run", "--teacher-wait", ".SS ardkit report", "mean ± std"):
            self.assertIn(fragment, text)
        script = Path(__file__).resolve().parents[2] / "tools/completion/ardkit.bash"
        def complete(*words):
            line = " ".join(f"'{w}'" for w in words)
            out = subprocess.run(["bash", "-c", f'source "{script}"; COMP_WORDS=({line}); '
                                  f'COMP_CWORD={len(words) - 1}; _ardkit; printf "%s\\n" "${{COMPREPLY[@]}}"'],
                                 capture_output=True, text=True, cwd=self.dir)
            return out.stdout.split()
        self.assertEqual(complete(cli.ARDKIT, "va"), ["validate"])
        self.assertEqual(complete(cli.ARDKIT, "plugins", "show", "pgd"), ["pgd", "pgd_at"])
        self.assertIn("--teacher-wait", complete(cli.ARDKIT, "run", "--t"))
        self.write("exp.toml", TINY)
        self.write("notes.txt", "")
        self.assertEqual(complete(cli.ARDKIT, "run", "e"), ["exp.toml"])

    def test_plugins_list_and_show(self):
        result = run("plugins", "list")
        self.assertEqual(result.returncode, 0, result.stderr)
        for kind, name in [("attack", "pgd"), ("attack", "fgsm"), ("data", "idx"), ("data", "synthetic"),
                           ("model", "small_cnn"), ("objective", "natural"), ("objective", "pgd_at")]:
            line = next(l for l in result.stdout.splitlines() if l.split()[:2] == [kind, name])
            self.assertIn("1.0.0", line)
            self.assertIn(f"ardkit_{name}.so", line)
        show = run("plugins", "show", "pgd")
        self.assertEqual(show.returncode, 0)
        for fragment in ("attack pgd 1.0.0", "eps", "float", "0.0313", "radius in [0,1] pixel units", "steps", "integer", "= 10",
                         "random_start", "one of none|uniform|gaussian"):
            self.assertIn(fragment, show.stdout)
        self.assert_error(run("plugins", "show", "pgdd"), 3, "no plugin named 'pgdd'", "did you mean 'pgd'?")
        # Model roles and a wrapped part are what the objective needs too.
        good = ("--plugin-path", f"{cli.TEST_PLUGINS}/good")
        roles = run("plugins", "show", "two_teachers_and_peer", *good)
        self.assertEqual(roles.returncode, 0, roles.stderr)
        self.assertIn("needs: [teachers.clean], [teachers.robust], [companions.peer]", roles.stdout)
        wraps = run("plugins", "show", "plus_weight_norm", *good)
        self.assertIn("an [objective.wrapped] objective table", wraps.stdout)


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
