"""Writes the PyTorch side of the interop tests into OUT: per architecture a state dict saved
exactly as PyTorch users save one (torch.save(model.state_dict(), f)), an input batch with the
logits PyTorch computes for it, TorchScript models, and checkpoint dicts in both file formats."""
import json
import os
import sys
from pathlib import Path

import torch

from reference_models import CASES, LeNet5, ResNet, TradesSmallCNN, WideResNet


def randomise_batch_norm(model, generator):
    """Non-trivial BN statistics and affine weights, so a swapped buffer changes the logits."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.normal_(0, 0.1, generator=generator)
                m.running_var.uniform_(0.5, 1.5, generator=generator)
                m.weight.uniform_(0.5, 1.5, generator=generator)
                m.bias.normal_(0, 0.1, generator=generator)
                m.num_batches_tracked.fill_(7)


class WithFeatures(torch.nn.Module):
    """A TorchScript model whose forward returns (logits, features)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net.maxpool1(self.net.relu1(self.net.conv1(x)))
        out = self.net.maxpool2(self.net.relu2(self.net.conv2(out)))
        features = self.net.relu3(self.net.conv3(out)).flatten(1)
        return self.net.fc2(self.net.relu4(self.net.fc1(features))), features


class ShellCommand:
    """Pickles as os.system(command): what a malicious checkpoint holds."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for i, (name, (plugin, params, (c, h, w, classes), build)) in enumerate(CASES.items()):
        torch.manual_seed(1000 + i)
        generator = torch.Generator().manual_seed(2000 + i)
        model = build()
        randomise_batch_norm(model, generator)
        model.eval()
        x = torch.rand(4, c, h, w, generator=generator)
        with torch.no_grad():
            logits = model(x)
        torch.save(model.state_dict(), out / f"{name}.pt")
        torch.save({"input": x, "logits": logits}, out / f"{name}.io.pt")
        manifest.append({"name": name, "plugin": plugin, "params": params, "channels": c,
                         "height": h, "width": w, "classes": classes,
                         "parameters": sum(p.numel() for p in model.parameters()),
                         "keys": list(model.state_dict().keys())})
    # The real teachers' sizes, names and counts only (no weights written): TRADES' WRN-34-10 and
    # ResNet-34 on CIFAR-100 sizes.
    for name, plugin, params, shape, build in [
            ("wide_resnet_34_10", "wide_resnet", {}, (3, 32, 32, 10), lambda: WideResNet(34, 10, 3, 10)),
            ("wide_resnet_34_10_c100", "wide_resnet", {}, (3, 32, 32, 100), lambda: WideResNet(34, 10, 3, 100))]:
        model = build()
        c, h, w, classes = shape
        manifest.append({"name": name, "plugin": plugin, "params": params, "channels": c, "height": h,
                         "width": w, "classes": classes, "shape_only": True,
                         "parameters": sum(p.numel() for p in model.parameters()),
                         "keys": list(model.state_dict().keys())})
    (out / "cases.json").write_text(json.dumps(manifest, indent=1))

    # A model zoo checkpoint at its released size (RobustBench's ResNet-18, kuangliu's definition:
    # cifar10/Linf/Sehwag2021Proxy_R18) in the layouts zoo files come in: a bare state dict, under
    # 'state_dict' with DataParallel's 'module.' prefixes, under 'model_state_dict'.
    torch.manual_seed(6)
    r18 = ResNet([2, 2, 2, 2], 3, 10)
    randomise_batch_norm(r18, torch.Generator().manual_seed(7))
    r18.eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        torch.save({"input": x, "logits": r18(x)}, out / "zoo_r18.io.pt")
    state = r18.state_dict()
    torch.save(state, out / "zoo_r18_bare.pt")
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 200},
               out / "zoo_r18_module.pt")
    torch.save({"model_state_dict": state, "best_acc": 84.59}, out / "zoo_r18_model_state_dict.pt")

    # A training checkpoint as the ARD/IAD/AdaAD scripts write one: DataParallel key prefixes,
    # the weights under 'state_dict', other Python values around them. Zip and legacy format.
    torch.manual_seed(5)
    trades = TradesSmallCNN(1, 10).eval()
    checkpoint = {"epoch": 12, "best_acc": 55.25, "arch": "SmallCNN", "flags": (True, None),
                  "state_dict": {"module." + k: v for k, v in trades.state_dict().items()},
                  "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9,
                                                               "params": [0, 1, 2]}]}}
    torch.save(checkpoint, out / "checkpoint_zip.pt")
    torch.save(checkpoint, out / "checkpoint_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(trades.state_dict(), out / "state_dict_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(trades, out / "whole_model.pt")  # the whole module pickled: not loadable, clearly
    # Pickles whose REDUCE would run a shell command if a reader executed what a file names (as
    # Python's unpickler does): beside real weights, and alone. Loading must run nothing.
    marker = out / "pickle_ran_a_command"
    marker.unlink(missing_ok=True)
    for fmt_name, zipped in (("zip", True), ("legacy", False)):
        torch.save({"state_dict": trades.state_dict(), "callback": ShellCommand(f"touch {marker}")},
                   out / f"reduce_beside_weights_{fmt_name}.pt", _use_new_zipfile_serialization=zipped)
        torch.save(ShellCommand(f"touch {marker}"), out / f"reduce_alone_{fmt_name}.pt",
                   _use_new_zipfile_serialization=zipped)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.save({"input": x, "logits": trades(x)}, out / "checkpoint.io.pt")
        # TorchScript: a traced model (logits only) and a scripted one with features.
        torch.jit.trace(trades, x).save(str(out / "trades.ts.pt"))
        torch.manual_seed(7)
        lenet = LeNet5(1, 10, padding=2).eval()
        with_features = torch.jit.script(WithFeatures(lenet))
        with_features.save(str(out / "lenet_features.ts.pt"))
        logits, features = with_features(x)
        torch.save({"input": x, "logits": trades(x), "lenet_logits": logits,
                    "lenet_features": features}, out / "torchscript.io.pt")
    print(f"wrote {len(manifest)} architectures and checkpoint fixtures to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
