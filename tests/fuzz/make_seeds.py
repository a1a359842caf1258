#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/TARGET): small valid inputs of every
format, so that fuzzing starts deep inside each reader instead of at its magic number. The toml
target also starts from every experiment file under experiments/ (tests/fuzz/CMakeLists.txt).
Run from the repository root: python3 tests/fuzz/make_seeds.py (needs python3-torch)."""
import gzip
import io
import json
import os
import struct
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SEP = b"\n--\n"  # fuzz::parts' separator: one input, several files


def put(target, name, data):
    path = HERE / "corpus" / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def idx(dims, values):
    head = struct.pack(">HBB", 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    return head + bytes(values)


def datasets():
    images = idx([3, 4, 5], [(i * 7) % 256 for i in range(60)])
    labels = idx([3], [0, 9, 4])
    put("datasets", "idx_gz", b"\x00" + gzip.compress(images, mtime=0) + SEP + gzip.compress(labels, mtime=0))
    put("datasets", "idx_plain", b"\x01" + images + SEP + labels)
    # Two CIFAR-10 records: a label byte, then 3x32x32 planes (CIFAR-100 reads two label bytes).
    records = b"".join(bytes([r]) + bytes((r + i) % 256 for i in range(3072)) for r in (3, 7))
    put("datasets", "cifar", b"\x02" + records)
    # One STL-10 image (3x96x96, column-major planes) and its label (1..10).
    put("datasets", "stl10", b"\x03" + bytes(i % 256 for i in range(3 * 96 * 96)) + SEP + b"\x05")


class ShellCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def pytorch_files():
    g = torch.Generator().manual_seed(0)
    state = {"conv.weight": torch.rand(2, 1, 3, 3, generator=g), "conv.bias": torch.zeros(2),
             "bn.num_batches_tracked": torch.tensor(3), "fc.weight": torch.rand(3, 4, generator=g).t()}
    checkpoint = {"epoch": 2, "state_dict": {"module." + k: v for k, v in state.items()},
                  "flags": (True, None, 1.5, "text")}
    for name, obj in (("state", state), ("checkpoint", checkpoint),
                      ("reduce", {"state_dict": state, "callback": ShellCommand("true")})):
        for fmt, zipped in (("zip", True), ("legacy", False)):
            out = io.BytesIO()
            torch.save(obj, out, _use_new_zipfile_serialization=zipped)
            put("pytorch_file", f"{name}_{fmt}", out.getvalue())


def results():
    attacks = {"fgsm": {"robust_acc": 45.0, "seconds": 0.04}, "pgd20": {"robust_acc": 30.0, "seconds": 0.5}}
    report = {"points": 300, "clean_acc": 77.0, "attacks": attacks, "worst_case_acc": 30.0, "seconds": 1.0}
    run = {"run_id": "tiny-0123456789ab", "name": "tiny", "dataset": "fashion-mnist",
           "architecture": "small_cnn", "objective": "kd", "eps": {"fgsm": 0.1, "pgd20": 0.1},
           "norm": {"fgsm": "linf", "pgd20": "linf"}, "last": report, "best": report,
           "clean_acc": 77.0, "robust_acc": 30.0}
    evaluation = dict(report, split="test", label="tiny (best)",
                      threats={"fgsm": {"norm": "linf", "eps": 0.1}})
    metrics = "\n".join(json.dumps(r) for r in (
        {"type": "step", "epoch": 1, "step": 1, "loss": 2.3},
        {"type": "epoch", "epoch": 1, "lr": 0.1, "train_loss": 1.5, "val_acc": 60.0},
        {"type": "epoch", "epoch": 2, "lr": 0.01, "train_loss": 1.0, "val_acc": 70.0})) + "\n"
    config = ('[run]\nname = "tiny"\nseed = 1\n[data]\nplugin = "synthetic"\n[student]\n'
              'plugin = "small_cnn"\n[objective]\nplugin = "kd"\ntemperature = 4.0\n'
              '[train]\nepochs = 2\n')
    state = {"format": "ardkit-eval-state-1", "fingerprint": "fingerprint", "points": 8,
             "batch_size": 4, "clean": "11011011",
             "attacks": [{"name": "pgd", "batches_done": 1, "complete": False, "seconds": 0.5,
                          "robust": "10010000", "stages": [{"name": "apgd-ce", "robust": "10010000",
                                                            "seconds": 0.5}]}]}
    parts = [json.dumps(run, indent=1), json.dumps(evaluation, indent=1), metrics, config,
             json.dumps(state)]
    put("results", "run", SEP.join(p.encode() for p in parts))


if __name__ == "__main__":
    datasets()
    pytorch_files()
    results()
    print("seed corpora written to", HERE / "corpus", file=sys.stderr)
