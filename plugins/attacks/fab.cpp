// Attack plugins `fab` and `fab_t`: the Fast Adaptive Boundary attack (Croce & Hein, ICML 2020)
// as in fra31/auto-attack (fab_base.py, fab_projections.py). FAB looks for the smallest
// perturbation that changes the decision: each step linearizes the decision boundary towards the
// closest class (fab) or one target class (fab_t), projects onto that hyperplane within [0,1]
// from the current iterate and from the clean point, and mixes the two with an overshoot. A point
// counts as broken only when its smallest adversarial perturbation lies within eps. L-inf and L2.
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <cmath>

#include <ardkit/ardkit.hpp>
#include <ardkit/attack_util.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/progress.hpp>

namespace {

using ardkit::Params;
using torch::Tensor;
using torch::indexing::Slice;

struct FabOptions {
  ardkit::ThreatModel threat{"linf", 8.0 / 255};
  double alpha_max = 0.1, eta = 1.05, beta = 0.9;
  int64_t steps = 100, restarts = 1, seed = 0, target_classes = 9;
};

Tensor per_sample(const Tensor& v, int64_t dims) {
  std::vector<int64_t> shape(static_cast<size_t>(dims + 1), 1);
  shape[0] = v.size(0);
  return v.reshape(shape);
}

// Per-row norm of a [N, D] matrix.
Tensor row_norm(const Tensor& v, bool linf) {
  return linf ? std::get<0>(v.abs().max(1)) : v.pow(2).sum(1).sqrt();
}

// Smallest L-inf step d with w.(t + d) = b and t + d in [0,1], per row (fab_projections.py:
// sort the coordinates by how far they can move, then bisect for the active set).
Tensor projection_linf(const Tensor& t, const Tensor& w_in, const Tensor& b_in) {
  const auto sign = (2 * ((w_in * t).sum(1) - b_in).ge(0).to(t.scalar_type()) - 1);
  const auto w = w_in * sign.unsqueeze(1);
  auto b = b_in * sign;
  const auto nonzero = w.ne(0).to(t.scalar_type());
  const auto a = w.lt(0).to(t.scalar_type());
  auto d = (a - t) * nonzero;
  const auto p = a - t * (2 * a - 1);
  const auto indp = torch::argsort(p, /*dim=*/int64_t{1});
  b = b - (w * t).sum(1);
  const auto b0 = (w * d).sum(1);
  const auto indp2 = indp.flip({1});
  const auto ws = w.gather(1, indp2);
  const auto bs2 = -ws * d.gather(1, indp2);
  const auto s = torch::cumsum(ws.abs(), 1);
  const auto sb = torch::cumsum(bs2, 1) + b0.unsqueeze(1);
  const auto b2_all =
      sb.select(1, -1) - s.select(1, -1) * p.gather(1, indp.narrow(1, 0, 1)).squeeze(1);
  const auto c_l = (b - b2_all).gt(0);
  const auto c2 = (b - b0).gt(0) & c_l.logical_not();
  const int64_t dim = w.size(1);
  auto lb = torch::zeros({c2.sum().item<int64_t>()}, t.options());
  auto ub = torch::full_like(lb, static_cast<double>(dim - 1));
  const auto iterations = static_cast<int64_t>(std::ceil(std::log2(static_cast<double>(dim))));
  const auto indp_ = indp.index({c2}), sb_ = sb.index({c2}), s_ = s.index({c2}), p_ = p.index({c2}),
             b_ = b.index({c2});
  for (int64_t i = 0; i < iterations; ++i) {
    const auto middle = torch::floor((lb + ub) / 2);
    const auto m = middle.to(torch::kLong).unsqueeze(1);
    const auto current = indp_.gather(1, indp_.size(1) - 1 - m);
    const auto b2 = (sb_.gather(1, m) - s_.gather(1, m) * p_.gather(1, current)).squeeze(1);
    const auto c = (b_ - b2).gt(0);
    lb = torch::where(c, middle, lb);
    ub = torch::where(c, ub, middle);
  }
  const auto lbi = lb.to(torch::kLong).unsqueeze(1);
  if (c_l.any().item<bool>()) {
    const auto lambda = torch::clamp_min(
        (b.index({c_l}) - sb.index({c_l}).select(1, -1)) / (-s.index({c_l}).select(1, -1)), 0);
    d.index_put_({c_l}, (2 * a.index({c_l}) - 1) * lambda.unsqueeze(-1));
  }
  const auto lambda =
      torch::clamp_min((b_ - sb_.gather(1, lbi).squeeze(1)) / (-s_.gather(1, lbi).squeeze(1)), 0)
          .unsqueeze(-1);
  const auto d2 = d.index({c2}), a2 = a.index({c2});
  d.index_put_({c2}, torch::min(lambda, d2) * a2 + torch::max(-lambda, d2) * (1 - a2));
  return d * nonzero;
}

// Smallest L2 step onto the hyperplane within [0,1], per row (fab_projections.py).
Tensor projection_l2(const Tensor& t, const Tensor& w_in, const Tensor& b) {
  auto c = (w_in * t).sum(1) - b;
  const auto sign = 2 * c.ge(0).to(t.scalar_type()) - 1;
  const auto w = w_in * sign.unsqueeze(1);
  c = c * sign;
  const auto small = w.abs().lt(1e-8);
  auto r = torch::max(t / w, (t - 1) / w).clamp(-1e12, 1e12);
  r.masked_fill_(small, 1e12);
  r = torch::where(r.eq(-1e12), -r, r);
  auto [rs, indr] = torch::sort(r, 1);
  auto rs2 = torch::constant_pad_nd(rs.narrow(1, 1, rs.size(1) - 1), {0, 1});
  rs.masked_fill_(rs.eq(1e12), 0);
  rs2.masked_fill_(rs2.eq(1e12), 0);
  const auto w3s = w.pow(2).gather(1, indr);
  const auto w5 = w3s.sum(1, true);
  const auto ws = w5 - torch::cumsum(w3s, 1);
  auto d = -(r * w) * small.logical_not().to(t.scalar_type());
  const auto first = rs.narrow(1, 0, 1);
  const auto s = torch::cat({-w5 * first, torch::cumsum((rs - rs2) * ws, 1) - w5 * first}, 1);
  const auto c4 = (s.select(1, 0) + c).lt(0);
  const auto c3 = ((d * w).sum(1) + c).gt(0);
  const auto c2 = (c4 | c3).logical_not();
  const int64_t dim = w.size(1);
  auto lb = torch::zeros({c2.sum().item<int64_t>()}, t.options());
  auto ub = torch::full_like(lb, static_cast<double>(dim - 1));
  const auto iterations = static_cast<int64_t>(std::ceil(std::log2(static_cast<double>(dim))));
  const auto s_ = s.index({c2}), c_ = c.index({c2});
  for (int64_t i = 0; i < iterations; ++i) {
    const auto middle = torch::floor((lb + ub) / 2);
    const auto m = middle.to(torch::kLong).unsqueeze(1);
    const auto above = (s_.gather(1, m).squeeze(1) + c_).gt(0);
    lb = torch::where(above, middle, lb);
    ub = torch::where(above, ub, middle);
  }
  const auto lbi = lb.to(torch::kLong).unsqueeze(1);
  if (c4.any().item<bool>()) {
    const auto alpha = c.index({c4}) / w5.index({c4}).squeeze(-1);
    d.index_put_({c4}, -alpha.unsqueeze(-1) * w.index({c4}));
  }
  if (c2.any().item<bool>()) {
    const auto ws_lb = ws.index({c2}).gather(1, lbi).squeeze(1);
    auto alpha =
        (s_.gather(1, lbi).squeeze(1) + c_) / ws_lb + rs.index({c2}).gather(1, lbi).squeeze(1);
    alpha = torch::where(ws_lb.eq(0), torch::zeros_like(alpha), alpha);
    const auto c5 = (alpha.unsqueeze(-1) > r.index({c2})).to(t.scalar_type());
    d.index_put_({c2}, d.index({c2}) * c5 - alpha.unsqueeze(-1) * w.index({c2}) * (1 - c5));
  }
  return d * small.logical_not().to(t.scalar_type());
}

class Fab : public ardkit::Attack {
 public:
  Fab(FabOptions o, bool targeted) : Attack(o.threat), o_(std::move(o)), targeted_(targeted) {}

 protected:
  Tensor run(const ardkit::AttackTarget& target, const Input& in) override {
    const auto& x0 = in.x;
    const auto& labels = in.labels;
    if (!target.model)
      ardkit::throw_config_error(std::string(targeted_ ? "fab_t" : "fab") +
                                 " attacks a model's decision and cannot maximize an objective's "
                                 "loss; use pgd or apgd as a training attack");
    model_ = target.model;
    generator_ = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(o_.seed));
    auto adv = x0.clone();
    if (o_.steps == 0)
      return adv;
    const auto clean = logits(x0);
    const int64_t classes = clean.size(1);
    auto robust = clean.argmax(1).eq(labels);
    const int64_t rounds = targeted_ ? std::min<int64_t>(o_.target_classes, classes - 1) : 1;
    for (int64_t t = 0; t < rounds; ++t)
      for (int64_t r = 0; r < o_.restarts; ++r) {
        const auto idx = robust.nonzero().squeeze(1);
        if (idx.numel() == 0)
          return adv;
        const double k = static_cast<double>(t * o_.restarts + r), n = rounds * o_.restarts;
        const ardkit::ProgressPart progress(
            k / n, (k + 1) / n,
            (rounds > 1 ? fmt::format("target {}/{} ", t + 1, rounds) : std::string()) +
                (o_.restarts > 1 ? fmt::format("restart {}/{} ", r + 1, o_.restarts) : ""));
        const auto xs = x0.index_select(0, idx), ys = labels.index_select(0, idx);
        const auto found = single_run(xs, ys, r > 0, targeted_ ? t + 2 : 0);
        const auto distance = row_norm((xs - found).flatten(1), linf());
        const auto broken = logits(found).argmax(1).ne(ys) & distance.le(eps());
        const auto broken_rows = broken.nonzero().squeeze(1);
        const auto broken_idx = idx.index_select(0, broken_rows);
        robust.index_put_({broken_idx}, false);
        adv.index_copy_(0, broken_idx, found.index_select(0, broken_rows));
      }
    return adv;
  }

 private:
  Tensor logits(const Tensor& x) const {
    torch::NoGradGuard no_grad;
    return model_->logits(x);
  }

  // Logit differences to the label (or target) and their input gradients at x:
  // df [B, K'] and dg [B, K', ...] with K' = K untargeted, 1 targeted.
  std::pair<Tensor, Tensor> differences(const Tensor& x, const Tensor& label,
                                        const Tensor& target_class) const {
    torch::AutoGradMode grad_mode(true);
    const auto input = x.detach().requires_grad_(true);
    const auto out = model_->logits(input);
    const auto rows = torch::arange(x.size(0), label.options());
    if (target_class.defined()) {
      const auto diff = -(out.index({rows, label}) - out.index({rows, target_class}));
      const auto grad = torch::autograd::grad({diff.sum()}, {input})[0];
      return {diff.detach().unsqueeze(1), grad.unsqueeze(1)};
    }
    const int64_t classes = out.size(1);
    std::vector<Tensor> grads;
    for (int64_t k = 0; k < classes; ++k)
      grads.push_back(torch::autograd::grad({out.select(1, k).sum()}, {input}, {},
                                            /*retain_graph=*/k + 1 < classes)[0]);
    const auto g = torch::stack(grads, 1);
    const auto y = out.detach();
    auto df = y - y.index({rows, label}).unsqueeze(1);
    const auto dg = g - g.index({rows, label}).unsqueeze(1);
    df.index_put_({rows, label}, 1e10);
    return {df, dg};
  }

  // One FAB run on points the model classifies correctly; returns the smallest adversarial
  // example found per point (the clean point where none was found). `target_rank` > 0 aims at
  // the target_rank-th most likely class.
  Tensor single_run(const Tensor& x, const Tensor& y, bool random_start, int64_t target_rank) {
    const auto pred = logits(x).argmax(1).eq(y);
    auto result = x.clone();
    if (!pred.any().item<bool>())
      return result;
    const auto keep = pred.nonzero().squeeze(1);
    const auto im2 = x.index_select(0, keep), la2 = y.index_select(0, keep);
    Tensor target;
    if (target_rank > 0) {
      const auto order = std::get<1>(logits(im2).sort(-1));
      target = order.select(1, order.size(1) - target_rank);
    }
    const int64_t bs = im2.size(0), dims = im2.dim() - 1;
    auto adv = im2.clone();
    auto best = torch::full({bs}, 1e10, x.options());
    auto x1 = im2.clone();
    const auto x0 = im2.reshape({bs, -1});
    if (random_start) {
      const auto cpu = x.options().device(torch::kCPU);
      if (linf()) {
        const auto t = (2 * torch::rand(x1.sizes(), generator_, cpu) - 1).to(x.device());
        x1 = im2 + per_sample(torch::clamp_max(best, eps()), dims) * t /
                       per_sample(std::get<0>(t.reshape({bs, -1}).abs().max(1)), dims) * 0.5;
      } else {
        const auto t = torch::randn(x1.sizes(), generator_, cpu).to(x.device());
        x1 = im2 + per_sample(torch::clamp_max(best, eps()), dims) * t /
                       per_sample(t.reshape({bs, -1}).pow(2).sum(1).sqrt(), dims) * 0.5;
      }
      x1 = x1.clamp(0.0, 1.0);
    }
    const auto rows = torch::arange(bs, la2.options());
    for (int64_t i = 0; i < o_.steps; ++i) {
      ardkit::check_interrupt();
      ardkit::report_progress(static_cast<double>(i), static_cast<double>(o_.steps),
                              [&] { return fmt::format("step {}/{}", i, o_.steps); });
      auto [df, dg] = differences(x1, la2, target);
      torch::NoGradGuard no_grad;
      const auto dg_flat = dg.reshape({bs, dg.size(1), -1});
      const auto dual = linf() ? dg_flat.abs().sum(-1) : dg_flat.pow(2).sum(-1).sqrt();
      const auto closest = (df.abs() / (1e-12 + dual)).argmin(1);
      const auto dg2 = dg.index({rows, closest});
      const auto b = -df.index({rows, closest}) + (dg2 * x1).reshape({bs, -1}).sum(-1);
      const auto w = dg2.reshape({bs, -1});
      const auto points = torch::cat({x1.reshape({bs, -1}), x0});
      const auto d3 = linf() ? projection_linf(points, torch::cat({w, w}), torch::cat({b, b}))
                             : projection_l2(points, torch::cat({w, w}), torch::cat({b, b}));
      const auto d1 = d3.narrow(0, 0, bs).reshape(x1.sizes());
      const auto d2 = d3.narrow(0, bs, bs).reshape(x1.sizes());
      const auto a0 = per_sample(torch::clamp_min(row_norm(d3, linf()), 1e-8), dims);
      const auto a1 = a0.narrow(0, 0, bs), a2 = a0.narrow(0, bs, bs);
      const auto alpha = torch::clamp(a1 / (a1 + a2), 0.0, o_.alpha_max);
      x1 = ((x1 + o_.eta * d1) * (1 - alpha) + (im2 + d2 * o_.eta) * alpha).clamp(0.0, 1.0);
      const auto is_adv = logits(x1).argmax(1).ne(la2);
      if (is_adv.any().item<bool>()) {
        const auto distance = row_norm((x1 - im2).reshape({bs, -1}), linf());
        const auto closer = is_adv & distance.lt(best);
        adv = torch::where(per_sample(closer, dims), x1, adv);
        best = torch::where(closer, distance, best);
        // Step back towards the clean point from every adversarial iterate.
        x1 = torch::where(per_sample(is_adv, dims), im2 + (x1 - im2) * o_.beta, x1);
      }
    }
    const auto found = best.lt(1e10);
    const auto found_rows = found.nonzero().squeeze(1);
    result.index_copy_(0, keep.index_select(0, found_rows), adv.index_select(0, found_rows));
    return result;
  }

  FabOptions o_;
  bool targeted_;
  ardkit::Model* model_ = nullptr;
  at::Generator generator_;
};

FabOptions options_from(const Params& p, bool targeted) {
  FabOptions o;
  o.threat = {p.get_string("norm"), p.get_real("eps")};
  o.steps = p.get_int("steps");
  o.restarts = p.get_int("restarts");
  o.alpha_max = p.get_real("alpha_max");
  o.eta = p.get_real("eta");
  o.beta = p.get_real("beta");
  o.seed = p.get_int("seed");
  if (targeted)
    o.target_classes = p.get_int("target_classes");
  return o;
}

ardkit::ParamSchema schema(bool targeted) {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      real("eps", 8.0 / 255).at_least(0).help("radius in [0,1] pixel units"),
      string("norm", "linf").one_of({"linf", "l2"}).help("threat model norm"),
      integer("steps", 100).at_least(0).at_most(100000).help("iterations per run"),
      integer("restarts", 1)
          .at_least(1)
          .at_most(1000)
          .help("runs per point; later ones start at random"),
      real("alpha_max", 0.1)
          .at_least(0)
          .at_most(1)
          .help("largest weight of the clean point's "
                "projection in a step"),
      real("eta", 1.05).at_least(1).help("overshoot of the boundary projection"),
      real("beta", 0.9).greater_than(0).at_most(1).help("step back towards x after a success"),
      integer("seed", 0).at_least(0).help("seed of the random restarts"),
  };
  if (targeted)
    s.push_back(integer("target_classes", 9)
                    .at_least(1)
                    .help("aim at the 2nd ... (k+1)-th most likely classes in turn"));
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::attack, "fab", "1.0.0",
               "FAB, minimum-norm boundary attack towards the closest class, L-inf or L2 (Croce & "
               "Hein 2020)",
               schema(false), [](const Params& p, const ardkit::BuildContext&) {
                 return std::make_shared<Fab>(options_from(p, false), false);
               });
  manifest.add(ardkit::PluginKind::attack, "fab_t", "1.0.0",
               "targeted FAB towards each of the top-k other classes in turn (AutoAttack's FAB-T)",
               schema(true), [](const Params& p, const ardkit::BuildContext&) {
                 return std::make_shared<Fab>(options_from(p, true), true);
               });
}
