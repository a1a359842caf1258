#!/usr/bin/env python3
"""`ardkit run`: the run folder, re-running, resuming after SIGINT and SIGKILL, and a full disk."""
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


class Runs(CliCase):
    def test_run_folder_rerun_and_report(self):
        exp = self.write("exp.toml", TINY)
        result = run("run", str(exp), "--output", str(self.dir / "runs"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("clean", result.stdout)
        self.assertIn("pgd10", result.stdout)
        [folder] = self.completed_runs()
        self.assertTrue(folder.name.startswith("tiny-"))
        for name in ("config.toml", "status.json", "metrics.jsonl", "results.json", "log.txt",
                     "checkpoints/last.pt"):
            self.assertTrue((folder / name).exists(), name)
        status = json.loads((folder / "status.json").read_text())
        self.assertEqual(status["torch_version"][:4], "1.13")
        results = json.loads((folder / "results.json").read_text())
        self.assertLessEqual(results["last"]["attacks"]["pgd10"]["robust_acc"], results["last"]["clean_acc"])
        # The budget: 2 epochs of the 224 training images left after validation, batches of 32.
        self.assertEqual(results["budget"], {"student_steps": 14, "student_images": 14 * 32})
        self.assertIn("epochs = 2", (folder / "config.toml").read_text())
        # The same command again is a no-op that prints the same results.
        started = time.time()
        again = run("run", str(exp), "--output", str(self.dir / "runs"))
        self.assertEqual(again.returncode, 0)
        self.assertIn("already completed", again.stderr)
        self.assertEqual(again.stdout, result.stdout)
        self.assertLess(time.time() - started, 30)
        report = run("report", str(self.dir / "runs"))
        self.assertEqual(report.returncode, 0, report.stderr)
        self.assertRegex(report.stdout, r"tiny\s+last\s+1\s+[\d.]+")
        self.assertRegex(report.stdout, r"tiny\s+best\s+1\s+[\d.]+")

    def test_report_shows_the_budgets_of_data_free_runs(self):
        datafree = self.write_datafree()
        runs = str(self.dir / "runs")
        result = run("run", str(datafree), "--output", runs)
        self.assertEqual(result.returncode, 0, result.stderr)
        [folder] = [f for f in self.completed_runs() if f.name.startswith("df-")]
        budget = json.loads((folder / "results.json").read_text())["budget"]
        self.assertEqual(budget["student_steps"], 2 * 3 * 2)
        self.assertEqual(budget["generator_updates"], 2 * 3)
        self.assertGreater(budget["teacher_queries"], 0)
        report = run("report", runs, "--format", "csv")
        self.assertEqual(report.returncode, 0, report.stderr)
        lines = report.stdout.splitlines()
        header = lines[0].split(",")
        for key in ("generator_updates", "student_steps", "teacher_queries"):
            self.assertIn(key, header)
        row = dict(zip(header, next(l for l in lines if l.startswith("df,last")).split(",")))
        self.assertEqual(row["generator_updates"], "6")
        self.assertEqual(row["teacher_queries"], str(budget["teacher_queries"]))
        # The teacher's row (real data, no generator) leaves the generator column empty.
        teacher = dict(zip(header, next(l for l in lines if l.startswith("teacher,last")).split(",")))
        self.assertEqual(teacher["generator_updates"], "")
        table = run("report", runs)
        self.assertRegex(table.stdout, r"gen_updates\s+steps\s+queries")

    def start_long_run(self):
        # Long enough (~15 s idle) that the checks below happen while it still runs.
        exp = self.write("long.toml", TINY.replace("train_size = 256", "train_size = 16384")
                         .replace("epochs = 2", "epochs = 3").replace("steps = 2", "steps = 5"))
        cmd = [cli.ARDKIT, "run", str(exp), "--output", str(self.dir / "runs"), "--threads", "1"]
        return exp, cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_for(self, predicate, proc, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            if proc.poll() is not None:
                self.fail("run ended before the condition: " + proc.stderr.read())
            time.sleep(0.2)
        proc.kill()
        self.fail("timed out")

    def test_sigint_checkpoints_and_resumes(self):
        exp, cmd, proc = self.start_long_run()
        metrics = lambda: list((self.dir / "runs").glob("*/metrics.jsonl"))
        self.wait_for(lambda: metrics() and metrics()[0].read_text().count("\n") >= 1, proc)
        # Freeze the run so that a fast machine cannot finish it while the
        # second process starts; the stopped process still holds its lock.
        proc.send_signal(signal.SIGSTOP)
        # A second process on the same run is refused while the first holds it.
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        self.assertEqual(second.returncode, 1, second.stderr)
        self.assertIn("is already running (process %d)" % proc.pid, second.stderr)
        # SIGINT stays pending until SIGCONT, then arrives mid-run.
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 130, err)
        [folder] = [m.parent for m in metrics()]
        self.assertEqual(json.loads((folder / "status.json").read_text())["state"], "interrupted")
        self.assertTrue((folder / "checkpoints/last.pt").exists())
        self.assertFalse((folder / "results.json").exists())
        resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertIn("resuming", resumed.stderr)
        self.assertNotIn("from epoch 1 step 0", resumed.stderr)
        self.assertEqual(json.loads((folder / "status.json").read_text())["state"], "completed")

    def test_sigusr1_before_a_time_limit_checkpoints_like_sigterm(self):
        # `sbatch --signal=USR1@90` sends SIGUSR1 before the job's time limit.
        exp, cmd, proc = self.start_long_run()
        metrics = lambda: list((self.dir / "runs").glob("*/metrics.jsonl"))
        self.wait_for(lambda: metrics() and metrics()[0].read_text().count("\n") >= 1, proc)
        proc.send_signal(signal.SIGUSR1)
        _, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 130, err)
        [folder] = [m.parent for m in metrics()]
        self.assertEqual(json.loads((folder / "status.json").read_text())["state"], "interrupted")
        self.assertTrue((folder / "checkpoints/last.pt").exists())
        # log.txt lines carry UTC timestamps.
        first = (folder / "log.txt").read_text().splitlines()[0]
        self.assertRegex(first, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ run ")

    def test_sigkill_resumes_from_last_checkpoint(self):
        exp, cmd, proc = self.start_long_run()
        checkpoints = lambda: list((self.dir / "runs").glob("*/checkpoints/last.pt"))
        self.wait_for(lambda: bool(checkpoints()), proc, timeout=300)
        proc.kill()
        proc.communicate()
        resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertIn("resuming", resumed.stderr)
        self.assertIn("from epoch 2", resumed.stderr)
        self.assertEqual(len(self.completed_runs()), 1)

    def test_sigkill_resume_is_bit_exact_when_deterministic(self):
        # Checkpoints every ~0.1 s and the kill waits for the first one, so it lands mid-epoch
        # however fast the machine is (an epoch takes seconds); the resumed run must end with
        # exactly the weights of an uninterrupted one.
        text = (TINY.replace("seed = 1", "seed = 1\ndeterministic = true")
                .replace("train_size = 256", "train_size = 16384")
                .replace("epochs = 2", "epochs = 2\ncheckpoint_minutes = 0.002"))
        exp = self.write("det.toml", text)
        whole = run("run", str(exp), "--output", str(self.dir / "whole"), "--threads", "1")
        self.assertEqual(whole.returncode, 0, whole.stderr)
        cmd = [cli.ARDKIT, "run", str(exp), "--output", str(self.dir / "killed"), "--threads", "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        checkpoints = lambda: list((self.dir / "killed").glob("*/checkpoints/last.pt"))
        self.wait_for(lambda: bool(checkpoints()), proc)
        self.assertIsNone(proc.poll(), "the run ended before it could be killed")
        proc.kill()
        proc.communicate()
        resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertRegex(resumed.stderr, r"resuming .* from epoch \d+ step [1-9]")  # mid-epoch
        [a] = (self.dir / "whole").glob("*/")
        [b] = (self.dir / "killed").glob("*/")
        for folder, out in ((a, "a.pt"), (b, "b.pt")):
            result = run("export", str(folder), "--which", "last", "-o", str(self.dir / out))
            self.assertEqual(result.returncode, 0, result.stderr)
        check = subprocess.run(
            ["/usr/bin/python3", "-c",
             "import sys, torch; a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2]); "
             "assert a.keys() == b.keys(); "
             "bad = [k for k in a if not torch.equal(a[k], b[k])]; assert not bad, bad",
             str(self.dir / "a.pt"), str(self.dir / "b.pt")], capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)
        last = lambda f: json.loads((f / "results.json").read_text())["last"]
        self.assertEqual(last(a)["clean_acc"], last(b)["clean_acc"])
        self.assertEqual(last(a)["attacks"]["pgd10"], last(b)["attacks"]["pgd10"] | {"seconds": last(a)["attacks"]["pgd10"]["seconds"]})
        # The epoch averages too: the interrupted epoch's running totals were in the checkpoint.
        epochs = lambda f: [(e["epoch"], e["train_loss"]) for e in map(json.loads, (f / "metrics.jsonl").read_text().splitlines())
                            if e["type"] == "epoch"]
        self.assertEqual(epochs(a), epochs(b))

    def test_run_interrupted_in_final_evaluation_resumes_mid_attack(self):
        # Tiny attack batches and a long PGD keep the final test evaluation busy for seconds
        # (the tiny model gets few points right, and only those are attacked). No validation
        # split: only the last checkpoint is evaluated.
        text = (TINY.replace("test_size = 64", "test_size = 512")
                .replace("validation = 32", "validation = 0")
                .replace("batch_size = 32", "batch_size = 32\neval_batch_size = 2")
                .replace("steps = 10", "steps = 500"))
        exp = self.write("final.toml", text)
        whole = run("run", str(exp), "--output", str(self.dir / "whole"))
        self.assertEqual(whole.returncode, 0, whole.stderr)
        cmd = [cli.ARDKIT, "run", str(exp), "--output", str(self.dir / "cut")]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        state = lambda: list((self.dir / "cut").glob("*/checkpoints/test_last.state.json"))
        def pgd_under_way():  # some, not all, PGD batches of the last checkpoint's evaluation
            attacks = json.loads(state()[0].read_text())["attacks"] if state() else []
            return any(a["name"] == "pgd10" and a["batches_done"] > 0 and not a["complete"]
                       for a in attacks)
        self.wait_for(pgd_under_way, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 130, err)
        [folder] = (self.dir / "cut").glob("*/")
        self.assertEqual(json.loads((folder / "status.json").read_text())["state"], "interrupted")
        self.assertFalse((folder / "results.json").exists())
        resumed = run(*cmd[1:])
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertRegex(resumed.stderr, r"resuming from .*test_last\.state\.json: 1 of 2 attacks complete")
        self.assertNotIn("test last clean", resumed.stderr)  # the saved clean pass is reused
        self.assertEqual(list(folder.glob("checkpoints/*.state.json")), [])
        [reference] = (self.dir / "whole").glob("*/")
        a, b = (json.loads((f / "results.json").read_text()) for f in (reference, folder))
        self.assertEqual(a["last"]["clean_acc"], b["last"]["clean_acc"])
        for name in ("fgsm", "pgd10"):
            self.assertEqual(a["last"]["attacks"][name]["robust_acc"],
                             b["last"]["attacks"][name]["robust_acc"])

    def test_teacher_from_another_experiment_runs_first_and_is_reused(self):
        self.write("teacher.toml", TINY.replace('name = "tiny"', 'name = "teacher"'))
        student = TINY.replace('name = "tiny"', 'name = "student"').replace(
            'plugin = "pgd_at"', 'plugin = "rslad"') + '\n[teacher]\nexperiment = "teacher.toml"\n'
        exp = self.write("student.toml", student)
        validated = run("validate", str(exp))
        self.assertEqual(validated.returncode, 0, validated.stderr)
        self.assertIn("is trained first", validated.stdout)
        first = run("run", str(exp), "--output", str(self.dir / "runs"))
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn("training its [teacher] first", first.stderr)
        names = sorted(p.name.split("-")[0] for p in self.completed_runs())
        self.assertEqual(names, ["student", "teacher"])
        config = next((self.dir / "runs").glob("student-*/config.toml")).read_text()
        self.assertIn("teacher-", config)  # the checkpoint path names the teacher's run
        self.assertIn("experiment = '" + str(self.dir / "teacher.toml"), config)
        # A second student reuses the finished teacher run.
        other = self.write("other.toml", student.replace('name = "student"', 'name = "other"')
                           .replace('plugin = "rslad"', 'plugin = "ard"'))
        second = run("run", str(other), "--output", str(self.dir / "runs"))
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertNotIn("training its [teacher] first", second.stderr)
        self.assertEqual(len(self.completed_runs()), 3)
        # Two students started together on a teacher neither finds trained (every Slurm array):
        # one trains it, the other waits for it and then reuses it.
        slow = TINY.replace('name = "tiny"', 'name = "slow-teacher"').replace(
            "train_size = 256", "train_size = 4096")
        self.write("slow.toml", slow)
        procs = []
        for name in ("s1", "s2"):
            text = student.replace('name = "student"', 'name = "%s"' % name).replace(
                "teacher.toml", "slow.toml")
            path = self.write(name + ".toml", text)
            procs.append(subprocess.Popen([cli.ARDKIT, "run", str(path), "--output", str(self.dir / "runs"),
                                           "--threads", "1"], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True))
        errs = [p.communicate(timeout=300)[1] for p in procs]
        for p, err in zip(procs, errs):
            self.assertEqual(p.returncode, 0, err)
        self.assertEqual(sum("waiting up to" in e for e in errs), 1, errs)
        self.assertEqual(sum("was completed by another process; reusing it" in e for e in errs), 1, errs)
        [slow_run] = list((self.dir / "runs").glob("slow-teacher-*"))
        log = (slow_run / "log.txt").read_text()
        self.assertEqual(log.count(" run slow-teacher-"), 1, log)  # trained once
        for name in ("s1", "s2"):
            self.assertEqual(len(list((self.dir / "runs").glob(name + "-*/results.json"))), 1)
        # `ardkit analyze`: the teacher against itself and its two students.
        runs = {p.name.split("-")[0]: p for p in self.completed_runs()}
        out = self.dir / "analysis.json"
        analyzed = run("analyze", str(runs["teacher"]), str(runs["student"]), str(runs["other"]),
                       "--points", "40", "--steps", "3", "-o", str(out))
        self.assertEqual(analyzed.returncode, 0, analyzed.stderr)
        self.assertIn("cka_adv", analyzed.stdout)
        report = json.loads(out.read_text())
        self.assertEqual(report["points"], 40)
        self.assertEqual(report["attack"]["eps"], 0.1)  # the teacher's first [[eval]] radius
        rows = report["models"]
        self.assertEqual([r["role"] for r in rows], ["teacher", "student", "student"])
        for key in ("cka", "cka_adv", "structure", "structure_adv", "agreement", "agreement_adv"):
            self.assertAlmostEqual(rows[0][key], 1.0, places=6, msg=key)  # the teacher is itself
            for r in rows[1:]:
                self.assertGreaterEqual(r[key], -1.0 if key.startswith("structure") else 0.0)
                self.assertLessEqual(r[key], 1.0 + 1e-9)
        for r in rows:
            self.assertLessEqual(r["pgd_acc"], r["clean_acc"])
            self.assertGreater(r["shift"], 0.0)
        self.assert_error(run("analyze", str(runs["teacher"])), 2, "at least one student",
                          runs_allowed=True)
        self.assert_error(run("analyze", str(runs["teacher"]), str(self.dir / "nope")), 2,
                          "no such run folder or model file", runs_allowed=True)
        # Mistakes in the [teacher] table name the key and the fix.
        bad = self.write("bad.toml", student.replace('experiment = "teacher.toml"',
                                                     'experiment = "teacher.toml"\ncheckpoint = "x.pt"'))
        self.assert_error(run("run", str(bad), "--output", str(self.dir / "runs")), 2,
                          "bad.toml:", "'checkpoint' cannot be combined with experiment", runs_allowed=True)
        missing = self.write("missing.toml", student.replace("teacher.toml", "nope.toml"))
        self.assert_error(run("run", str(missing), "--output", str(self.dir / "runs")), 2,
                          "nope.toml not found", runs_allowed=True)


class FullDisk(CliCase):
    """A file system that fills up while ardkit writes a checkpoint or an evaluation: one line
    naming the file and the fix, the previous file intact, and the same command resumes once
    there is space. A small tmpfs stands in for a full disk (mounting it needs root, as CI has)."""

    def setUp(self):
        super().setUp()
        self.disk = self.dir / "disk"
        self.disk.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(self.disk)],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            self.skipTest("cannot mount a tmpfs here (needs root): " + mounted.stderr.strip())

    def tearDown(self):
        subprocess.run(["umount", "-l", str(self.disk)], capture_output=True)
        super().tearDown()

    def fill(self, leave=0):
        """Fills the disk to the last byte, then frees `leave` bytes; returns the filler file."""
        filler = self.disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for size in (1 << 20, 1 << 12, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)
        if leave:
            os.truncate(filler, max(0, filler.stat().st_size - leave))
        return filler

    def error_line(self, stderr):
        lines = [l for l in stderr.splitlines() if l.startswith("ardkit: error: ")]
        self.assertEqual(len(lines), 1, stderr)
        return lines[0]

    def test_checkpoint_on_a_full_disk_keeps_the_previous_one(self):
        exp = self.write("long.toml", TINY.replace("train_size = 256", "train_size = 16384")
                         .replace("epochs = 2", "epochs = 3").replace("steps = 2", "steps = 5"))
        cmd = [cli.ARDKIT, "run", str(exp), "--output", str(self.disk / "runs"), "--threads", "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        last = lambda: list((self.disk / "runs").glob("*/checkpoints/last.pt"))
        deadline = time.time() + 300
        while not last() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        self.assertTrue(last(), "no checkpoint was written")
        proc.send_signal(signal.SIGSTOP)  # between checkpoints: fill the disk under it
        [checkpoint] = last()
        time.sleep(0.5)  # a checkpoint being renamed into place has landed
        before = checkpoint.read_bytes()
        # Room for the small files (status.json, metrics lines), none for a checkpoint.
        self.assertGreater(len(before), 4 * 16384)
        filler = self.fill(leave=16384)
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=300)
        self.assertEqual(proc.returncode, 1, err)
        line = self.error_line(err)
        self.assertIn("No space left on device; free disk space and re-run", line)
        self.assertIn(str(checkpoint.parent), line)
        self.assertEqual(checkpoint.read_bytes(), before)
        self.assertEqual(list(checkpoint.parent.glob("*.tmp")), [])
        folder = checkpoint.parent.parent
        self.assertFalse((folder / "results.json").exists())
        # With space again, the same command resumes from the intact checkpoint and completes.
        filler.unlink()
        resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertIn("resuming", resumed.stderr)
        self.assertEqual(json.loads((folder / "status.json").read_text())["state"], "completed")

    def test_evaluation_results_on_a_full_disk(self):
        exp = self.write("exp.toml", TINY)
        result = run("run", str(exp), "--output", str(self.disk / "runs"))
        self.assertEqual(result.returncode, 0, result.stderr)
        [folder] = [s.parent for s in (self.disk / "runs").glob("*/status.json")]
        filler = self.fill()
        result = run("eval", str(folder), "--points", "40")
        self.assertEqual(result.returncode, 1, result.stderr)
        line = self.error_line(result.stderr)
        self.assertIn("cannot write " + str(folder / "evals"), line)
        self.assertIn("free disk space and re-run", line)
        self.assertFalse((folder / "evals" / "best-test.json").exists())
        self.assertEqual(list((folder / "evals").glob("*.tmp")), [])
        filler.unlink()
        result = run("eval", str(folder), "--points", "40")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue((folder / "evals" / "best-test.json").exists())


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
