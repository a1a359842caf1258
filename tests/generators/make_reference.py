"""PyTorch side of the generator differential tests: one generator update of each data-free
generator written the way its official code writes it, on tiny 8x8 BatchNorm networks:

  dafl      DAFL/DAFL-train.py (huawei-noah/Data-Efficient-Model-Compression@5e8f4e4c): Generator
            with BatchNorm2d(C, 0.8), oh*CE(T, argmax T) + ie*sum(p log10 p) + a*(-mean|f_T|),
            oh 1, ie 5, a 0.1, Adam lr 0.2; and the fork's natural log with ie 10
  dfad      VainF/Data-Free-Adversarial-Distillation@c161591a: GeneratorA,
            -F.l1_loss(S(G(z)), T(G(z))), Adam lr 1e-3
  zskt      polo5/ZeroShotKnowledgeTransfer@e24915d7: Generator, -F.kl_div(log_softmax(S),
            softmax(T)) (reduction 'mean'), grad-norm clip 5, Adam lr 1e-3; and the student's
            attention-transfer term on the updated generator's images
  bn_stats  DeepInversion BatchNorm hooks (||mu - running_mean||_2 + ||var - running_var||_2 per
            layer), CE to drawn labels, -KL batchmean; FERD@c975d9e1's generator (no inner
            biases, Sigmoid); Adam lr 2e-3 betas (0.5, 0.999), latent optimized with lr 0.015;
            the student in eval mode during synthesis, as FERD's

The student's state after each update is saved too: DFAD's and ZSKT's student runs in train
mode inside the generator's step, so its BatchNorm running statistics move; FERD's does not.

Substitutions, each what ardkit documents: images reach the models as pixels, the generator's
normalized output mapped by x = out * 0.5 + 0.5, clamped to [0, 1] with the identity gradient
(ardkit's pixels = "straight_through"; bn_stats' Sigmoid output is used as is); ZSKT's generator is sized from the image (its code fixes 8x8x128 for 32x32) and its
parameters are saved under ardkit's names (l1.0, conv_blocks0.0, ...), the same tensors.

Writes into OUT: teacher.pt, student.pt (state dicts of TapNet) and, per case, CASE_init.pt (the
generator's state before the update), CASE.pt (latent z, the loss terms, the state after the
update). The latent is drawn right after torch.manual_seed(SEED), as ardkit's engine draws it.
"""
import copy
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 4321
B, SIDE, NZ = 16, 8, 100


class TapNet(nn.Module):
    """conv-bn-relu ("block") -> 2x2 average pool -> linear; features = the pooled map."""

    def __init__(self, channels=1, side=SIDE, bias=True):
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * (side // 2) ** 2, 10)

    def forward(self, x):
        block = F.relu(self.bn(self.conv(x)))
        features = F.avg_pool2d(block, 2).flatten(1)
        return self.fc(features), features, block


class DaflGenerator(nn.Module):  # DAFL_train.py, img_size and channels as arguments
    def __init__(self, latent_dim, img_size, channels):
        super().__init__()
        self.init_size = img_size // 4
        self.l1 = nn.Sequential(nn.Linear(latent_dim, 128 * self.init_size ** 2))
        self.conv_blocks0 = nn.Sequential(nn.BatchNorm2d(128))
        self.conv_blocks1 = nn.Sequential(
            nn.Conv2d(128, 128, 3, stride=1, padding=1),
            nn.BatchNorm2d(128, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.conv_blocks2 = nn.Sequential(
            nn.Conv2d(128, 64, 3, stride=1, padding=1),
            nn.BatchNorm2d(64, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, channels, 3, stride=1, padding=1),
            nn.Tanh(),
            nn.BatchNorm2d(channels, affine=False),
        )

    def forward(self, z):
        out = self.l1(z)
        out = out.view(out.shape[0], 128, self.init_size, self.init_size)
        img = self.conv_blocks0(out)
        img = nn.functional.interpolate(img, scale_factor=2)
        img = self.conv_blocks1(img)
        img = nn.functional.interpolate(img, scale_factor=2)
        return self.conv_blocks2(img)


class GeneratorA(nn.Module):  # DFAD network/gan.py
    def __init__(self, nz=100, ngf=64, nc=1, img_size=32):
        super().__init__()
        self.init_size = img_size // 4
        self.l1 = nn.Sequential(nn.Linear(nz, ngf * 2 * self.init_size ** 2))
        self.conv_blocks0 = nn.Sequential(nn.BatchNorm2d(ngf * 2))
        self.conv_blocks1 = nn.Sequential(
            nn.Conv2d(ngf * 2, ngf * 2, 3, stride=1, padding=1),
            nn.BatchNorm2d(ngf * 2),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.conv_blocks2 = nn.Sequential(
            nn.Conv2d(ngf * 2, ngf, 3, stride=1, padding=1),
            nn.BatchNorm2d(ngf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, nc, 3, stride=1, padding=1),
            nn.Tanh(),
            nn.BatchNorm2d(nc, affine=False),
        )

    def forward(self, z):
        out = self.l1(z.view(z.shape[0], -1))
        out = out.view(out.shape[0], -1, self.init_size, self.init_size)
        img = self.conv_blocks0(out)
        img = nn.functional.interpolate(img, scale_factor=2)
        img = self.conv_blocks1(img)
        img = nn.functional.interpolate(img, scale_factor=2)
        return self.conv_blocks2(img)


class View(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = size

    def forward(self, tensor):
        return tensor.view(self.size)


class ZsktGenerator(nn.Module):  # ZSKT models/generator.py, sized from the image
    def __init__(self, z_dim, init, channels):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(z_dim, 128 * init ** 2),
            View((-1, 128, init, init)),
            nn.BatchNorm2d(128),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 128, 3, stride=1, padding=1),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 64, 3, stride=1, padding=1),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, channels, 3, stride=1, padding=1),
            nn.BatchNorm2d(channels, affine=True),
        )

    def forward(self, z):
        return self.layers(z)


# ZSKT's Sequential indices -> ardkit's names.
ZSKT_NAMES = {"layers.0": "l1.0", "layers.2": "conv_blocks0.0", "layers.4": "conv_blocks1.0",
              "layers.5": "conv_blocks1.1", "layers.8": "conv_blocks2.0",
              "layers.9": "conv_blocks2.1", "layers.11": "conv_blocks2.3",
              "layers.12": "conv_blocks2.4"}


class FerdGenerator(nn.Module):  # FERD models/generator.py, with ardkit's names
    def __init__(self, nz, ngf, img_size, nc):
        super().__init__()
        self.init_size = img_size // 4
        self.l1 = nn.Sequential(nn.Linear(nz, ngf * 2 * self.init_size ** 2))
        self.conv_blocks0 = nn.Sequential(nn.BatchNorm2d(ngf * 2))
        self.conv_blocks1 = nn.Sequential(
            nn.Conv2d(ngf * 2, ngf * 2, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(ngf * 2), nn.LeakyReLU(0.2, inplace=True))
        self.conv_blocks2 = nn.Sequential(
            nn.Conv2d(ngf * 2, ngf, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(ngf), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, nc, 3, stride=1, padding=1), nn.Sigmoid())

    def forward(self, z):
        out = self.l1(z)
        out = out.view(out.shape[0], -1, self.init_size, self.init_size)
        img = self.conv_blocks0(out)
        img = nn.functional.interpolate(img, scale_factor=2)
        img = self.conv_blocks1(img)
        img = nn.functional.interpolate(img, scale_factor=2)
        return self.conv_blocks2(img)


class DeepInversionHook:  # the BatchNorm statistics hook of DeepInversion / FERD
    def __init__(self, module):
        self.hook = module.register_forward_hook(self.hook_fn)

    def hook_fn(self, module, input, output):
        nch = input[0].shape[1]
        mean = input[0].mean([0, 2, 3])
        var = input[0].permute(1, 0, 2, 3).contiguous().view([nch, -1]).var(1, unbiased=False)
        self.r_feature = torch.norm(module.running_var.data - var, 2) + torch.norm(
            module.running_mean.data - mean, 2)


def pixels(out):
    x = out * 0.5 + 0.5
    return x + (x.clamp(0.0, 1.0) - x).detach()


def attention(x):  # ZSKT solver.py
    return F.normalize(x.pow(2).mean(1).view(x.size(0), -1))


def state(module, rename=None):
    out = {}
    for k, v in module.state_dict().items():
        if rename:
            prefix, _, rest = k.rpartition(".")
            k = rename[prefix] + "." + rest
        out[k] = v.detach().clone()
    return out


# ---- the start of the official-code runs (tests/generators/run_official.py) ----
# CIFAR-shaped, 3x32x32, because ZSKT's generator is written for that size only. Built here, at
# test time, so that no weights are committed: run_official.py builds the same start from the same
# seeds (PyTorch's CPU generator is the same on every machine) and records a fingerprint of it,
# which the C++ test checks before it compares anything else.
OFFICIAL_CHANNELS, OFFICIAL_SIDE = 3, 32


def official_start():
    # No conv bias before the BatchNorm, as in the official ResNets and WRNs: its true gradient is
    # zero, so its computed one is rounding noise, which Adam turns into steps of about lr.
    torch.manual_seed(10)
    teacher = TapNet(OFFICIAL_CHANNELS, OFFICIAL_SIDE, bias=False)
    student = TapNet(OFFICIAL_CHANNELS, OFFICIAL_SIDE, bias=False)
    with torch.no_grad():
        teacher.bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        teacher.bn.running_var.copy_(torch.tensor([0.5, 1.5, 0.8, 1.2]))
    torch.manual_seed(11)
    dafl = DaflGenerator(NZ, OFFICIAL_SIDE, OFFICIAL_CHANNELS)
    torch.manual_seed(12)
    dfad = GeneratorA(nz=NZ, ngf=64, nc=OFFICIAL_CHANNELS, img_size=OFFICIAL_SIDE)
    torch.manual_seed(13)
    zskt = ZsktGenerator(NZ, OFFICIAL_SIDE // 4, OFFICIAL_CHANNELS)
    return teacher, student, {"dafl": dafl, "dfad": dfad, "zskt": zskt}


def write_official_start(out):
    teacher, student, generators = official_start()
    torch.save(state(teacher), out / "official_teacher.pt")
    torch.save(state(student), out / "official_student.pt")
    for name, g in generators.items():
        torch.save(state(g, ZSKT_NAMES if name == "zskt" else None),
                   out / f"official_{name}_init.pt")


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    teacher, student = TapNet(), TapNet()
    # Running statistics the BatchNorm matching can pull toward.
    with torch.no_grad():
        teacher.bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        teacher.bn.running_var.copy_(torch.tensor([0.5, 1.5, 0.8, 1.2]))
        student.bn.running_mean.copy_(torch.tensor([0.05, 0.0, -0.1, 0.2]))
        student.bn.running_var.copy_(torch.tensor([1.1, 0.9, 1.0, 0.7]))
    torch.save(state(teacher), out / "teacher.pt")
    torch.save(state(student), out / "student.pt")
    teacher.eval()
    student.train()  # the official codes leave the student in train mode during G's step

    def run(name, generator, to_pixels, losses, lr, betas=(0.9, 0.999), clip=0.0, rename=None,
            latent=None, latent_lr=0.0, extra=None, student_mode="train"):
        torch.save(state(generator, rename), out / f"{name}_init.pt")
        s_state = {k: v.clone() for k, v in student.state_dict().items()}
        generator.train()
        student.train(student_mode == "train")
        groups = [{"params": list(generator.parameters()), "lr": lr}]
        if latent is not None:
            groups.append({"params": [latent], "lr": latent_lr})
            z = latent
        else:
            torch.manual_seed(SEED)
            z = torch.randn(B, NZ)
        opt = torch.optim.Adam(groups, lr=lr, betas=betas)
        x = to_pixels(generator(z))
        terms = losses(x)
        loss = sum(w * t for _, t, w in terms)
        opt.zero_grad()
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(generator.parameters(), clip)
        opt.step()
        result = {"z": z.detach().clone(), "loss": loss.detach()}
        for term_name, t, _ in terms:
            result["term." + term_name] = t.detach()
        result.update({"after." + k: v for k, v in state(generator, rename).items()})
        result.update({"student_after." + k: v for k, v in state(student).items()})
        student.train()
        if latent is not None:
            result["after.z"] = latent.detach().clone()
        if extra:
            result.update(extra(generator, z))
        torch.save(result, out / f"{name}.pt")
        student.load_state_dict(s_state)  # each case starts from the same student

    # DAFL
    torch.manual_seed(1)
    g = DaflGenerator(NZ, SIDE, 1)

    def dafl_losses(log, ie):
        def losses(x):
            outputs_T, features_T, _ = teacher(x)
            pred = outputs_T.data.max(1)[1]
            loss_activation = -features_T.abs().mean()
            loss_one_hot = nn.CrossEntropyLoss()(outputs_T, pred)
            softmax_o_T = F.softmax(outputs_T, dim=1).mean(dim=0)
            loss_information_entropy = (softmax_o_T * log(softmax_o_T)).sum()
            return [("one_hot", loss_one_hot, 1.0), ("information_entropy",
                                                     loss_information_entropy, ie),
                    ("activation", loss_activation, 0.1)]
        return losses

    initial = copy.deepcopy(g)
    run("dafl", g, pixels, dafl_losses(torch.log10, 5.0), lr=0.2)
    run("dafl_ln", initial, pixels, dafl_losses(torch.log, 10.0), lr=0.2)  # the fork

    # DFAD
    torch.manual_seed(2)
    g = GeneratorA(nz=NZ, ngf=64, nc=1, img_size=SIDE)

    def dfad_losses(x):
        t_logit = teacher(x)[0]
        s_logit = student(x)[0]
        return [("discrepancy", -F.l1_loss(s_logit, t_logit), 1.0)]

    run("dfad", g, pixels, dfad_losses, lr=1e-3)

    # ZSKT
    torch.manual_seed(3)
    g = ZsktGenerator(NZ, SIDE // 4, 1)

    def zskt_losses(x):
        s_logit = student(x)[0]
        t_logit = teacher(x)[0]
        divergence = F.kl_div(F.log_softmax(s_logit, dim=1), F.softmax(t_logit, dim=1))
        return [("divergence", -divergence, 1.0)]

    def zskt_attention(generator, z):
        x = pixels(generator(z)).detach()  # the student's batch: the same z, updated generator
        s_block = student(x)[2]
        with torch.no_grad():
            t_block = teacher(x)[2]
        at = (attention(s_block) - attention(t_block)).pow(2).mean()
        return {"student_x": x, "term.attention": at.detach()}

    run("zskt", g, pixels, zskt_losses, lr=1e-3, clip=5.0, rename=ZSKT_NAMES,
        extra=zskt_attention)

    # BatchNorm statistics (DeepInversion / FERD)
    torch.manual_seed(4)
    g = FerdGenerator(NZ, 64, SIDE, 1)
    latent = torch.randn(B, NZ).requires_grad_()
    targets = torch.randint(10, (B,))
    hooks = [DeepInversionHook(m) for m in teacher.modules() if isinstance(m, nn.BatchNorm2d)]

    def bn_losses(x):
        t_out = teacher(x)[0]
        loss_bn = sum(h.r_feature for h in hooks)
        loss_oh = F.cross_entropy(t_out, targets)
        s_out = student(x)[0]
        kl = F.kl_div(F.log_softmax(s_out, dim=1), F.softmax(t_out, dim=1), reduction="batchmean")
        return [("bn", loss_bn, 5.0), ("one_hot", loss_oh, 1.0), ("adversarial", -kl, 1.0)]

    init = {"net." + k: v for k, v in state(g).items()}
    init["z"] = latent.detach().clone()
    init["targets"] = targets.clone()
    run("bn_stats", g, lambda o: o, bn_losses, lr=2e-3, betas=(0.5, 0.999), latent=latent,
        latent_lr=0.015, student_mode="eval")
    torch.save(init, out / "bn_stats_init.pt")  # ardkit's LatentNet names: net.*, z, targets
    result = torch.load(out / "bn_stats.pt")
    result = {("after.net." + k[6:] if k.startswith("after.") and k != "after.z" else k): v
              for k, v in result.items()}
    torch.save(result, out / "bn_stats.pt")

    write_official_start(out)


if __name__ == "__main__":
    main(sys.argv[1])
