"""Reference tensors for the objective differential tests, produced by the official repositories'
own code rather than by a port of it (tests/objectives/make_reference.py is the readable port; a
mistake in reading the official code could sit in both the port and the plugin, never here).

Run once, outside the test suite, on checkouts of the official repositories; the outputs are
committed under tests/objectives/official_reference/ and read by test_objectives.cpp:

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell \
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/objectives/run_official.py --repos DIR \
        --out tests/objectives/official_reference

(the variables pin PyTorch's kernels to their AVX2 paths and OpenBLAS to one thread, as
tests/CMakeLists.txt pins LibTorch's for the tests that read these files; the references in the
tree were written before the thread pin and pass with it, one step leaving no room to drift).

DIR holds one git clone per repository below, named by the repository's name (a bare clone
works too). The source of every file is read with `git show COMMIT:PATH` at the commit recorded
here, so local edits in the clones cannot leak in.

How the official code is run, without its data loading and training scripts' side effects:
the script parses each official file and executes only the named top-level definitions (the
training step functions, attack classes, loss modules, argparse declarations, schedule
functions) in a namespace that supplies what the script would have built at module level
(the tiny student and teacher of make_reference.py instead of CIFAR ResNets, a one-batch loader,
the optimizer). Their bodies run unchanged. What is substituted, and why:
  - `.cuda()` is the identity and torch.cuda.synchronize a no-op (CPU only here);
  - IAD's pre_train/attack_generator.py draws its uniform start with numpy; np.random.uniform is
    routed to torch's generator (same distribution; float32 draws widened to float64 and back,
    so bit-identical to torch's), because ardkit draws from torch's generator;
  - tqdm, loggers, progress bars, checkpoint saving and the per-epoch evaluation are no-ops;
  - RSLAD's CIFAR-100 teacher runs in float32 (`teacher.half()` needs CUDA's float16 softmax;
    the float16 path is checked against the port instead).
Values the official step keeps in local variables (the adversarial examples, loss terms) are
read from the frame when the official function returns (sys.setprofile), and the loss terms of
ARD from the official loss modules' outputs (forward hooks).

Learning rates: for every shipped CIFAR experiment with an official counterpart, the official
training loop is run for its full epoch count over two batches per epoch, and the learning rate
at every optimizer step is written to schedules.json.
"""
import argparse
import ast
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.autograd import Variable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_reference import TinyNet, make_inputs  # noqa: E402  (the port's network, weights, batch)

SEED = 1234
REPOS = {
    "AdversariallyRobustDistillation": ("goldblum/AdversariallyRobustDistillation",
                                        "779ade36d612bddb0a5a705fdd74efe7571a1381"),
    "RSLAD": ("zibojia/RSLAD", "c40e04f6c4edcd87431d0250b168d503b1293745"),
    "IAD": ("ZFancy/IAD", "a8091a8c7552cef43d8f3f28085426cb786ce9d3"),
    "AdaAD": ("boyellow/AdaAD", "9e5c6e5ff73052af196065439517562d37eff6e6"),
    "TRADES": ("yaodongyu/TRADES", "6e8e11b7c281371c2f027ffadfbaea80361f09de"),
    "FERD": ("mayaobuduyao/FERD", "c975d9e1a2cd75de1cd6287f6c1ef999d0532871"),
    "MTARD": ("zhaoshiji123/MTARD", "6480a1b40d6195e437a876639ea37b7b40c46a58"),
    "PeerAiD": ("jaewonalive/PeerAiD", "cd12e9210ceb43a68c104f3c4ca281ea991880b8"),
    "saad": ("HongsinLee/saad", "295121c5d2eed827b5b2d6aa42307de809bdfada"),
    "DGAD": ("kunsaram01/DGAD", "a0329c860570484e0835108985954f30bbb374ee"),
}


# ---- reading and executing official code ----
class Source:
    def __init__(self, root, name):
        self.repo, self.commit = REPOS[name]
        path = Path(root) / name
        self.git = path / ".git" if (path / ".git").exists() else path

    def text(self, file):
        return subprocess.run(["git", f"--git-dir={self.git}", "show", f"{self.commit}:{file}"],
                              check=True, capture_output=True, text=True).stdout

    def cite(self, file, what):
        return f"{self.repo}@{self.commit[:8]}:{file} {what}"


def defined_name(node):
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
            node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def is_parser_statement(node):
    """`parser = argparse.ArgumentParser(...)` and `parser.add_argument(...)`."""
    if defined_name(node) == "parser":
        return True
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr == "add_argument")


def run_official(source, file, ns, names=(), parser=False, select=None):
    """Executes the top-level statements of `file` that define `names` (in file order), the
    argparse declarations when `parser`, and any statement `select(node, text)` accepts."""
    text = source.text(file)
    tree = ast.parse(text)
    keep = []
    for node in tree.body:
        if defined_name(node) in names or (parser and is_parser_statement(node)) or (
                select and select(node, ast.get_source_segment(text, node))):
            keep.append(node)
    missing = set(names) - {defined_name(n) for n in keep}
    if missing:
        raise SystemExit(f"{source.repo}:{file} defines no {sorted(missing)} at "
                         f"{source.commit}: wrong checkout?")
    exec(compile(ast.Module(body=keep, type_ignores=[]), f"{source.repo}/{file}", "exec"), ns)
    return ns


def official_args(ns, argv):
    return ns["parser"].parse_args(argv)


def base_namespace(**extra):
    ns = {"torch": torch, "nn": nn, "F": F, "optim": optim, "np": np, "Variable": Variable,
          "argparse": argparse, "time": time,
          "os": os, "device": "cpu", "use_cuda": False, "print": lambda *a, **k: None,
          "tqdm": Quiet}
    ns.update(extra)
    return ns


class Quiet(list):
    """tqdm / DataLoader stand-in: iterates the batches, ignores progress output."""
    def __init__(self, items=(), **kwargs):
        super().__init__(items)
        self.dataset = [None] * sum(len(b[0]) for b in self)

    def set_description(self, *args):
        pass


class Logger:
    def __init__(self, *args, **kwargs):
        pass

    def set_names(self, *args):
        pass

    def append(self, *args):
        pass

    def close(self):
        pass


class Locals:
    """Copies the local variables of the named official functions when they return."""
    def __init__(self, *functions):
        self.functions, self.values = set(functions), {}

    def __enter__(self):
        def profile(frame, event, arg):
            if event == "return" and frame.f_code.co_name in self.functions:
                self.values[frame.f_code.co_name] = dict(frame.f_locals)
        sys.setprofile(profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)


def cpu_shims():
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    torch.cuda.synchronize = lambda *a, **k: None
    # pre_train/attack_generator.py's numpy uniform start, drawn from torch's generator.
    np.random.uniform = lambda low, high, size: torch.empty(size).uniform_(
        low, high).double().numpy()


def sgd(net):
    return optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)


class Step:
    """One official step: `run(student, teacher, st_teacher, x, y, optimizer)` returns
    (x_adv, loss, {term: tensor}); the optimizer has stepped when it returns. `binary` runs it on
    batch_binary.pt (pixels exactly 0 or 1, where clipping a random start shows)."""
    def __init__(self, name, cite, run, binary=False):
        self.name, self.cite, self.run, self.binary = name, cite, run, binary
        # The newer methods' steps take the extra nets and return extra records too.
        self.several = run.__code__.co_argcount == 7
        self.labels = None  # other labels for this case (batch_NAME.pt)


# ---- ARD (goldblum) ----
def ard_namespace(src, student, teacher, batches, argv):
    ns = base_namespace(basic_net=student, teacher_net=teacher, trainloader=Quiet(batches))
    run_official(src, "main.py", ns, parser=True)
    ns["args"] = official_args(ns, argv)
    return run_official(src, "main.py", ns, names=(
        "adjust_learning_rate", "AttackPGD", "config", "net", "KL_loss", "XENT_loss", "lr",
        "train", "main"))


def ard_step(src):
    def run(s, t, u, x, y, opt):
        ns = ard_namespace(src, s, t, [(x, y)], ["--alpha", "0.9", "--save_period", "1000000"])
        terms = {}
        ns["KL_loss"].register_forward_hook(lambda m, i, o: terms.__setitem__("kl_adv", o))
        ns["XENT_loss"].register_forward_hook(lambda m, i, o: terms.__setitem__("clean_ce", o))
        with Locals("train") as frames:
            ns["train"](0, opt)
        f = frames.values["train"]
        return f["pert_inputs"], f["loss"], terms
    return Step("ard", src.cite("main.py", "train() with AttackPGD, --alpha 0.9"), run)


# ---- RSLAD (zibojia) ----
def rslad_loop(src, script, ns):
    """The script's top-level training loop, without its every-20-epochs test-set evaluation."""
    text = src.text(script)
    loop = next(n for n in ast.parse(text).body if isinstance(n, ast.For))
    loop = copy.deepcopy(loop)
    loop.body = [n for n in loop.body if "test_accs" not in ast.get_source_segment(text, n)]
    run_official(src, "rslad_loss.py", ns, names=("rslad_inner_loss",))
    run_official(src, script, ns, names=("kl_loss",))
    exec(compile(ast.Module(body=[loop], type_ignores=[]), f"{src.repo}/{script}", "exec"), ns)


def rslad_step(src, script, name):
    def run(s, t, u, x, y, opt):
        ns = base_namespace(student=s, teacher=t, optimizer=opt, trainloader=[(x, y)], epochs=1,
                            epsilon=8 / 255.0)
        with Locals("rslad_inner_loss") as frames:
            rslad_loop(src, script, ns)
        return (frames.values["rslad_inner_loss"]["x_adv"], ns["loss"],
                {"kl_adv": ns["kl_Loss1"], "kl_clean": ns["kl_Loss2"]})
    return Step(name, src.cite(script, "training loop and rslad_loss.py rslad_inner_loss"), run)


# ---- IAD (ZFancy) ----
def iad_namespace(src, file, student, teacher, st_teacher, batches, argv):
    ns = base_namespace(basic_net=student, teacher_net=teacher, teacher_st_net=st_teacher,
                        trainloader=Quiet(batches), Logger=Logger, out_dir=tempfile.mkdtemp(),
                        save_checkpoint=lambda *a, **k: None)
    run_official(src, file, ns, parser=True)
    ns["args"] = official_args(ns, argv)
    return run_official(src, file, ns, names=(
        "adjust_learning_rate", "AttackPGD", "config_train", "net", "KL_loss", "XENT_loss", "lr",
        "train", "main"))


def iad_step(src, file, name, epoch, argv):
    def run(s, t, u, x, y, opt):
        ns = iad_namespace(src, file, s, t, u, [(x, y)], argv)
        with Locals("train") as frames:
            ns["train"](epoch, opt, ns["net"], s, t)
        f = frames.values["train"]
        return f["pert_inputs"], f["loss"], {}
    return Step(name, src.cite(file, f"train(epoch={epoch}), args {argv}"), run)


def rice_namespace(src, model, argv):
    ns = base_namespace(model=model)
    run_official(src, "pre_train/attack_generator.py", ns, names=("PGD",))
    ns["attack"] = types.SimpleNamespace(PGD=ns["PGD"])
    run_official(src, "pre_train/AT.py", ns, parser=True)
    ns["args"] = official_args(ns, argv)
    return run_official(src, "pre_train/AT.py", ns, names=("train",), select=lambda n, t: (
        isinstance(n, ast.If) and "lr_schedule" in t.split("\n")[0]))


def rice_step(src):
    def run(s, t, u, x, y, opt):
        ns = rice_namespace(src, s, [])
        with Locals("train") as frames:
            ns["train"](0, s, Quiet([(x, y)]), opt)
        f = frames.values["train"]
        return f["x_adv"], f["loss"], {"adv_ce": f["loss"]}
    return Step("pgd_at", src.cite("pre_train/AT.py", "train() with attack_generator.PGD"), run)


# ---- AdaAD (boyellow) ----
def adaad_namespace(src, student, teacher, optimizer, batches, argv,
                    helpers=("adaad_inner_loss", "Madry_PGD")):
    """AdaAD's main.py train() with its AT_helper.py; DGAD's main.py is a fork of it."""
    ns = base_namespace(net=student, teacher_net=teacher, optimizer=optimizer,
                        trainloader=Quiet(batches),
                        utils=types.SimpleNamespace(progress_bar=lambda *a, **k: None))
    run_official(src, "AT_helper.py", ns, names=helpers)
    run_official(src, "main.py", ns, names=("get_args",))
    saved, sys.argv = sys.argv, ["main.py"] + argv
    try:
        ns["args"] = ns["get_args"]()
    finally:
        sys.argv = saved
    return run_official(src, "main.py", ns, names=("lr_decay", "train"))


def adaad_step(src, name, epoch, argv, terms, binary=False):
    def run(s, t, u, x, y, opt):
        ns = adaad_namespace(src, s, t, opt, [(x, y)], argv)
        with Locals("train") as frames:
            ns["train"](epoch)
        f = frames.values["train"]
        return f["adv_inputs"], f["loss"], {k: f[v] for k, v in terms.items()}
    return Step(name, src.cite("main.py", f"train(epoch={epoch}), args {argv}"), run, binary)


ADAAD_8 = ["--epsilon", "8", "--step_size", "2", "--num_steps", "10"]
# igdm.py as published (its swapped inner attack, step 8/255 in a 2/255 ball) and an alpha that
# makes the term count at epoch 1 of E = 200; test_objectives.cpp sets the attack to match.
IGDM = ["--epochs", "1", "--igdm_alpha", "50"]
DGAD = ["--method", "DGAD", "--bs", "8"] + ADAAD_8
PEERAID = ["--kd", "--temperature", "5", "--gamma1", "1", "--gamma2", "0.1", "--re_kd_temperature",
           "1", "--lamb1", "0.5", "--lamb2", "1", "--lamb3", "1", "--k_train", "10"]


# ---- TRADES (yaodongyu) ----
def trades_namespace(src, model, argv):
    ns = base_namespace(WideResNet=lambda: model)
    run_official(src, "trades.py", ns, names=("trades_loss",))
    run_official(src, "train_trades_cifar10.py", ns, parser=True)
    ns["args"] = official_args(ns, argv)
    return run_official(src, "train_trades_cifar10.py", ns, names=("train", "adjust_learning_rate"))


def trades_step(src):
    def run(s, t, u, x, y, opt):
        ns = trades_namespace(src, s, [])
        with Locals("trades_loss") as frames:
            ns["train"](ns["args"], s, "cpu", Quiet([(x, y)]), opt, 1)
        f = frames.values["trades_loss"]
        return f["x_adv"], f["loss"], {"clean_ce": f["loss_natural"], "kl_robust": f["loss_robust"]}
    return Step("trades", src.cite("train_trades_cifar10.py", "train() with trades.py trades_loss"),
                run)


# ---- learning rates at every step of the official training loops ----
# ---- FERD (mayaobuduyao) ----
def ferd_step(src):
    """test.py's train_model_ds_at for one student step (--N_S 1), with losses.py's dkl_loss and
    query_sample.py's generate_adv. Substituted: the synthetic-image pool on disk is the one
    batch, served in order (the official DataLoader shuffles it); the crop and flip (kornia,
    std_aug) are the identity, because in ardkit the engine augments the student's batch before
    the objective sees it; and generate_adv's random start is drawn right after reseeding, as
    ardkit's attack draws it first in its step."""
    def run(s, t, u, x, y, opt):
        class OneBatch:
            def __init__(self, *args, **kwargs):
                pass

            def next(self):
                return x, y

        def reseeded(generate_adv):
            def call(*args, **kwargs):
                torch.manual_seed(SEED)
                return generate_adv(*args, **kwargs)
            return call

        losses = run_official(src, "losses.py", base_namespace(), names=("T", "dkl_loss"))
        ns = base_namespace(L=types.SimpleNamespace(dkl_loss=losses["dkl_loss"]),
                            SyntheticDataset=lambda **k: None, DataIter=OneBatch,
                            std_aug=lambda v: v, NUM_CLASSES=10, save_mem_dir="")
        args = types.SimpleNamespace(batch_size=len(x), N_S=1)
        run_official(src, "query_sample.py", ns, names=("generate_adv",))
        ns["generate_adv"] = reseeded(ns["generate_adv"])
        run_official(src, "test.py", ns, names=("train_model_ds_at",))
        loader, torch.utils.data.DataLoader = torch.utils.data.DataLoader, lambda *a, **k: None
        try:
            with Locals("train_model_ds_at") as frames:
                loss, loss_dkl, loss_rob, _ = ns["train_model_ds_at"](args, nn.Identity(), s, t, opt, 1)
        finally:
            torch.utils.data.DataLoader = loader
        return frames.values["train_model_ds_at"]["x_adv"], loss, {
            "dkl_clean": loss_dkl, "dkl_adv": loss_rob}
    return Step("ferd", src.cite("test.py", "train_model_ds_at with losses.py dkl_loss and "
                                 "query_sample.py generate_adv"), run)


# ---- the 2022-2025 methods: several steps each, on `batches` ----
# A second teacher (MTARD's clean one) and PeerAiD's peer: TinyNets of their own seeds, saved
# next to the others (clean_teacher.pt, peer.pt) for test_objectives.cpp.
def extra_nets(out):
    torch.manual_seed(1)
    clean, peer = TinyNet(), TinyNet()
    with torch.no_grad():
        clean.fc.weight.mul_(4)
    clean.eval()
    for p in clean.parameters():
        p.requires_grad_(False)
    torch.save(dict(clean.state_dict()), out / "clean_teacher.pt")
    torch.save(dict(peer.state_dict()), out / "peer.pt")
    return clean, peer


def top_level_loop(src, script, ns, drop="test_accs"):
    """Runs the script's top-level `for epoch` training loop without the statements of its body
    that evaluate on the test set (those that mention `drop`)."""
    text = src.text(script)
    loop = next(n for n in ast.parse(text).body
                if isinstance(n, ast.For) and ast.get_source_segment(text, n).startswith(
                    "for epoch"))
    loop = copy.deepcopy(loop)
    loop.body = [n for n in loop.body if drop not in ast.get_source_segment(text, n)]
    exec(compile(ast.Module(body=[loop], type_ignores=[]), f"{src.repo}/{script}", "exec"), ns)


def mtard_step(src, name, epochs, batches):
    """mtard_resnet18_cifar10.py's training loop, its every-20-epochs test left out."""
    script = "mtard/mtard_resnet18_cifar10.py"

    def run(s, t, u, x, y, opt, nets):
        ns = base_namespace(student=s, teacher=t, teacher_nat=nets["clean"], optimizer=opt,
                            trainloader=[(x, y)] * batches)
        run_official(src, "mtard/mtard_loss.py", ns, names=("mtard_inner_loss_ce",))
        run_official(src, script, ns, names=(
            "epsilon", "weight_learn_rate", "bert", "weight", "init_loss_nat", "init_loss_adv",
            "kl_loss"))
        ns["epochs"] = epochs
        with Locals("mtard_inner_loss_ce") as frames:
            top_level_loop(src, script, ns)
        return (frames.values["mtard_inner_loss_ce"]["x_adv"], ns["total_loss"],
                {"kl_adv": ns["kl_Loss1"], "kl_nat": ns["kl_Loss2"],
                 "w_nat": torch.tensor(ns["weight"]["nat_loss"])}, {})
    return Step(name, src.cite(script, f"training loop, {epochs} epochs x {batches} batches"),
                run)


def igdm_step(src, name, argv, batches):
    """igdm.py's training loop (AdaAD base), its per-epoch test left out."""
    def run(s, t, u, x, y, opt, nets):
        ns = base_namespace(student=s, teacher=t, optimizer=opt, trainloader=[(x, y)] * batches,
                            progress_bar=types.SimpleNamespace(prog=lambda *a, **k: None),
                            ArgumentParser=argparse.ArgumentParser)
        run_official(src, "attacks.py", ns, names=("adaad_inner_loss",))
        run_official(src, "args.py", ns, names=("create_parser",))
        ns["args"] = ns["create_parser"]().parse_known_args(argv)[0]
        run_official(src, "igdm.py", ns, names=("criterion_kl",))
        with Locals("adaad_inner_loss") as frames:
            top_level_loop(src, "igdm.py", ns)
        return (frames.values["adaad_inner_loss"]["x_adv"], ns["loss"],
                {"kl_adv": ns["kl_loss"], "igdm": ns["IGDM_loss"]}, {})
    return Step(name, src.cite("igdm.py", f"training loop, args {argv}, {batches} batches"), run)


def dgad_step(src, name, argv, batches):
    """main.py train(0) with --method DGAD and AT_helper.py's adaad_inner_loss."""
    def run(s, t, u, x, y, opt, nets):
        ns = adaad_namespace(src, s, t, opt, [(x, y)] * batches, argv, ("adaad_inner_loss",))
        with Locals("train") as frames:
            ns["train"](0)
        f = frames.values["train"]
        terms = {"kl_clean": f["loss_clean"], "kl_adv": f["loss_adv"], "alp": f["loss_alp"],
                 "teacher_wrong": torch.tensor(f["num_lambda"] / len(x))}
        return f["adv_inputs"], f["loss"], terms, {}
    step = Step(name, src.cite("main.py", f"train(0), args {argv}, {batches} batches"), run)
    step.labels = "dgad"  # the teacher right on half the batch, so both of DGAD's groups count
    return step


def peeraid_step(src, name, argv, batches):
    """main.py train_kd(0) with attack_function.py's LinfPeerAttack; the peer trains with its
    own SGD, the student's settings."""
    def run(s, t, u, x, y, opt, nets):
        peer = nets["peer"]
        peer_opt = sgd(peer)
        ns = base_namespace(train_loader=[(x, y)] * batches)
        run_official(src, "main.py", ns, parser=True)
        ns["args"] = official_args(ns, argv)
        run_official(src, "attack_function.py", ns, names=("LinfPeerAttack",))
        ns.update(peer_net=peer, student_net=s, student_optimizer=opt, peer_optimizer=peer_opt,
                  k_train=ns["args"].k_train,
                  peer_criterion=nn.CrossEntropyLoss(),
                  adversary_student_training=ns["LinfPeerAttack"](s, 8 / 255, 2 / 255))
        run_official(src, "main.py", ns, names=("train_kd",))
        with Locals("train_kd", "perturb") as frames:
            ns["train_kd"](0)
        f = frames.values["train_kd"]
        loss = f["loss_total"]
        terms = {"peer_loss": f["loss_peer"], "student_loss": f["loss_student"]}
        extra = {"peer_after." + k: v.detach().clone() for k, v in peer.state_dict().items()}
        return frames.values["perturb"]["x"], loss, terms, extra
    return Step(name, src.cite("main.py", f"train_kd(0), args {argv}, {batches} batches"), run)


class RecordingSGD(optim.SGD):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lrs = []

    def step(self, closure=None):
        self.lrs.append(self.param_groups[0]["lr"])
        return super().step(closure)


def schedules(sources, student, teacher, st_teacher, x, y, only=None):
    """The official learning rate at every step of each shipped paper setting (`only`: of these
    experiments)."""
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]  # two steps per epoch
    out = {}

    def recording(net, lr=0.1):
        return RecordingSGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=2e-4)

    ard = sources["AdversariallyRobustDistillation"]

    def main_lrs(ns):
        """Runs the script's own main() with a recording SGD and no per-epoch test."""
        holder = {}
        ns["optim"] = types.SimpleNamespace(SGD=lambda *a, **k: holder.setdefault(
            "opt", RecordingSGD(*a, **k)))
        ns["test"] = lambda *a: (0.0, 0.0)
        ns["main"]()
        return holder["opt"].lrs, ns["args"].epochs

    def ard_lrs():
        ns = ard_namespace(ard, copy.deepcopy(student), teacher, batches,
                           ["--save_period", "1000000"])
        return (*main_lrs(ns), ard.cite("main.py", "main()"))

    iad = sources["IAD"]

    def iad_lrs():
        ns = iad_namespace(iad, "IAD-I.py", copy.deepcopy(student), teacher, st_teacher, batches,
                           [])
        return (*main_lrs(ns), iad.cite("IAD-I.py", "main()"))

    rslad = sources["RSLAD"]

    def rslad_lrs(script):
        def run():
            s = copy.deepcopy(student)
            opt = recording(s)
            ns = base_namespace(student=s, teacher=teacher, optimizer=opt,
                                trainloader=batches, epochs=300, epsilon=8 / 255.0)
            run_official(rslad, script, ns, names=("epochs",))
            ns["trainloader"] = batches
            rslad_loop(rslad, script, ns)
            return opt.lrs, ns["epochs"], rslad.cite(script, "training loop")
        return run

    ada = sources["AdaAD"]

    def adaad_lrs(argv):
        def run():
            s = copy.deepcopy(student)
            opt = recording(s)
            ns = adaad_namespace(ada, s, teacher, opt, batches, argv)
            for epoch in range(ns["args"].epochs):  # main()'s loop, without test() and its log
                ns["train"](epoch)
            return opt.lrs, ns["args"].epochs, ada.cite("main.py", f"train() per epoch, {argv}")
        return run

    trades = sources["TRADES"]

    def trades_lrs():
        s = copy.deepcopy(student)
        opt = recording(s)
        ns = trades_namespace(trades, s, [])
        for epoch in range(1, ns["args"].epochs + 1):  # main()'s loop, without evaluation
            ns["adjust_learning_rate"](opt, epoch)
            ns["train"](ns["args"], s, "cpu", Quiet(batches), opt, epoch)
        return opt.lrs, ns["args"].epochs, trades.cite("train_trades_cifar10.py",
                                                       "adjust_learning_rate + train")

    def rice_lrs():
        s = copy.deepcopy(student)
        opt = recording(s)
        ns = rice_namespace(iad, s, [])
        for epoch in range(ns["args"].epochs):  # the script's loop, without evaluation
            ns["train"](epoch, s, Quiet(batches), opt)
        return opt.lrs, ns["args"].epochs, iad.cite("pre_train/AT.py", "train() per epoch")

    mtard = sources["MTARD"]

    def mtard_lrs(script):
        def run():
            s = copy.deepcopy(student)
            opt = recording(s)
            ns = base_namespace(student=s, teacher=teacher, teacher_nat=teacher, optimizer=opt,
                                trainloader=batches)
            run_official(mtard, "mtard/mtard_loss.py", ns, names=("mtard_inner_loss_ce",))
            run_official(mtard, script, ns, names=(
                "epochs", "epsilon", "weight_learn_rate", "bert", "weight", "init_loss_nat",
                "init_loss_adv", "kl_loss"))
            top_level_loop(mtard, script, ns)
            return opt.lrs, ns["epochs"], mtard.cite(script, "training loop")
        return run

    saad = sources["saad"]

    def igdm_lrs():
        s = copy.deepcopy(student)
        opt = recording(s)
        ns = base_namespace(student=s, teacher=teacher, optimizer=opt, trainloader=batches,
                            progress_bar=types.SimpleNamespace(prog=lambda *a, **k: None),
                            ArgumentParser=argparse.ArgumentParser)
        run_official(saad, "attacks.py", ns, names=("adaad_inner_loss",))
        run_official(saad, "args.py", ns, names=("create_parser",))
        ns["args"] = ns["create_parser"]().parse_known_args([])[0]
        run_official(saad, "igdm.py", ns, names=("criterion_kl",))
        top_level_loop(saad, "igdm.py", ns)
        return opt.lrs, ns["args"].epochs, saad.cite("igdm.py", "training loop")

    dgad = sources["DGAD"]

    def dgad_lrs():
        s = copy.deepcopy(student)
        opt = recording(s)
        labels = y.clone()  # the teacher right on half of each batch (main.py divides by it)
        with torch.no_grad():
            labels[::2] = teacher(x).argmax(1)[::2]
        ns = adaad_namespace(dgad, s, teacher, opt, [(x[:4], labels[:4]), (x[4:], labels[4:])],
                             ["--method", "DGAD"] + ADAAD_8, ("adaad_inner_loss",))
        for epoch in range(ns["args"].epochs):  # main()'s loop, without test() and its log
            ns["train"](epoch)
        return opt.lrs, ns["args"].epochs, dgad.cite("main.py", "train() per epoch")

    peeraid = sources["PeerAiD"]

    def peeraid_lrs(config):
        def run():
            s, peer = copy.deepcopy(student), copy.deepcopy(student)
            opt, peer_opt = recording(s), recording(peer)
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                f.write(peeraid.text(config))
            # train_kd detaches its inputs in place, which views of x cannot be.
            ns = base_namespace(train_loader=[(bx.clone(), by.clone()) for bx, by in batches],
                                open=open, json=json)
            run_official(peeraid, "main.py", ns, parser=True)
            ns["args"] = official_args(ns, ["--kd", "--config_path", f.name])
            # The script's own reading of the config (lr_decay_epochs_*), then its epoch loop.
            run_official(peeraid, "main.py", ns, select=lambda n, t: isinstance(n, ast.If) and (
                t.startswith("if args.config_path")))
            run_official(peeraid, "attack_function.py", ns, names=("LinfPeerAttack",))
            ns.update(peer_net=peer, student_net=s, student_optimizer=opt,
                      peer_optimizer=peer_opt, peer_criterion=nn.CrossEntropyLoss(),
                      k_train=ns["args"].k_train, learning_rate_student=ns["args"].lr_student,
                      learning_rate_peer=ns["args"].lr_peer, test_kd=lambda epoch: None,
                      save_checkpoint=lambda *a, **k: None,
                      adversary_student_training=ns["LinfPeerAttack"](s, 8 / 255, 2 / 255))
            run_official(peeraid, "main.py", ns, names=("train_kd", "adjust_learning_rate",
                                                        "file_name"),
                         select=lambda n, t: isinstance(n, ast.Assign) and t.startswith(
                             ("best_", "at_natural_")))
            ns["swa_n_student"] = 0
            ns["args"].start_epoch = 0
            text = peeraid.text("main.py")
            loop = next(n for n in ast.parse(text).body if isinstance(n, ast.For)
                        and ast.get_source_segment(text, n).startswith("for epoch"))
            exec(compile(ast.Module(body=[loop], type_ignores=[]), "PeerAiD/main.py", "exec"), ns)
            assert peer_opt.lrs == opt.lrs, "the peer's schedule differs from the student's"
            return opt.lrs, ns["args"].total_epoch, peeraid.cite(
                "main.py", f"adjust_learning_rate + train_kd per epoch, {config}")
        return run

    runs = {
        "cifar10/mtard.toml": mtard_lrs("mtard/mtard_resnet18_cifar10.py"),
        "cifar100/mtard.toml": mtard_lrs("mtard/mtard_resnet18_cifar100.py"),
        "cifar10/igdm.toml": igdm_lrs, "cifar100/igdm.toml": igdm_lrs,
        "cifar10/dgad.toml": dgad_lrs, "cifar100/dgad.toml": dgad_lrs,
        "cifar10/peeraid.toml": peeraid_lrs("configs/PeerAiD_resnet18_cifar10.json"),
        "cifar100/peeraid.toml": peeraid_lrs("configs/PeerAiD_resnet18_cifar100.json"),
        "cifar10/ard.toml": ard_lrs, "cifar100/ard.toml": ard_lrs,
        "cifar10/iad.toml": iad_lrs, "cifar100/iad.toml": iad_lrs,
        "cifar10/rslad.toml": rslad_lrs("resnet18_rslad_cifar10.py"),
        "cifar100/rslad.toml": rslad_lrs("resnet18_rslad_cifar100.py"),
        "cifar10/adaad.toml": adaad_lrs(["--method", "AdaAD"] + ADAAD_8),
        "cifar100/adaad.toml": adaad_lrs(["--method", "AdaAD", "--dataset", "CIFAR100"] + ADAAD_8),
        "cifar10/adaiad.toml": adaad_lrs(["--method", "AdaAD_with_IAD1"] + ADAAD_8),
        "cifar10/pgd_at_adaad.toml": adaad_lrs(["--method", "Plain_Madry", "--epochs", "110"]
                                               + ADAAD_8),
        "cifar10/trades.toml": trades_lrs, "cifar100/trades.toml": trades_lrs,
        "cifar10/pgd_at.toml": rice_lrs, "cifar100/pgd_at.toml": rice_lrs,
    }
    cache = {}
    for experiment, run in runs.items():
        if only is not None and experiment not in only:
            continue
        if run not in cache:
            torch.manual_seed(SEED)
            cache[run] = run()
        lrs, epochs, cite = cache[run]
        assert len(lrs) == epochs * len(batches), (experiment, len(lrs))
        out[experiment] = {"source": cite, "epochs": epochs, "steps_per_epoch": len(batches),
                           "lr": lrs}
        print(f"{experiment}: {epochs} epochs, lr {sorted(set(lrs), reverse=True)}")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repos", required=True, help="folder of the official clones")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--cases", default="",
                        help="comma-separated cases to (re)write, keeping the others and the "
                        "schedules in OUT/official.json; only their repositories are needed")
    parser.add_argument("--schedules", default="",
                        help="with --cases: comma-separated experiments whose schedules to "
                        "(re)write too, keeping the others")
    a = parser.parse_args()
    only = set(filter(None, a.cases.split(",")))
    only_schedules = set(filter(None, a.schedules.split(",")))
    sources = {name: Source(a.repos, name) for name in REPOS}
    a.out.mkdir(parents=True, exist_ok=True)
    out = a.out.resolve()
    student, teacher, st_teacher, x, y = make_inputs(out)
    clean_teacher, peer = extra_nets(out)
    y_dgad = y.clone()
    with torch.no_grad():
        y_dgad[::2] = teacher(x).argmax(1)[::2]
    torch.save({"x": x, "y": y_dgad}, out / "batch_dgad.pt")
    labels = {"dgad": y_dgad}
    x_binary = (x > 0.5).float()
    torch.save({"x": x_binary, "y": y}, out / "batch_binary.pt")
    cpu_shims()
    warnings.filterwarnings("ignore")  # the official code's deprecated size_average/reduce
    os.chdir(tempfile.mkdtemp())  # anything an official function writes lands here
    ard, rslad, iad = (sources[n] for n in ("AdversariallyRobustDistillation", "RSLAD", "IAD"))
    ada, trades = sources["AdaAD"], sources["TRADES"]
    steps = [
        ard_step(ard),
        rslad_step(rslad, "resnet18_rslad_cifar10.py", "rslad"),
        rslad_step(rslad, "resnet18_rslad_cifar100.py", "rslad_cifar100"),
        iad_step(iad, "IAD-I.py", "iad1", 60, ["--alpha", "0.9"]),
        iad_step(iad, "IAD-I.py", "iad1_before_begin", 59, ["--alpha", "0.9"]),
        iad_step(iad, "IAD-II.py", "iad2", 40, []),
        iad_step(iad, "IAD-II.py", "iad2_before_begin", 39, []),
        adaad_step(ada, "adaad", 0, ["--method", "AdaAD", "--AdaAD_alpha", "0.8"] + ADAAD_8,
                   {"kl_adv": "kl_loss1", "kl_clean": "kl_loss2"}),
        adaad_step(ada, "adaad_cifar100", 0, ["--method", "AdaAD", "--AdaAD_alpha", "0.8",
                                              "--dataset", "CIFAR100"] + ADAAD_8,
                   {"kl_adv": "kl_loss1", "kl_clean": "kl_loss2"}),
        adaad_step(ada, "adaiad", 60, ["--method", "AdaAD_with_IAD1", "--IAD_alpha", "0.9"]
                   + ADAAD_8, {}),
        adaad_step(ada, "adaiad_before_begin", 59, ["--method", "AdaAD_with_IAD1",
                                                     "--IAD_alpha", "0.9"] + ADAAD_8, {}),
        adaad_step(ada, "pgd_at_adaad", 0, ["--method", "Plain_Madry"] + ADAAD_8,
                   {"adv_ce": "adv_loss"}),
        # One step: later steps that touch the ball's or [0,1]'s boundary erase the start.
        adaad_step(ada, "pgd_at_adaad_binary", 0, ["--method", "Plain_Madry", "--epsilon", "8",
                                                    "--step_size", "2", "--num_steps", "1"],
                   {"adv_ce": "adv_loss"}, binary=True),
        trades_step(trades),
        rice_step(iad),
        ferd_step(sources["FERD"]),
        mtard_step(sources["MTARD"], "mtard", 1, 1),
        mtard_step(sources["MTARD"], "mtard_3", 1, 3),
        igdm_step(sources["saad"], "igdm", IGDM, 1),
        igdm_step(sources["saad"], "igdm_3", IGDM + ["--epochs", "2"], 2),
        dgad_step(sources["DGAD"], "dgad", DGAD, 1),
        dgad_step(sources["DGAD"], "dgad_3", DGAD, 3),
        peeraid_step(sources["PeerAiD"], "peeraid", PEERAID, 1),
        peeraid_step(sources["PeerAiD"], "peeraid_3", PEERAID, 3),
    ]
    manifest = {"repositories": {r: c for r, c in REPOS.values()}, "cases": {}}
    if only:
        unknown = only - {step.name for step in steps}
        if unknown:
            raise SystemExit(f"--cases: no case {sorted(unknown)}")
        manifest = json.loads((out / "official.json").read_text())
        manifest["repositories"] = {r: c for r, c in REPOS.values()}
        steps = [step for step in steps if step.name in only]
    for step in steps:
        s = copy.deepcopy(student)
        opt = sgd(s)
        opt.zero_grad()
        torch.manual_seed(SEED)
        inputs = x_binary if step.binary else x
        targets = labels[step.labels] if step.labels else y
        nets = {"clean": clean_teacher, "peer": copy.deepcopy(peer)}
        if step.several:
            x_adv, loss, terms, extra = step.run(s, teacher, st_teacher, inputs.clone(),
                                                 targets.clone(), opt, nets)
        else:
            (x_adv, loss, terms), extra = step.run(s, teacher, st_teacher, inputs.clone(),
                                                   y.clone(), opt), {}
        record = {"loss": loss.detach().float(), "x_adv": x_adv.detach().float(), **extra}
        for k, v in terms.items():
            record["term." + k] = v.detach().float()
        for k, v in s.state_dict().items():
            record["after." + k] = v.detach().clone()
        torch.save(record, out / (step.name + ".pt"))
        manifest["cases"][step.name] = step.cite
        print(f"{step.name}: loss {loss.item():.6f} ({step.cite})")
    if not only:
        manifest["schedules"] = schedules(sources, student, teacher, st_teacher, x, y)
    elif only_schedules:
        manifest["schedules"].update(
            schedules(sources, student, teacher, st_teacher, x, y, only_schedules))
    (out / "official.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"official reference written to {out}")


if __name__ == "__main__":
    main()
