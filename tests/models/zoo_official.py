"""Reference outputs of RobustBench's own architecture code for the zoo model plugins, made once
outside the test suite and committed under tests/models/zoo_reference/ (read by
tests/models/test_zoo_architectures.cpp):

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell \
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/models/zoo_official.py --robustbench DIR \
        --out tests/models/zoo_reference

(the variables pin PyTorch's kernels to their AVX2 paths and OpenBLAS to one thread, as
tests/CMakeLists.txt pins LibTorch's for the test that reads these files).

DIR is a clone of RobustBench/robustbench (bare works). The architecture file is read with
`git show COMMIT:PATH` at the commit below and executed unchanged; nothing else of RobustBench is
imported. For each case the script builds the zoo's class with the zoo's arguments (small depths
and widths: the definition, not the released size), draws random weights and BatchNorm statistics
(so eval mode is not the identity), and writes the state dict as the zoo stores it (torch.save of
model.state_dict(): a bare dict) with the eval-mode logits on fixed inputs. For the released
sizes it writes every state-dict key and shape, which the test compares with the plugin's; the
fixed-size networks (DMPreActResNet-18, ResNet-18) get weights from a formula the test recomputes
instead of a file. Each case also keeps the penultimate features (the final linear layer's
input), which feature-distillation objectives read.
"""
import argparse
import json
import subprocess
from pathlib import Path

import torch
import torch.nn as nn

COMMIT = "78fcc9e"  # RobustBench/robustbench, Merge pull request #210 (timm-fixes)
DM_WRN = "robustbench/model_zoo/architectures/dm_wide_resnet.py"
WRN = "robustbench/model_zoo/architectures/wide_resnet.py"
RESNET = "robustbench/model_zoo/architectures/resnet.py"
CIFAR10 = "robustbench/model_zoo/cifar10.py"


def load(repo, path):
    source = subprocess.run(["git", "--git-dir", str(repo), "show", f"{COMMIT}:{path}"],
                            check=True, capture_output=True, text=True).stdout
    namespace = {"__name__": "zoo_" + Path(path).stem}
    exec(compile(source, path, "exec"), namespace)
    return namespace


def load_class(repo, path, name, namespace):
    """One top-level class of a file that imports more than this script has (the zoo's cifar10.py
    imports timm): its definition alone, executed unchanged in `namespace`."""
    import ast
    source = subprocess.run(["git", "--git-dir", str(repo), "show", f"{COMMIT}:{path}"],
                            check=True, capture_output=True, text=True).stdout
    [node] = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == name]
    exec(compile(ast.Module(body=[node], type_ignores=[]), path, "exec"), namespace)
    return namespace[name]


def randomize(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(7)
    return model


def formula_weights(model):
    """Weights that a test can rebuild without a file: every state-dict entry, by its index k in
    the sorted key list and element j, from v = sin(0.7 j + 1.3 k + 0.1) in float64, then cast
    (tests/models/test_zoo_architectures.cpp computes the same): BatchNorm running_var 1 + 0.5 v,
    running_mean and every bias 0.1 v, a 1-D weight (BatchNorm's) 0.5 + 0.25 v, a layer's weight
    v / sqrt(fan_in), num_batches_tracked 7. For released sizes whose file would be too large."""
    state = model.state_dict()
    with torch.no_grad():
        for k, key in enumerate(sorted(state)):
            t = state[key]
            if key.endswith("num_batches_tracked"):
                t.fill_(7)
                continue
            v = torch.sin(0.7 * torch.arange(t.numel(), dtype=torch.float64) + (1.3 * k + 0.1))
            if key.endswith("running_var"):
                v = 1 + 0.5 * v
            elif key.endswith("running_mean") or key.endswith("bias"):
                v = 0.1 * v
            elif t.dim() == 1:
                v = 0.5 + 0.25 * v
            else:
                v = v / (t.numel() / t.shape[0]) ** 0.5
            t.copy_(v.reshape(t.shape).to(t.dtype))
    return model


def run_model(model, x):
    """Eval-mode logits and the penultimate features (the final linear layer's input, what the
    feature-distillation objectives read)."""
    [last] = [m for m in model.modules() if isinstance(m, nn.Linear)][-1:]
    seen = {}
    handle = last.register_forward_hook(lambda m, inputs, out: seen.update(features=inputs[0]))
    with torch.no_grad():
        logits = model(x)
    handle.remove()
    return {"x": x, "logits": logits, "features": seen["features"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--robustbench", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    repo = args.robustbench / ".git" if (args.robustbench / ".git").exists() else args.robustbench
    dm = load(repo, DM_WRN)
    DMWideResNet, Swish = dm["DMWideResNet"], dm["Swish"]
    c10 = dict(mean=dm["CIFAR10_MEAN"], std=dm["CIFAR10_STD"])
    c100 = dict(mean=dm["CIFAR100_MEAN"], std=dm["CIFAR100_STD"])
    # name -> (constructor, ardkit plugin parameters, classes)
    cases = {
        "dm_wrn_10_1_swish": (lambda: DMWideResNet(10, 10, 1, activation_fn=Swish, **c10),
                              {"depth": 10, "width": 1, "activation": "swish", **c10}, 10),
        # Width 1: the first group's block keeps its width (identity skip), the others project.
        "dm_wrn_10_1_relu_pad2": (lambda: DMWideResNet(10, 10, 1, padding=2, **c10),
                                  {"depth": 10, "width": 1, "padding": 2, **c10}, 10),
        "dm_wrn_10_1_silu_c100": (lambda: DMWideResNet(100, 10, 1, activation_fn=nn.SiLU, **c100),
                                  {"depth": 10, "width": 1, "activation": "swish", **c100}, 100),
    }
    wrn = load(repo, WRN)["WideResNet"]
    # The zoo's WideResNet (TRADES' definition; the Zhang2019, Chen2021LTD, Sehwag2021,
    # Addepalli2022, Carmon2019 entries), with and without its unused sub_block1.
    cases["wrn_10_1_sub_block1"] = (lambda: wrn(depth=10, widen_factor=1, sub_block1=True),
                                    {"depth": 10, "widen_factor": 1, "sub_block1": True}, 10)
    cases["wrn_16_1_c100"] = (lambda: wrn(depth=16, num_classes=100, widen_factor=1),
                              {"depth": 16, "widen_factor": 1, "sub_block1": False}, 100)
    # Rice et al. 2020 (cifar10/Linf/Rice2020Overfitting): the WideResNet with its normalisation
    # as buffers mu and sigma in the state dict.
    rice = load_class(repo, CIFAR10, "Rice2020OverfittingNet", {"WideResNet": wrn, "torch": torch})
    cases["wrn_rice_10_1"] = (lambda: rice(depth=10, widen_factor=1),
                              {"depth": 10, "widen_factor": 1, "sub_block1": False,
                               "normalization_buffers": True, **c10}, 10)
    plugins = {name: "wide_resnet" if name.startswith("wrn") else "dm_wide_resnet"
               for name in cases}
    args.out.mkdir(parents=True, exist_ok=True)
    index = {"commit": COMMIT, "cases": {}, "formula": {}, "shapes": {}}
    for seed, (name, (make, params, classes)) in enumerate(cases.items()):
        torch.manual_seed(100 + seed)
        model = randomize(make(), 200 + seed).eval()
        x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(300 + seed))
        torch.save(model.state_dict(), args.out / f"{name}.pt")
        torch.save(run_model(model, x), args.out / f"{name}.io.pt")
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
        index["cases"][name] = {"plugin": plugins[name], "params": params, "classes": classes}
    # The released WRN-28-10 (Gowal2020Uncovering_28_10_extra, Rebuffi2021Fixing_28_10_cutmix_ddpm,
    # Wang2023Better_WRN-28-10): its keys and shapes.
    big = DMWideResNet(10, 28, 10, activation_fn=Swish, **c10)
    index["shapes"]["dm_wide_resnet depth 28 width 10"] = {
        "plugin": "dm_wide_resnet", "params": {"depth": 28, "width": 10},
        "keys": [[k, list(v.shape)] for k, v in big.state_dict().items()]}
    # DMPreActResNet (Rebuffi2021Fixing_R18, Gowal2021Improving_R18) comes in one size only, too
    # large to commit: its weights are formula_weights(), rebuilt by the test.
    DMPreActResNet = dm["DMPreActResNet"]
    formula = {
        "dm_preact_18_swish": (lambda: DMPreActResNet(10, 18, activation_fn=Swish, **c10),
                               {"depth": 18, "activation": "swish", **c10}, 10),
        "dm_preact_18_relu_pad2_c100": (lambda: DMPreActResNet(100, 18, padding=2, **c100),
                                        {"depth": 18, "padding": 2, **c100}, 100),
    }
    # The zoo's ResNet-18 (Sehwag2021Proxy_R18, Addepalli2022Efficient_RN18) likewise.
    resnet = load(repo, RESNET)
    formula["resnet18"] = (resnet["ResNet18"], {"depth": 18}, 10)
    formula["resnet18_c100"] = (lambda: resnet["ResNet"](resnet["BasicBlock"], [2, 2, 2, 2],
                                                         num_classes=100), {"depth": 18}, 100)
    for seed, (name, (make, params, classes)) in enumerate(formula.items()):
        model = formula_weights(make()).eval()
        x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(400 + seed))
        torch.save(run_model(model, x), args.out / f"{name}.io.pt")
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
        index["formula"][name] = {"plugin": "resnet" if name.startswith("resnet")
                                  else "dm_preact_resnet", "params": params, "classes": classes}
    released = {
        "wide_resnet depth 34 widen_factor 10": (lambda: wrn(depth=34, widen_factor=10),
                                                 {"depth": 34, "widen_factor": 10,
                                                  "sub_block1": False}),
        "wide_resnet depth 28 widen_factor 10 sub_block1": (
            lambda: wrn(depth=28, widen_factor=10, sub_block1=True),
            {"depth": 28, "widen_factor": 10, "sub_block1": True}),
        "resnet depth 18": (resnet["ResNet18"], {"depth": 18}),
        "dm_preact_resnet depth 18": (lambda: DMPreActResNet(10, 18, activation_fn=Swish, **c10),
                                      {"depth": 18, "activation": "swish"}),
    }
    for label, (make, params) in released.items():
        plugin = label.split()[0]
        index["shapes"][label] = {
            "plugin": plugin, "params": params,
            "keys": [[k, list(v.shape)] for k, v in make().state_dict().items()]}
    (args.out / "index.json").write_text(json.dumps(index, indent=1) + "\n")


if __name__ == "__main__":
    main()
