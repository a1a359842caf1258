#!/usr/bin/env python3
"""Cross-task distillation from the command line: a teacher of another label space."""
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


class CrossTask(CliCase):
    def test_features_cross_tasks_and_soft_labels_refuse(self):
        # Teacher on classes 0-4 of the synthetic data; students on classes 5-9 (the same count,
        # other classes) and on a coarse 3-class relabelling of all ten.
        first = '\nclass_map = [0, 1, 2, 3, 4, -1, -1, -1, -1, -1]\n'
        second = '\nclass_map = [-1, -1, -1, -1, -1, 0, 1, 2, 3, 4]\n'
        coarse = '\nclass_map = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]\n'
        with_map = lambda text, m: text.replace('test_size = 64\n', 'test_size = 64' + m)
        self.write("teacher.toml", with_map(TINY.replace('name = "tiny"', 'name = "teacher"'), first))

        def student(name, objective, class_map, extra=""):
            text = with_map(TINY.replace('name = "tiny"', f'name = "{name}"'), class_map)
            text = text.replace('plugin = "pgd_at"', f'plugin = "{objective}"' + extra)
            return self.write(name + ".toml", text + '\n[teacher]\nexperiment = "teacher.toml"\n')

        runs = str(self.dir / "runs")
        teacher = run("run", str(self.dir / "teacher.toml"), "--output", runs)
        self.assertEqual(teacher.returncode, 0, teacher.stderr)
        kd = run("run", str(student("kd", "kd", second)), "--output", runs)
        self.assert_error(kd, 2, "objective 'kd' distills the teacher's class probabilities",
                          "class_map=[0,1,2,3,4,-1,-1,-1,-1,-1]", "objective that distills features",
                          runs_allowed=True)
        # gacd's own options are checked when the objective is set up, after the run's first
        # log line: the error is still one line, the last, and nothing is marked completed.
        weighted = run("run", str(student("weighted", "gacd", second)), "--output", runs)
        self.assertEqual(weighted.returncode, 2, weighted.stderr)
        errors = [l for l in weighted.stderr.splitlines() if l.startswith("ardkit: error: ")]
        self.assertEqual(len(errors), 1, weighted.stderr)
        self.assertEqual(weighted.stderr.strip().splitlines()[-1], errors[0])
        for fragment in ("weighted.toml [objective] (plugin 'gacd') reweight = \"prob\" reads",
                         'set it to "none"'):
            self.assertIn(fragment, errors[0])
        self.assertFalse(list((self.dir / "runs").glob("weighted-*/results.json")))
        for name, class_map in (("other", second), ("coarse", coarse)):
            exp = student(name, "gacd", class_map, '\nreweight = "none"\nnegatives = 64')
            result = run("run", str(exp), "--output", runs)
            self.assertEqual(result.returncode, 0, result.stderr)
        done = sorted(p.name.split("-")[0] for p in self.completed_runs())
        self.assertEqual(done, ["coarse", "other", "teacher"])
        coarse_results = json.loads(next((self.dir / "runs").glob("coarse-*/results.json")).read_text())
        self.assertGreaterEqual(coarse_results["last"]["clean_acc"], 0.0)


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
