// Attack plugin `autoattack`: AutoAttack (Croce & Hein, ICML 2020) as fra31/auto-attack composes
// it. Its parts are the registered plugins apgd, apgd_t, fab, fab_t and square, built through the
// registry; each part attacks only the points still robust after the parts before it, and a point
// counts as broken by the first part that fools the model. Versions:
//   standard  APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000 queries)
//   plus      APGD-CE and APGD-DLR (5 restarts), FAB (5 restarts), Square, APGD-T, FAB-T
//   rand      APGD-CE and APGD-DLR with 20-sample expectation over transformation
//   custom    the parts listed in `attacks`
#include <fmt/format.h>

#include <chrono>

#include <ardkit/ardkit.hpp>
#include <ardkit/progress.hpp>

namespace {

using ardkit::Params;
using torch::Tensor;

const std::vector<std::string> kPartNames = {"apgd-ce", "apgd-dlr", "apgd-t",
                                             "fab",     "fab-t",    "square"};

std::vector<std::string> parts_of(const std::string& version, const Params& p) {
  if (version == "standard")
    return {"apgd-ce", "apgd-t", "fab-t", "square"};
  if (version == "plus")
    return {"apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"};
  if (version == "rand")
    return {"apgd-ce", "apgd-dlr"};
  const auto& listed = p.get_string_list("attacks");
  if (listed.empty())
    ardkit::throw_config_error(p.where() +
                               ": version = \"custom\" needs attacks = [...], e.g. [\"apgd-ce\", "
                               "\"square\"]; parts: apgd-ce, apgd-dlr, apgd-t, fab, fab-t, square");
  return listed;
}

class AutoAttack : public ardkit::Attack {
 public:
  AutoAttack(const Params& p, const ardkit::BuildContext& context)
      : Attack({p.get_string("norm"), p.get_real("eps")}) {
    const std::string version = p.get_string("version");
    if (version != "custom" && !p.get_string_list("attacks").empty())
      ardkit::throw_config_error(p.where() +
                                 ": attacks = [...] is only read with version = "
                                 "\"custom\"; remove it or set version = \"custom\"");
    const int64_t seed = p.get_int("seed"), steps = p.get_int("steps"),
                  targets = p.get_int("target_classes");
    const int64_t restarts = version == "plus" ? 5 : 1;
    for (const auto& part : parts_of(version, p)) {
      Params q(p.where() + " part " + part);
      q.set("eps", eps());
      q.set("seed", seed);
      std::string plugin;
      if (part == "square") {
        if (!linf())
          ardkit::throw_config_error(
              p.where() +
              ": ardkit's Square attack is L-inf only; for norm = \"l2\" use "
              "version = \"custom\" with attacks = [\"apgd-ce\", \"apgd-t\", \"fab-t\"]");
        plugin = "square";
        q.set("queries", p.get_int("queries"));
        q.set("p_init", 0.8);
        q.set("rescale_schedule", false);
      } else {
        q.set("norm", threat_.norm);
        q.set("steps", steps);
        if (part == "apgd-ce" || part == "apgd-dlr") {
          plugin = "apgd";
          q.set("loss", std::string(part == "apgd-ce" ? "ce" : "dlr"));
          q.set("restarts", restarts);
          q.set("eot_iter", version == "rand" ? p.get_int("eot_iter") : int64_t{1});
        } else if (part == "apgd-t") {
          plugin = "apgd_t";
          q.set("target_classes", targets);
        } else if (part == "fab") {
          plugin = "fab";
          q.set("restarts", restarts);
        } else {
          plugin = "fab_t";
          q.set("target_classes", targets);
        }
      }
      parts_.push_back(
          {part, context.build_as<ardkit::Attack>(ardkit::PluginKind::attack, plugin, q),
           part_cost(part, p, restarts, version == "rand" ? p.get_int("eot_iter") : 1)});
    }
    double total = 0;
    for (const auto& part : parts_)
      total += part.share;
    for (auto& part : parts_)
      part.share /= total;
  }

  void set_eps(double eps) override {
    Attack::set_eps(eps);
    for (auto& part : parts_)
      part.attack->set_eps(eps);
  }

  Tensor perturb_staged(const ardkit::AttackTarget& target, const Tensor& x, const Tensor& labels,
                        std::vector<ardkit::AttackStage>& stages) override {
    if (!target.model || target.objective)
      ardkit::throw_config_error(
          "autoattack evaluates a model's decisions; it cannot maximize an objective's loss "
          "(use apgd as a training attack)");
    stages.clear();
    const auto x0 = x.detach();
    auto adv = x0.clone();
    auto robust = correct(target, x0, labels);
    double begin = 0;
    for (auto& part : parts_) {
      const auto start = std::chrono::steady_clock::now();
      const auto idx = robust.nonzero().squeeze(1);
      // The part's share of the batch in a progress line, with the points it starts from.
      const ardkit::ProgressPart progress(
          begin, begin + part.share,
          fmt::format("{} (robust {}/{}) ", part.name, idx.numel(), x0.size(0)));
      begin += part.share;
      if (idx.numel() > 0) {
        const auto xs = x0.index_select(0, idx), ys = labels.index_select(0, idx);
        const auto found = part.attack->perturb(target, xs, ys);
        const auto fooled = correct(target, found, ys).logical_not();
        const auto rows = fooled.nonzero().squeeze(1);
        const auto broken = idx.index_select(0, rows);
        robust.index_put_({broken}, false);
        adv.index_copy_(0, broken, found.index_select(0, rows));
      }
      stages.push_back(
          {part.name, robust.clone(),
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
    }
    return adv;
  }

 protected:
  // Each part prepares its own batch (perturb); the composition only routes points.
  Tensor run(const ardkit::AttackTarget& target, const Input& in) override {
    std::vector<ardkit::AttackStage> stages;
    return perturb_staged(target, in.x, in.labels, stages);
  }

 private:
  static Tensor correct(const ardkit::AttackTarget& target, const Tensor& x, const Tensor& y) {
    torch::NoGradGuard no_grad;
    ardkit::BnModeGuard mode(*target.model, target.bn_mode);
    return target.model->logits(x).argmax(1).eq(y);
  }

  // A part's expected cost in forward-backward passes per point, for its share of a progress
  // bar: APGD a pass per step and restart (targeted: per target class), FAB about two (its
  // linearization needs the gradient of a logit difference and a forward to check), Square one
  // forward (about a third of a pass) per query.
  static double part_cost(const std::string& part, const Params& p, int64_t restarts, int64_t eot) {
    const auto steps = static_cast<double>(p.get_int("steps"));
    const auto targets = static_cast<double>(p.get_int("target_classes"));
    if (part == "square")
      return static_cast<double>(p.get_int("queries")) / 3;
    if (part == "apgd-t")
      return steps * targets;
    if (part == "fab-t")
      return 2 * steps * targets;
    if (part == "fab")
      return 2 * steps * static_cast<double>(restarts);
    return steps * static_cast<double>(restarts * eot);
  }

  struct Part {
    std::string name;
    ardkit::AttackPtr attack;
    double share;  // of a batch's work, for progress
  };
  std::vector<Part> parts_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      real("eps", 8.0 / 255).at_least(0).help("radius in [0,1] pixel units"),
      string("norm", "linf").one_of({"linf", "l2"}).help("threat model norm"),
      string("version", "standard")
          .one_of({"standard", "plus", "rand", "custom"})
          .help("standard: APGD-CE, APGD-T, FAB-T, Square; plus: + APGD-DLR, FAB, 5 restarts; "
                "rand: APGD-CE, APGD-DLR with EOT; custom: `attacks`"),
      string_list("attacks", {})
          .one_of(kPartNames)
          .help("version = \"custom\": the parts in order"),
      integer("seed", 0).at_least(0).help("seed of every part"),
      integer("steps", 100).at_least(1).at_most(100000).help("APGD and FAB iterations"),
      integer("target_classes", 9).at_least(1).help("APGD-T and FAB-T target classes"),
      integer("queries", 5000).at_least(1).at_most(10000000).help("Square's query budget"),
      integer("eot_iter", 20).at_least(1).help("version = \"rand\": forwards per gradient"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::attack, "autoattack", "1.0.0",
               "AutoAttack standard/plus/rand: APGD-CE, APGD-T, FAB-T, Square on the still-robust "
               "points (Croce & Hein 2020)",
               schema(), [](const Params& p, const ardkit::BuildContext& context) {
                 return std::make_shared<AutoAttack>(p, context);
               });
}
