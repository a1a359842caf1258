"""PyTorch side of the objective differential tests: one training step of each method written
the way its official code writes it (ARD main.py, RSLAD's
rslad_loss.py and training script, IAD-I.py / IAD-II.py, AdaAD's main.py and AT_helper.py,
TRADES' trades.py, IAD's pre_train/AT.py and AdaAD's Plain_Madry for PGD-AT, AdaAD's
AdaAD_with_IAD1 for AdaIAD), on a tiny
BatchNorm network so that the attack's BatchNorm mode and the order of train-mode forwards show
in the running statistics.

Writes into OUT: student.pt, teacher.pt, st_teacher.pt (TorchScript, IAD-II's natural teacher),
batch.pt (x, y) and, per case, CASE.pt with the adversarial examples, the loss, its terms and
the student's state after one SGD step (lr 0.1, momentum 0.9, weight decay 2e-4). The random
start is drawn from the default generator right after torch.manual_seed(SEED), as ardkit does.
"""
import copy
import math
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 1234
EPS, STEP, STEPS = 8 / 255, 2 / 255, 10


class TinyNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.both(x)[1]

    def both(self, x):
        """(penultimate features, logits), as ardkit's ModelOutput."""
        h = F.avg_pool2d(F.relu(self.bn(self.conv(x))), 2).flatten(1)
        return h, self.fc(h)


def project(x_adv, x, eps):
    return torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), 0.0, 1.0)


def sign_steps(x_adv, x, loss_fn, eps=EPS, step=STEP, steps=STEPS):
    for _ in range(steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss = loss_fn(x_adv)
        grad = torch.autograd.grad(loss, [x_adv])[0]
        x_adv = project(x_adv.detach() + step * torch.sign(grad.detach()), x, eps)
    return x_adv


kl_none = nn.KLDivLoss(reduction="none")
kl_mean = nn.KLDivLoss()  # 'mean': over all B*C entries
kl_sum = nn.KLDivLoss(reduction="sum")


# ---- the official steps; each returns (x_adv, loss, {term: value}) ----
def ard(s, t, x, y, alpha=0.9, temp=30.0):
    s.train()
    x_adv = x.detach() + torch.zeros_like(x).uniform_(-EPS, EPS)  # AttackPGD: no clip
    x_adv = sign_steps(x_adv, x, lambda v: F.cross_entropy(s(v), y, reduction="sum"))
    outputs = s(x_adv)
    teacher_outputs = t(x)
    basic_outputs = s(x)
    kl = kl_mean(F.log_softmax(outputs / temp, dim=1), F.softmax(teacher_outputs / temp, dim=1))
    ce = F.cross_entropy(basic_outputs, y)
    return x_adv, alpha * temp * temp * kl + (1 - alpha) * ce, {"kl_adv": kl, "clean_ce": ce}


def rslad(s, t, x, y):
    s.train()
    with torch.no_grad():
        teacher_logits = t(x)
    s.eval()
    x_adv = x.detach() + 0.001 * torch.randn(x.shape)
    x_adv = sign_steps(x_adv, x, lambda v: torch.sum(
        kl_none(F.log_softmax(s(v), dim=1), F.softmax(teacher_logits, dim=1))))
    s.train()
    adv_logits = s(x_adv)
    nat_logits = s(x)

    def kl_loss(a, b):
        return -a * b + torch.log(b + 1e-5) * b

    k1 = torch.mean(kl_loss(F.log_softmax(adv_logits, dim=1), F.softmax(teacher_logits, dim=1)))
    k2 = torch.mean(kl_loss(F.log_softmax(nat_logits, dim=1), F.softmax(teacher_logits, dim=1)))
    return x_adv, 5 / 6.0 * k1 + 1 / 6.0 * k2, {"kl_adv": k1, "kl_clean": k2}


def rslad_half(s, t, x, y):
    # The CIFAR-100 script: teacher.half() (teacher-side tensors are float16: each result rounded
    # as a half tensor holds it, emulated in float32 because CPU PyTorch has no float16 softmax),
    # log(softmax) for the student, both terms x10.
    def h(v):
        return v.half().float()
    s.train()
    with torch.no_grad():
        teacher_logits = h(t(x))
    probs = h(F.softmax(teacher_logits, dim=1))
    s.eval()
    x_adv = x.detach() + 0.001 * torch.randn(x.shape)
    x_adv = sign_steps(x_adv, x, lambda v: torch.sum(kl_none(F.log_softmax(s(v), dim=1), probs)))
    s.train()
    adv_logits = s(x_adv)
    nat_logits = s(x)

    def kl_loss(a, b):
        return -a * b + h(h(torch.log(h(b + 1e-5))) * b)

    k1 = 10 * torch.mean(kl_loss(torch.log(F.softmax(adv_logits, dim=1)), probs))
    k2 = 10 * torch.mean(kl_loss(torch.log(F.softmax(nat_logits, dim=1)), probs))
    return x_adv, 5 / 6.0 * k1 + 1 / 6.0 * k2, {"kl_adv": k1, "kl_clean": k2}


def iad1(s, t, x, y, alpha=0.9, temp=1.0, beta=0.1, introspect=True):
    s.train()
    teacher_outputs = t(x)
    x_adv = x.detach() + torch.zeros_like(x).uniform_(-EPS, EPS)
    x_adv = sign_steps(x_adv, x, lambda v: F.cross_entropy(s(v), y, reduction="sum"))
    outputs = s(x_adv)
    s(x_adv).detach()  # basicop: computed and unused by the official step
    guide = t(x_adv)
    w = torch.ones(len(x))
    b = len(outputs)
    kl_t = (1 / b) * torch.sum(kl_none(F.log_softmax(outputs / temp, dim=1),
                                       F.softmax(teacher_outputs / temp, dim=1)).sum(dim=1))
    terms = {"kl_teacher": kl_t}
    loss = alpha * temp * temp * kl_t
    if introspect:
        for i in range(b):
            w[i] = F.softmax(guide, dim=1)[i][y[i].item()].pow(beta).item()
        kl_self = (1 / b) * torch.sum(kl_none(F.log_softmax(outputs, dim=1),
                                              F.softmax(s(x), dim=1)).sum(dim=1).mul(1 - w))
        loss = loss + alpha * kl_self
        terms["kl_self"] = kl_self
    ce = F.cross_entropy(s(x), y)
    terms["clean_ce"] = ce
    return x_adv, loss + (1 - alpha) * ce, terms


def iad2(s, t, u, x, y, alpha1=0.5, alpha2=0.25, temp=1.0, beta=0.1):
    s.train()
    x_adv = x.detach() + torch.zeros_like(x).uniform_(-EPS, EPS)
    x_adv = sign_steps(x_adv, x, lambda v: F.cross_entropy(s(v), y, reduction="sum"))
    outputs = s(x_adv)
    teacher_outputs = t(x_adv)
    st_outputs = u(x_adv)
    guide = t(x_adv)
    b = len(outputs)
    w = torch.ones(b)
    for i in range(b):
        w[i] = F.softmax(guide, dim=1)[i][y[i].item()].pow(beta).item()
    ce = F.cross_entropy(outputs, y)
    kl_t = (1 / b) * torch.sum(kl_none(F.log_softmax(outputs / temp, dim=1),
                                       F.softmax(teacher_outputs / temp, dim=1)).sum(dim=1).mul(w))
    kl_self = (1 / b) * torch.sum(kl_none(F.log_softmax(outputs, dim=1),
                                          F.softmax(s(x), dim=1)).sum(dim=1).mul(1 - w))
    kl_st = (1 / b) * torch.sum(kl_none(F.log_softmax(outputs / temp, dim=1),
                                        F.softmax(st_outputs / temp, dim=1)).sum(dim=1))
    loss = ((1 - alpha1 - alpha2) * ce + alpha1 * temp * temp * (kl_t + kl_self)
            + alpha2 * temp * temp * kl_st)
    return x_adv, loss, {"adv_ce": ce, "kl_teacher": kl_t, "kl_self": kl_self,
                         "kl_st_teacher": kl_st}


def adaad(s, t, x, y, alpha=0.8):
    s.eval()
    t.eval()
    x_adv = x.detach() + 0.001 * torch.randn(x.shape)
    x_adv = sign_steps(x_adv, x, lambda v: torch.sum(
        kl_none(F.log_softmax(s(v), dim=1), F.softmax(t(v), dim=1))))
    s.train()
    ori_outputs = s(x)
    adv_outputs = s(x_adv)
    with torch.no_grad():
        t_ori, t_adv = t(x), t(x_adv)
    k1 = kl_mean(F.log_softmax(adv_outputs, dim=1), F.softmax(t_adv, dim=1))
    k2 = kl_mean(F.log_softmax(ori_outputs, dim=1), F.softmax(t_ori, dim=1))
    return x_adv, alpha * k1 + (1 - alpha) * k2, {"kl_adv": k1, "kl_clean": k2}


def trades(s, t, x, y, beta=6.0, eps=0.031, step=0.007):
    s.eval()
    x_adv = x.detach() + 0.001 * torch.randn(x.shape)
    x_adv = sign_steps(x_adv, x, lambda v: kl_sum(F.log_softmax(s(v), dim=1),
                                                  F.softmax(s(x), dim=1)), eps=eps, step=step)
    s.train()
    logits = s(x)
    loss_natural = F.cross_entropy(logits, y)
    loss_robust = (1.0 / len(x)) * kl_sum(F.log_softmax(s(x_adv), dim=1), F.softmax(s(x), dim=1))
    return x_adv, loss_natural + beta * loss_robust, {"clean_ce": loss_natural,
                                                     "kl_robust": loss_robust}


def pgd_at(s, t, x, y, gaussian=False):
    s.eval()
    if gaussian:  # AdaAD's Plain_Madry: Gaussian start, clipped into [0, 1]
        x_adv = torch.clamp(x.detach() + 0.001 * torch.randn(x.shape), 0.0, 1.0)
    else:  # IAD's pre_train/AT.py (Rice et al.): uniform start, clipped
        x_adv = torch.clamp(x.detach() + torch.zeros_like(x).uniform_(-EPS, EPS), 0.0, 1.0)
    x_adv = sign_steps(x_adv, x, lambda v: F.cross_entropy(s(v), y))
    s.train()
    loss = F.cross_entropy(s(x_adv), y)
    if gaussian:
        s(x)  # Plain_Madry's ori_outputs: unused by the loss, moves BatchNorm statistics
    return x_adv, loss, {"adv_ce": loss}


def adaiad(s, t, x, y, alpha=0.9, temp=30.0, beta=0.1, introspect=True):
    # AdaAD's AdaAD_with_IAD1: AdaAD's attack, IAD-I's loss with the teacher on x'
    s.eval()
    x_adv = x.detach() + 0.001 * torch.randn(x.shape)
    x_adv = sign_steps(x_adv, x, lambda v: torch.sum(
        kl_none(F.log_softmax(s(v), dim=1), F.softmax(t(v), dim=1))))
    s.train()
    s(x)  # ori_outputs: the accuracy print's
    outputs = s(x_adv)
    guide = t(x_adv)
    b = len(outputs)
    kl_t = (1 / b) * torch.sum(kl_none(F.log_softmax(outputs / temp, dim=1),
                                       F.softmax(guide / temp, dim=1)).sum(dim=1))
    terms = {"kl_teacher": kl_t}
    loss = alpha * temp * temp * kl_t
    if introspect:
        w = F.softmax(guide, dim=1).gather(1, y.unsqueeze(1)).squeeze(1).pow(beta)
        kl_self = (1 / b) * torch.sum(kl_none(F.log_softmax(outputs, dim=1),
                                              F.softmax(s(x), dim=1)).sum(dim=1).mul(1 - w))
        loss = loss + alpha * kl_self
        terms["kl_self"] = kl_self
    ce = F.cross_entropy(s(x), y)
    terms["clean_ce"] = ce
    return x_adv, loss + (1 - alpha) * ce, terms


def kd(s, t, x, y, alpha=0.9, temp=4.0):
    s.train()
    logits = s(x)
    with torch.no_grad():
        t_logits = t(x)
    kl = kl_sum(F.log_softmax(logits / temp, dim=1), F.softmax(t_logits / temp, dim=1)) / len(x)
    ce = F.cross_entropy(logits, y)
    return None, alpha * temp * temp * kl + (1 - alpha) * ce, {"kl": kl, "ce": ce}


def make_inputs(out):
    """The fixed student, teachers and batch, saved into `out` (run_official.py uses them too)."""
    torch.manual_seed(0)
    student, teacher, st_teacher = TinyNet(), TinyNet(), TinyNet()
    for net in (teacher, st_teacher):  # distinct, confident teachers
        with torch.no_grad():
            net.fc.weight.mul_(4)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
    x = torch.rand(8, 1, 8, 8)
    y = torch.randint(0, 10, (8,))
    torch.save(dict(student.state_dict()), out / "student.pt")
    torch.save(dict(teacher.state_dict()), out / "teacher.pt")
    torch.jit.trace(st_teacher, x).save(str(out / "st_teacher.pt"))
    torch.save({"x": x, "y": y}, out / "batch.pt")
    return student, teacher, st_teacher, x, y


# ---- GACD: no official code exists; this is the plugin's documented derivation written out
# independently (plugins/objectives/gacd.cpp, docs/methods.md "GACD"): CRD's heads, NCE and memory banks
# (HobbitLong/RepDistiller crd/), the attack guided by the in-batch contrastive loss. ----
GACD_SAMPLES, GACD_K, GACD_DIM = 16, 5, 6


class GacdHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_s = nn.Linear(64, GACD_DIM)
        self.embed_t = nn.Linear(64, GACD_DIM)
        stdv = 1.0 / math.sqrt(GACD_DIM / 3.0)
        self.register_buffer("memory_s", torch.rand(GACD_SAMPLES, GACD_DIM) * 2 * stdv - stdv)
        self.register_buffer("memory_t", torch.rand(GACD_SAMPLES, GACD_DIM) * 2 * stdv - stdv)
        self.register_buffer("z_s", torch.full((1,), -1.0))
        self.register_buffer("z_t", torch.full((1,), -1.0))


def other_class_negatives(labels, own, k):
    """K negatives per sample, uniform over the samples of the other classes (CRD's "exact"
    mode draws from cls_negative[target]): position r of the class-sorted list with the sample's
    own class left out."""
    order = torch.sort(labels, stable=True).indices
    rows = []
    for c in own.tolist():
        others = order[labels[order] != c]
        r = (torch.rand(k, dtype=torch.float64) * len(others)).long().clamp(max=len(others) - 1)
        rows.append(others[r])
    neg = torch.stack(rows)
    assert (labels[neg] != own.unsqueeze(1)).all()
    return neg


def gacd(s, t, heads, x, y, estimator="crd", reweight="prob", guide="contrastive", kl_weight=0.0,
         tau=0.07, momentum=0.5, power=0.5, cw=0.8, cew=1.0, kl_t=4.0, negatives_from="any",
         labels=None):
    def embed(head, f):
        return F.normalize(head(f), dim=1)
    b = len(x)
    index = torch.arange(b)
    with torch.no_grad():
        t_feat, t_logits = t.both(x)
    v_t = embed(heads.embed_t, t_feat)
    anchors = v_t.detach()
    s.eval()  # attack_bn_mode = "eval"; start U(-eps, eps) clipped into [0, 1]
    x_adv = torch.clamp(x.detach() + torch.zeros_like(x).uniform_(-EPS, EPS), 0.0, 1.0)
    if guide == "contrastive":
        x_adv = sign_steps(x_adv, x, lambda v: F.cross_entropy(
            embed(heads.embed_s, s.both(v)[0]) @ anchors.t() / tau, index, reduction="sum"))
    else:  # "ce"
        x_adv = sign_steps(x_adv, x, lambda v: F.cross_entropy(s(v), y, reduction="sum"))
    s.train()
    feat, logits = s.both(x_adv)
    v_s = embed(heads.embed_s, feat)
    if reweight == "none":
        w = torch.ones(b)
    else:
        w = F.softmax(t_logits, dim=1)[torch.arange(b), y]
        if reweight == "power":
            w = w ** power
        w = (w / w.mean()).detach()
    if estimator == "infonce":
        sim = v_s @ v_t.t() / tau
        per = F.cross_entropy(sim, index, reduction="none") + F.cross_entropy(
            sim.t(), index, reduction="none")
    else:
        if negatives_from == "other_classes":
            neg = other_class_negatives(labels, labels[index], GACD_K)
        else:
            neg = torch.randint(0, GACD_SAMPLES, (b, GACD_K))
        idx = torch.cat([index.unsqueeze(1), neg], 1).view(-1)
        mpn = GACD_K / GACD_SAMPLES

        def scores(memory, v, z):
            out = torch.exp(torch.bmm(memory[idx].view(b, GACD_K + 1, GACD_DIM),
                                      v.unsqueeze(2)).squeeze(2) / tau)
            if z.item() < 0:
                z.fill_(out.mean().item() * GACD_SAMPLES)
            return out / z

        def nce(out):
            pos, neg_ = out[:, 0], out[:, 1:]
            return -(torch.log(pos / (pos + mpn + 1e-7))
                     + torch.log(mpn / (neg_ + mpn + 1e-7)).sum(1))
        per = nce(scores(heads.memory_t, v_s, heads.z_s)) + nce(
            scores(heads.memory_s, v_t, heads.z_t))
        with torch.no_grad():
            for memory, v in ((heads.memory_s, v_s), (heads.memory_t, v_t)):
                moved = memory[index] * momentum + v.detach() * (1 - momentum)
                memory.index_copy_(0, index, moved / moved.pow(2).sum(1, keepdim=True).sqrt())
    contrastive = (w * per).sum() / b
    ce = F.cross_entropy(logits, y)
    loss = cw * contrastive + cew * ce
    terms = {"contrastive": contrastive, "mean_w": w.mean(), "adv_ce": ce}
    if kl_weight > 0:
        kl = kl_sum(F.log_softmax(logits / kl_t, dim=1), F.softmax(t_logits / kl_t, dim=1)) / b
        loss = loss + kl_weight * kl_t * kl_t * kl
        terms["kl"] = kl
    return x_adv, loss, terms


def gacd_cases(out, student, teacher, x, y):
    """gacd_init.pt (heads and banks before the step) and one case file per setting."""
    torch.manual_seed(5)
    init = GacdHeads()
    torch.save(dict(init.state_dict()), out / "gacd_init.pt")
    cases = {
        "gacd_crd": {},
        "gacd_infonce": {"estimator": "infonce", "reweight": "power", "kl_weight": 0.5},
        "gacd_guide_ce": {"guide": "ce", "reweight": "none"},
        # The batch is samples 0..7 of a 16-sample training split whose other labels are fixed.
        "gacd_crd_other_classes": {"negatives_from": "other_classes",
                                   "labels": torch.cat([y, torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])])},
    }
    for name, kwargs in cases.items():
        s, heads = copy.deepcopy(student), copy.deepcopy(init)
        optimizer = torch.optim.SGD(list(s.parameters()) + list(heads.parameters()), lr=0.1,
                                    momentum=0.9, weight_decay=2e-4)
        optimizer.zero_grad()
        torch.manual_seed(SEED)
        x_adv, loss, terms = gacd(s, teacher, heads, x, y, **kwargs)
        loss.backward()
        optimizer.step()
        record = {"loss": loss.detach(), "x_adv": x_adv.detach()}
        if "labels" in kwargs:
            record["train_labels"] = kwargs["labels"]
        record.update({"term." + k: v.detach() for k, v in terms.items()})
        record.update({"after." + k: v.detach().clone() for k, v in s.state_dict().items()})
        record.update({"heads." + k: v.detach().clone() for k, v in heads.state_dict().items()})
        torch.save(record, out / (name + ".pt"))


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    student, teacher, st_teacher, x, y = make_inputs(out)
    cases = {
        "ard": lambda s: ard(s, teacher, x, y),
        "rslad": lambda s: rslad(s, teacher, x, y),
        "rslad_half_teacher": lambda s: rslad_half(s, teacher, x, y),
        "iad1": lambda s: iad1(s, teacher, x, y),
        "iad1_before_begin": lambda s: iad1(s, teacher, x, y, introspect=False),
        "iad2": lambda s: iad2(s, teacher, st_teacher, x, y),
        "adaad": lambda s: adaad(s, teacher, x, y),
        "trades": lambda s: trades(s, teacher, x, y),
        "pgd_at": lambda s: pgd_at(s, teacher, x, y),
        "pgd_at_adaad": lambda s: pgd_at(s, teacher, x, y, gaussian=True),
        "adaiad": lambda s: adaiad(s, teacher, x, y),
        "adaiad_before_begin": lambda s: adaiad(s, teacher, x, y, introspect=False),
        "kd": lambda s: kd(s, teacher, x, y),
    }
    for name, step in cases.items():
        s = copy.deepcopy(student)
        optimizer = torch.optim.SGD(s.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
        optimizer.zero_grad()
        torch.manual_seed(SEED)
        x_adv, loss, terms = step(s)
        loss.backward()
        optimizer.step()
        record = {"loss": loss.detach()}
        if x_adv is not None:
            record["x_adv"] = x_adv.detach()
        for k, v in terms.items():
            record["term." + k] = v.detach()
        for k, v in s.state_dict().items():
            record["after." + k] = v.detach().clone()
        torch.save(record, out / (name + ".pt"))
    gacd_cases(out, student, teacher, x, y)
    print(f"objective reference written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
