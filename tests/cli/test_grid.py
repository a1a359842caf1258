#!/usr/bin/env python3
"""`ardkit grid`: cells, their states, failures that leave the others running, resuming."""
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


class Grid(CliCase):
    """`ardkit grid`: cells as ordinary runs, a shared teacher trained once, failures isolated,
    Ctrl-C and resume, status."""

    def make_grid(self, seeds="[0, 1]", extra=""):
        self.write("teacher.toml", TINY.replace('name = "tiny"', 'name = "teacher"'))
        self.write("student.toml", TINY.replace('name = "tiny"', 'name = "student"').replace(
            'plugin = "pgd_at"', 'plugin = "rslad"') + '\n[teacher]\nexperiment = "teacher.toml"\n')
        return self.write("grid.toml", f"""
[grid]
name = "g"
experiments = ["student.toml", "teacher.toml"]
output = "{self.dir / 'runs'}"
[set]
train.epochs = 1
[axes]
run.seed = {seeds}
[[zip]]
attack.eps = [0.05, 0.1]
eval.1.eps = [0.05, 0.1]
[[exclude]]
experiment = "teacher"
run.seed = 1
{extra}""")

    def test_grid_runs_every_cell_once_and_reports_status(self):
        grid = self.make_grid(extra="[[exclude]]\nexperiment = \"teacher\"\nattack.eps = 0.05\n")
        dry = run("grid", str(grid), "--dry-run")
        self.assertEqual(dry.returncode, 0, dry.stderr)
        self.assertIn("5 cells", dry.stdout)
        self.assertIn("0 done, 0 running, 0 failed, 5 pending (dry run", dry.stdout)
        self.assertFalse((self.dir / "runs").exists())  # a dry run starts nothing
        done = run("grid", str(grid), "--jobs", "2", "--threads", "1")
        self.assertEqual(done.returncode, 0, done.stderr)
        # The teacher is trained once, first, and the teacher cell at eps 0.1 is that same run.
        self.assertEqual(done.stderr.count("started teacher"), 1, done.stderr)
        self.assertLess(done.stderr.index("started teacher"), done.stderr.index("started cell"))
        self.assertIn("5 done, 0 running, 0 failed, 0 pending", done.stderr)
        self.assertEqual(len(list((self.dir / "runs").glob("student-*/results.json"))), 4)
        # The students' teacher is teacher.toml as written; the teacher cell has the grid's values.
        self.assertEqual(len(list((self.dir / "runs").glob("teacher-*/results.json"))), 2)
        manifest = json.loads((self.dir / "runs/grids/g/cells.json").read_text())
        self.assertEqual(manifest["axes"], ["experiment", "run.seed", "attack.eps", "eval.1.eps"])
        self.assertEqual(manifest["cells"][3]["coordinates"],
                         {"experiment": '"student"', "run.seed": "1", "attack.eps": "0.1", "eval.1.eps": "0.1"})
        # Each cell's run has the cell's values.
        config = (self.dir / "runs" / manifest["cells"][3]["run_id"] / "config.toml").read_text()
        self.assertIn("seed = 1", config)
        self.assertIn("epochs = 1", config)
        # Again: nothing left to run; status lists every cell as done.
        again = run("grid", str(grid))
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("(5 done, 0 to run, 0 invalid), 0 teacher run(s)", again.stderr)
        self.assertNotIn("started", again.stderr)
        status = run("grid", "status", str(grid))
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertIn("5 done, 0 running, 0 failed, 0 pending", status.stdout)
        # The same axes from the command line, on the experiment file itself.
        axis = run("grid", str(self.dir / "student.toml"), "--axis", "run.seed=0,1", "--set",
                   "train.epochs=1", "--axis", "attack.eps=0.05,0.1", "--axis", "eval.1.eps=0.05,0.1",
                   "--output", str(self.dir / "runs"), "--dry-run")
        self.assertEqual(axis.returncode, 0, axis.stderr)
        self.assertIn("8 cells", axis.stdout)  # a product now, not a zip
        self.assertIn("4 done", axis.stdout)   # the zip's diagonal is already there
        # The report of that command-line grid takes the same axes.
        report = run("report", str(self.dir / "student.toml"), "--axis", "run.seed=0,1", "--set",
                     "train.epochs=1", "--axis", "attack.eps=0.05,0.1", "--axis", "eval.1.eps=0.05,0.1",
                     "--output", str(self.dir / "runs"), "--checkpoint", "last", "--format", "json")
        self.assertEqual(report.returncode, 0, report.stderr)
        self.assertIn("4 of 8 cells", report.stderr)
        self.assertEqual(len(json.loads(report.stdout)["runs"]), 4)

    def test_failing_cell_does_not_stop_the_others_and_interrupt_resumes(self):
        grid = self.make_grid(seeds="[0, 1, 2]")
        # One cell fails at run time (a key the plugin refuses after the value is set).
        bad = run("grid", str(grid), "--axis", "objective.plugin=rslad,nope", "--dry-run")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("unknown objective plugin 'nope'", bad.stdout)
        self.assertIn("failed", bad.stdout)
        slow = grid.read_text().replace("train.epochs = 1", "train.epochs = 3\ndata.train_size = 8192")
        grid.write_text(slow)
        proc = subprocess.Popen([cli.ARDKIT, "grid", str(grid), "--jobs", "2", "--threads", "1"],
                                stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and not list((self.dir / "runs").glob("student-*/metrics.jsonl")):
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 130, err)
        self.assertIn("run the same command again to resume", err)
        states = [json.loads(p.read_text())["state"] for p in (self.dir / "runs").glob("*/status.json")]
        self.assertIn("interrupted", states)
        self.assertNotIn("running", states)
        status = run("grid", "status", str(grid))
        self.assertIn("resumes from its checkpoint", status.stdout)
        resumed = run("grid", str(grid), "--jobs", "2", "--threads", "1", timeout=600)
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertIn("10 done, 0 running, 0 failed, 0 pending", resumed.stderr)
        logs = "".join(p.read_text() for p in (self.dir / "runs/grids/g/logs").glob("cell-*.log"))
        self.assertIn("resuming", logs)

    def test_a_cell_failing_at_run_time_leaves_the_others_running(self):
        # Valid on paper, refused when the run starts: Debian's LibTorch has no CUDA.
        grid = self.make_grid(seeds="[0]")
        result = run("grid", str(grid), "--axis", "run.device=cpu,cuda", "--threads", "1")
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertRegex(result.stderr, r"cell \d+ \(student run.seed=0 .*run.device=cuda\) FAILED \(exit 2\): .*no CUDA device")
        status = run("grid", "status", str(grid), "--axis", "run.device=cpu,cuda")
        self.assertEqual(status.returncode, 1)
        self.assertIn("4 done, 0 running, 4 failed, 0 pending", status.stdout)
        self.assertIn("no CUDA device is available", status.stdout)

    def test_grid_errors(self):
        grid = self.make_grid()
        self.assert_error(run("grid", str(grid), "--axis", "atack.eps=0.1"), 2,
                          "axis 'atack.eps' sets a table that none of the grid's experiments has")
        self.assert_error(run("grid", str(self.dir / "nope.toml")), 2, "grid file not found")
        self.assert_error(run("grid", str(grid), "--backend", "slrum"), 2, "did you mean 'slurm'?")
        self.assertIn("ok (grid g: 6 cells, 1 teacher run(s))", run("validate", str(grid)).stdout)
        self.assert_error(run("validate", str(grid), "--set", "objective.plugin=nope"), 2,
                          "cell 0 (student run.seed=0 attack.eps=0.05 eval.1.eps=0.05)",
                          "unknown objective plugin 'nope'")


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
