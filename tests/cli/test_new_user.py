#!/usr/bin/env python3
"""A newcomer's first runs: the quickstart's paths, defaults and the checks before a run folder
exists."""
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


class NewUser(CliCase):
    """Mistakes found by trying ardkit as a new user would; each was once accepted or reported
    without its place."""

    def check(self, text, code, *fragments, command="run", extra=()):
        exp = self.write("exp.toml", text)
        args = [command, str(exp)] + (["--output", str(self.dir / "runs")] if command == "run" else [])
        result = run(*args, *extra)
        self.assert_error(result, code, *fragments)
        self.assertFalse((self.dir / "runs").exists(), "a refused run left a folder")
        return result

    def test_attack_and_eval_errors_name_their_line(self):
        # [attack] merged the objective's defaults into a copy and [[eval]] passed through the
        # suite expansion: both lost their positions and said "(--set)".
        self.check(TINY.replace("steps = 2", 'steps = "two"'), 2, "exp.toml:20:9:", "[attack]")
        self.check(TINY.replace("steps = 10", "steps = 2.5"), 2, "exp.toml:32:9:", "[eval[1]]")
        self.check(TINY.replace('name = "pgd10"', "name = 3"), 2, "exp.toml:30:8:", "'name' must be a string")
        self.check(TINY.replace('plugin = "fgsm"', 'plugin = "fgsmm"'), 3, "exp.toml:26:10:", "did you mean 'fgsm'?")
        with_suite = TINY + '[[eval]]\nsuite = "quick"\neps = 0.1\n'
        self.check(with_suite.replace("steps = 10", "steps = 2.5"), 2, "exp.toml:32:9:")
        for result in [run("validate", str(self.write("exp.toml", TINY.replace("steps = 2", 'steps = "two"'))))]:
            self.assertNotIn("(--set)", result.stderr)

    def test_a_bad_cpu_cache_size_is_refused(self):
        exp = self.write("exp.toml", TINY)
        for value in ("lots", "-5", "12MB"):
            result = run("run", str(exp), "--output", str(self.dir / "runs"),
                         env=dict(os.environ, ARDKIT_CPU_CACHE_MB=value))
            self.assert_error(result, 2, f'ARDKIT_CPU_CACHE_MB="{value}": not a size in MiB')
            self.assertFalse((self.dir / "runs").exists(), "a refused run left a folder")

    def test_nan_and_infinity_are_refused(self):
        self.check(TINY.replace("eps = 0.1\nsteps = 2", "eps = nan\nsteps = 2"), 2, "exp.toml:19:7:",
                   "'eps' = nan is not a finite number")
        self.check(TINY.replace("[train]", "[optimizer]\nlr = inf\n[train]"), 2, "'lr' = inf is not a finite number")
        self.check(TINY, 2, "(--set optimizer.lr=-inf)", "'lr' = -inf", extra=("--set", "optimizer.lr=-inf"))

    def test_run_names_cannot_escape_the_output_folder(self):
        for name in ("../../x", "/x", "a/b", ".."):
            self.check(TINY.replace('name = "tiny"', f'name = "{name}"'), 2, "exp.toml:3:8: [run] name",
                       "is a path")
            self.check(TINY.replace('name = "tiny"', f'name = "{name}"'), 2, "is a path", command="validate")
        self.assertFalse((self.dir.parent / "x").exists())

    def test_knobs_are_checked_before_a_run_folder_exists(self):
        ramp = TINY + '[[hook]]\nplugin = "linear_ramp"\n'
        for command in ("validate", "run"):
            self.check(ramp + 'knob = "temprature"\nto = 1\n', 2, "exp.toml:35:8: [hook[0]] (plugin 'linear_ramp')",
                       "the knob 'temprature' is not declared", "declared knobs: attack.eps", command=command)
            self.check(ramp + "to = -0.05\n", 2, "to -0.05, outside its range [0, 1]", command=command)

    def test_interrupt_inside_a_long_attack_stops_within_seconds(self):
        # One training step of PGD-100000 takes minutes; an interrupt used to wait for it.
        self.check(TINY.replace("steps = 2", "steps = 1000000000000"), 2, "'steps' = 1000000000000 is out of range",
                   "in [0, 100000]")
        exp = self.write("long.toml", TINY.replace("steps = 2", "steps = 100000"))
        proc = subprocess.Popen([cli.ARDKIT, "run", str(exp), "--output", str(self.dir / "runs"), "--threads", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        status = lambda: list((self.dir / "runs").glob("*/status.json"))
        deadline = time.time() + 60
        while time.time() < deadline and not (status() and "running" in status()[0].read_text()):
            time.sleep(0.1)
        time.sleep(1)  # inside the first step's attack
        err = self.interrupt_within_seconds(proc)
        self.assertIn("the step was abandoned", err)
        self.assertEqual(json.loads(status()[0].read_text())["state"], "interrupted")

    def test_corrupt_idx_headers_and_absurd_sizes_name_the_file_or_key(self):
        import struct
        root = self.dir / "idx"
        root.mkdir()
        source = Path("/usr/share/datasets/fashion-mnist")
        for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            shutil.copy(source / name, root / name)
        idx = TINY.replace('plugin = "synthetic"\ntrain_size = 256\nvalidation = 32\ntest_size = 64',
                           f'plugin = "idx"\nroot = "{root}"\nvalidation = 10')
        images = root / "train-images-idx3-ubyte.gz"
        # Dimensions whose product overflows 64 bits and wraps around to the 0 data bytes there.
        images.write_bytes(gzip.compress(b"\0\0\x08\x03" + struct.pack(">III", 2**31, 2**31, 2**3)))
        self.check(idx, 1, "train-images-idx3-ubyte.gz: the IDX header's dimensions multiply to more bytes")
        images.write_bytes(gzip.compress(b"\0\0\x08\x03" + struct.pack(">III", 0, 28, 28)))
        self.check(idx, 1, "train-images-idx3-ubyte.gz: IDX dimension 0 is 0")
        # Sizes a typo makes absurd: refused by range, or named when an allocation fails.
        self.check(TINY.replace("test_size = 64", "test_size = 64\nwidth = 1000000"), 2, "'width' = 1000000 is out of range")
        self.check(TINY.replace("hidden = 64", "hidden = 4000000000"), 2, "model plugin 'small_cnn' ran out of memory",
                   "hidden = 4000000000 (")
        self.check(TINY.replace("test_size = 64", "test_size = 64\nclass_map = [0, 1, 2, 3, 4, 5, 6, 7, 8, 900000000]"),
                   2, "class_map value 900000000 is too large")

    def test_results_files_of_the_wrong_shape_name_the_field(self):
        exp = self.write("exp.toml", TINY.replace("epochs = 2", "epochs = 1"))
        done = run("run", str(exp), "--output", str(self.dir / "runs"))
        self.assertEqual(done.returncode, 0, done.stderr)
        [results] = list((self.dir / "runs").glob("*/results.json"))
        j = json.loads(results.read_text())
        j["last"]["clean_acc"] = "high"
        results.write_text(json.dumps(j))
        for args in (("report", str(self.dir / "runs")), ("run", str(exp), "--output", str(self.dir / "runs"))):
            result = run(*args)
            self.assertEqual(result.returncode, 1, result.stderr)
            last = result.stderr.strip().splitlines()[-1]
            self.assertTrue(last.startswith("ardkit: error: "), result.stderr)
            self.assertIn("results.json: /last/clean_acc must be a number, found \"high\"", last)
        (self.dir / "evil.json").write_text('{"clean_acc": 50, "attacks": {"pgd": {"robust_acc": [1]}}}')
        self.assert_error(run("report", str(self.dir / "evil.json")), 2, "/attacks/pgd/robust_acc must be a number",
                          runs_allowed=True)
        # Every field a report reads is checked, not only the accuracies (fuzz_results found
        # `"norm": {"fgsm": 1.2}` ending in a bare JSON library message).
        for field, value, message in (("norm", {"fgsm": 1.2}, "/norm/fgsm must be a string"),
                                      ("eps", 0.1, "/eps must be an object of attacks"),
                                      ("dataset", 7, "/dataset must be a string")):
            broken = json.loads(results.read_text())
            broken["last"]["clean_acc"] = 50.0
            broken[field] = value
            results.write_text(json.dumps(broken))
            result = run("report", str(self.dir / "runs"))
            self.assertEqual(result.returncode, 1, result.stderr)
            self.assertIn("results.json: " + message, result.stderr.strip().splitlines()[-1])
        (self.dir / "named.json").write_text('{"name": 3, "clean_acc": 50, "attacks": {}}')
        self.assert_error(run("report", str(self.dir / "named.json")), 2, "/name must be a string", runs_allowed=True)

    def test_binary_and_non_utf8_files_and_corrupted_run_folders(self):
        (self.dir / "exp.toml").write_bytes(bytes(range(256)) * 4)
        self.assert_error(run("validate", str(self.dir / "exp.toml")), 2, "exp.toml:1:1: malformed TOML")
        (self.dir / "exp.toml").write_bytes(TINY.replace('name = "tiny"', 'name = "caf\xe9"').encode("latin-1"))
        self.assert_error(run("validate", str(self.dir / "exp.toml")), 2, "exp.toml:3:", "invalid utf-8")
        (self.dir / "junk.json").write_bytes(bytes(range(256)))
        self.assert_error(run("report", str(self.dir / "junk.json")), 2, "junk.json is not an `ardkit eval` results file")
        exp = self.write("exp.toml", TINY.replace("epochs = 2", "epochs = 1"))
        args = ("run", str(exp), "--output", str(self.dir / "runs"))
        self.assertEqual(run(*args).returncode, 0)
        [folder] = list((self.dir / "runs").glob("tiny-*"))
        # A garbled status file: the run is not taken for completed; it resumes and completes.
        (folder / "status.json").write_bytes(b"\x00garbage")
        again = run(*args)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(json.loads((folder / "status.json").read_text())["state"], "completed")
        # A garbled checkpoint of an unfinished run: one line naming it and the fix.
        (folder / "status.json").write_text('{"state": "interrupted"}')
        (folder / "results.json").unlink()
        (folder / "checkpoints/last.pt").write_bytes(bytes(range(256)) * 8)
        broken = run(*args)
        self.assertEqual(broken.returncode, 1, broken.stderr)
        last = broken.stderr.strip().splitlines()[-1]
        for fragment in ("ardkit: error: ", "checkpoints/last.pt: checkpoint is unreadable", "delete it to start the run over"):
            self.assertIn(fragment, last)
        self.assertEqual(json.loads((folder / "status.json").read_text())["state"], "failed")
        # A garbled configuration: `eval` of the folder names the file and the line.
        (folder / "config.toml").write_text("garbage\n")
        self.assert_error(run("eval", str(folder)), 2, "config.toml:1:8: malformed TOML")

    def test_command_line_numbers_are_checked(self):
        exp = self.write("exp.toml", TINY)
        for args, fragment in [(("eval", str(self.dir), "--points", "-5"), "--points -5: expected a number >= 0"),
                               (("eval", str(self.dir), "--points=-5"), "--points -5"),
                               (("eval", str(self.dir), "--eps=-1"), "--eps '-1'"),
                               (("eval", str(self.dir), "--eps", "nan"), "--eps 'nan'"),
                               (("eval", str(self.dir), "--batch-size", "0"), "--batch-size 0"),
                               (("run", str(exp), "--threads", "-2"), "--threads -2: expected a number >= 0"),
                               (("run", str(exp), "--teacher-wait", "nan"), "--teacher-wait nan"),
                               (("grid", str(exp), "--jobs", "0"), "--jobs 0: expected a number >= 1"),
                               (("analyze", str(exp), str(exp), "--eps", "2"), "--eps 2: expected a number in [0, 1]")]:
            with self.subTest(args=args):
                self.assert_error(run(*args), 2, fragment)
        # A separate word that starts with a dash is still the value of --eps.
        self.assertEqual(run("eval", str(self.dir), "--eps", "-1").returncode, 2)

    def test_every_error_has_the_prefix_and_missing_files_exit_2(self):
        self.assert_error(run("rnu"), 2, "unknown command 'rnu'")
        self.assert_error(run("run", "--bogus"), 2, "unrecognised option '--bogus'")
        self.assert_error(run("eval", "x", "--points", "abc"), 2, "'--points' is invalid")
        missing = self.dir / "missing.pt"
        self.check(TINY.replace('plugin = "small_cnn"', f'plugin = "small_cnn"\ncheckpoint = "{missing}"'), 2,
                   "missing.pt: checkpoint not found")

    def test_objective_defaults_for_the_attack_are_announced(self):
        # TRADES sets the attack's loss and step size; a reader of [attack] would not know.
        text = TINY.replace('plugin = "pgd_at"', 'plugin = "trades"').replace("step_size = 0.125\n", "")
        exp = self.write("exp.toml", text)
        result = run("validate", str(exp))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"\[attack\] .*step_size = [\d.]+.* from objective 'trades'")
        self.assertNotRegex(result.stdout, r"\[attack\] [^\n]*\beps =")  # written in the file

    def test_a_torchscript_traceback_is_one_line(self):
        model = self.dir / "wrong.pt"
        subprocess.run([sys.executable, "-c",
                        "import sys, torch; m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(100, 10));"
                        "torch.jit.trace(m, torch.zeros(1, 100)).save(sys.argv[1])", str(model)], check=True)
        result = run("eval", str(model), "--data", "synthetic")
        self.assertNotEqual(result.returncode, 0)
        lines = [l for l in result.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertIn("ardkit: error: ", lines[0])
        self.assertIn("shapes cannot be multiplied", lines[0])
        whole = lines[0].rsplit("(the whole message is in ", 1)[1].rstrip(")")
        self.assertIn("Traceback", Path(whole).read_text())
        Path(whole).unlink()


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
