// Attack plugins `apgd` and `apgd_t`: Auto-PGD (Croce & Hein, ICML 2020) as in fra31/auto-attack:
// step size 2*eps halved at checkpoints when the loss oscillates or stalls (rho 0.75), momentum
// 0.75 (1.0 on the first step), restarts on the still-robust points. `apgd` maximizes
// cross-entropy (or an objective's injected loss) or DLR; `apgd_t` the targeted DLR towards each
// of the top-k other classes in turn. L-inf and L2.
#include <fmt/format.h>

#include <ATen/CPUGeneratorImpl.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/progress.hpp>

namespace {

using ardkit::Params;
using torch::Tensor;

struct ApgdOptions {
  ardkit::ThreatModel threat{"linf", 8.0 / 255};
  double rho = 0.75;
  int64_t steps = 100, restarts = 1, seed = 0, target_classes = 9, eot_iter = 1;
  bool dlr = false;  // the `loss` key: DLR instead of cross-entropy
  bool best_loss = false;
};

// Per-sample norm over all but the first dimension, shaped to broadcast against x.
Tensor per_sample(const Tensor& v) {
  return v.view({v.size(0), 1, 1, 1});
}
Tensor normalize(const Tensor& v, bool linf) {
  const auto flat = v.flatten(1);
  const auto n = linf ? std::get<0>(flat.abs().max(1)) : flat.pow(2).sum(1).sqrt();
  return v / (per_sample(n) + 1e-12);
}
Tensor l2_norm(const Tensor& v) {
  return per_sample(v.flatten(1).pow(2).sum(1).sqrt());
}
Tensor project(const Tensor& x_adv, const Tensor& x, bool linf, double eps) {
  if (linf)
    return ardkit::project_linf(x_adv, x, eps);
  const auto delta = x_adv - x;
  return (x + normalize(delta, linf) * torch::clamp_max(l2_norm(delta), eps)).clamp(0.0, 1.0);
}

struct RunResult {
  Tensor best;     // highest-loss point
  Tensor robust;   // still correctly classified after the run
  Tensor loss;     // best loss
  Tensor fooling;  // last misclassified iterate (x where never fooled)
};

class Apgd : public ardkit::Attack {
 public:
  Apgd(ApgdOptions o, bool targeted) : Attack(o.threat), o_(std::move(o)), targeted_(targeted) {}

 protected:
  Tensor run(const ardkit::AttackTarget& given, const Input& in) override {
    const auto& x = in.x;
    const auto& labels = in.labels;
    if (o_.steps == 0)
      return x.clone();
    ardkit::AttackTarget target = given;
    if (o_.dlr)
      target.loss = ardkit::losses::dlr();
    // Random starts come from the attack's own seed, as in the reference (which reseeds torch).
    generator_ = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(o_.seed));
    const auto& x0 = x;
    const auto& all_rows = in.rows;
    Tensor clean_logits;
    {
      torch::NoGradGuard no_grad;
      target.evaluate(x0, labels, all_rows, &clean_logits);
    }
    const int64_t classes = clean_logits.size(1);
    if ((targeted_ && classes < 4) || (o_.dlr && classes < 3))
      ardkit::throw_config_error(fmt::format(
          "{}: the DLR loss needs at least {} classes, the model has {}; use loss = \"ce\"",
          targeted_ ? "apgd_t" : "apgd", targeted_ ? 4 : 3, classes));
    auto robust = clean_logits.argmax(1).eq(labels);
    auto adv = x0.clone();
    if (o_.best_loss) {
      // The highest-loss point over restarts (for training-time use), not only fooling points.
      auto best_loss =
          torch::full({x.size(0)}, -std::numeric_limits<float>::infinity(), x.options());
      for (int64_t r = 0; r < o_.restarts; ++r) {
        const auto run = single_run(target, x0, labels, all_rows);
        const auto better = run.loss.gt(best_loss);
        adv = torch::where(per_sample(better), run.best, adv);
        best_loss = torch::where(better, run.loss, best_loss);
      }
      return adv;
    }
    const int64_t rounds =
        targeted_ ? std::min<int64_t>(o_.target_classes, clean_logits.size(1) - 1) : 1;
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
        const auto rows = all_rows.index_select(0, idx);
        ardkit::AttackTarget round = target;
        Tensor logits = clean_logits.index_select(0, idx);
        if (targeted_) {
          // Target: the (t+2)-th highest class at the clean point.
          Tensor targets = torch::zeros({x.size(0)}, all_rows.options());
          const auto order = std::get<1>(logits.sort(1));
          targets.index_put_({rows}, order.select(1, order.size(1) - 2 - t));
          round.loss = ardkit::losses::targeted_dlr(targets);
        }
        const auto run = single_run(round, xs, ys, rows);
        const auto fooled = run.robust.logical_not();
        const auto fooled_idx = idx.masked_select(fooled);
        robust.index_put_({fooled_idx}, false);
        adv.index_copy_(0, fooled_idx, run.fooling.index_select(0, fooled.nonzero().squeeze(1)));
      }
    return adv;
  }

 private:
  // The loss gradient at x_adv, averaged over eot_iter forwards for randomized models
  // (expectation over transformation); logits and loss are the last forward's.
  Tensor gradient(const ardkit::AttackTarget& target, Tensor& x_adv, const Tensor& y,
                  const Tensor& rows, Tensor& logits, Tensor& loss) {
    Tensor grad;
    for (int64_t e = 0; e < o_.eot_iter; ++e) {
      const auto input = x_adv.detach().requires_grad_(true);
      loss = target.evaluate(input, y, rows, &logits);
      auto g = torch::autograd::grad({loss.sum()}, {input})[0];
      grad = grad.defined() ? grad + g : g;
    }
    x_adv = x_adv.detach();
    loss = loss.detach();
    logits = logits.detach();
    return o_.eot_iter > 1 ? grad / static_cast<double>(o_.eot_iter) : grad;
  }

  RunResult single_run(const ardkit::AttackTarget& target, const Tensor& x, const Tensor& y,
                       const Tensor& rows) {
    const int64_t n = o_.steps, b = x.size(0);
    const int64_t n_iter_2 = std::max<int64_t>(static_cast<int64_t>(0.22 * n), 1);
    const int64_t n_iter_min = std::max<int64_t>(static_cast<int64_t>(0.06 * n), 1);
    const int64_t size_decr = std::max<int64_t>(static_cast<int64_t>(0.03 * n), 1);

    Tensor start;
    // Drawn on the CPU from the attack's generator, then moved: the same start on every device.
    const auto cpu = x.options().device(torch::kCPU);
    if (linf())
      start = (2 * torch::rand(x.sizes(), generator_, cpu) - 1).to(x.device());
    else
      start = torch::randn(x.sizes(), generator_, cpu).to(x.device());
    Tensor x_adv = (x + eps() * normalize(start, linf())).clamp(0.0, 1.0);
    Tensor x_best = x_adv.clone(), x_fooling = x.clone();
    Tensor logits, loss;
    Tensor grad = gradient(target, x_adv, y, rows, logits, loss);
    Tensor grad_best = grad.clone();
    Tensor robust = logits.argmax(1).eq(y);
    x_fooling = torch::where(per_sample(robust.logical_not()), x_adv, x_fooling);
    Tensor loss_best = loss.clone();
    Tensor loss_steps = torch::zeros({n, b}, x.options());
    Tensor step = torch::full({b, 1, 1, 1}, 2.0 * eps(), x.options());
    Tensor x_old = x_adv.clone();
    int64_t k = n_iter_2, counter = 0;
    Tensor loss_best_last_check = loss_best.clone();
    Tensor reduced_last_check = torch::ones({b}, x.options());

    for (int64_t i = 0; i < n; ++i) {
      ardkit::check_interrupt();
      ardkit::report_progress(static_cast<double>(i), static_cast<double>(n),
                              [&] { return fmt::format("step {}/{}", i, n); });
      {
        torch::NoGradGuard no_grad;
        const auto momentum_term = x_adv - x_old;
        x_old = x_adv.clone();
        const double a = i > 0 ? 0.75 : 1.0;
        const auto direction = linf() ? grad.sign() : normalize(grad, linf());
        auto x1 = project(x_adv + step * direction, x, linf(), eps());
        x_adv = project(x_adv + (x1 - x_adv) * a + momentum_term * (1 - a), x, linf(), eps());
      }
      grad = gradient(target, x_adv, y, rows, logits, loss);
      torch::NoGradGuard no_grad;
      const auto correct = logits.argmax(1).eq(y);
      robust = robust & correct;
      x_fooling = torch::where(per_sample(correct.logical_not()), x_adv, x_fooling);
      loss_steps[i] = loss;
      const auto improved = loss.gt(loss_best);
      x_best = torch::where(per_sample(improved), x_adv, x_best);
      grad_best = torch::where(per_sample(improved), grad, grad_best);
      loss_best = torch::where(improved, loss, loss_best);

      if (++counter == k) {
        // Halve the step where the loss rose in at most rho of the last k steps, or where the
        // step was not halved last time and the best loss has not improved since.
        auto increases = torch::zeros({b}, x.options());
        for (int64_t c = 0; c < k; ++c) {
          // Python's negative index wraps to the end of loss_steps; kept for fidelity.
          const int64_t now = i - c, before = ((i - c - 1) % n + n) % n;
          increases += loss_steps[now].gt(loss_steps[before]).to(x.scalar_type());
        }
        auto oscillating = increases.le(static_cast<double>(k) * o_.rho).to(x.scalar_type());
        const auto stalled =
            (1 - reduced_last_check) * loss_best_last_check.ge(loss_best).to(x.scalar_type());
        oscillating = torch::max(oscillating, stalled);
        reduced_last_check = oscillating.clone();
        loss_best_last_check = loss_best.clone();
        const auto halve = oscillating.gt(0);
        step = torch::where(per_sample(halve), step / 2.0, step);
        x_adv = torch::where(per_sample(halve), x_best, x_adv);
        grad = torch::where(per_sample(halve), grad_best, grad);
        k = std::max(k - size_decr, n_iter_min);
        counter = 0;
      }
    }
    return {x_best, robust, loss_best, x_fooling};
  }

  ApgdOptions o_;
  bool targeted_;
  at::Generator generator_;
};

ApgdOptions options_from(const Params& p, bool targeted) {
  ApgdOptions o;
  o.threat = {p.get_string("norm"), p.get_real("eps")};
  o.steps = p.get_int("steps");
  o.restarts = p.get_int("restarts");
  o.rho = p.get_real("rho");
  o.seed = p.get_int("seed");
  o.eot_iter = p.get_int("eot_iter");
  if (targeted) {
    o.target_classes = p.get_int("target_classes");
  } else {
    o.dlr = p.get_string("loss") == "dlr";
    o.best_loss = p.get_bool("best_loss");
  }
  return o;
}

ardkit::ParamSchema schema(bool targeted) {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      real("eps", 8.0 / 255).at_least(0).help("radius in [0,1] pixel units"),
      string("norm", "linf").one_of({"linf", "l2"}).help("threat model norm"),
      integer("steps", 100).at_least(0).at_most(100000).help("iterations per restart"),
      integer("restarts", 1)
          .at_least(1)
          .at_most(1000)
          .help("random restarts on the still-robust points"),
      real("rho", 0.75).greater_than(0).at_most(1).help("step-halving threshold at checkpoints"),
      integer("seed", 0).at_least(0).help("seed of the random starts"),
      integer("eot_iter", 1)
          .at_least(1)
          .help("forwards averaged per gradient (expectation over transformation, for randomized "
                "models)"),
  };
  if (targeted) {
    s.push_back(integer("target_classes", 9)
                    .at_least(1)
                    .help("attack towards the 2nd ... (k+1)-th most likely classes in turn"));
  } else {
    s.push_back(string("loss", "ce")
                    .one_of({"ce", "dlr"})
                    .help("ce: cross-entropy (or the objective's injected loss); dlr: difference "
                          "of logits ratio"));
    s.push_back(boolean("best_loss", false)
                    .help("return the highest-loss point of every sample (training use) instead "
                          "of fooling points only"));
  }
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::attack, "apgd", "1.0.0",
               "Auto-PGD with CE or DLR loss, L-inf or L2 (Croce & Hein 2020)", schema(false),
               [](const Params& p, const ardkit::BuildContext&) {
                 return std::make_shared<Apgd>(options_from(p, false), false);
               });
  manifest.add(ardkit::PluginKind::attack, "apgd_t", "1.0.0",
               "targeted Auto-PGD on the targeted DLR loss over the top-k classes", schema(true),
               [](const Params& p, const ardkit::BuildContext&) {
                 return std::make_shared<Apgd>(options_from(p, true), true);
               });
}
