#!/usr/bin/env python3
"""`ardkit zoo list` and RobustBench model zoo models by name (`zoo = "NAME"`, `file = "..."`) in
runs and evaluations: what is recorded, and what is refused."""
import hashlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import cli_case as cli
from cli_case import CliCase, run

ROOT = Path(__file__).resolve().parents[2]
R18 = "cifar10/Linf/Sehwag2021Proxy_R18"

# A released-size zoo checkpoint of that entry: kuangliu's ResNet-18 (the zoo's resnet.py), random
# weights, saved as the zoo saves one (a bare state dict).
WRITE_R18 = f"""
import sys, torch
sys.path.insert(0, {str(ROOT / 'tests/interop')!r})
from reference_models import ResNet
torch.manual_seed(int(sys.argv[2]))
torch.save(ResNet([2, 2, 2, 2], 3, 10).state_dict(), sys.argv[1])
"""

EXPERIMENT = """
[run]
name = "zoo-kd"
[data]
plugin = "synthetic"
channels = 3
height = 32
width = 32
train_size = 96
test_size = 16
validation = 0
[student]
plugin = "small_cnn"
conv1 = 8
conv2 = 8
hidden = 16
[teacher]
zoo = "{zoo}"
file = "{file}"
{extra}
[objective]
plugin = "kd"
[train]
epochs = 1
batch_size = 32
validate_every = 0
[[eval]]
plugin = "fgsm"
eps = 0.03
"""


class Zoo(CliCase):
    def r18_file(self, seed=0):
        path = self.dir / f"r18-{seed}.pt"
        subprocess.run(["/usr/bin/python3", "-c", WRITE_R18, str(path), str(seed)], check=True)
        return path

    def test_zoo_list_prints_every_catalogue_entry(self):
        catalogue = tomllib.loads((ROOT / "registry/zoo/robustbench.toml").read_text())
        result = run("zoo", "list")
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = {l.split()[0]: l for l in result.stdout.splitlines()[1:]}
        self.assertEqual(set(lines), set(catalogue))
        for name, entry in catalogue.items():
            line = lines[name]
            for text in (entry["architecture"], f"{entry['clean']:.2f}", f"{entry['autoattack']:.2f}",
                         entry["model"]["plugin"]):
                self.assertIn(text, line, name)
        self.assertIn("--plugin-path", run("zoo", "--help").stdout)
        self.assert_error(run("zoo", "show"), 2, "zoo: expected `list`")

    def test_a_zoo_teacher_is_built_by_name_and_recorded(self):
        weights = self.r18_file()
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        exp = self.write("exp.toml", EXPERIMENT.format(zoo=R18, file=weights, extra=""))
        result = run("run", str(exp), "--output", str(self.dir / "runs"))
        self.assertEqual(result.returncode, 0, result.stderr)
        [folder] = self.completed_runs()
        recorded = json.loads((folder / "results.json").read_text())["zoo"]["teacher"]
        self.assertEqual(recorded["name"], R18)
        self.assertEqual(recorded["file"], str(weights))
        self.assertEqual(recorded["sha256"], digest)
        self.assertEqual((recorded["plugin"], recorded["architecture"]["depth"]), ("resnet", 18))
        config = tomllib.loads((folder / "config.toml").read_text())["teacher"]
        self.assertEqual((config["zoo"], config["sha256"], config["plugin"]), (R18, digest, "resnet"))
        # Other weights under the same name and path are another run: the hash is in the run id.
        weights.write_bytes(self.r18_file(seed=1).read_bytes())
        again = run("run", str(exp), "--output", str(self.dir / "runs"))
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertNotIn("already completed", again.stderr)
        self.assertEqual(len(self.completed_runs()), 2)
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        # The file named by the zoo entry, evaluated directly.
        out = self.dir / "eval.json"
        evaluated = run("eval", str(weights), "--zoo", R18, "--data", "synthetic", "--set", "data.channels=3",
                        "--set", "data.height=32", "--set", "data.width=32", "--points", "8", "-o", str(out))
        self.assertEqual(evaluated.returncode, 0, evaluated.stderr)
        model = json.loads(out.read_text())["model"]
        self.assertEqual((model["zoo"], model["sha256"], model["plugin"]), (R18, digest, "resnet"))

    def test_wrong_hash_wrong_file_and_unknown_names_are_one_line_errors(self):
        weights = self.r18_file()
        runs = str(self.dir / "runs")
        bad_hash = self.write("hash.toml", EXPERIMENT.format(zoo=R18, file=weights, extra='sha256 = "' + "0" * 64 + '"'))
        self.assert_error(run("run", str(bad_hash), "--output", runs), 2, "is not the sha256",
                          hashlib.sha256(weights.read_bytes()).hexdigest())
        wrong = self.write("wrong.toml", EXPERIMENT.format(zoo="cifar10/Linf/Chen2021LTD_WRN34_10", file=weights, extra=""))
        self.assert_error(run("run", str(wrong), "--output", runs), 2,
                          "(zoo cifar10/Linf/Chen2021LTD_WRN34_10)", "mis-shaped: conv1.weight (file [64,3,3,3] vs model [16,3,3,3])")
        typo = self.write("typo.toml", EXPERIMENT.format(zoo="cifar10/Linf/Wang2023Better_WRN-28-1", file=weights, extra=""))
        self.assert_error(run("validate", str(typo)), 2, "typo.toml:", "is not a model zoo entry",
                          "did you mean 'cifar10/Linf/Wang2023Better_WRN-28-10'", "ardkit zoo list")
        fixed = self.write("fixed.toml", EXPERIMENT.format(zoo=R18, file=weights, extra="depth = 34"))
        self.assert_error(run("validate", str(fixed)), 2, "sets 'depth', which zoo")
        missing = self.write("missing.toml", EXPERIMENT.format(zoo=R18, file=self.dir / "absent.pt", extra=""))
        self.assert_error(run("run", str(missing), "--output", runs), 2, "absent.pt: checkpoint not found")


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
