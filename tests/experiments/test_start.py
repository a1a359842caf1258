#!/usr/bin/env python3
"""Every shipped experiment starts: one training step and one evaluation batch of an experiment
or evaluation file under experiments/, at the file's own model sizes, objective, attack,
generator and hooks.

`ardkit validate` checks every key, but a file can still fail when its components meet (two
models whose layers a generator cannot pair, a tap one model lacks); this runs the file far
enough for that to show. What the test changes, and only that, so that it runs on a 2-core
machine without the file's data or weights:
  - the data: the `synthetic` plugin at the file's image shape and class count (Fashion-MNIST
    1x28x28, CIFAR 3x32x32 with 10 or 100 classes, STL-10 3x96x96), keeping the file's split,
    relabelling and augmentation keys; a real-data run gets exactly one training batch;
  - budgets: one epoch of batch 2, evaluation and validation on 2 points; a generator makes one
    iteration of one generator update and one student step (one synthesis update where it
    synthesises first); a hook measures on 2 samples; the training attack and each evaluation
    attack run at most 2 iterations (a suite entry becomes its attack tables, as the suite
    defines them, with the same cap);
  - weights the file names but this machine lacks (the checkpoint of a teacher, named teacher,
    companion or evaluated model, a TorchScript file) are the same architecture with near-initial
    weights, written by a one-step natural-training run of that model (a TorchScript file: a
    traced linear model);
  - a teacher ([teacher] or [teachers.NAME]) named by `experiment = ...` is rewritten the same
    way, recursively.
The run must exit 0 with status "completed" and results.json holding every evaluation."""
import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BATCH = 2
ITERATIONS = 2  # attack iterations in the evaluation


def shown(path):
    """A file's name relative to the repository, or as given when it lies outside it."""
    path = path.resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v) or math.isnan(v):
            raise ValueError("no inf/nan in experiment files")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def to_toml(doc):
    """The subset of TOML experiment files use: tables (nested ones as [a.b]), arrays of tables,
    scalar and array values."""
    out = []

    def table(name, value):
        out.append(f"[{name}]")
        out.extend(f"{k} = {toml_value(v)}" for k, v in value.items() if not isinstance(v, dict))
        out.append("")
        for k, v in value.items():
            if isinstance(v, dict):
                table(f"{name}.{k}", v)

    for key, value in doc.items():
        if isinstance(value, dict):
            table(key, value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for entry in value:
                out.append(f"[[{key}]]")
                out += [f"{k} = {toml_value(v)}" for k, v in entry.items()]
                out.append("")
        else:
            raise ValueError(f"top-level key {key} is not a table")
    return "\n".join(out)


# The data plugins' image shapes; anything else of a data table but these keys is kept.
def data_shape(data):
    plugin = data.get("plugin")
    if plugin == "idx":
        return 1, 28, 28, data.get("num_classes", 10)
    if plugin == "cifar":
        if data.get("variant", "cifar10") == "cifar10":
            return 3, 32, 32, 10
        return 3, 32, 32, 20 if data.get("labels") == "coarse" else 100
    if plugin == "stl10":
        return 3, 96, 96, 10
    if plugin == "synthetic":
        return (data.get("channels", 1), data.get("height", 8), data.get("width", 8),
                data.get("num_classes", 10))
    raise ValueError(f"test_start.py knows no image shape for data plugin '{plugin}'")


PLUGIN_KEYS = {"root", "variant", "labels", "name", "train_images", "train_labels", "test_images",
               "test_labels", "num_classes", "channels", "height", "width", "train_size",
               "test_size", "noise", "seed", "train_subset", "test_subset", "subset"}


def stand_in_data(data):
    c, h, w, classes = data_shape(data)
    out = {k: v for k, v in data.items() if k not in PLUGIN_KEYS and k != "plugin"}
    mapped = data.get("class_map")
    out.update(plugin="synthetic", channels=c, height=h, width=w,
               num_classes=len(mapped) if mapped else classes)
    if out.get("validation", 1) > 0:
        out["validation"] = BATCH
    # Enough samples that a relabelling keeps a batch of each split; one training batch.
    out.update(train_size=64, test_size=64, train_subset=BATCH, test_subset=BATCH)
    return out


def suite_tables(entry):
    """registry/src/suites.cpp's expansion of a suite entry, at the test's iteration cap."""
    eps, norm = entry["eps"], entry.get("norm", "linf")
    linf = norm == "linf"
    tables = []
    if linf:
        tables.append({"plugin": "fgsm", "name": "fgsm", "eps": eps})
    tables.append({"plugin": "pgd", "name": "pgd20", "eps": eps, "norm": norm, "steps": 20,
                   "step_size": eps / 4})
    if entry["suite"] == "quick":
        return tables
    if linf:
        tables.append({"plugin": "cw_inf", "name": "cw_inf", "eps": eps, "steps": 20,
                       "step_size": eps / 4})
    aa = {"plugin": "autoattack", "name": "autoattack", "eps": eps, "norm": norm,
          "seed": entry.get("seed", 0)}
    if not linf:
        aa.update(version="custom", attacks=["apgd-ce", "apgd-t", "fab-t"])
    tables.append(aa)
    return tables


def capped(attack):
    out = {k: min(v, ITERATIONS) if k in ("steps", "restarts", "queries", "eot_iter") else v
           for k, v in attack.items()}
    if attack.get("plugin") == "autoattack":
        out.update(steps=ITERATIONS, target_classes=1, queries=ITERATIONS)
    return out


def stand_in_evals(evals):
    out = []
    for entry in evals:
        for table in suite_tables(entry) if "suite" in entry else [entry]:
            out.append(capped(table))
    return out


class Rewriter:
    """Rewrites files into `work`; the stand-in weights are shared by every file rewritten (one
    per architecture and image shape), each file's runs go to `runs` (set per file)."""

    def __init__(self, ardkit, work):
        self.ardkit, self.work = ardkit, work
        self.runs = work / "runs"
        self.weights = {}  # model table (JSON) -> checkpoint of fresh weights

    def run(self, *args, cwd=None, timeout=1200):
        return subprocess.run([self.ardkit, *args], cwd=cwd or self.work, capture_output=True,
                              text=True, timeout=timeout)

    def default(self, plugin, key):
        """A plugin's default for an integer key, as `ardkit plugins show` prints it."""
        shown = self.run("plugins", "show", plugin)
        for line in shown.stdout.splitlines():
            words = line.split()
            if words[:1] == [key] and "=" in words:
                return int(words[words.index("=") + 1])
        raise AssertionError(f"ardkit plugins show {plugin} lists no default for {key}")

    def fresh_weights(self, model, data):
        """A checkpoint of `model`'s architecture with its initial weights."""
        arch = {k: v for k, v in model.items() if k not in ("checkpoint", "file", "experiment",
                                                            "use", "strip_prefix", "sha256")}
        if arch.get("plugin") == "torchscript":
            return None
        key = json.dumps([arch, data_shape(data)], sort_keys=True)
        if key in self.weights:
            return self.weights[key]
        name = f"weights-{len(self.weights)}"
        doc = {"run": {"name": name, "output": str(self.work / "weights"), "threads": 1},
               "data": stand_in_data({**data, "validation": 0, "class_map": []}),
               "student": arch, "objective": {"plugin": "natural"},
               "train": {"epochs": 1, "batch_size": BATCH, "validate_every": 0}}
        path = self.work / f"{name}.toml"
        path.write_text(to_toml(doc))
        result = self.run("run", str(path))
        if result.returncode != 0:
            raise AssertionError(f"fresh weights for {arch}: {result.stderr}")
        folder = next((self.work / "weights").glob(f"{name}-*"))
        self.weights[key] = str(folder / "checkpoints" / "last.pt")
        return self.weights[key]

    def local(self, path, base):
        p = Path(path)
        return p if p.is_absolute() else base.parent / p

    def model(self, table, data, base):
        out = dict(table)
        for key in ("checkpoint", "file"):
            if key in out and not (self.work / out[key]).exists():
                if out.get("plugin") == "torchscript":
                    out["file"] = self.torchscript(data)
                else:
                    out[key] = self.fresh_weights(table, data)
        if "experiment" in out:
            out["experiment"] = str(self.experiment(self.local(out["experiment"], base)))
            out["use"] = "last"  # no validation-best is promised after one step
        return out

    def torchscript(self, data):
        c, h, w, classes = data_shape(data)
        path = self.work / f"torchscript_{c}x{h}x{w}_{classes}.pt"
        if not path.exists():
            code = ("import torch, sys\n"
                    f"m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear({c * h * w}, "
                    f"{classes}))\n"
                    f"torch.jit.trace(m.eval(), torch.rand(1, {c}, {h}, {w})).save(sys.argv[1])\n")
            subprocess.run(["/usr/bin/python3", "-c", code, str(path)], check=True)
        return str(path)

    def experiment(self, path):
        doc = tomllib.loads(path.read_text())
        data = doc["data"]
        out = dict(doc)
        out["data"] = stand_in_data(data)
        run = dict(doc.get("run", {}))
        run["output"] = str(self.runs)
        run["threads"] = 1  # CTest runs two folders at once on two cores: no oversubscription
        out["run"] = run
        for role in ("student", "teacher", "model"):
            if role in doc:
                out[role] = self.model(doc[role], data, path)
        for group in ("teachers", "companions"):  # [teachers.NAME], [companions.NAME]
            if group in doc:
                out[group] = {name: self.model(table, data, path)
                              for name, table in doc[group].items()}
        train = dict(doc.get("train", {}))
        train.update(epochs=1, batch_size=BATCH, eval_batch_size=BATCH, eval_points=BATCH,
                     validation_points=BATCH, log_every=1)
        if "model" in doc:  # an evaluation file
            evaluation = dict(doc.get("evaluation", {}))
            evaluation.update(points=BATCH, batch_size=BATCH)
            out["evaluation"] = evaluation
        else:
            out["train"] = train
        if "generator" in doc:
            gen = dict(doc["generator"])
            gen["iterations"] = 1
            gen["student_steps"] = 1
            if gen.get("generator_steps", 1) > 1:
                gen["generator_steps"] = 1
            if gen.get("synthesis_steps", self.default(gen["plugin"], "synthesis_steps")) > 0:
                gen["synthesis_steps"] = 1
            out["generator"] = gen
        if "hook" in doc:
            out["hook"] = [{**h, "samples": BATCH} if "samples" in h or h.get("plugin") == "ita"
                           else h for h in doc["hook"]]
        if "eval" in doc:
            out["eval"] = stand_in_evals(doc["eval"])
        if "attack" in doc:
            out["attack"] = capped(doc["attack"])
        target = self.work / "files" / path.relative_to(ROOT if ROOT in path.parents else path.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(to_toml(out))
        return target


def main():
    if sys.argv[1:2] == ["--covers"]:
        # Every folder of experiment files (grids aside: their cells validate in the cli tests)
        # is one of the folders tests/CMakeLists.txt runs.
        listed = set(sys.argv[2:])
        folders = {str(p.parent.relative_to(ROOT / "experiments"))
                   for p in (ROOT / "experiments").rglob("*.toml") if p.parent.name != "grids"}
        missing = sorted(folders - listed)
        if missing:
            sys.exit(f"experiments/ folders no experiments_start test runs: {missing}; add them "
                     "to START_FOLDERS in tests/CMakeLists.txt")
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--ardkit", required=True)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    failures = []
    with tempfile.TemporaryDirectory(prefix="ardkit-start-") as work:
        rewriter = Rewriter(str(Path(args.ardkit).resolve()), Path(work))
        for number, f in enumerate(args.files):
            f = f.resolve()
            here = Path(work) / f"file-{number}"
            here.mkdir()
            rewriter.runs = here / "runs"
            started = time.time()
            try:
                target = rewriter.experiment(f)
                evaluation = "model" in tomllib.loads(f.read_text())
                result = rewriter.run("eval" if evaluation else "run", str(target), cwd=here)
                if result.returncode != 0:
                    raise AssertionError(f"exit {result.returncode}: {result.stderr.strip()}")
                if evaluation:
                    results = list((here / "evals").glob("*.json"))
                else:
                    name = tomllib.loads(target.read_text())["run"].get("name", f.stem)
                    results = [p for p in rewriter.runs.glob(f"{name}-*/results.json")]
                if len(results) != 1:
                    raise AssertionError(f"expected one results file, found {results}: "
                                         f"{result.stdout[-2000:]}")
                if not evaluation:
                    status = json.loads((results[0].parent / "status.json").read_text())
                    if status.get("state") != "completed":
                        raise AssertionError(f"status {status}")
                print(f"{shown(f)}: started, stepped and evaluated "
                      f"({time.time() - started:.1f} s)", flush=True)
            except Exception as e:  # noqa: BLE001 - every file is tried, failures listed at the end
                failures.append(f"{shown(f)}: {e}")
                print(failures[-1], flush=True)
    if failures:
        print(f"{len(failures)} of {len(args.files)} files cannot start:", *failures, sep="\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
