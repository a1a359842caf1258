// Attack plugins `pgd` and `cw_inf`. `pgd`: projected gradient descent (Madry et al. 2018) in the
// L-inf or L2 ball, with a configurable start, step size, steps, loss and restarts keeping the
// per-sample worst case. `cw_inf`: the same on the Carlini-Wagner margin with kappa, as the ARD
// literature's CW-inf evaluation (IAD, Fair-ARD: kappa 50, step 2/255).
#include <fmt/format.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/attack_util.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/progress.hpp>

namespace {

using ardkit::Params;

class Pgd : public ardkit::Attack {
 public:
  explicit Pgd(const Params& p)
      : Attack({p.get_string("norm"), p.get_real("eps")}),
        step_size_(p.get_real("step_size")),
        steps_(p.get_int("steps")),
        restarts_(p.get_int("restarts")),
        start_(ardkit::RandomStart::from(p)),
        loss_(loss_of(p)) {
    // An L2 radius may exceed 1; an L-inf one cannot mean anything beyond the pixel range.
    if (linf() && eps() > 1)
      ardkit::throw_config_error(fmt::format(
          "{}: {} 'eps' = {} is out of range for norm = \"linf\": at most 1 (pixels are in [0,1])",
          p.origin("eps"), p.where(), eps()));
  }

 protected:
  torch::Tensor run(const ardkit::AttackTarget& given, const Input& in) override {
    const auto& x0 = in.x;
    const auto& labels = in.labels;
    const auto& rows = in.rows;
    if (steps_ == 0)
      return x0.clone();
    ardkit::AttackTarget target = given;
    if (loss_)
      target.loss = loss_;
    // Madry et al.'s default when no step is given: 2.5 * eps / steps.
    const double alpha = step_size_ > 0 ? step_size_ : 2.5 * eps() / static_cast<double>(steps_);
    ardkit::WorstCase worst(x0);
    const double rounds = static_cast<double>(restarts_ * steps_);
    for (int64_t r = 0; r < restarts_; ++r) {
      auto x_adv = start(x0);
      for (int64_t s = 0; s < steps_; ++s) {
        ardkit::check_interrupt();
        ardkit::report_progress(static_cast<double>(r * steps_ + s), rounds, [&] {
          return restarts_ > 1
                     ? fmt::format("restart {}/{} step {}/{}", r + 1, restarts_, s, steps_)
                     : fmt::format("step {}/{}", s, steps_);
        });
        x_adv.requires_grad_(true);
        const auto loss = target.evaluate(x_adv, labels, rows, nullptr);
        const auto grad = torch::autograd::grad({loss.sum()}, {x_adv})[0];
        if (linf()) {
          x_adv = ardkit::project_linf(x_adv.detach() + alpha * grad.sign(), x0, eps());
        } else {
          const auto unit = grad / (ardkit::l2_norms(grad) + 1e-10).view({-1, 1, 1, 1});
          x_adv = ardkit::project_l2(x_adv.detach() + alpha * unit, x0, eps());
        }
      }
      if (restarts_ == 1)
        return x_adv.detach();  // no extra forward: ARD-style train-mode BN sees exactly `steps`
      torch::Tensor logits;
      torch::Tensor loss;
      {
        torch::NoGradGuard no_grad;
        loss = target.evaluate(x_adv, labels, rows, &logits);
      }
      worst.offer(x_adv, loss, logits, labels);
    }
    return worst.best();
  }

 private:
  torch::Tensor start(const torch::Tensor& x0) const {
    if (linf() || start_.kind != ardkit::RandomStart::Kind::uniform)
      return ardkit::random_start(x0, start_, eps());
    // L2 "uniform": a random direction at a U(0, eps) radius, as torchattacks' PGDL2.
    auto delta = torch::randn_like(x0);
    const auto radius = torch::rand({x0.size(0)}, x0.options()) * eps();
    delta = delta * (radius / (ardkit::l2_norms(delta) + 1e-12)).view({-1, 1, 1, 1});
    const auto out = x0 + delta;
    return start_.clip ? out.clamp(0.0, 1.0) : out;
  }

  // The `loss` key as a function, chosen once; empty: the caller's target loss (cross-entropy).
  static ardkit::SampleLoss loss_of(const Params& p) {
    const std::string& loss = p.get_string("loss");
    if (loss == "cw")
      return ardkit::losses::cw_margin(p.get_real("kappa"));
    if (loss == "dlr")
      return ardkit::losses::dlr();
    return {};
  }

  double step_size_;
  int64_t steps_, restarts_;
  ardkit::RandomStart start_;
  ardkit::SampleLoss loss_;
};

struct Defaults {
  std::string loss;
  int64_t steps;
  double step_size;
};

ardkit::ParamSchema schema(const Defaults& d) {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      real("eps", 8.0 / 255).at_least(0).help("radius in [0,1] pixel units"),
      real("step_size", d.step_size).at_least(0).help("step per iteration; 0 = 2.5 * eps / steps"),
      integer("steps", d.steps).at_least(0).at_most(100000).help("gradient steps per restart"),
      integer("restarts", 1)
          .at_least(1)
          .at_most(1000)
          .help("random restarts; the per-sample worst case is kept"),
      string("norm", "linf").one_of({"linf", "l2"}).help("threat model norm"),
      string("loss", d.loss)
          .one_of({"ce", "cw", "dlr"})
          .help("ce: cross-entropy (or the objective's injected loss); cw: CW margin; dlr"),
      real("kappa", 50).at_least(0).help("CW margin confidence (loss = \"cw\")"),
  };
  ardkit::add_start_params(s, "uniform");
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(
      ardkit::PluginKind::attack, "pgd", "1.0.0",
      "projected gradient descent, L-inf or L2, with random start and restarts (Madry et al. 2018)",
      schema({"ce", 10, 0.0}),
      [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Pgd>(p); });
  manifest.add(
      ardkit::PluginKind::attack, "cw_inf", "1.0.0",
      "CW-inf: PGD on the Carlini-Wagner margin with kappa (ARD literature's CW evaluation)",
      schema({"cw", 20, 2.0 / 255}),
      [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Pgd>(p); });
}
