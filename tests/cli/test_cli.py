#!/usr/bin/env python3
"""The `ardkit` command as a user drives it: help, plugin listing, every kind of bad input
(one line naming the place and the fix, the documented exit status, no run folder claiming
success), a real run with its folder, re-running, and resuming after SIGINT and SIGKILL."""
import argparse
import gzip
import json
import os
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
        page = Path(ARDKIT).resolve().parent.parent / "share/man/man1/ardkit.1"
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
        self.assertEqual(complete(ARDKIT, "va"), ["validate"])
        self.assertEqual(complete(ARDKIT, "plugins", "show", "pgd"), ["pgd", "pgd_at"])
        self.assertIn("--teacher-wait", complete(ARDKIT, "run", "--t"))
        self.write("exp.toml", TINY)
        self.write("notes.txt", "")
        self.assertEqual(complete(ARDKIT, "run", "e"), ["exp.toml"])

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
        good = ("--plugin-path", f"{TEST_PLUGINS}/good")
        roles = run("plugins", "show", "two_teachers_and_peer", *good)
        self.assertEqual(roles.returncode, 0, roles.stderr)
        self.assertIn("needs: [teachers.clean], [teachers.robust], [companions.peer]", roles.stdout)
        wraps = run("plugins", "show", "plus_weight_norm", *good)
        self.assertIn("an [objective.wrapped] objective table", wraps.stdout)


class BadInput(CliCase):
    def check_run(self, text, code, *fragments, extra=()):
        exp = self.write("exp.toml", text)
        result = run("run", str(exp), "--output", str(self.dir / "runs"), *extra)
        self.assert_error(result, code, *fragments)
        return result

    def test_malformed_toml(self):
        exp = str(self.dir / "exp.toml")
        self.check_run(TINY.replace("[train]", "[train"), 2, exp + ":", "malformed TOML")

    def test_unknown_table_and_key(self):
        self.check_run(TINY.replace("[train]", "[trian]"), 2, "unknown table 'trian'", "did you mean 'train'?")
        self.check_run(TINY.replace("steps = 2", "stpes = 2"), 2, "exp.toml:20:1", "unknown key 'stpes'",
                       "did you mean 'steps'?")

    def test_wrong_type_and_range(self):
        self.check_run(TINY.replace("epochs = 2", "epochs = \"two\""), 2, "'epochs' must be an integer", "string")
        self.check_run(TINY.replace("eps = 0.1\nsteps = 2", "eps = -0.1\nsteps = 2"), 2, "'eps' = -0.1 is out of range")
        self.check_run(TINY.replace("batch_size = 32", "batch_size = 0"), 2, "'batch_size' = 0", "must be >= 1")

    def test_missing_plugin_key_and_table(self):
        self.check_run(TINY.replace('plugin = "synthetic"', ""), 2, "[data] has no 'plugin' key")
        self.check_run(TINY.replace("[objective]\nplugin = \"pgd_at\"", ""), 2, "missing table [objective]")

    def test_bad_override(self):
        self.check_run(TINY, 2, "exp.toml (--set train.epochs=-1): [train] 'epochs'", extra=("--set", "train.epochs=-1"))
        self.check_run(TINY, 3, "(--set data.plugin=idxx)", "did you mean", extra=("--set", "data.plugin=idxx"))
        self.check_run(TINY, 2, "(--set train.epoch=3): [train] unknown key 'epoch'", extra=("--set", "train.epoch=3"))

    def test_unknown_plugin(self):
        self.check_run(TINY.replace('plugin = "pgd_at"', 'plugin = "pgd-at"'), 3, "unknown objective plugin 'pgd-at'",
                       "did you mean 'pgd_at'?", "known objective plugins: adaad, ard, ferd, gacd, iad, kd, natural, pgd_at, rslad, trades")

    def test_missing_and_truncated_dataset(self):
        empty = self.dir / "empty"
        empty.mkdir()
        idx = TINY.replace('plugin = "synthetic"\ntrain_size = 256\nvalidation = 32\ntest_size = 64',
                           f'plugin = "idx"\nroot = "{empty}"\nvalidation = 10')
        self.check_run(idx, 2, "train-images-idx3-ubyte.gz not found", "dataset-fashion-mnist")
        # Real Debian files cut short.
        source = Path("/usr/share/datasets/fashion-mnist")
        for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                     "t10k-labels-idx1-ubyte.gz"):
            shutil.copy(source / name, empty / name)
        data = gzip.decompress((source / "t10k-labels-idx1-ubyte.gz").read_bytes())
        (empty / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(data[:5000]))
        self.check_run(idx, 1, "t10k-labels-idx1-ubyte.gz: truncated")

    def test_broken_and_mismatched_plugin_libraries(self):
        # A bad library in a plugin folder is set aside: commands that do not need it work, and
        # one that asks for a plugin nobody provides names it, since it may be the provider.
        broken = self.dir / "plugins"
        broken.mkdir()
        (broken / "libbroken.so").write_text("not a library")
        exp = self.write("exp.toml", TINY)
        ok = run("validate", str(exp), "--plugin-path", str(broken))
        self.assertEqual(ok.returncode, 0, ok.stderr)
        # ...and said, whatever the command: one line naming the file and the reason.
        warning = [l for l in ok.stderr.splitlines() if l.startswith(SET_ASIDE)]
        self.assertEqual(len(warning), 1, ok.stderr)
        self.assertRegex(warning[0], r"libbroken.so: cannot be read as a shared library")
        listing = run("plugins", "list", "--plugin-path", str(broken))
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertIn("1 library failed to load", listing.stdout)
        self.assertRegex(listing.stdout, r"libbroken.so: cannot be read as a shared library")
        self.assertIn("attack     pgd", listing.stdout)
        wants_it = TINY + '[[hook]]\nplugin = "never_registered"\n'
        self.check_run(wants_it, 3, "unknown hook plugin 'never_registered'", "libbroken.so",
                       "cannot be read as a shared library", extra=("--plugin-path", str(broken)))
        self.check_run(wants_it, 3, "built for ardkit plugin ABI 999", extra=("--plugin-path", f"{TEST_PLUGINS}/abi"))
        self.check_run(wants_it, 3, "pre-C++11 std::string ABI", extra=("--plugin-path", f"{TEST_PLUGINS}/oldabi"))
        env = dict(os.environ, ARDKIT_PLUGIN_PATH=f"{TEST_PLUGINS}/nosym")
        exp = self.write("exp.toml", wants_it)
        self.assert_error(run("run", str(exp), "--output", str(self.dir / "runs"), env=env), 3,
                          "missing entry symbol 'ardkit_register'")
        # A run that needs nothing from the bad library trains, and says it once.
        exp = self.write("exp.toml", TINY)
        trained = run("run", str(exp), "--output", str(self.dir / "runs"), "--plugin-path", str(broken))
        self.assertEqual(trained.returncode, 0, trained.stderr)
        self.assertEqual(sum(l.startswith(SET_ASIDE) for l in trained.stderr.splitlines()), 1,
                         trained.stderr)

    def test_normalization_must_match_channels(self):
        self.check_run(TINY.replace("hidden = 64", "hidden = 64\nmean = [0.5, 0.5]\nstd = [0.2, 0.2]"), 2,
                       "'mean' has 2 values but the data has 1 channels")
        self.check_run(TINY.replace("hidden = 64", "hidden = 64\nmean = [0.5]\nstd = [0.0]"), 2,
                       "every 'std' value must be > 0")

    def test_objective_requirements_checked_before_running(self):
        no_attack = TINY.replace('[attack]\nplugin = "pgd"\neps = 0.1\nsteps = 2\nstep_size = 0.125\n', "")
        self.check_run(no_attack, 2, "exp.toml:16:10: [objective] 'pgd_at' trains on adversarial examples",
                       "has no [attack] table")
        no_teacher = TINY.replace('plugin = "pgd_at"', 'plugin = "rslad"')
        self.check_run(no_teacher, 2, "exp.toml:16:10: [objective] 'rslad' distills from a teacher",
                       "has no [teacher] table")
        self.assertFalse((self.dir / "runs").exists())
        exp = self.write("exp.toml", no_attack)
        self.assert_error(run("validate", str(exp)), 2, "has no [attack] table")

    def test_missing_required_key(self):
        self.check_run(TINY + '[[hook]]\nplugin = "linear_ramp"\n', 2, "[hook[0]] (plugin 'linear_ramp')",
                       "missing required key 'to' (float): add to = 0.1")

    def test_corrupt_checkpoint(self):
        bad = self.write("bad.pt", "garbage")
        self.check_run(TINY.replace('plugin = "small_cnn"', f'plugin = "small_cnn"\ncheckpoint = "{bad}"'), 1,
                       "bad.pt: cannot read PyTorch weights")

    def test_validate(self):
        exp = self.write("exp.toml", TINY)
        result = run("validate", str(exp))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("ok (run id tiny-", result.stdout)
        self.assert_error(run("validate", str(exp), "--set", "attack.eps=2"), 2, "'eps' = 2 is out of range")
        self.assert_error(run("validate", str(self.dir / "nope.toml")), 2, "experiment file not found")


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
        proc = subprocess.Popen([ARDKIT, "run", str(exp), "--output", str(self.dir / "runs"), "--threads", "1"],
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
        self.write("teacher.toml", TINY.replace('name = "tiny"', 'name = "teacher"'))
        datafree = self.write("datafree.toml", TINY.replace('name = "tiny"', 'name = "df"')
                              .replace('plugin = "pgd_at"', 'plugin = "ard"') + """
[teacher]
experiment = "teacher.toml"
[generator]
plugin = "dfad"
latent_dim = 16
width = 8
iterations = 3
student_steps = 2
""")
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
        cmd = [ARDKIT, "run", str(exp), "--output", str(self.dir / "runs"), "--threads", "1"]
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
        cmd = [ARDKIT, "run", str(exp), "--output", str(self.dir / "killed"), "--threads", "1"]
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
        cmd = [ARDKIT, "run", str(exp), "--output", str(self.dir / "cut")]
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
        self.assertIn("training its teacher first", first.stderr)
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
        self.assertNotIn("training its teacher first", second.stderr)
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
            procs.append(subprocess.Popen([ARDKIT, "run", str(path), "--output", str(self.dir / "runs"),
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
        cmd = [ARDKIT, "run", str(exp), "--output", str(self.disk / "runs"), "--threads", "1"]
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
        proc = subprocess.Popen([ARDKIT, "grid", str(grid), "--jobs", "2", "--threads", "1"],
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


def png_is_blank(path):
    """Whether a PNG (as Chromium writes it: 8-bit RGB(A), not interlaced) is one flat colour:
    inflate its pixel rows and count distinct filtered byte values (a flat page has a handful)."""
    import struct
    import zlib
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat))) < 16


class Report(CliCase):
    """`ardkit report`: a grid's cells grouped by axes with mean ± std over seeds, every format,
    the results index, and the HTML page in a real headless Chromium."""

    def setUp(self):
        super().setUp()
        self.write("a.toml", TINY.replace('name = "tiny"', 'name = "a"').replace("epochs = 2", "epochs = 1"))
        self.grid = self.write("grid.toml", f"""
[grid]
experiment = "a.toml"
output = "{self.dir / 'runs'}"
[axes]
objective.plugin = ["pgd_at", "trades"]
run.seed = [0, 1]
[[zip]]
attack.eps = [0.05, 0.1]
eval.0.eps = [0.05, 0.1]
eval.1.eps = [0.05, 0.1]
""")
        done = run("grid", str(self.grid), "--jobs", "2", "--threads", "1")
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_runs_of_one_name_are_told_apart(self):
        # Given as a folder, the grid's eight runs are all called "a"; grouped by name alone they
        # were averaged into one row of n = 8, as if they were seeds.
        result = run("report", str(self.dir / "runs"), "--checkpoint", "last", "--format", "csv")
        self.assertEqual(result.returncode, 0, result.stderr)
        rows = result.stdout.strip().splitlines()
        header = rows[0].split(",")
        self.assertEqual(header[:3], ["name", "attack.eps", "objective.plugin"], rows[0])
        cells = sorted(tuple(r.split(",")[:3]) for r in rows[1:])
        self.assertEqual(cells, [("a", eps, obj) for eps in ("0.05", "0.1") for obj in ("pgd_at", "trades")])
        self.assertTrue(all(r.split(",")[header.index("n")] == "2" for r in rows[1:]), rows)

    def test_formats_group_and_aggregate_over_seeds(self):
        js = run("report", str(self.grid), "--format", "json", "--checkpoint", "last")
        self.assertEqual(js.returncode, 0, js.stderr)
        report = json.loads(js.stdout)
        # A [[zip]] group is grouped by its first key: the others move with it.
        self.assertEqual(report["group_by"], ["objective.plugin", "attack.eps"])
        self.assertEqual(report["metrics"], ["clean", "fgsm", "pgd10", "worst_case"])
        self.assertEqual(len(report["groups"]), 4)
        self.assertEqual(len(report["runs"]), 8)
        # Each group's numbers are the mean and sample std of its two seeds' results.json.
        for g in report["groups"]:
            self.assertEqual(g["n"], 2)
            values = []
            for run_id in g["runs"]:
                r = json.loads((self.dir / "runs" / run_id / "results.json").read_text())
                values.append(r["last"]["attacks"]["pgd10"]["robust_acc"])
                self.assertEqual(r["norm"]["pgd10"], "linf")
                self.assertEqual(r["eps"]["pgd10"], float(g["keys"]["attack.eps"]))
            mean = sum(values) / 2
            std = (sum((v - mean) ** 2 for v in values)) ** 0.5  # n - 1 = 1
            self.assertAlmostEqual(g["metrics"]["pgd10"]["mean"], mean, places=9)
            self.assertAlmostEqual(g["metrics"]["pgd10"]["std"], std, places=9)
        first = report["groups"][0]
        table = run("report", str(self.grid), "--by", "objective.plugin", "--checkpoint", "last")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertIn("objective.plugin  checkpoint  n", table.stdout)
        self.assertIn("pgd_at            last        4", table.stdout)
        md = run("report", str(self.grid), "--format", "markdown", "--checkpoint", "last").stdout
        self.assertIn("| objective.plugin | attack.eps |", md)
        self.assertIn("| %.2f ± %.2f |" % (first["metrics"]["pgd10"]["mean"], first["metrics"]["pgd10"]["std"]), md)
        csv = run("report", str(self.grid), "--format", "csv", "--checkpoint", "best").stdout.splitlines()
        self.assertEqual(csv[0].split(",")[:4], ["objective.plugin", "attack.eps", "checkpoint", "n"])
        self.assertEqual(len(csv), 5)
        tex = run("report", str(self.grid), "--format", "latex").stdout
        self.assertIn("\\toprule", tex)
        self.assertIn("$\\pm$", tex)
        self.assertIn("objective.plugin & attack.eps", tex)
        rb = json.loads(run("report", str(self.grid), "--format", "robustbench", "--checkpoint", "last").stdout)
        self.assertEqual(len(rb), 8)
        self.assertEqual({m["eps"] for m in rb}, {"0.05", "0.1"})
        self.assertEqual(rb[0]["dataset"], "synthetic")
        # The index holds every run and can be queried with SQL.
        import sqlite3
        db = sqlite3.connect(self.dir / "runs/index.sqlite")
        self.assertEqual(db.execute("select count(*) from runs").fetchone()[0], 8)
        self.assertEqual(db.execute("select count(distinct cell) from coordinates").fetchone()[0], 8)
        # Training metrics per epoch, for curves and SQL.
        self.assertEqual(db.execute("select count(distinct folder) from epochs where metric = 'train_loss'").fetchone()[0], 8)
        db.close()
        # Rebuilt from the folders when deleted or asked.
        (self.dir / "runs/index.sqlite").unlink()
        again = json.loads(run("report", str(self.grid), "--format", "json", "--checkpoint", "last").stdout)
        self.assertEqual(again["groups"], report["groups"])
        self.assertEqual(run("report", str(self.grid), "--rebuild-index").returncode, 0)
        # A folder of runs, labelled by run name; --by name pools runs that differ, when asked.
        plain = run("report", str(self.dir / "runs"), "--checkpoint", "last", "--by", "name")
        self.assertIn("a     last        8", plain.stdout)
        self.assert_error(run("report", str(self.grid), "--by", "atack.eps"), 2,
                          "--by atack.eps: not a coordinate of these runs (did you mean 'attack.eps'?)", runs_allowed=True)
        self.assert_error(run("report", str(self.grid), "--format", "xlsx"), 2, "is not one of", runs_allowed=True)

    def test_html_page_renders_in_headless_chromium(self):
        chromium = shutil.which("chromium")
        self.assertIsNotNone(chromium, "chromium not installed (bash tools/setup.sh --tests installs it)")
        page = self.dir / "report.html"
        made = run("report", str(self.grid), "--html", str(page), "--format", "json", "--checkpoint", "last",
                   "--heatmap", "objective.plugin,attack.eps")
        self.assertEqual(made.returncode, 0, made.stderr)
        report = json.loads(made.stdout)
        html = page.read_text()
        self.assertNotIn("http://", html.split("Chart.js")[0])  # nothing fetched: all inlined
        self.assertNotIn("<script src", html)
        chrome = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,2400",
                  "--user-data-dir=" + str(self.dir / "chrome")]
        dom = subprocess.run(chrome + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
        self.assertEqual(dom.returncode, 0, dom.stderr)
        import re
        body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
        attrs = dict(re.findall(r'data-(\w+)="(\d+)"', body))
        self.assertEqual(attrs.get("ready"), "1", body)
        self.assertEqual(attrs.get("errors"), "0", dom.stdout[:2000])
        # scatter, the eps curve, and one training curve per metric (lr, losses, validation)
        self.assertGreaterEqual(int(attrs["charts"]), 5)
        self.assertEqual(attrs["painted"], attrs["charts"])
        # The numbers in the page are the JSON's.
        cells = re.findall(r'<td class="num" data-metric="(\w+)">([^<]+)</td>', dom.stdout)
        expected = [(m, "%.2f ± %.2f" % (g["metrics"][m]["mean"], g["metrics"][m]["std"]))
                    for g in report["groups"] for m in report["metrics"]]
        self.assertEqual(cells, expected)
        self.assertIn('id="heatmap-table"', dom.stdout)
        # A run has one colour in every chart: the colour of its value of the colour key (the
        # first grouping key that is not an eps axis) in the scatter, the eps lines and the curves.
        import html as html_lib
        legend = json.loads(html_lib.unescape(
            re.search(r'<pre id="legend-colours" hidden="">(.*?)</pre>', dom.stdout, re.S).group(1)))
        key = next(k for k in report["group_by"] if not re.search(r"(^|\.)eps$", k))
        scatter = legend["last checkpoint"]
        self.assertGreaterEqual(len(scatter), 2, legend)
        self.assertEqual(len(set(scatter.values())), len(scatter), scatter)  # told apart
        compared = 0
        for title, entries in legend.items():
            for label, colour in entries.items():
                words = label.split()
                value = next((w.split("=", 1)[1] for w in words if w.startswith(key + "=")), None)
                if value is None and title.startswith("worst case against"):
                    value = words[0]
                if value in scatter:
                    self.assertEqual(colour, scatter[value], f"{label} in chart {title!r}")
                    compared += 1
        self.assertGreaterEqual(compared, 2 * len(scatter), legend)
        self.assertIn("objective.plugin", dom.stdout.split('id="diffs"')[1])  # the config diff
        shot = self.dir / "shot.png"
        subprocess.run(chrome + ["--screenshot=" + str(shot), page.as_uri()], capture_output=True, timeout=120)
        self.assertTrue(shot.exists())
        self.assertFalse(png_is_blank(shot))


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
        process = subprocess.Popen([ARDKIT, *args, "-o", str(out)], stderr=subprocess.PIPE, text=True)
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
        process = subprocess.Popen([ARDKIT, *args], stderr=subprocess.PIPE, text=True)
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
        self.assert_error(run("eval", str(folder), "--data", "synthetic"), 2, "--model and --data are for model files",
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
        # Grid files: every cell validates with its values.
        grids = sorted((root / "fmnist" / "grids").glob("*.toml"))
        self.assertGreaterEqual(len(grids), 2)
        for f in grids:
            self.assertIn("cells", run("validate", str(f), cwd=self.dir).stdout)
        methods = run("grid", str(root / "fmnist/grids/methods.toml"), "--dry-run", "--output",
                      str(self.dir / "runs"), cwd=self.dir)
        self.assertIn("60 cells", methods.stdout)
        self.assertIn("pending  teacher fmnist-teacher-", methods.stdout)
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
        self.assert_error(run("eval", str(empty), "--which", "worst"), 2, "--which must be best or last")
        self.write("bad.toml", '[model]\nplugin = "small_cnn"\ncheckpoint = "missing.pt"\n'
                               '[data]\nplugin = "synthetic"\n[evalution]\npoints = 3\n')
        self.assert_error(run("eval", str(self.dir / "bad.toml")), 2, "unknown table 'evalution'",
                          "did you mean 'evaluation'?")
        self.write("bad.toml", '[model]\nplugin = "small_cnn"\ncheckpoint = "missing.pt"\n'
                               '[data]\nplugin = "synthetic"\n')
        self.assert_error(run("eval", str(self.dir / "bad.toml")), 2, "missing.pt: checkpoint not found")
        self.assertFalse((self.dir / "evals").exists())


if __name__ == "__main__":
    if sys.argv[1:] == ["--list"]:
        # One line per test, CLASS.METHOD: tests/CMakeLists.txt makes each its own CTest entry, so
        # `ctest -j` spreads them and each has its own timeout.
        for suite in unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]):
            for case in suite:
                print(case.id().split(".", 1)[1])
        sys.exit(0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--ardkit", required=True)
    parser.add_argument("--test-plugins", required=True)
    args, rest = parser.parse_known_args()
    ARDKIT, TEST_PLUGINS = str(Path(args.ardkit).resolve()), str(Path(args.test_plugins).resolve())
    unittest.main(argv=[sys.argv[0], "-v", *rest])
