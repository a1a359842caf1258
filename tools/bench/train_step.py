#!/usr/bin/python3
"""Training-step benchmark: ardkit's engine against the same step in PyTorch eager.

For each objective, in one invocation and back to back on the same machine and threads:
  * ardkit: `ardkit run` on a generated experiment (synthetic data of the chosen shape, the
    objective with its default attack, SGD), one metrics line per step; the step time is read
    from metrics.jsonl, so what is timed is the engine a run uses (data pipeline included);
  * PyTorch eager: the same models with the same weights (the ardkit run loads the files this
    script saved), the same step written as idiomatic eager PyTorch (vectorized, no per-sample
    Python loops), on one preloaded batch;
and prints images/s of both, the ratio, the model FLOPs of one step (convolutions and matrix
products, forward and backward, counted on the PyTorch step by a dispatch-mode counter),
achieved GFLOP/s and the fraction of the machine's measured matrix-product peak (in the step's
precision, through the same LibTorch: the better of a square torch.mm of `--gemm-size`, which is
OpenBLAS's sgemm on Debian, and a 3x3 convolution of 256 channels, which is oneDNN's).
The two sides alternate `--rounds` times, so that a noisy machine slows both; the medians and the
range of the per-round ratios are printed.

    tools/bench/train_step.py                       # every objective, the small CNN pair
    tools/bench/train_step.py rslad --steps 20      # one objective
    tools/bench/train_step.py rslad --precision bfloat16   # both sides under bf16 autocast
    tools/bench/train_step.py rslad --model resnet18 --device cuda   # a CUDA LibTorch build

Not a test: it prints figures (and --json FILE writes them). docs/performance.md shows the
table measured on the project's 2-core machine and how to read it.
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "interop"))
import reference_models  # noqa: E402  (the PyTorch definitions the model plugins match)

EPS, STEP, STEPS = 8 / 255, 2 / 255, 10  # the objectives' default PGD-10 attack


# ---- the models: the same state-dict names as the ardkit plugins ----
def make_model(name, widths, channels, size, classes, batch_norm):
    if name == "small_cnn":
        c1, c2, hidden = widths
        model = reference_models.CompactCNN(channels, classes, c1, c2, hidden, batch_norm, size)
        table = {"plugin": "small_cnn", "conv1": c1, "conv2": c2, "hidden": hidden,
                 "batch_norm": batch_norm}
        return model, table
    if name == "resnet18":
        return reference_models.ResNet([2, 2, 2, 2], channels, classes), {"plugin": "resnet"}
    raise SystemExit(f"train_step.py: unknown --model {name!r}; use small_cnn or resnet18")


# ---- the steps, as ardkit's objectives compute them with their defaults ----
def sign_steps(x_adv, x, loss_fn, eps=EPS, step=STEP, steps=STEPS):
    for _ in range(steps):
        x_adv.requires_grad_()
        grad = torch.autograd.grad(loss_fn(x_adv), [x_adv])[0]
        x_adv = torch.min(torch.max(x_adv.detach() + step * grad.sign(), x - eps), x + eps)
        x_adv = x_adv.clamp(0.0, 1.0)
    return x_adv.detach()


def uniform_start(x, clip):
    start = x + torch.empty_like(x).uniform_(-EPS, EPS)
    return start.clamp(0.0, 1.0) if clip else start


def gaussian_start(x, clip=False):
    start = x + 0.001 * torch.randn_like(x)
    return start.clamp(0.0, 1.0) if clip else start


def kl(p_logits, q_logits, reduction, temp=1.0):
    """KL(softmax(p/T) || softmax(q/T)) with the given reduction ('mean' = over B*C entries)."""
    return F.kl_div(F.log_softmax(q_logits / temp, 1), F.softmax(p_logits / temp, 1),
                    reduction=reduction)


def natural(s, t, x, y):
    return F.cross_entropy(s(x), y)


def pgd_at(s, t, x, y):  # variant "rice": uniform start clipped, attack in eval mode
    s.eval()
    x_adv = sign_steps(uniform_start(x, True), x, lambda v: F.cross_entropy(s(v), y))
    s.train()
    return F.cross_entropy(s(x_adv), y)


def trades(s, t, x, y, beta=6.0):
    s.eval()
    with torch.no_grad():
        clean = F.softmax(s(x), 1)
    x_adv = sign_steps(gaussian_start(x), x, lambda v: F.kl_div(
        F.log_softmax(s(v), 1), clean, reduction="sum"), eps=0.031, step=0.007)
    s.train()
    logits = s(x)
    robust = kl(s(x), s(x_adv), "sum") / len(x)
    return F.cross_entropy(logits, y) + beta * robust


def kd(s, t, x, y, alpha=0.9, temp=4.0):
    logits = s(x)
    with torch.no_grad():
        t_logits = t(x)
    return alpha * temp * temp * kl(t_logits, logits, "batchmean", temp) + (
        1 - alpha) * F.cross_entropy(logits, y)


def ard(s, t, x, y, alpha=1.0, temp=30.0):  # attack in train mode, uniform start, no clip
    x_adv = sign_steps(uniform_start(x, False), x,
                       lambda v: F.cross_entropy(s(v), y, reduction="sum"))
    outputs = s(x_adv)
    with torch.no_grad():
        t_logits = t(x)
    basic = s(x)
    return alpha * temp * temp * kl(t_logits, outputs, "mean", temp) + (
        1 - alpha) * F.cross_entropy(basic, y)


def rslad(s, t, x, y):
    with torch.no_grad():
        probs = F.softmax(t(x), 1)
    s.eval()
    x_adv = sign_steps(gaussian_start(x), x, lambda v: F.kl_div(
        F.log_softmax(s(v), 1), probs, reduction="sum"))
    s.train()
    k_adv = F.kl_div(F.log_softmax(s(x_adv), 1), probs, reduction="mean")
    k_clean = F.kl_div(F.log_softmax(s(x), 1), probs, reduction="mean")
    return 5 / 6 * k_adv + 1 / 6 * k_clean


def iad(s, t, x, y, alpha=1.0):  # variant iad1 before `begin`: the ARD-like step
    with torch.no_grad():
        t_logits = t(x)
    x_adv = sign_steps(uniform_start(x, False), x,
                       lambda v: F.cross_entropy(s(v), y, reduction="sum"))
    outputs = s(x_adv)
    with torch.no_grad():  # the teacher's confidence on x' (w; logged as mean_w before `begin`)
        F.softmax(t(x_adv), 1).gather(1, y.unsqueeze(1)).pow(0.1).mean()
    s(x_adv)  # the official step's unused second forward (it moves BatchNorm statistics)
    loss = alpha * kl(t_logits, outputs, "batchmean")
    return loss + (1 - alpha) * F.cross_entropy(s(x), y)


def adaad(s, t, x, y, alpha=1.0):
    s.eval()
    x_adv = sign_steps(gaussian_start(x), x, lambda v: F.kl_div(
        F.log_softmax(s(v), 1), F.softmax(t(v), 1), reduction="sum"))
    s.train()
    ori, adv = s(x), s(x_adv)
    with torch.no_grad():
        t_ori, t_adv = t(x), t(x_adv)
    return alpha * kl(t_adv, adv, "mean") + (1 - alpha) * kl(t_ori, ori, "mean")


class GacdHeads(torch.nn.Module):
    """GACD's trainable state with the plugin's defaults: two 128-wide linear heads and CRD's
    momentum memory banks, one slot per training sample (docs/methods.md "GACD")."""

    def __init__(self, student_features, teacher_features, samples, dim=128):
        super().__init__()
        self.embed_s = torch.nn.Linear(student_features, dim)
        self.embed_t = torch.nn.Linear(teacher_features, dim)
        stdv = 1.0 / math.sqrt(dim / 3.0)
        self.register_buffer("memory_s", torch.rand(samples, dim) * 2 * stdv - stdv)
        self.register_buffer("memory_t", torch.rand(samples, dim) * 2 * stdv - stdv)
        self.register_buffer("z_s", torch.full((1,), -1.0))
        self.register_buffer("z_t", torch.full((1,), -1.0))


def features_and_logits(model, x):
    """(penultimate features, logits) of CompactCNN, as ardkit's small_cnn returns them."""
    h = F.max_pool2d(F.relu(model.conv1(x)), 2)
    h = F.max_pool2d(F.relu(model.conv2(h)), 2)
    features = F.relu(model.fc1(h.flatten(1)))
    return features, model.fc2(features)


def gacd_step(args, device, widths):
    """GACD's step with its state (heads, banks) and the sample indices of successive batches,
    plus the parameters the optimizer must also move."""
    samples = (args.warmup + args.steps) * args.batch
    heads = GacdHeads(widths(args.student)[2], widths(args.teacher)[2], samples).to(device)
    batches = iter(range(10 ** 9))

    def step(s, t, x, y):
        first = next(batches) * len(x) % samples
        index = torch.arange(first, first + len(x), device=x.device) % samples
        return gacd(s, t, x, y, heads, index)
    return step, list(heads.parameters())


def gacd(s, t, x, y, heads, index, negatives=4096, tau=0.07, momentum=0.5, cw=0.8, cew=1.0):
    """The plugin's default step: CRD estimator, symmetric, contrastive guide, prob reweighting."""
    b = len(x)
    samples = heads.memory_s.size(0)
    with torch.no_grad():
        t_feat, t_logits = features_and_logits(t, x)
    v_t = F.normalize(heads.embed_t(t_feat), dim=1)
    anchors = v_t.detach()
    s.eval()
    batch = torch.arange(b, device=x.device)
    x_adv = sign_steps(uniform_start(x, True), x, lambda v: F.cross_entropy(
        F.normalize(heads.embed_s(features_and_logits(s, v)[0]), dim=1) @ anchors.t() / tau,
        batch, reduction="sum"))
    s.train()
    feat, logits = features_and_logits(s, x_adv)
    v_s = F.normalize(heads.embed_s(feat), dim=1)
    w = F.softmax(t_logits, 1)[batch, y]
    w = (w / w.mean()).detach()
    idx = torch.cat([index.unsqueeze(1),
                     torch.randint(0, samples, (b, negatives), device=x.device)], 1).view(-1)
    mpn = negatives / samples

    def scores(memory, v, z):
        out = torch.exp(torch.bmm(memory[idx].view(b, negatives + 1, -1),
                                  v.unsqueeze(2)).squeeze(2) / tau)
        if z.item() < 0:
            z.fill_(out.mean().item() * samples)
        return out / z

    def nce(out):
        pos, neg = out[:, 0], out[:, 1:]
        return -(torch.log(pos / (pos + mpn + 1e-7)) + torch.log(mpn / (neg + mpn + 1e-7)).sum(1))

    per = nce(scores(heads.memory_t, v_s, heads.z_s)) + nce(scores(heads.memory_s, v_t, heads.z_t))
    with torch.no_grad():
        for memory, v in ((heads.memory_s, v_s), (heads.memory_t, v_t)):
            moved = memory[index] * momentum + v.detach() * (1 - momentum)
            memory.index_copy_(0, index, moved / moved.pow(2).sum(1, keepdim=True).sqrt())
    return cw * (w * per).sum() / b + cew * F.cross_entropy(logits, y)


OBJECTIVES = {"natural": natural, "pgd_at": pgd_at, "trades": trades, "kd": kd, "ard": ard,
              "rslad": rslad, "iad": iad, "adaad": adaad, "gacd": gacd}
NEEDS_TEACHER = {"kd", "ard", "rslad", "iad", "adaad", "gacd"}
ATTACKED = {"pgd_at", "trades", "ard", "rslad", "iad", "adaad", "gacd"}  # [attack] pgd, their defaults
# ardkit objective parameters that make its step the one above (its defaults otherwise).
OBJECTIVE_KEYS = {"ard": {}, "iad": {}, "trades": {}, "pgd_at": {}}


# ---- model FLOPs of a step: convolutions and matrix products, forward and backward ----
class FlopCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in ("mm", "addmm"):
            a, b = args[-2], args[-1]
            self.flops += 2 * a.shape[0] * a.shape[1] * b.shape[1]
        elif name == "bmm":
            a, b = args
            self.flops += 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
        elif name == "convolution":
            self.flops += conv_flops(out, args[1], args[8])
        elif name == "convolution_backward":
            grad_out, weight, groups, mask = args[0], args[2], args[9], args[10]
            self.flops += conv_flops(grad_out, weight, groups) * (int(mask[0]) + int(mask[1]))
        return out


def conv_flops(out, weight, groups):
    del groups  # the weight's second dimension is already Cin / groups
    return 2 * out.numel() * weight[0].numel()  # Cin/groups * kh * kw MACs per output


# ---- the machine's matrix-product peak through LibTorch, in the step's precision ----
def gemm_peak(size, device, dtype, seconds=2.0):
    """The best rates of LibTorch's two matrix-product libraries: torch.mm (OpenBLAS on Debian's
    CPU build, whose kernels stop at AVX2) and a convolution (oneDNN, AVX-512 where the CPU has
    it; a 3x3 one on 256 channels, as in a ResNet's third stage, where oneDNN is at its best).
    Returns (mm, conv) in GFLOP/s."""
    a = torch.rand(size, size, device=device).to(dtype)
    b = torch.rand(size, size, device=device).to(dtype)
    image = torch.rand(16, 256, 32, 32, device=device).to(dtype)
    kernel = torch.rand(256, 256, 3, 3, device=device).to(dtype)
    rates = []
    for run, flops in ((lambda: torch.mm(a, b), 2 * size ** 3),
                       (lambda: F.conv2d(image, kernel, padding=1), 2 * 16 * 256 * 256 * 9 * 1024)):
        with torch.no_grad():
            run()
            sync(device)
            best, start = 0.0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                t0 = time.perf_counter()
                run()
                sync(device)
                best = max(best, flops / (time.perf_counter() - t0))
        rates.append(best / 1e9)
    return tuple(rates)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


# ---- the two sides ----
def pytorch_side(step, student, teacher, x, y, warmup, steps, device, precision="float32",
                 extra=()):
    optimizer = torch.optim.SGD(list(student.parameters()) + list(extra), lr=0.01, momentum=0.9,
                                weight_decay=5e-4)
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        student.train()
        optimizer.zero_grad()
        if precision == "float32":
            loss = step(student, teacher, x, y)
        else:  # what [run] precision does in ardkit: the step's forward passes under autocast
            with torch.autocast(device, dtype=getattr(torch, precision)):
                loss = step(student, teacher, x, y)
        loss.backward()
        optimizer.step()
        loss.item()  # as ardkit reads its loss terms each step
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def toml_table(name, values):
    return f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())


def ardkit_side(args, objective, work, student_table, teacher_table, shape):
    channels, size, classes = shape
    total = args.warmup + args.steps
    tables = [
        toml_table("run", {"name": objective, "seed": 0, "device": args.device,
                           "threads": args.threads, "output": str(work / "runs"),
                           "precision": args.precision}),
        toml_table("data", {"plugin": "synthetic", "channels": channels, "height": size,
                            "width": size, "num_classes": classes,
                            "train_size": total * args.batch, "test_size": 8}),
        toml_table("student", dict(student_table, checkpoint=str(work / "student.pt"))),
        toml_table("objective", dict({"plugin": objective}, **OBJECTIVE_KEYS.get(objective, {}))),
        toml_table("optimizer", {"type": "sgd", "lr": 0.01, "momentum": 0.9,
                                 "weight_decay": 5e-4}),
        toml_table("train", {"epochs": 1, "batch_size": args.batch, "validate_every": 0,
                             "log_every": 1, "eval_points": 8}),
    ]
    if objective in NEEDS_TEACHER:
        tables.append(toml_table("teacher", dict(teacher_table,
                                                 checkpoint=str(work / "teacher.pt"))))
    if objective in ATTACKED:
        tables.append(toml_table("attack", {"plugin": "pgd"}))
    experiment = work / f"{objective}.toml"
    experiment.write_text("\n".join(tables))
    shutil.rmtree(work / "runs", ignore_errors=True)  # each round trains from the start
    run = subprocess.run([args.ardkit, "run", str(experiment), "--threads", str(args.threads)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"train_step.py: ardkit run failed for {objective}:\n{run.stderr}")
    (folder,) = (work / "runs").glob(f"{objective}-*")
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    per_step = [args.batch / line["images_per_s"] for line in lines if line.get("type") == "step"]
    return per_step[args.warmup:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("objectives", nargs="*", help=f"default: all of {', '.join(OBJECTIVES)}")
    parser.add_argument("--ardkit", default=str(ROOT / "build" / "bin" / "ardkit"))
    parser.add_argument("--model", default="small_cnn", choices=["small_cnn", "resnet18"])
    parser.add_argument("--student", default="32,64,128", help="small_cnn conv1,conv2,hidden")
    parser.add_argument("--teacher", default="64,128,128", help="small_cnn conv1,conv2,hidden")
    parser.add_argument("--batch-norm", action="store_true", help="small_cnn with BatchNorm")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3,
                        help="ardkit and PyTorch alternate this many times; medians and the "
                             "range of the per-round ratios are printed")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "bfloat16", "float16"],
                        help="[run] precision for ardkit, torch.autocast for PyTorch")
    parser.add_argument("--gemm-size", type=int, default=2048)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--keep", help="keep the generated experiments and runs in this folder")
    args = parser.parse_args()
    names = args.objectives or list(OBJECTIVES)
    for name in names:
        if name not in OBJECTIVES:
            raise SystemExit(f"train_step.py: unknown objective {name!r}; "
                             f"known: {', '.join(OBJECTIVES)}")
    if not Path(args.ardkit).is_file():
        raise SystemExit(f"train_step.py: {args.ardkit} not found; build first (tools/build.sh) "
                         "or pass --ardkit")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="reduction: 'mean'")  # 'mean' over B*C is meant
    torch.set_flush_denormal(True)  # as ardkit does
    shape = (1, 28, 10) if args.model == "small_cnn" else (3, 32, 10)
    widths = lambda text: tuple(int(v) for v in text.split(","))  # noqa: E731
    torch.manual_seed(0)
    student, student_table = make_model(args.model, widths(args.student), shape[0], shape[1],
                                        shape[2], args.batch_norm)
    teacher, teacher_table = make_model(args.model, widths(args.teacher), shape[0], shape[1],
                                        shape[2], args.batch_norm)
    x = torch.rand(args.batch, shape[0], shape[1], shape[1])
    y = torch.randint(0, shape[2], (args.batch,))

    mm_peak, conv_peak = gemm_peak(args.gemm_size, args.device, getattr(torch, args.precision))
    peak = max(mm_peak, conv_peak)
    models = (f"small_cnn student {args.student} teacher {args.teacher}"
              if args.model == "small_cnn" else f"{args.model} student and teacher")
    print(f"{args.threads} threads, {args.device}, {args.precision}, {models}, batch {args.batch}, "
          f"{args.rounds} rounds of {args.steps} timed steps after {args.warmup}; "
          f"{args.precision} peak {peak:.1f} GFLOP/s (mm {mm_peak:.1f}, conv {conv_peak:.1f}; "
          f"{args.gemm_size}^2, LibTorch {torch.__version__})")
    header = (f"{'objective':<9} {'GFLOP/step':>10} {'PyTorch img/s':>14} {'ardkit img/s':>13} "
              f"{'ratio':>6} {'range':>11} {'GFLOP/s':>9} {'of peak':>8}")
    print(header)
    results = []
    work = Path(args.keep or tempfile.mkdtemp(prefix="ardkit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for name in names:
            step, extra = OBJECTIVES[name], ()
            if name == "gacd":
                if args.model != "small_cnn":
                    raise SystemExit("train_step.py: gacd is written for --model small_cnn")
                step, extra = gacd_step(args, args.device, widths)
            torch.manual_seed(1)
            s = make_model(args.model, widths(args.student), *shape[:2], shape[2],
                           args.batch_norm)[0]
            s.load_state_dict(student.state_dict())
            torch.save(dict(student.state_dict()), work / "student.pt")
            torch.save(dict(teacher.state_dict()), work / "teacher.pt")
            t = teacher.eval()
            for p in t.parameters():
                p.requires_grad_(False)
            s, t = s.to(args.device), t.to(args.device)
            xd, yd = x.to(args.device), y.to(args.device)
            counter = FlopCounter()
            with counter:
                probe = make_model(args.model, widths(args.student), *shape[:2], shape[2],
                                   args.batch_norm)[0].to(args.device)
                probe_step, probe_extra = (gacd_step(args, args.device, widths) if name == "gacd"
                                           else (step, ()))
                pytorch_side(probe_step, probe, t, xd, yd, 0, 1, args.device, extra=probe_extra)
            rounds = []  # (ardkit s/step, PyTorch s/step), alternating to share the noise
            for _ in range(args.rounds):
                a = statistics.mean(ardkit_side(args, name, work, student_table, teacher_table,
                                                shape))
                p = statistics.mean(pytorch_side(step, s, t, xd, yd, args.warmup, args.steps,
                                                 args.device, args.precision, extra))
                rounds.append((a, p))
            a = statistics.median(r[0] for r in rounds)
            p = statistics.median(r[1] for r in rounds)
            ratios = sorted(r[1] / r[0] for r in rounds)
            gflops = counter.flops / 1e9
            row = {"objective": name, "gflop_per_step": gflops,
                   "pytorch_images_per_s": args.batch / p, "ardkit_images_per_s": args.batch / a,
                   "ratio": statistics.median(ratios), "ratio_min": ratios[0],
                   "ratio_max": ratios[-1], "ardkit_gflops": gflops / a,
                   "fraction_of_peak": gflops / a / peak, "rounds_s_per_step": rounds}
            results.append(row)
            print(f"{name:<9} {gflops:>10.2f} {args.batch / p:>14.1f} {args.batch / a:>13.1f} "
                  f"{row['ratio']:>5.2f}x {ratios[0]:>5.2f}-{ratios[-1]:<5.2f} {gflops / a:>9.1f} "
                  f"{gflops / a / peak:>7.0%}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"peak_gflops": peak, "mm_peak_gflops": mm_peak, "conv_peak_gflops": conv_peak, "precision": args.precision, "threads": args.threads,
             "device": args.device, "results": results}, indent=1))


if __name__ == "__main__":
    main()
