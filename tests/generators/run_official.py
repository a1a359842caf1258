"""Reference runs of the data-free generators by their official repositories' own code, for
several generator and student updates (tests/generators/make_reference.py is the readable port,
checked for one generator update; this script runs the official training loops themselves).

Run once, outside the test suite, on checkouts of the official repositories; the outputs are
committed under tests/generators/official_reference/ and read by test_generators.cpp:

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell \\
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/generators/run_official.py --repos DIR \\
        --out tests/generators/official_reference

The first three variables pin PyTorch's kernels to their AVX2 paths, as tests/CMakeLists.txt pins
LibTorch's for the tests that read these files: several Adam updates turn the last-bit
differences between AVX-512 and AVX2 kernels into visible ones. The fourth runs OpenBLAS on one
thread, as the tests do: its products split their sums by thread count, which otherwise follows
the machine's cores.

DIR holds one git clone per repository below, named by the repository's name (a bare clone works
too). Every file is read with `git show COMMIT:PATH` at the commit recorded here.

What runs, unchanged:
  dafl  DAFL/DAFL-train.py: its Generator class, kdloss, CrossEntropyLoss, the argparse
        declarations and the whole `for epoch` training loop at module level (MNIST branch's
        optimizers: Adam lr_G 0.2 for the generator, Adam lr_S 2e-3 for the student), for 4
        iterations: one backward through the generator's terms and the student's KD term, then
        both optimizers step.
  dfad  DFAD_cifar.py's train() and network/gan.py's GeneratorA, with main()'s optimizers (SGD
        lr_S 0.1, momentum 0.9, weight decay 5e-4; Adam lr_G 1e-3), for 2 iterations of 5
        student steps on fresh images and one generator step.
  zskt  solver.py's ZeroShotKTSolver (constructor, run(), its losses), utils/loaders.py's
        LearnableLoader and models/generator.py's Generator, main.py's argument defaults, for 3
        pseudo-batches of 1 generator and 10 student steps, both Adam learning rates
        cosine-annealed over the 3 pseudo-batches, both gradients clipped at norm 5.

Substitutions, each what ardkit documents or needs to run on a CPU without data:
  - the teacher and student are make_reference.py's TapNet at 3x32x32 (ZSKT's generator is
    written for 32x32x3 only), wrapped to take the generator's normalized output and map it to
    pixels as ardkit does (x = out * 0.5 + 0.5, clamped to [0, 1] with the identity gradient,
    ardkit's pixels = "straight_through"), and to answer the call conventions of each code
    (DAFL's `out_feature=True`, ZSKT's `logits, *activations`);
  - the generators' initial weights are make_reference.py's (official_start(), the same seeds),
    loaded into the official classes; batch 16, latent 100;
  - the latent codes are drawn after torch.manual_seed(SEED), where ardkit's engine draws them
    (ZSKT's LearnableLoader draws its first code in its constructor: it is drawn again there);
  - ZSKT's generator runs again for each student step (identical images); ardkit synthesizes
    them once, so the generator's BatchNorm running statistics, which no step reads, are not
    compared for ZSKT;
  - `.cuda()` is the identity; printing, Visdom, TensorBoard logging, test loaders and
    checkpoint writing are no-ops; DAFL's `range(120)` iterations per epoch are 4.
Recorded: every generator update's loss terms, every student step's loss and learning rate,
fingerprints of every student batch's pixels, and after the last update the student's state
(whole) and the generator's (tensors up to 4096 values whole, larger ones as fingerprints: the
sum, the sum of squares and 61 values at fixed positions). A fingerprint of the starting point
is recorded too, so that a PyTorch whose initialisation draws differently is reported as that.
A conv bias that a BatchNorm follows has no true gradient (the normalization removes it): Adam
moves it by rounding noise, up to lr per step, so it is compared within the sum of the
generator's learning rates only.
"""
import argparse
import ast
import builtins
import importlib.util
import sys
import tempfile
import types
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

HERE = Path(__file__).resolve().parent


def load(name, file):
    """Imports `file` as module `name` (both test folders have a make_reference.py)."""
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# defined_name, is_parser_statement, cpu_shims: the objectives' runner's helpers.
helpers = load("objectives_run_official", HERE.parent / "objectives" / "run_official.py")
sys.modules.pop("make_reference", None)  # the objectives' port, imported by that runner
port = load("generators_make_reference", HERE / "make_reference.py")

SEED = 4321
B = 16
WHOLE = 4096  # tensors up to this many values are stored whole
REPOS = {
    "Data-Efficient-Model-Compression": ("huawei-noah/Data-Efficient-Model-Compression",
                                         "5e8f4e4cd361778a1d43772f4bb032de2d874393"),
    "Data-Free-Adversarial-Distillation": ("VainF/Data-Free-Adversarial-Distillation",
                                           "c161591aae4c13e53943dcb61c162876421aad7a"),
    "ZeroShotKnowledgeTransfer": ("polo5/ZeroShotKnowledgeTransfer",
                                  "e24915d713672554800372c777c9014e3399e13b"),
}


helpers.REPOS.update(REPOS)


class Source(helpers.Source):
    """The objectives' runner's Source (git show COMMIT:PATH), with a way to execute a file."""

    def run(self, file, ns, names=(), parser=False, select=None, main_block=False):
        """Executes the top-level statements of `file` that define `names`, its argparse
        declarations when `parser`, and those `select(node)` accepts, in file order; with
        `main_block`, the statements of its `if __name__ == "__main__":` block instead."""
        body = ast.parse(self.text(file)).body
        if main_block:
            body = next(n.body for n in body if isinstance(n, ast.If)
                        and "__main__" in ast.unparse(n.test))
        keep = [n for n in body
                if helpers.defined_name(n) in names or (parser and helpers.is_parser_statement(n))
                or (select and select(n))]
        missing = set(names) - {helpers.defined_name(n) for n in keep}
        if missing:
            raise SystemExit(f"{self.repo}:{file} defines no {sorted(missing)} at "
                             f"{self.commit}: wrong checkout?")
        exec(compile(ast.Module(body=keep, type_ignores=[]), f"{self.repo}/{file}", "exec"), ns)
        return ns


# ---- what the official code talks to ----
class Net(nn.Module):
    """A TapNet that takes the generator's normalized output: pixels as ardkit maps them, then
    the network. `style` answers each code's convention; every input is recorded."""

    def __init__(self, net, style):
        super().__init__()
        self.net, self.style, self.seen = net, style, []

    def forward(self, x, out_feature=False):
        pixels = port.pixels(x)
        self.seen.append(pixels.detach().clone())
        logits, features, block = self.net(pixels)
        if self.style == "dafl":
            return (logits, features) if out_feature else logits
        if self.style == "zskt":
            return logits, block
        return logits


class RecordingAdam(optim.Adam):
    """Adam that records its learning rate, and calls `before` (to read the caller's losses),
    at every step."""

    def __init__(self, params, before=None, **kwargs):
        super().__init__(params, **kwargs)
        self.lrs, self.before = [], before

    def step(self, closure=None):
        self.lrs.append(self.param_groups[0]["lr"])
        if self.before:
            self.before()
        return super().step(closure)


class RecordingSGD(optim.SGD):
    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.lrs = []

    def step(self, closure=None):
        self.lrs.append(self.param_groups[0]["lr"])
        return super().step(closure)


def recording_optim(record):
    """The `optim` module, with optimizers that record (ZSKT builds its own)."""
    out = types.SimpleNamespace(**{k: getattr(optim, k) for k in dir(optim) if not k.startswith("_")})

    def adam(params, **kwargs):
        o = RecordingAdam(params, **kwargs)
        record.append(o)
        return o
    out.Adam = adam
    return out


def quiet(*args, **kwargs):
    return None


def fingerprint(prefix, t, out):
    flat = t.detach().double().flatten()
    if flat.numel() <= WHOLE:
        out[prefix] = t.detach().clone()
        return
    idx = torch.linspace(0, flat.numel() - 1, 61).round().long()
    out["fp.idx." + prefix] = idx
    out["fp.val." + prefix] = flat[idx].float()
    out["fp.sum." + prefix] = flat.sum()
    out["fp.sq." + prefix] = (flat * flat).sum()


def start():
    teacher, student, generators = port.official_start()
    teacher.eval()
    student.train()
    return teacher, student, generators


def record_start(result, teacher, student, generator, rename=None):
    for k, v in port.state(teacher).items():
        fingerprint("start.teacher." + k, v, result)
    for k, v in port.state(student).items():
        fingerprint("start.student." + k, v, result)
    for k, v in port.state(generator, rename).items():
        fingerprint("start.generator." + k, v, result)


def biases_before_batch_norm(module, rename=None):
    """Names of the conv biases a BatchNorm follows directly: their true gradient is zero, so
    their computed one is rounding noise, and Adam moves them by up to lr per step in a direction
    no two implementations share. They are compared within that bound only."""
    out = []
    for path, seq in module.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq.named_children())
        for (name, a), (_, b) in zip(children, children[1:]):
            if isinstance(a, nn.Conv2d) and a.bias is not None and isinstance(b, nn.BatchNorm2d):
                prefix = f"{path}.{name}" if path else name
                out.append((rename[prefix] if rename else prefix) + ".bias")
    return out


def record_end(result, student, generator, images, rename=None):
    for k, v in port.state(student).items():
        result["student." + k] = v
    for k, v in port.state(generator, rename).items():
        fingerprint("generator." + k, v, result)
    bound = result["lr.generator"].sum()
    for k in biases_before_batch_norm(generator, rename):
        result["loose.generator." + k] = bound
    for s, x in enumerate(images):
        fingerprint(f"x.{s}", x, result)
    return result


def scalars(values):
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


# ---- DAFL ----
def run_dafl(src, iterations=4):
    teacher, student, generators = start()
    t, s = Net(teacher, "dafl"), Net(student, "dafl")
    ns = {"torch": torch, "nn": nn, "F": F, "Variable": lambda x: x, "print": quiet,
          "argparse": argparse}
    src.run("DAFL/DAFL-train.py", ns, parser=True)
    opt = ns["parser"].parse_args(["--n_epochs", "1", "--batch_size", str(B), "--img_size",
                                   str(port.OFFICIAL_SIDE), "--channels",
                                   str(port.OFFICIAL_CHANNELS), "--latent_dim", str(port.NZ)])
    terms = {"one_hot": [], "information_entropy": [], "activation": [], "kd": []}

    def before_g():
        for name, key in (("one_hot", "loss_one_hot"), ("information_entropy",
                                                       "loss_information_entropy"),
                          ("activation", "loss_activation"), ("kd", "loss_kd")):
            terms[name].append(ns[key].item())

    def adam(params, **kwargs):
        o = RecordingAdam(params, before=before_g if not adam.made else None, **kwargs)
        adam.made.append(o)
        return o
    adam.made = []
    transforms = types.SimpleNamespace(Compose=quiet, Resize=quiet, ToTensor=quiet,
                                       Normalize=quiet)

    def dafl_range(*args):
        return builtins.range(iterations) if args == (120,) else builtins.range(*args)

    ns.update(opt=opt, teacher=t, LeNet5Half=lambda: s, MNIST=lambda *a, **k: [None],
              transforms=transforms, range=dafl_range,
              # The epoch's test pass: one batch of zeros (it prints an average loss tensor).
              DataLoader=lambda *a, **k: [(torch.zeros(2, port.OFFICIAL_CHANNELS,
                                                       port.OFFICIAL_SIDE, port.OFFICIAL_SIDE),
                                           torch.zeros(2, dtype=torch.long))])
    src.run("DAFL/DAFL-train.py", ns, names=("Generator", "kdloss", "criterion"))
    generator = ns["Generator"]()
    generator.load_state_dict(generators["dafl"].state_dict())
    result = {}
    record_start(result, teacher, student, generator)
    ns["generator"] = generator

    def mnist_branch(node):
        return isinstance(node, ast.If) and "MNIST" in ast.unparse(node.test) and \
            "!=" not in ast.unparse(node.test)

    def training(node):
        return isinstance(node, ast.For) or helpers.defined_name(node) in (
            "batches_done", "accr", "accr_best")
    real_adam = torch.optim.Adam
    torch.optim.Adam = adam  # the branch builds its optimizers as torch.optim.Adam(...)
    try:
        src.run("DAFL/DAFL-train.py", ns, select=mnist_branch)
    finally:
        torch.optim.Adam = real_adam
    torch.manual_seed(SEED)
    src.run("DAFL/DAFL-train.py", ns, select=training)
    opt_g, opt_s = adam.made
    for name, values in terms.items():
        result["gen." + name if name != "kd" else "student.loss"] = scalars(values)
    result["lr.generator"] = scalars(opt_g.lrs)
    result["lr.student"] = scalars(opt_s.lrs)
    images = s.seen[:iterations]  # the student's batch of each iteration; then the test batch
    return record_end(result, student, generator, images)


# ---- DFAD ----
def run_dfad(src, iterations=2):
    teacher, student, generators = start()
    t, s = Net(teacher, "dfad"), Net(student, "dfad")
    losses = []

    def l1_loss(a, b, *args, **kwargs):
        value = F.l1_loss(a, b, *args, **kwargs)
        losses.append(value.item())
        return value
    f = types.SimpleNamespace(**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")})
    f.l1_loss = l1_loss
    ns = {"torch": torch, "nn": nn, "F": f, "print": quiet}
    src.run("network/gan.py", ns, names=("GeneratorA",))
    generator = ns["GeneratorA"](nz=port.NZ, nc=port.OFFICIAL_CHANNELS, img_size=port.OFFICIAL_SIDE)
    generator.load_state_dict(generators["dfad"].state_dict())
    result = {}
    record_start(result, teacher, student, generator)
    ns["vp"] = types.SimpleNamespace(add_scalar=quiet, add_image=quiet)
    src.run("DFAD_cifar.py", ns, names=("train",))
    # main()'s optimizers with its argument defaults (lr_S 0.1, weight_decay 5e-4, lr_G 1e-3).
    optimizer_s = RecordingSGD(student.parameters(), lr=0.1, weight_decay=5e-4, momentum=0.9)
    optimizer_g = RecordingAdam(generator.parameters(), lr=1e-3)
    args = types.SimpleNamespace(epoch_itrs=iterations, batch_size=B, nz=port.NZ, log_interval=10)
    torch.manual_seed(SEED)
    ns["train"](args, teacher=t, student=s, generator=generator, device="cpu",
                optimizer=[optimizer_s, optimizer_g], epoch=1)
    # Per iteration: 5 student L1 losses, then the generator's (its loss is minus the L1).
    per = 6
    result["student.loss"] = scalars([v for i, v in enumerate(losses) if i % per != per - 1])
    result["gen.discrepancy"] = scalars([-v for i, v in enumerate(losses) if i % per == per - 1])
    result["lr.generator"] = scalars(optimizer_g.lrs)
    result["lr.student"] = scalars(optimizer_s.lrs)
    # The student sees each student step's batch once, then the generator step's batch.
    images = [x for i, x in enumerate(s.seen) if i % per != per - 1]
    return record_end(result, student, generator, images)


# ---- ZSKT ----
def run_zskt(src, pseudo_batches=3):
    teacher, student, generators = start()
    t, s = Net(teacher, "zskt"), Net(student, "zskt")
    made = []
    ns = {"torch": torch, "nn": nn, "F": F, "optim": recording_optim(made), "print": quiet,
          "os": __import__("os"), "shutil": __import__("shutil"), "time": __import__("time").time,
          "math": __import__("math")}
    src.run("models/generator.py", ns, names=("View", "Generator"))
    src.run("utils/helpers.py", ns, names=("AggregateScalar", "accuracy", "str2bool"))
    src.run("utils/loaders.py", ns, names=("LearnableLoader",))
    src.run("solver.py", ns, names=("ZeroShotKTSolver",))
    argv = ["--dataset", "CIFAR10", "--total_n_pseudo_batches", str(pseudo_batches),
            "--n_generator_iter", "1", "--n_student_iter", "10", "--batch_size", str(B),
            "--z_dim", str(port.NZ)]
    main_ns = {"argparse": argparse, "str2bool": ns["str2bool"]}
    src.run("main.py", main_ns, parser=True, main_block=True)
    args = main_ns["parser"].parse_args(argv)
    log_dir = tempfile.mkdtemp()
    # What the main block sets after parsing; log_freq so that nothing is tested or logged.
    args.total_n_pseudo_batches = int(args.total_n_pseudo_batches)
    args.device, args.log_directory_path, args.experiment_name = "cpu", log_dir, "run"
    args.log_freq = 10 ** 9
    args.save_model_path = log_dir

    def select_model(**kwargs):
        return t if kwargs.get("pretrained") else s

    class Logger:
        def __init__(self, *a, **k):
            pass
    ns.update(select_model=select_model, get_test_loader=lambda args: [], Logger=Logger)
    solver = ns["ZeroShotKTSolver"](args)
    # Its loaders' generator, at make_reference's start, its first code drawn after the seed.
    solver.generator.generator.load_state_dict(generators["zskt"].state_dict())
    result = {}
    record_start(result, teacher, student, solver.generator.generator, port.ZSKT_NAMES)
    torch.manual_seed(SEED)
    solver.generator.z = torch.randn((B, port.NZ))
    losses = {"gen": [], "student": [], "divergence": [], "attention": []}

    def wrap(name, key):
        method = getattr(solver, name)

        def call(*a, **k):
            value = method(*a, **k)
            losses[key].append(value.item())
            return value
        setattr(solver, name, call)
    wrap("KT_loss_generator", "gen")
    wrap("KT_loss_student", "student")
    wrap("divergence", "divergence")
    wrap("attention_diff", "attention")
    solver.run()
    optimizer_g, optimizer_s = made
    per = 11  # the student network sees the generator step's batch, then 10 student steps'
    images = [x for i, x in enumerate(s.seen) if i % per != 0]
    # divergence runs once per generator step and once per student step: the student's are the
    # 10 of each 11.
    divergence = losses["divergence"]
    result["gen.divergence"] = scalars(losses["gen"])  # the term as ardkit logs it: -KL
    result["student.loss"] = scalars(losses["student"])
    result["student.divergence"] = scalars([v for i, v in enumerate(divergence) if i % per != 0])
    result["student.attention"] = scalars(losses["attention"])
    result["lr.generator"] = scalars(optimizer_g.lrs)
    result["lr.student"] = scalars(optimizer_s.lrs)
    # LearnableLoader runs the generator again for each of the 10 student steps (the same images:
    # its BatchNorm normalizes with the batch's statistics); ardkit synthesizes them once. Only
    # the generator's running statistics, which no training step reads, differ.
    for k in solver.generator.generator.state_dict():
        if "running_" in k or "num_batches" in k:
            prefix, _, rest = k.rpartition(".")
            result[f"skip.generator.{port.ZSKT_NAMES[prefix]}.{rest}"] = torch.tensor(1)
    return record_end(result, student, solver.generator.generator, images, port.ZSKT_NAMES)


# ---- FERD ----
class FerdTeacher(nn.Module):
    """TapNet with FERD's IFD teacher conventions (models/wideresnet_ifd.py): `pop=3` returns the
    feature map the IFD perturbs (TapNet's block), `intermediate_propagate=3` runs the rest of
    the network from it; plain calls give the logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def head(self, block):
        return self.net.fc(F.avg_pool2d(block, 2).flatten(1))

    def forward(self, x, intermediate_propagate=0, pop=0):
        if intermediate_propagate == 3:
            return self.head(x)
        block = F.relu(self.net.bn(self.net.conv(x)))
        return block if pop == 3 else self.head(block)


class Logits(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[0]


class Identity:
    """kornia's augmentations, switched off (their random draws are kornia's own)."""

    def __init__(self, *a, **k):
        pass

    def __call__(self, x):
        return x


# test.py main()'s update of the class-sampling probabilities after each epoch.
CLASS_MAX, CLASS_MIN = 0.2, 0.05


def ferd_label_prob(labels_loss):
    lo, hi = labels_loss.min(), labels_loss.max()
    prob = (labels_loss - lo) / (hi - lo + 1e-8)
    prob = prob * (CLASS_MAX - CLASS_MIN) + CLASS_MIN
    return prob / prob.sum()


def run_ferd(src, epochs=2, steps=3):
    teacher, student, _ = start()
    t, s = FerdTeacher(teacher), Logits(student)
    s.eval()
    ns = {"torch": torch, "nn": nn, "F": F, "optim": optim, "print": quiet,
          "random": __import__("random")}
    src.run("models/generator.py", ns, names=("Generator",))
    src.run("models/IFP.py", ns, names=("InformativeFeaturePackage",))
    src.run("networks/deepinversion.py", ns, names=("DeepInversionHook", "InstanceMeanHook"))
    src.run("query_sample.py", ns, names=("pgd_attack",))
    losses = src.run("losses.py", {"torch": torch, "F": F}, names=("T", "dkl_loss",
                                                                  "KT_loss_student"))
    official_pgd = ns["pgd_attack"]

    def pgd_attack(model, images, _teacher_logits, labels):
        # The one-line fix: the official call passes the teacher's logits as the labels and the
        # labels as eps (a TypeError at the first epoch's end); and its pgd_attack returns the
        # teacher in train(), which ardkit's frozen teacher never is.
        adv = official_pgd(model, images, labels)
        model.eval()
        return adv
    ns.update(pgd_attack=pgd_attack,
              L=types.SimpleNamespace(dkl_loss=losses["dkl_loss"],
                                      KT_loss_student=losses["KT_loss_student"]),
              deepinversion=types.SimpleNamespace(DeepInversionHook=ns["DeepInversionHook"],
                                                  InstanceMeanHook=ns["InstanceMeanHook"]),
              augmentation=types.SimpleNamespace(RandomCrop=Identity,
                                                 RandomHorizontalFlip=Identity,
                                                 RandomResizedCrop=Identity),
              transforms=types.SimpleNamespace(Compose=lambda ts: Identity()))
    src.run("IBD_module_cmi.py", ns, names=("reset_model", "MultiTransform", "MLPHead",
                                            "MemoryBank", "Train_Gen_Module"))
    generator = ns["Generator"](nz=port.NZ, ngf=64, img_size=port.OFFICIAL_SIDE,
                                nc=port.OFFICIAL_CHANNELS)
    # test.sh's CIFAR-10 weights (adv 1, bn 5, oh 1, uni 5) and learning rates; N_G = steps.
    args = types.SimpleNamespace(data="CIFAR10", int_pop=3, batch_size=B, gen_dim_z=port.NZ,
                                 N_G=steps, lr_G=2e-3, lr_z=0.015, adv=1.0, bn=5.0, oh=1.0,
                                 uni=5.0)
    helper = ns["Train_Gen_Module"](args, t, s, generator)
    result = {}
    # The generator's start is not recorded: reset_model redraws every weight each epoch.
    for k, v in port.state(teacher).items():
        fingerprint("start.teacher." + k, v, result)
    for k, v in port.state(student).items():
        fingerprint("start.student." + k, v, result)
    prob = torch.ones(10) / 10
    terms = {k: [] for k in ("loss", "bn", "adversarial", "one_hot", "uniformity")}
    torch.manual_seed(SEED)
    for epoch in range(epochs):
        best, labels, total, bn, adv, oh, uni, labels_loss = helper.train(prob)
        for k, v in zip(terms, (total, bn, adv, oh, uni)):
            terms[k].append(v)
        fingerprint(f"best.{epoch}", best, result)
        result[f"labels.{epoch}"] = labels.clone()
        result[f"labels_loss.{epoch}"] = labels_loss.detach().clone()
        prob = ferd_label_prob(labels_loss.detach())
        result[f"label_prob.{epoch}"] = prob.detach().clone()
    for k, v in terms.items():
        result["gen." + k] = scalars(v)
    for k, v in port.state(generator, FERD_NAMES).items():
        fingerprint("generator." + k, v, result)
    for k, v in port.state(teacher).items():  # untouched: FERD's teacher stays in eval()
        result["teacher." + k] = v
    for k, v in port.state(student).items():  # untouched: in eval() during synthesis
        result["student." + k] = v
    return result


# FERD's Generator (one conv_blocks Sequential) in ardkit's names (gan_generator.hpp).
FERD_NAMES = {"l1.0": "net.l1.0", "conv_blocks.0": "net.conv_blocks0.0",
              "conv_blocks.2": "net.conv_blocks1.0", "conv_blocks.3": "net.conv_blocks1.1",
              "conv_blocks.6": "net.conv_blocks2.0", "conv_blocks.7": "net.conv_blocks2.1",
              "conv_blocks.9": "net.conv_blocks2.3"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repos", required=True, help="folder of the official clones")
    parser.add_argument("--out", required=True)
    parser.add_argument("--cases", nargs="*", help="only these (default: all)")
    a = parser.parse_args()
    helpers.cpu_shims()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {
        "dafl": lambda: run_dafl(Source(a.repos, "Data-Efficient-Model-Compression")),
        "dfad": lambda: run_dfad(Source(a.repos, "Data-Free-Adversarial-Distillation")),
        "zskt": lambda: run_zskt(Source(a.repos, "ZeroShotKnowledgeTransfer")),
        "ferd": lambda: run_ferd(Source(a.repos, "FERD")),
    }
    for name, run in runs.items():
        if a.cases and name not in a.cases:
            continue
        result = run()
        torch.save(result, out / f"{name}.pt")
        losses = result["student.loss"] if "student.loss" in result else result["gen.loss"]
        print(f"{name}: {len(result)} tensors, losses {[round(v, 5) for v in losses.tolist()]}")


if __name__ == "__main__":
    main()
