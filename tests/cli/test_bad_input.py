#!/usr/bin/env python3
"""Every kind of bad input to `run` and `validate`: one line naming the place and the fix, the
documented exit status, no run folder claiming success."""
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
                       "did you mean 'pgd_at'?", "known objective plugins: adaad, ard, dgad, ferd, gacd, iad, igdm, kd, mtard, natural, peeraid, pgd_at, rslad, trades")

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
        self.check_run(wants_it, 3, "built for ardkit plugin ABI 999", extra=("--plugin-path", f"{cli.TEST_PLUGINS}/abi"))
        self.check_run(wants_it, 3, "pre-C++11 std::string ABI", extra=("--plugin-path", f"{cli.TEST_PLUGINS}/oldabi"))
        env = dict(os.environ, ARDKIT_PLUGIN_PATH=f"{cli.TEST_PLUGINS}/nosym")
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


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
