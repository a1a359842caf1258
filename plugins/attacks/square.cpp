// Attack plugin `square`: the L-inf Square Attack (Andriushchenko et al., ECCV 2020) as in
// fra31/auto-attack: a score-based random search that needs no gradients, so it still works
// where gradients are masked. Starts from vertical stripes of +-eps, then per query tries one
// random square of side ~sqrt(p * pixels) with a random +-2eps colour per channel, keeping it when
// the margin loss drops; p shrinks on a fixed schedule (by default rescaled to the query budget).
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/progress.hpp>
#include <cmath>

namespace {

using ardkit::Params;
using torch::Tensor;

class Square : public ardkit::Attack {
 public:
  explicit Square(const Params& p)
      : Attack({"linf", p.get_real("eps")}),
        queries_(p.get_int("queries")),
        p_init_(p.get_real("p_init")),
        restarts_(p.get_int("restarts")),
        seed_(p.get_int("seed")),
        rescale_(p.get_bool("rescale_schedule")) {}

  bool uses_gradients() const override {
    return false;
  }

  // The fraction of pixels a square covers after `query` of `queries_` queries.
  double p_selection(int64_t query) const {
    const int64_t it =
        rescale_ ? static_cast<int64_t>(static_cast<double>(query) / queries_ * 10000) : query;
    const int64_t bounds[] = {10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000};
    double p = p_init_;
    for (int64_t b : bounds)
      if (it > b)
        p /= 2;
    return p;
  }

 protected:
  Tensor run(const ardkit::AttackTarget& target, const Input& in) override {
    const auto& x0 = in.x;
    const auto& labels = in.labels;
    if (queries_ == 0)
      return x0.clone();
    if (!target.model)
      ardkit::throw_config_error("square: needs a model to query (not a custom objective)");
    generator_ = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed_));
    auto adv = x0.clone();
    auto robust = margin(*target.model, x0, labels).gt(0);
    for (int64_t r = 0; r < restarts_; ++r) {
      const auto idx = robust.nonzero().squeeze(1);
      if (idx.numel() == 0)
        break;
      const double k = static_cast<double>(r), n = static_cast<double>(restarts_);
      const ardkit::ProgressPart progress(
          k / n, (k + 1) / n,
          restarts_ > 1 ? fmt::format("restart {}/{} ", r + 1, restarts_) : std::string());
      const auto found =
          single_run(*target.model, x0.index_select(0, idx), labels.index_select(0, idx));
      const auto fooled = margin(*target.model, found, labels.index_select(0, idx)).le(0);
      const auto fooled_idx = idx.masked_select(fooled);
      robust.index_put_({fooled_idx}, false);
      adv.index_copy_(0, fooled_idx, found.index_select(0, fooled.nonzero().squeeze(1)));
    }
    return adv;
  }

 private:
  // z_y - max_{j != y} z_j: positive while correctly classified (the loss to drive down).
  static Tensor margin(ardkit::Model& model, const Tensor& x, const Tensor& y) {
    const auto logits = model.logits(x);
    const auto correct = logits.gather(1, y.unsqueeze(1)).squeeze(1);
    const auto others = logits.scatter(1, y.unsqueeze(1), -std::numeric_limits<float>::infinity());
    return correct - std::get<0>(others.max(1));
  }
  Tensor uniform(std::vector<int64_t> shape, const Tensor& like) {
    return torch::rand(shape, generator_, like.options().device(torch::kCPU)).to(like.device());
  }
  Tensor random_sign(std::vector<int64_t> shape, const Tensor& like) {
    return torch::sign(2 * uniform(std::move(shape), like) - 1);
  }
  int64_t random_int(int64_t low, int64_t high, const Tensor& like) {
    return low + static_cast<int64_t>(((high - low) * uniform({1}, like)).item<float>());
  }

  Tensor single_run(ardkit::Model& model, const Tensor& x, const Tensor& y) {
    const int64_t c = x.size(1), h = x.size(2), w = x.size(3);
    const int64_t features = c * h * w;
    auto x_best = (x + eps() * random_sign({x.size(0), c, 1, w}, x)).clamp(0.0, 1.0);
    auto margin_min = margin(model, x_best, y);
    auto loss_min = margin_min.clone();
    for (int64_t q = 0; q < queries_; ++q) {
      ardkit::check_interrupt();
      const auto idx = margin_min.gt(0).nonzero().squeeze(1);
      if (idx.numel() == 0)
        break;
      ardkit::report_progress(static_cast<double>(q), static_cast<double>(queries_), [&] {
        return fmt::format("query {}/{}, {}/{} left", q, queries_, idx.numel(), x.size(0));
      });
      const auto xc = x.index_select(0, idx), best = x_best.index_select(0, idx);
      const auto yc = y.index_select(0, idx);
      const double p = p_selection(q);
      const int64_t s = std::max<int64_t>(
          std::llround(std::sqrt(p * static_cast<double>(features) / static_cast<double>(c))), 1);
      const int64_t vh = random_int(0, h - s, x), vw = random_int(0, w - s, x);
      auto delta = torch::zeros({c, h, w}, x.options());
      delta.narrow(1, vh, s).narrow(2, vw, s).copy_(
          (2.0 * eps() * random_sign({c, 1, 1}, x)).expand({c, s, s}));
      const auto x_new = ardkit::project_linf(best + delta, xc, eps());
      const auto m = margin(model, x_new, yc);
      const auto improved = m.lt(loss_min.index_select(0, idx));
      loss_min.index_put_({idx}, torch::where(improved, m, loss_min.index_select(0, idx)));
      const auto accept = improved | m.le(0);
      margin_min.index_put_({idx}, torch::where(accept, m, margin_min.index_select(0, idx)));
      x_best.index_copy_(0, idx, torch::where(accept.view({-1, 1, 1, 1}), x_new, best));
    }
    return x_best;
  }

  int64_t queries_;
  double p_init_;
  int64_t restarts_, seed_;
  bool rescale_;
  at::Generator generator_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      real("eps", 8.0 / 255).at_least(0).help("L-inf radius in [0,1] pixel units"),
      integer("queries", 5000)
          .at_least(0)
          .at_most(10000000)
          .help("model queries per restart (AutoAttack: 5000)"),
      real("p_init", 0.8).greater_than(0).at_most(1).help("initial fraction of pixels per square"),
      integer("restarts", 1).at_least(1).at_most(1000).help("restarts on the still-robust points"),
      integer("seed", 0).at_least(0).help("seed of the random search"),
      boolean("rescale_schedule", true)
          .help("stretch the p schedule (written for 10000 queries) to the query budget; "
                "AutoAttack's Square does not"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(
      ardkit::PluginKind::attack, "square", "1.0.0",
      "L-inf Square Attack: gradient-free random search (Andriushchenko et al. 2020)", schema(),
      [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Square>(p); });
}
