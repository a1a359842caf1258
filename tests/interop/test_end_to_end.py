"""End to end through the ardkit command, against PyTorch on real Fashion-MNIST:

1. a model trained in PyTorch, traced to TorchScript, evaluates in `ardkit eval` with the clean
   accuracy PyTorch measures on the same test points;
2. a student trained by `ardkit run`, written out by `ardkit export`, loads into the PyTorch
   definition and has the clean accuracy `ardkit eval` reports for it.

usage: test_end_to_end.py --ardkit BUILD/bin/ardkit [--data /usr/share/datasets/fashion-mnist]
"""
import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reference_models import CompactCNN

ARGS = None
POINTS = 2000


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(Path(ARGS.data) / f"{prefix}-images-idx3-ubyte.gz")
    y = read_idx(Path(ARGS.data) / f"{prefix}-labels-idx1-ubyte.gz")
    return torch.from_numpy(x.copy()).float().div(255).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def accuracy(model, x, y):
    with torch.no_grad():
        return 100.0 * (model(x).argmax(1) == y).double().mean().item()


def ardkit(*args, cwd):
    result = subprocess.run([ARGS.ardkit, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"ardkit {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


class EndToEnd(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ardkit-e2e-"))
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_torchscript_model_from_pytorch(self):
        torch.manual_seed(0)
        x, y = load("train")
        model = CompactCNN(1, 10, c1=8, c2=16, hidden=32)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for i in range(0, 12000, 64):  # a fifth of an epoch: enough to be far from chance
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
        model.eval()
        tx, ty = load("test")
        expected = accuracy(model, tx[:POINTS], ty[:POINTS])
        self.assertGreater(expected, 60.0)
        torch.jit.trace(model, tx[:2]).save(str(self.dir / "model.ts.pt"))
        (self.dir / "eval.toml").write_text(f"""
[model]
plugin = "torchscript"
file = "model.ts.pt"
[data]
plugin = "idx"
root = "{ARGS.data}"
[evaluation]
points = {POINTS}
""")
        ardkit("eval", "eval.toml", cwd=self.dir)
        results = json.loads((self.dir / "evals" / "eval.json").read_text())
        print(f"\nTorchScript model, clean accuracy on {POINTS} test points: PyTorch {expected:.2f}, "
              f"ardkit {results['clean_acc']:.2f}")
        self.assertEqual(results["points"], POINTS)
        self.assertAlmostEqual(results["clean_acc"], expected, delta=100.0 / POINTS + 1e-9)

        # The same file as a teacher: pure KD (no label term) can only learn through its logits,
        # so a student far above chance means the TorchScript teacher was read and used.
        (self.dir / "kd.toml").write_text(f"""
[run]
name = "kd-from-torchscript"
[data]
plugin = "idx"
root = "{ARGS.data}"
validation = 0
train_subset = 6000
[teacher]
plugin = "torchscript"
file = "model.ts.pt"
[student]
plugin = "small_cnn"
conv1 = 8
conv2 = 16
hidden = 32
[objective]
plugin = "kd"
alpha = 1.0
[optimizer]
lr = 0.05
[train]
epochs = 1
batch_size = 64
validate_every = 0
eval_points = {POINTS}
""")
        ardkit("run", "kd.toml", cwd=self.dir)
        run = next((self.dir / "runs").iterdir())
        student = json.loads((run / "results.json").read_text())
        steps = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
        kl = [s["kl"] for s in steps if s["type"] == "step"]
        print(f"student distilled from it (alpha 1, no labels): clean {student['last']['clean_acc']:.2f}, "
              f"KL {kl[0]:.3f} -> {kl[-1]:.3f}")
        self.assertEqual(student["objective"], "kd")
        self.assertLess(kl[-1], kl[0] / 2)
        self.assertGreater(student["last"]["clean_acc"], 50.0)

    def test_ardkit_student_loads_into_pytorch(self):
        (self.dir / "exp.toml").write_text(f"""
[run]
name = "student"
[train]
epochs = 1
batch_size = 64
validate_every = 0
eval_points = {POINTS}
[data]
plugin = "idx"
root = "{ARGS.data}"
validation = 0
train_subset = 6000
[student]
plugin = "small_cnn"
conv1 = 8
conv2 = 16
hidden = 32
batch_norm = true
[optimizer]
lr = 0.05
[objective]
plugin = "natural"
""")
        ardkit("run", "exp.toml", cwd=self.dir)
        run = next((self.dir / "runs").iterdir())
        ardkit("export", str(run), "--which", "last", "-o", "student.pt", cwd=self.dir)
        evaluated = ardkit("eval", str(run), "--which", "last", "--points", str(POINTS), cwd=self.dir)
        results = json.loads((run / "evals" / "last-test.json").read_text())
        model = CompactCNN(1, 10, c1=8, c2=16, hidden=32, batch_norm=True)
        model.load_state_dict(torch.load(self.dir / "student.pt"), strict=True)
        model.eval()
        tx, ty = load("test")
        got = accuracy(model, tx[:POINTS], ty[:POINTS])
        print(f"\nardkit-trained student, clean accuracy on {POINTS} test points: ardkit "
              f"{results['clean_acc']:.2f}, PyTorch after export {got:.2f}")
        self.assertIn("student (last)", evaluated.stdout)
        self.assertGreater(got, 60.0)
        self.assertAlmostEqual(results["clean_acc"], got, delta=100.0 / POINTS + 1e-9)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ardkit", required=True)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ARGS, rest = parser.parse_known_args()
    ARGS.ardkit = str(Path(ARGS.ardkit).resolve())
    unittest.main(argv=[sys.argv[0], "-v", *rest])
