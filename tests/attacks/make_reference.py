"""PyTorch side of the attack differential tests. Writes into OUT (as torch.save dicts of
tensors, which ardkit reads natively):

* losses.pt: logits, labels, targets, target distributions and what each per-sample loss gives
  (CE, CW margin at kappa 0 and 50, DLR, targeted DLR, KL);
* projections.pt: points, centres and their L-inf / L2 projections;
* apgd.pt: a small CNN's weights, a batch, and Auto-PGD's adversarial examples for several
  settings, computed by the port of fra31/auto-attack's algorithm below (same seeds: LibTorch and
  PyTorch draw the same random numbers from the same seed);
* square.pt: the same for the L-inf Square Attack.
"""
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))
from reference_models import CompactCNN  # noqa: E402


# ---- losses, as the reference codes define them ----
def dlr(z, y):
    zs, ind = z.sort(dim=1)
    top_is_y = (ind[:, -1] == y).float()
    u = torch.arange(z.shape[0])
    return -(z[u, y] - zs[:, -2] * top_is_y - zs[:, -1] * (1. - top_is_y)) / (zs[:, -1] - zs[:, -3] + 1e-12)


def dlr_targeted(z, y, t):
    zs, _ = z.sort(dim=1)
    u = torch.arange(z.shape[0])
    return -(z[u, y] - z[u, t]) / (zs[:, -1] - .5 * (zs[:, -3] + zs[:, -4]) + 1e-12)


def cw(z, y, kappa):
    onehot = F.one_hot(y, z.shape[1]).bool()
    correct = z[onehot]
    other = z.masked_fill(onehot, float("-inf")).max(1)[0]
    return -torch.clamp(correct - other + kappa, min=0)


# ---- Auto-PGD (Croce & Hein 2020), following fra31/auto-attack's autopgd_base.py ----
def normalize(v, norm):
    flat = v.reshape(v.shape[0], -1)
    n = flat.abs().max(1)[0] if norm == "linf" else (flat ** 2).sum(1).sqrt()
    return v / (n.view(-1, 1, 1, 1) + 1e-12)


def project(v, x, norm, eps):
    if norm == "linf":
        return torch.clamp(torch.min(torch.max(v, x - eps), x + eps), 0.0, 1.0)
    d = v - x
    n = (d.reshape(d.shape[0], -1) ** 2).sum(1).sqrt().view(-1, 1, 1, 1)
    return torch.clamp(x + normalize(d, norm) * torch.min(eps * torch.ones_like(x), n), 0.0, 1.0)


def apgd_run(model, x, y, eps, n_iter, norm, loss_fn, rho=0.75):
    n2, nmin, decr = max(int(0.22 * n_iter), 1), max(int(0.06 * n_iter), 1), max(int(0.03 * n_iter), 1)
    t = 2 * torch.rand(x.shape) - 1 if norm == "linf" else torch.randn(x.shape)
    x_adv = (x + eps * normalize(t, norm)).clamp(0., 1.)
    x_best, x_best_adv = x_adv.clone(), x_adv.clone()
    loss_steps = torch.zeros([n_iter, x.shape[0]])

    def grad_at(v):
        v = v.clone().requires_grad_()
        logits = model(v)
        per_sample = loss_fn(logits, y)
        return torch.autograd.grad(per_sample.sum(), [v])[0].detach(), logits.detach(), per_sample.detach()

    grad, logits, loss = grad_at(x_adv)
    grad_best = grad.clone()
    acc = logits.max(1)[1] == y
    loss_best = loss.clone()
    step = 2. * eps * torch.ones([x.shape[0], 1, 1, 1])
    x_old = x_adv.clone()
    k, counter = n2, 0
    loss_best_last, reduced_last = loss_best.clone(), torch.ones_like(loss_best)
    for i in range(n_iter):
        with torch.no_grad():
            mom = x_adv - x_old
            x_old = x_adv.clone()
            a = 0.75 if i > 0 else 1.0
            d = grad.sign() if norm == "linf" else normalize(grad, norm)
            x1 = project(x_adv + step * d, x, norm, eps)
            x_adv = project(x_adv + (x1 - x_adv) * a + mom * (1 - a), x, norm, eps)
        grad, logits, loss = grad_at(x_adv)
        pred = logits.max(1)[1] == y
        acc = torch.min(acc, pred)
        x_best_adv[~pred] = x_adv[~pred]
        loss_steps[i] = loss
        better = loss > loss_best
        x_best[better], grad_best[better], loss_best[better] = x_adv[better], grad[better], loss[better]
        counter += 1
        if counter == k:
            rises = torch.zeros(x.shape[0])
            for c in range(k):
                rises += (loss_steps[i - c] > loss_steps[i - c - 1]).float()
            osc = (rises <= k * rho).float()
            osc = torch.max(osc, (1. - reduced_last) * (loss_best_last >= loss_best).float())
            reduced_last, loss_best_last = osc.clone(), loss_best.clone()
            h = osc > 0
            step[h] /= 2.0
            x_adv[h] = x_best[h]
            grad[h] = grad_best[h]
            k = max(k - decr, nmin)
            counter = 0
    return x_best, acc, loss_best, x_best_adv


def apgd(model, x, y, eps, n_iter, norm="linf", loss="ce", seed=0, restarts=1, targets=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        clean = model(x)
    acc = clean.max(1)[1] == y
    adv = x.clone()
    rounds = range(2, targets + 2) if targets else [None]
    for target_class in rounds:
        for _ in range(restarts):
            idx = acc.nonzero().squeeze(1)
            if idx.numel() == 0:
                return adv
            if target_class is None:
                fn = (lambda z, yy: F.cross_entropy(z, yy, reduction="none")) if loss == "ce" else dlr
            else:
                t = clean[idx].sort(dim=1)[1][:, -target_class]
                fn = lambda z, yy, t=t: dlr_targeted(z, yy, t)
            _, acc_run, _, adv_run = apgd_run(model, x[idx], y[idx], eps, n_iter, norm, fn)
            fooled = ~acc_run
            acc[idx[fooled]] = False
            adv[idx[fooled]] = adv_run[fooled]
    return adv


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 10, generator=g) * 3
    labels = torch.randint(0, 10, (32,), generator=g)
    targets = (labels + 1 + torch.randint(0, 9, (32,), generator=g)) % 10
    probs = torch.softmax(torch.randn(32, 10, generator=g), 1)
    log_q = torch.log_softmax(logits, 1)
    torch.save({"logits": logits, "labels": labels, "targets": targets, "probs": probs,
                "ce": F.cross_entropy(logits, labels, reduction="none"),
                "cw0": cw(logits, labels, 0.0), "cw50": cw(logits, labels, 50.0),
                "dlr": dlr(logits, labels), "dlr_targeted": dlr_targeted(logits, labels, targets),
                "kl": F.kl_div(log_q, probs, reduction="none").sum(1)}, out / "losses.pt")

    x = torch.rand(16, 3, 8, 8, generator=g)
    v = x + torch.randn(16, 3, 8, 8, generator=g) * 0.3
    torch.save({"x": x, "v": v, "linf": project(v, x, "linf", 0.1), "l2": project(v, x, "l2", 0.5)},
               out / "projections.pt")

    torch.manual_seed(3)
    model = CompactCNN(1, 10, c1=8, c2=16, hidden=32).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    xs = torch.rand(48, 1, 28, 28, generator=g)
    with torch.no_grad():
        ys = model(xs).argmax(1)  # every point starts correctly classified
    cases = {"apgd_ce": dict(eps=0.06, n_iter=25), "apgd_dlr": dict(eps=0.04, n_iter=25, loss="dlr"),
             "apgd_l2": dict(eps=1.2, n_iter=25, norm="l2", seed=4, restarts=2),
             "apgd_t": dict(eps=0.035, n_iter=12, targets=3, seed=1)}
    result = {"x": xs, "y": ys}
    for name, kw in cases.items():
        result[name] = apgd(model, xs, ys, **kw)
        with torch.no_grad():
            robust = (model(result[name]).argmax(1) == ys).float().mean().item()
        print(f"{name:10s} robust accuracy {100 * robust:.2f}%")
    torch.save(result, out / "apgd.pt")
    torch.save(model.state_dict(), out / "apgd_model.pt")
    square_reference(out)


# ---- Square Attack, L-inf (Andriushchenko et al. 2020), following fra31/auto-attack ----
def square_p(it, n_queries, p_init):
    it = int(it / n_queries * 10000)
    p = p_init
    for bound in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000):
        if it > bound:
            p /= 2
    return p


def square(model, x, y, eps, n_queries, p_init=0.8, seed=0):
    torch.manual_seed(seed)

    def margin(v, yy):
        z = model(v)
        u = torch.arange(v.shape[0])
        correct = z[u, yy].clone()
        z[u, yy] = -float("inf")
        return correct - z.max(1)[0]

    with torch.no_grad():
        c, h, w = x.shape[1:]
        x_best = torch.clamp(x + eps * torch.sign(2 * torch.rand([x.shape[0], c, 1, w]) - 1), 0., 1.)
        margin_min = margin(x_best, y)
        loss_min = margin_min.clone()
        for i in range(n_queries):
            idx = (margin_min > 0).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xc, best, yc = x[idx], x_best[idx], y[idx]
            s = max(int(round(math.sqrt(square_p(i, n_queries, p_init) * c * h * w / c))), 1)
            vh = int((0 + (h - s) * torch.rand([1])).long())
            vw = int((0 + (w - s) * torch.rand([1])).long())
            delta = torch.zeros([c, h, w])
            delta[:, vh:vh + s, vw:vw + s] = 2. * eps * torch.sign(2 * torch.rand([c, 1, 1]) - 1)
            x_new = torch.clamp(torch.min(torch.max(best + delta, xc - eps), xc + eps), 0., 1.)
            m = margin(x_new, yc)
            improved = m < loss_min[idx]
            loss_min[idx] = torch.where(improved, m, loss_min[idx])
            accept = improved | (m <= 0)
            margin_min[idx] = torch.where(accept, m, margin_min[idx])
            x_best[idx] = torch.where(accept.view(-1, 1, 1, 1), x_new, best)
        adv = x.clone()
        fooled = margin(x_best, y) <= 0
        adv[fooled] = x_best[fooled]
        return adv


def square_reference(out):
    torch.manual_seed(3)
    model = CompactCNN(1, 10, c1=8, c2=16, hidden=32).eval()
    g = torch.Generator().manual_seed(9)
    xs = torch.rand(32, 1, 28, 28, generator=g)
    with torch.no_grad():
        ys = model(xs).argmax(1)
    adv = square(model, xs, ys, eps=0.2, n_queries=200, seed=2)
    with torch.no_grad():
        robust = (model(adv).argmax(1) == ys).float().mean().item()
    print(f"square     robust accuracy {100 * robust:.2f}%")
    torch.save({"x": xs, "y": ys, "square": adv}, out / "square.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
