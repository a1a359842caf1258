"""PyTorch side of the attack differential tests. Writes into OUT (as torch.save dicts of
tensors, which ardkit reads natively):

* losses.pt: logits, labels, targets, target distributions and what each per-sample loss gives
  (CE, CW margin at kappa 0 and 50, DLR, targeted DLR, KL);
* projections.pt: points, centres and their L-inf / L2 projections;
* apgd.pt: a small CNN's weights, a batch, and Auto-PGD's adversarial examples for several
  settings, computed by the port of fra31/auto-attack's algorithm below (same seeds: LibTorch and
  PyTorch draw the same random numbers from the same seed);
* square.pt: the same for the L-inf Square Attack;
* fab.pt: the adversarial examples of FAB (untargeted, 2 restarts) and FAB-T, L-inf and L2,
  from the port of fra31/auto-attack's fab_base.py / fab_projections.py below (FAB-T with one
  restart has no randomness: it checks the hyperplane projections and the step exactly);
* autoattack.pt: AutoAttack's standard composition of these ports (APGD-CE, APGD-T, FAB-T,
  Square without rescaled schedule), each part on the points still robust, with the robust
  flags after every part.
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
    fab_reference(out)
    autoattack_reference(out)


# ---- Square Attack, L-inf (Andriushchenko et al. 2020), following fra31/auto-attack ----
def square_p(it, n_queries, p_init, rescale=True):
    if rescale:
        it = int(it / n_queries * 10000)
    p = p_init
    for bound in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000):
        if it > bound:
            p /= 2
    return p


def square(model, x, y, eps, n_queries, p_init=0.8, seed=0, rescale=True):
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
            s = max(int(round(math.sqrt(square_p(i, n_queries, p_init, rescale) * c * h * w / c))), 1)
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


# ---- FAB (Croce & Hein 2020), following fra31/auto-attack's fab_base.py and fab_projections.py ----
def fab_projection_linf(t, w, b):
    sign = 2 * ((w * t).sum(1) - b >= 0).float() - 1
    w, b = w * sign.unsqueeze(1), b * sign
    a = (w < 0).float()
    d = (a - t) * (w != 0).float()
    p = a - t * (2 * a - 1)
    indp = torch.argsort(p, dim=1)
    b = b - (w * t).sum(1)
    b0 = (w * d).sum(1)
    indp2 = indp.flip((1,))
    ws = w.gather(1, indp2)
    bs2 = -ws * d.gather(1, indp2)
    s = torch.cumsum(ws.abs(), dim=1)
    sb = torch.cumsum(bs2, dim=1) + b0.unsqueeze(1)
    b2 = sb[:, -1] - s[:, -1] * p.gather(1, indp[:, 0:1]).squeeze(1)
    c_l = b - b2 > 0
    c2 = (b - b0 > 0) & (~c_l)
    lb = torch.zeros(int(c2.sum()))
    ub = torch.full_like(lb, w.shape[1] - 1)
    indp_, sb_, s_, p_, b_ = indp[c2], sb[c2], s[c2], p[c2], b[c2]
    for _ in range(math.ceil(math.log2(w.shape[1]))):
        mid = torch.floor((lb + ub) / 2)
        m = mid.long().unsqueeze(1)
        cur = indp_.gather(1, indp_.size(1) - 1 - m)
        c = b_ - (sb_.gather(1, m) - s_.gather(1, m) * p_.gather(1, cur)).squeeze(1) > 0
        lb, ub = torch.where(c, mid, lb), torch.where(c, ub, mid)
    lb = lb.long()
    if c_l.any():
        lam = torch.clamp_min((b[c_l] - sb[c_l, -1]) / (-s[c_l, -1]), min=0).unsqueeze(-1)
        d[c_l] = (2 * a[c_l] - 1) * lam
    lam = torch.clamp_min((b[c2] - sb[c2, lb]) / (-s[c2, lb]), min=0).unsqueeze(-1)
    d[c2] = torch.min(lam, d[c2]) * a[c2] + torch.max(-lam, d[c2]) * (1 - a[c2])
    return d * (w != 0).float()


def fab_projection_l2(t, w, b):
    c = (w * t).sum(1) - b
    sign = 2 * (c >= 0).float() - 1
    w, c = w * sign.unsqueeze(1), c * sign
    r = torch.max(t / w, (t - 1) / w).clamp(min=-1e12, max=1e12)
    r.masked_fill_(w.abs() < 1e-8, 1e12)
    r[r == -1e12] *= -1
    rs, indr = torch.sort(r, dim=1)
    rs2 = F.pad(rs[:, 1:], (0, 1))
    rs.masked_fill_(rs == 1e12, 0)
    rs2.masked_fill_(rs2 == 1e12, 0)
    w3s = (w ** 2).gather(1, indr)
    w5 = w3s.sum(dim=1, keepdim=True)
    ws = w5 - torch.cumsum(w3s, dim=1)
    d = -(r * w) * (w.abs() > 1e-8).float()
    s = torch.cat((-w5 * rs[:, 0:1], torch.cumsum((-rs2 + rs) * ws, dim=1) - w5 * rs[:, 0:1]), 1)
    c4 = s[:, 0] + c < 0
    c3 = (d * w).sum(dim=1) + c > 0
    c2 = ~(c4 | c3)
    lb = torch.zeros(int(c2.sum()))
    ub = torch.full_like(lb, w.shape[1] - 1)
    s_, c_ = s[c2], c[c2]
    for _ in range(math.ceil(math.log2(w.shape[1]))):
        mid = torch.floor((lb + ub) / 2)
        above = s_.gather(1, mid.long().unsqueeze(1)).squeeze(1) + c_ > 0
        lb, ub = torch.where(above, mid, lb), torch.where(above, ub, mid)
    lb = lb.long()
    if c4.any():
        alpha = c[c4] / w5[c4].squeeze(-1)
        d[c4] = -alpha.unsqueeze(-1) * w[c4]
    if c2.any():
        alpha = (s[c2, lb] + c[c2]) / ws[c2, lb] + rs[c2, lb]
        alpha[ws[c2, lb] == 0] = 0
        c5 = (alpha.unsqueeze(-1) > r[c2]).float()
        d[c2] = d[c2] * c5 - alpha.unsqueeze(-1) * w[c2] * (1 - c5)
    return d * (w.abs() > 1e-8).float()


def lp(v, norm):
    v = v.reshape(v.shape[0], -1)
    return v.abs().max(1)[0] if norm == "linf" else (v ** 2).sum(1).sqrt()


def fab_run(model, x, y, eps, n_iter, norm, rand_start, target_rank,
            alpha_max=0.1, eta=1.05, beta=0.9):
    with torch.no_grad():
        pred = model(x).max(1)[1] == y
    result = x.clone()
    if pred.sum() == 0:
        return result
    keep = pred.nonzero().squeeze(1)
    im2, la2 = x[keep].clone(), y[keep].clone()
    if target_rank:
        with torch.no_grad():
            la_target = model(im2).sort(dim=-1)[1][:, -target_rank]
    bs, nd = im2.shape[0], im2.dim() - 1
    u1 = torch.arange(bs)
    adv, res2 = im2.clone(), 1e10 * torch.ones(bs)
    x1, x0 = im2.clone(), im2.clone().reshape(bs, -1)
    if rand_start:
        if norm == "linf":
            t = 2 * torch.rand(x1.shape) - 1
            x1 = im2 + torch.min(res2, eps * torch.ones(bs)).reshape(-1, *[1] * nd) * t / \
                t.reshape(bs, -1).abs().max(1, keepdim=True)[0].reshape(-1, *[1] * nd) * .5
        else:
            t = torch.randn(x1.shape)
            x1 = im2 + torch.min(res2, eps * torch.ones(bs)).reshape(-1, *[1] * nd) * t / \
                (t ** 2).reshape(bs, -1).sum(-1).sqrt().reshape(-1, *[1] * nd) * .5
        x1 = x1.clamp(0., 1.)
    for _ in range(n_iter):
        im = x1.clone().requires_grad_()
        z = model(im)
        if target_rank:
            diffy = -(z[u1, la2] - z[u1, la_target])
            g = torch.autograd.grad(diffy.sum(), [im])[0]
            df, dg = diffy.detach().unsqueeze(1), g.unsqueeze(1)
        else:
            g = torch.stack([torch.autograd.grad(z[:, k].sum(), [im], retain_graph=True)[0]
                             for k in range(z.shape[1])], 1)
            zd = z.detach()
            df = zd - zd[u1, la2].unsqueeze(1)
            dg = g - g[u1, la2].unsqueeze(1)
            df[u1, la2] = 1e10
        with torch.no_grad():
            dgf = dg.reshape(bs, dg.shape[1], -1)
            dual = dgf.abs().sum(-1) if norm == "linf" else (dgf ** 2).sum(-1).sqrt()
            ind = (df.abs() / (1e-12 + dual)).min(dim=1)[1]
            dg2 = dg[u1, ind]
            b = -df[u1, ind] + (dg2 * x1).reshape(bs, -1).sum(-1)
            w = dg2.reshape(bs, -1)
            proj = fab_projection_linf if norm == "linf" else fab_projection_l2
            d3 = proj(torch.cat((x1.reshape(bs, -1), x0), 0), torch.cat((w, w), 0), torch.cat((b, b), 0))
            d1, d2 = d3[:bs].reshape(x1.shape), d3[-bs:].reshape(x1.shape)
            a0 = torch.clamp_min(lp(d3, norm), 1e-8).view(-1, *[1] * nd)
            a1, a2 = a0[:bs], a0[-bs:]
            alpha = torch.clamp(a1 / (a1 + a2), 0., alpha_max)
            x1 = ((x1 + eta * d1) * (1 - alpha) + (im2 + d2 * eta) * alpha).clamp(0., 1.)
            is_adv = model(x1).max(1)[1] != la2
            if is_adv.any():
                ia = is_adv.nonzero().squeeze(1)
                t = lp(x1[ia] - im2[ia], norm)
                closer = (t < res2[ia]).float().reshape(-1, *[1] * nd)
                adv[ia] = x1[ia] * closer + adv[ia] * (1 - closer)
                res2[ia] = torch.where(t < res2[ia], t, res2[ia])
                x1[ia] = im2[ia] + (x1[ia] - im2[ia]) * beta
    found = (res2 < 1e10).nonzero().squeeze(1)
    result[keep[found]] = adv[found]
    return result


def fab(model, x, y, eps, n_iter, norm="linf", restarts=1, targets=0, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        acc = model(x).max(1)[1] == y
    adv = x.clone()
    for rank in (range(2, targets + 2) if targets else [0]):
        for r in range(restarts):
            idx = acc.nonzero().squeeze(1)
            if idx.numel() == 0:
                return adv
            cur = fab_run(model, x[idx], y[idx], eps, n_iter, norm, r > 0, rank)
            with torch.no_grad():
                broken = (model(cur).max(1)[1] != y[idx]) & (lp(x[idx] - cur, norm) <= eps)
            acc[idx[broken]] = False
            adv[idx[broken]] = cur[broken]
    return adv


def fab_reference(out):
    g = torch.Generator().manual_seed(11)
    result = {}
    torch.manual_seed(3)
    model = CompactCNN(1, 10, c1=8, c2=16, hidden=32).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    xs = torch.rand(32, 1, 28, 28, generator=g)
    with torch.no_grad():
        ys = model(xs).argmax(1)
    result["x"], result["y"] = xs, ys
    cases = {"fab_linf": dict(eps=0.035, n_iter=20, restarts=2, seed=5),
             "fab_t_linf": dict(eps=0.035, n_iter=20, targets=3),
             "fab_l2": dict(eps=0.7, n_iter=20, norm="l2", restarts=2, seed=5),
             "fab_t_l2": dict(eps=0.7, n_iter=20, norm="l2", targets=3)}
    for name, kw in cases.items():
        result[name] = fab(model, xs, ys, **kw)
        with torch.no_grad():
            robust = (model(result[name]).argmax(1) == ys).float().mean().item()
        print(f"{name:10s} robust accuracy {100 * robust:.2f}%")
    torch.save(result, out / "fab.pt")


def autoattack_reference(out):
    """AutoAttack's standard version over the ports above: each part attacks the points the
    parts before it left robust (one batch, so the order of points matches ardkit's)."""
    torch.manual_seed(3)
    model = CompactCNN(1, 10, c1=8, c2=16, hidden=32).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(21)
    xs = torch.rand(40, 1, 28, 28, generator=g)
    with torch.no_grad():
        ys = model(xs).argmax(1)
    eps, steps, targets, queries, seed = 0.05, 10, 3, 100, 0
    parts = [("apgd-ce", lambda x, y: apgd(model, x, y, eps, steps, seed=seed)),
             ("apgd-t", lambda x, y: apgd(model, x, y, eps, steps, targets=targets, seed=seed)),
             ("fab-t", lambda x, y: fab(model, x, y, eps, steps, targets=targets, seed=seed)),
             ("square", lambda x, y: square(model, x, y, eps, queries, seed=seed, rescale=False))]
    with torch.no_grad():
        robust = model(xs).argmax(1) == ys
    adv = xs.clone()
    result = {"x": xs, "y": ys}
    for name, attack in parts:
        idx = robust.nonzero().squeeze(1)
        if idx.numel():
            cur = attack(xs[idx], ys[idx])
            with torch.no_grad():
                fooled = model(cur).argmax(1) != ys[idx]
            robust[idx[fooled]] = False
            adv[idx[fooled]] = cur[fooled]
        result["robust_after_" + name] = robust.clone()
        print(f"autoattack after {name:8s} robust accuracy {100 * robust.float().mean().item():.2f}%")
    result["adv"] = adv
    torch.save(result, out / "autoattack.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
