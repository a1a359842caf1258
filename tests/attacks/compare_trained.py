"""Whole-attack comparison on a trained model: ardkit's `--suite standard` against the PyTorch
ports of the reference algorithms in make_reference.py, on the same weights, points and eps.

    /usr/bin/python3 tests/attacks/compare_trained.py --ardkit build/bin/ardkit --run RUN_FOLDER \
        [--points 100] [--eps 0.1] [--threads N]

RUN_FOLDER is an `ardkit run` folder of a `small_cnn` on Fashion-MNIST (`idx` data plugin), e.g.
the quickstart's PGD-AT run. ardkit exports the weights (`ardkit export`) and evaluates; the
ports load those weights into the PyTorch definition and run PGD-20, CW-inf and AutoAttack
standard (APGD-CE, APGD-T, FAB-T, Square 5000) on the same first points of the test split.
Prints both rows and the speed ratio; accuracy differences come from random starts (the two sides
seed per batch differently), not from the algorithms, and should stay within about a percentage
point. Both sides use --threads intra-op threads (default: one per core); Debian's PyTorch starts
with one, so the PyTorch side is set explicitly. This is also the AutoAttack and PGD-20
benchmark of docs/performance.md.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "interop"))
import make_reference as ref  # noqa: E402
from reference_models import CompactCNN  # noqa: E402
from test_end_to_end import read_idx  # noqa: E402


def pgd(model, x, y, eps, steps, step, loss="ce", kappa=50.0):
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        z = model(x_adv)
        value = F.cross_entropy(z, y, reduction="sum") if loss == "ce" else ref.cw(z, y, kappa).sum()
        g, = torch.autograd.grad(value, [x_adv])
        x_adv = torch.min(torch.max(x_adv.detach() + step * g.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ardkit", required=True)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--suite", default="standard", choices=["standard", "quick"],
                        help="quick: FGSM and PGD-20 only (the PGD benchmark)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as ardkit does
    config = tomllib.loads((args.run / "config.toml").read_text())
    student, data = config["student"], config["data"]
    assert student["plugin"] == "small_cnn" and data["plugin"] == "idx", "needs a small_cnn on idx data"

    work = Path(tempfile.mkdtemp(prefix="ardkit-compare-"))
    weights = work / "student.pt"
    subprocess.run([args.ardkit, "export", str(args.run), "-o", str(weights)], check=True)
    start = time.time()
    subprocess.run([args.ardkit, "eval", str(args.run), "--suite", args.suite, "--eps", str(args.eps),
                    "--points", str(args.points), "--threads", str(args.threads),
                    "-o", str(work / "ardkit.json")], check=True)
    ours = json.loads((work / "ardkit.json").read_text())
    ours_seconds = time.time() - start

    model = CompactCNN(1, 10, c1=student["conv1"], c2=student["conv2"], hidden=student["hidden"],
                       batch_norm=student.get("batch_norm", False)).eval()
    model.load_state_dict(torch.load(weights))
    for p in model.parameters():
        p.requires_grad_(False)
    root = Path(data["root"])
    x = torch.tensor(read_idx(root / data["test_images"])[:args.points], dtype=torch.float32).unsqueeze(1) / 255
    y = torch.tensor(read_idx(root / data["test_labels"])[:args.points], dtype=torch.long)

    start = time.time()
    torch.manual_seed(0)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    xs, ys = x[clean], y[clean]
    eps = args.eps

    def robust(adv):
        with torch.no_grad():
            return 100 * (model(adv).argmax(1) == ys).sum().item() / args.points

    theirs = {"clean": 100 * clean.float().mean().item()}
    if args.suite == "quick":  # FGSM: one step of eps from x, no random start
        xs_adv = xs.clone().requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(model(xs_adv), ys, reduction="sum"), [xs_adv])
        theirs["fgsm"] = robust((xs + eps * g.sign()).clamp(0, 1))
        theirs["pgd20"] = robust(pgd(model, xs, ys, eps, 20, eps / 4))
        theirs_seconds = time.time() - start
        columns = ["clean", "fgsm", "pgd20"]
        print(f"\n{args.run.name}, eps {eps:g}, first {args.points} test points, robust accuracy (%)")
        print(f"{'':22s}" + "".join(f"{c:>12s}" for c in columns) + "   seconds")
        ours_row = [ours["clean_acc"]] + [ours["attacks"][c]["robust_acc"] for c in columns[1:]]
        print(f"{'ardkit':22s}" + "".join(f"{v:12.2f}" for v in ours_row) + f"{ours_seconds:10.1f}")
        print(f"{'PyTorch reference port':22s}" + "".join(f"{theirs[c]:12.2f}" for c in columns)
              + f"{theirs_seconds:10.1f}")
        print(f"{args.threads} threads; ardkit is {theirs_seconds / ours_seconds:.2f}x the PyTorch "
              "port's speed (ardkit's time includes its process start and model load)")
        return
    theirs["pgd20"] = robust(pgd(model, xs, ys, eps, 20, eps / 4))
    theirs["cw_inf"] = robust(pgd(model, xs, ys, eps, 20, eps / 4, loss="cw"))
    parts = [("apgd-ce", lambda a, b: ref.apgd(model, a, b, eps, 100)),
             ("apgd-t", lambda a, b: ref.apgd(model, a, b, eps, 100, targets=9)),
             ("fab-t", lambda a, b: ref.fab(model, a, b, eps, 100, targets=9)),
             ("square", lambda a, b: ref.square(model, a, b, eps, 5000, rescale=False))]
    still = torch.ones(len(ys), dtype=torch.bool)
    stages = {}
    for name, attack in parts:
        idx = still.nonzero().squeeze(1)
        if idx.numel():
            adv = attack(xs[idx], ys[idx])
            with torch.no_grad():
                fooled = model(adv).argmax(1) != ys[idx]
            still[idx[fooled]] = False
        stages[name] = 100 * still.sum().item() / args.points
    theirs["autoattack"] = stages["square"]
    theirs_seconds = time.time() - start

    print(f"\n{args.run.name}, eps {eps:g}, first {args.points} test points, robust accuracy (%)")
    columns = ["clean", "pgd20", "cw_inf", "autoattack"]
    print(f"{'':22s}" + "".join(f"{c:>12s}" for c in columns) + "".join(f"{s:>10s}" for s in stages) + "   seconds")
    ours_row = [ours["clean_acc"]] + [ours["attacks"][c]["robust_acc"] for c in columns[1:]]
    ours_stages = [s["robust_acc"] for s in ours["attacks"]["autoattack"]["stages"]]
    print(f"{'ardkit':22s}" + "".join(f"{v:12.2f}" for v in ours_row) + "".join(f"{v:10.2f}" for v in ours_stages)
          + f"{ours_seconds:10.0f}")
    print(f"{'PyTorch reference port':22s}" + "".join(f"{theirs[c]:12.2f}" for c in columns)
          + "".join(f"{stages[s]:10.2f}" for s in stages) + f"{theirs_seconds:10.0f}")
    print(f"{args.threads} threads; ardkit is {theirs_seconds / ours_seconds:.2f}x the PyTorch port's "
          "speed (ardkit's time includes its process start and model load)")


if __name__ == "__main__":
    main()
