// Attack throughput benchmark (not a test): images per second of the attack suite on the small
// CNN at Fashion-MNIST size and on ResNet-18 at CIFAR size, so speed regressions are visible.
//   build/bin/bench_attacks [points per model, default 64] [threads, default all cores]
//                           [models: all | small_cnn | resnet18, default all]
// The radius is tiny (0.001) so that no point is fooled: every attack, and every part of
// AutoAttack, spends its whole budget on every point, the worst case of an evaluation's cost.
// Each attack runs twice: alone, and under a listener that takes the progress reports from inside
// the attack at the terminal's redraw rate (ardkit::ProgressWithin, as `ardkit eval` installs
// one), so the cost of reporting progress shows as the "progress" column's overhead.
#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <iostream>
#include <thread>

#include <ardkit/ardkit.hpp>
#include <ardkit/host/cpu_allocator.hpp>
#include <ardkit/host/registry.hpp>
#include <ardkit/host/threading.hpp>
#include <ardkit/progress.hpp>

namespace {

ardkit::Params params_for(const ardkit::Registry& r, ardkit::PluginKind kind,
                          const std::string& name,
                          const std::map<std::string, ardkit::Value>& overrides) {
  ardkit::Params p("bench [" + name + "]");
  for (const auto& [k, v] : overrides)
    p.set(k, v);
  ardkit::fill_defaults(r.find(kind, name).info.schema, p);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t points = argc > 1 ? std::stoll(argv[1]) : 64;
  const int threads =
      argc > 2 ? std::stoi(argv[2]) : static_cast<int>(std::thread::hardware_concurrency());
  const std::string only = argc > 3 ? argv[3] : "all";
  ardkit::configure_cpu_threads(threads);  // as `ardkit run` and `ardkit eval` do
  ardkit::install_caching_cpu_allocator_from_environment();
  const ardkit::Registry registry({ardkit::builtin_plugin_dir()});
  struct Setup {
    std::string label, plugin;
    std::map<std::string, ardkit::Value> params;
    ardkit::DataSpec spec;
  };
  ardkit::DataSpec fmnist{1, 28, 28, 10, "fmnist"}, cifar{3, 32, 32, 10, "cifar"};
  const std::vector<Setup> models = {{"small_cnn 1x28x28", "small_cnn", {}, fmnist},
                                     {"resnet18 3x32x32", "resnet", {}, cifar}};
  const std::vector<
      std::pair<std::string, std::pair<std::string, std::map<std::string, ardkit::Value>>>>
      attacks = {{"pgd20", {"pgd", {{"steps", int64_t{20}}}}},
                 {"cw_inf20", {"cw_inf", {}}},
                 {"apgd-ce100", {"apgd", {}}},
                 {"apgd-t100x9", {"apgd_t", {}}},
                 {"square5000", {"square", {}}},
                 {"fab-t100x9", {"fab_t", {}}},
                 {"aa-standard", {"autoattack", {}}}};
  std::cout << fmt::format(
      "{} threads, {} points per model (random weights, eps 0.001: no point is fooled, so "
      "every attack spends its full budget)\n",
      threads, points);
  std::cout << fmt::format("{:<20} {:<12} {:>10} {:>10} {:>10} {:>9} {:>8}\n", "model", "attack",
                           "seconds", "img/s", "progress", "overhead", "reports");
  for (const auto& m : models) {
    if (only != "all" && m.label.rfind(only, 0) != 0)
      continue;
    ardkit::BuildContext context;
    context.data = m.spec;
    torch::manual_seed(0);
    auto model = registry.create<ardkit::Model>(
        ardkit::PluginKind::model, m.plugin,
        params_for(registry, ardkit::PluginKind::model, m.plugin, m.params), context);
    model->eval();
    const auto x = torch::rand({points, m.spec.channels, m.spec.height, m.spec.width});
    torch::Tensor y;
    {
      torch::NoGradGuard no_grad;
      y = model->logits(x).argmax(1);  // all clean-correct: the attacks do full work
    }
    ardkit::AttackTarget target;
    target.model = model.get();
    for (const auto& [label, spec] : attacks) {
      auto values = spec.second;
      values["eps"] = 0.001;
      auto attack = registry.create<ardkit::Attack>(
          ardkit::PluginKind::attack, spec.first,
          params_for(registry, ardkit::PluginKind::attack, spec.first, values), context);
      const auto timed = [&] {
        const auto start = std::chrono::steady_clock::now();
        attack->perturb(target, x, y);
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      };
      const double s = timed();
      int64_t reports = 0;
      auto last = std::chrono::steady_clock::now();
      const ardkit::ProgressWithin listening(
          [&] { return std::chrono::steady_clock::now() - last >= std::chrono::milliseconds(200); },
          [&](double, const std::string& detail) {
            last = std::chrono::steady_clock::now();
            reports += !detail.empty();
          });
      const double with_progress = timed();
      std::cout << fmt::format("{:<20} {:<12} {:>10.2f} {:>10.1f} {:>10.2f} {:>8.1f}% {:>8}\n",
                               m.label, label, s, static_cast<double>(points) / s, with_progress,
                               100 * (with_progress - s) / s, reports)
                << std::flush;
    }
  }
  return 0;
}
