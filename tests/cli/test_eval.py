#!/usr/bin/env python3
"""`ardkit eval`, `export` and `analyze`: evaluation files, run folders, model files."""
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


class EvalAndExport(CliCase):
    """`ardkit eval` and `ardkit export` on a trained run folder and on evaluation files."""

    def train(self):
        exp = self.write("exp.toml", TINY)
        result = run("run", str(exp), "--output", str(self.dir / "runs"))
        self.assertEqual(result.returncode, 0, result.stderr)
        return self.completed_runs()[0]

    def test_eval_run_folder_and_file(self):
        folder = self.train()
        result = run("eval", str(folder), "--points", "40", "--seed", "5")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("tiny (best)", result.stdout)
        report = json.loads((folder / "evals" / "best-test.json").read_text())
        self.assertEqual(report["points"], 40)
        self.assertEqual(report["split"], "test")
        self.assertEqual(list(report["attacks"]), ["fgsm", "pgd10"])
        self.assertEqual(report["attacks"]["pgd10"]["eps"], 0.1)
        self.assertEqual(report["attacks"]["pgd10"]["norm"], "linf")
        for attack in report["attacks"].values():
            self.assertLessEqual(attack["robust_acc"], report["clean_acc"])
        self.assertIn("torch", report["versions"])
        # The same seed gives the same numbers; last is a different checkpoint file.
        again = run("eval", str(folder), "--points", "40", "--seed", "5", "-o", str(self.dir / "again.json"))
        self.assertEqual(again.returncode, 0, again.stderr)
        repeated = json.loads((self.dir / "again.json").read_text())
        for name, attack in report["attacks"].items():
            self.assertEqual(repeated["attacks"][name]["robust_acc"], attack["robust_acc"])
        last = run("eval", str(folder), "--which", "last", "--split", "validation")
        self.assertEqual(last.returncode, 0, last.stderr)
        self.assertTrue((folder / "evals" / "last-validation.json").exists())

        # An evaluation file: the run's student weights through [model], clean accuracy only.
        self.write("eval.toml", f"""
[model]
plugin = "small_cnn"
conv1 = 16
conv2 = 16
hidden = 64
checkpoint = "{folder / 'checkpoints' / 'best.pt'}"
[data]
plugin = "synthetic"
train_size = 256
validation = 32
test_size = 64
[evaluation]
points = 40
""")
        by_file = run("eval", "eval.toml", cwd=self.dir)
        self.assertEqual(by_file.returncode, 0, by_file.stderr)
        from_file = json.loads((self.dir / "evals" / "eval.json").read_text())
        self.assertEqual(from_file["clean_acc"], report["clean_acc"])
        self.assertEqual(from_file["attacks"], {})

    def test_eval_suites(self):
        folder = self.train()
        quick = run("eval", str(folder), "--suite", "quick", "--points", "24", "-o", str(self.dir / "quick.json"))
        self.assertEqual(quick.returncode, 0, quick.stderr)
        report = json.loads((self.dir / "quick.json").read_text())
        self.assertEqual(list(report["attacks"]), ["fgsm", "pgd20"])
        pgd = report["config"]["eval"][1]
        self.assertEqual((pgd["plugin"], pgd["steps"]), ("pgd", 20))
        self.assertAlmostEqual(pgd["step_size"], 0.1 / 4)  # eps from the run's first attack
        # standard, with the budgets cut so it runs in seconds: AutoAttack's stages are reported.
        standard = run("eval", str(folder), "--suite", "standard", "--eps", "0.05", "--points", "16",
                       "--set", "eval.3.steps=3", "--set", "eval.3.queries=30",
                       "-o", str(self.dir / "standard.json"))
        self.assertEqual(standard.returncode, 0, standard.stderr)
        report = json.loads((self.dir / "standard.json").read_text())
        self.assertEqual(list(report["attacks"]), ["fgsm", "pgd20", "cw_inf", "autoattack"])
        aa = report["attacks"]["autoattack"]
        self.assertEqual([s["name"] for s in aa["stages"]], ["apgd-ce", "apgd-t", "fab-t", "square"])
        self.assertEqual(aa["stages"][-1]["robust_acc"], aa["robust_acc"])
        self.assertLessEqual(report["worst_case_acc"], aa["robust_acc"])
        self.assertIn("autoattack", standard.stdout)
        # Bad suites are one-line errors.
        self.assert_error(run("eval", str(folder), "--suite", "standrd"), 2, "suite must be one of quick, standard",
                          "did you mean 'standard'", runs_allowed=True)
        self.write("nosuite.toml", TINY.replace('[[eval]]\nplugin = "fgsm"\neps = 0.1', '[[eval]]\nsuite = "quick"'))
        self.assert_error(run("validate", "nosuite.toml", cwd=self.dir), 2, "nosuite.toml:", "needs the threat model's radius", runs_allowed=True)
        self.write("badkey.toml", TINY.replace('[[eval]]\nplugin = "fgsm"\neps = 0.1', '[[eval]]\nsuite = "quick"\neps = 0.1\nsteps = 3'))
        self.assert_error(run("validate", "badkey.toml", cwd=self.dir), 2, "badkey.toml:", "'steps' is not a key of a suite entry", runs_allowed=True)

    def test_interrupted_eval_resumes(self):
        folder = self.train()
        # 200-step PGD over 16 batches keeps the attack running for seconds, so the interrupt
        # below lands inside it even on a fast machine.
        args = ["eval", str(folder), "--points", "64", "--batch-size", "4", "--set", "eval.1.steps=200"]
        reference = run(*args, "-o", str(self.dir / "whole.json"))
        self.assertEqual(reference.returncode, 0, reference.stderr)
        out = self.dir / "resumed.json"
        state = self.dir / "resumed.state.json"
        process = subprocess.Popen([cli.ARDKIT, *args, "-o", str(out)], stderr=subprocess.PIPE, text=True)
        # Interrupt once the PGD attack is under way (the state file then exists).
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if state.exists() and "pgd10" in state.read_text():
                break
            time.sleep(0.05)
        self.assertIsNone(process.poll(), "the evaluation ended before it could be interrupted")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        self.assertEqual(process.returncode, 130, stderr)
        self.assertIn("run the same command again to continue", stderr)
        self.assertFalse(out.exists())
        self.assertTrue(state.exists())
        resumed = run(*args, "-o", str(out))
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertIn("resuming from", resumed.stderr)
        self.assertFalse(state.exists())  # removed once the results are written
        whole, again = json.loads((self.dir / "whole.json").read_text()), json.loads(out.read_text())
        self.assertEqual(again["clean_acc"], whole["clean_acc"])
        for name in whole["attacks"]:
            self.assertEqual(again["attacks"][name]["robust_acc"], whole["attacks"][name]["robust_acc"])

    def test_interrupt_inside_a_long_attack_batch_stops_within_seconds(self):
        folder = self.train()
        # One batch of PGD-100000: without polling inside the attack, Ctrl-C waited minutes.
        args = ["eval", str(folder), "--points", "32", "--batch-size", "32", "--set", "eval.1.steps=100000",
                "-o", str(self.dir / "long.json")]
        process = subprocess.Popen([cli.ARDKIT, *args], stderr=subprocess.PIPE, text=True)
        state = self.dir / "long.state.json"
        deadline = time.time() + 60
        while time.time() < deadline and not (state.exists() and "pgd10" in state.read_text()):
            time.sleep(0.05)
        time.sleep(1)
        self.interrupt_within_seconds(process)
        self.assertTrue(state.exists())
        self.assertFalse((self.dir / "long.json").exists())

    def test_export_writes_a_state_dict(self):
        folder = self.train()
        out = self.dir / "student.pt"
        result = run("export", str(folder), "-o", str(out))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("tensors of small_cnn", result.stdout)
        self.assertEqual(out.read_bytes()[:4], b"PK\x03\x04")  # torch.save's zip format
        # The exported file evaluates directly as a checkpoint of its model plugin, with the
        # run's accuracy.
        by_folder = run("eval", str(folder), "--points", "40", "-o", str(self.dir / "folder.json"))
        self.assertEqual(by_folder.returncode, 0, by_folder.stderr)
        model_keys = ["--set", "model.conv1=16", "--set", "model.conv2=16", "--set", "model.hidden=64"]
        data_keys = ["--set", "data.train_size=256", "--set", "data.validation=32", "--set", "data.test_size=64"]
        by_file = run("eval", str(out), "--model", "small_cnn", "--data", "synthetic", *model_keys, *data_keys,
                      "--points", "40", "--suite", "quick", "--eps", "0.1", cwd=self.dir)
        self.assertEqual(by_file.returncode, 0, by_file.stderr)
        from_file = json.loads((self.dir / "evals" / "student.json").read_text())
        self.assertEqual(from_file["clean_acc"], json.loads((self.dir / "folder.json").read_text())["clean_acc"])
        self.assertEqual(list(from_file["attacks"]), ["fgsm", "pgd20"])
        self.assert_error(run("eval", str(out), "--model", "small_cnn", cwd=self.dir), 2, "student.pt",
                          "add --data PLUGIN", runs_allowed=True)
        self.assert_error(run("eval", str(folder), "--data", "synthetic"), 2, "--model, --zoo and --data are for model files",
                          runs_allowed=True)
        self.assert_error(run("export", str(folder)), 2, "usage: ardkit export", runs_allowed=True)

    def test_experiment_files_are_valid(self):
        root = Path(__file__).resolve().parents[2] / "experiments"
        # Fashion-MNIST files validate completely (the data is Debian's); a distillation file
        # says its teacher experiment is trained first.
        fmnist = sorted((root / "fmnist").rglob("*.toml"))
        self.assertGreaterEqual(len(fmnist), 11)
        for f in fmnist:
            result = run("validate", str(f), "--set", "run.output=" + str(self.dir / "runs"), cwd=self.dir)
            self.assertEqual(result.returncode, 0, f"{f}: {result.stderr}")
            self.assertIn(": ok", result.stdout)
            if f.name == "mtard.toml":  # two teacher experiments, both named
                self.assertIn("its teachers [teacher] ", result.stdout)
                self.assertIn("[teachers.clean] ", result.stdout)
                self.assertIn("clean_teacher.toml are trained first", result.stdout)
        # Grid files: every cell validates with its values.
        grids = sorted((root / "fmnist" / "grids").glob("*.toml"))
        self.assertGreaterEqual(len(grids), 2)
        for f in grids:
            self.assertIn("cells", run("validate", str(f), cwd=self.dir).stdout)
        methods = run("grid", str(root / "fmnist/grids/methods.toml"), "--dry-run", "--output",
                      str(self.dir / "runs"), cwd=self.dir)
        self.assertIn("84 cells", methods.stdout)
        self.assertIn("pending  teacher fmnist-teacher-", methods.stdout)
        self.assertIn("pending  teacher fmnist-clean-teacher-", methods.stdout)  # MTARD's second
        # The teacher as an axis: each teacher experiment is a teacher run of its own.
        teachers = run("grid", str(root / "fmnist/grids/teachers.toml"), "--dry-run", "--output",
                       str(self.dir / "runs"), cwd=self.dir)
        self.assertEqual(teachers.stdout.count("pending  teacher "), 3)
        self.assertIn("9 pending", teachers.stdout)
        # The zoo teachers as a grid axis: every cell (a zoo name and its file) validates.
        zoo = run("validate", str(root / "cifar10/grids/zoo_teachers.toml"), cwd=self.dir)
        self.assertEqual(zoo.returncode, 0, zoo.stderr)
        self.assertIn("15 cells", zoo.stdout)
        # CIFAR paper settings: every key checks out; the complaint is the data, which is not here.
        for variant, missing in (("cifar10", "data_batch_1.bin not found"), ("cifar100", "train.bin not found"),
                                 ("stl10", "train_X.bin not found")):
            files = sorted((root / variant).glob("[!e]*.toml"))
            self.assertGreaterEqual(len(files), 1 if variant == "stl10" else 7)
            for f in files:
                self.assert_error(run("validate", str(f), cwd=self.dir), 2, missing)
        # Data-free CIFAR files: the only file they look for is the test split (no training file is
        # opened in a data-free run).
        for variant, missing in (("cifar10", "test_batch.bin not found"), ("cifar100", "test.bin not found")):
            files = sorted((root / variant / "datafree").glob("*.toml"))
            self.assertGreaterEqual(len(files), 9)
            for f in files:
                self.assert_error(run("validate", str(f), cwd=self.dir), 2, missing)

    def test_example_evaluation_files_are_valid(self):
        # Every key checks out; the only complaint is the CIFAR-10 data, which is not here.
        examples = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*/eval_*.toml"))
        self.assertGreaterEqual(len(examples), 2)
        for example in examples:
            self.assert_error(run("eval", str(example), cwd=self.dir), 2, "data_batch_1.bin not found")

    def test_bad_targets(self):
        self.assert_error(run("eval", str(self.dir / "nowhere")), 2, "no such evaluation file or run folder")
        empty = self.dir / "empty_run"
        empty.mkdir()
        self.assert_error(run("eval", str(empty)), 2, "not a run folder (no config.toml)")
        (empty / "config.toml").write_text("[run]\n")
        self.assert_error(run("eval", str(empty)), 2, "no best checkpoint yet", "--which last")
        self.assert_error(run("eval", str(empty), "--which", "worst"), 2, "--which must be best, last or averaged")
        self.write("bad.toml", '[model]\nplugin = "small_cnn"\ncheckpoint = "missing.pt"\n'
                               '[data]\nplugin = "synthetic"\n[evalution]\npoints = 3\n')
        self.assert_error(run("eval", str(self.dir / "bad.toml")), 2, "unknown table 'evalution'",
                          "did you mean 'evaluation'?")
        self.write("bad.toml", '[model]\nplugin = "small_cnn"\ncheckpoint = "missing.pt"\n'
                               '[data]\nplugin = "synthetic"\n')
        self.assert_error(run("eval", str(self.dir / "bad.toml")), 2, "missing.pt: checkpoint not found")
        self.assertFalse((self.dir / "evals").exists())


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
