#include "ardkit/evaluator.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <optional>

#include "ardkit/interrupt.hpp"
#include "ardkit/progress.hpp"

namespace ardkit {

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// AutoAttack's checks on one batch (fra31/auto-attack checks.py): what makes gradient attacks
// fail for reasons other than robustness.
std::vector<std::string> model_checks(Model& model, const Batch& batch, torch::Device device) {
  std::vector<std::string> warnings;
  const auto x = batch.x.to(device), y = batch.y.to(device);
  torch::Tensor first, second;
  {
    torch::NoGradGuard no_grad;
    first = model.logits(x);
    second = model.logits(x);
  }
  if ((first - second).abs().max().item<double>() > 1e-5 * (1 + first.abs().max().item<double>()))
    warnings.push_back(
        "the model's outputs change between two identical forward passes (randomness in the "
        "model): use an expectation-over-transformation attack, robust accuracy may be "
        "overestimated");
  const bool in_unit = first.min().item<double>() >= 0 && first.max().item<double>() <= 1;
  if (in_unit && (first.sum(1) - 1).abs().max().item<double>() < 1e-3)
    warnings.push_back(
        "the model's outputs look like probabilities (softmax inside the model?); attacks expect "
        "logits and may be weakened");
  auto input = x.detach().clone().requires_grad_(true);
  {
    torch::AutoGradMode grad_mode(true);
    const auto loss = torch::nn::functional::cross_entropy(model.logits(input), y);
    const auto grad = torch::autograd::grad({loss}, {input}, {}, false, false, true)[0];
    const auto zero = grad.defined() ? grad.flatten(1).abs().amax(1).eq(0)
                                     : torch::ones({x.size(0)}, torch::kBool);
    if (const int64_t n = zero.sum().item<int64_t>(); n > 0)
      warnings.push_back(fmt::format(
          "the input gradient is exactly zero for {} of {} points (gradient masking or a "
          "non-differentiable model); trust the gradient-free attacks' numbers more",
          n, x.size(0)));
  }
  return warnings;
}
}  // namespace

EvalReport evaluate(Model& model, DataSource& data, const std::vector<NamedAttack>& attacks,
                    const EvalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  BnModeGuard eval_mode(model, BnMode::eval);
  const auto device =
      model.parameters().empty() ? torch::Device(torch::kCPU) : model.parameters().front().device();
  const int64_t available = data.size(options.split);
  const int64_t n = options.points > 0 ? std::min(options.points, available) : available;
  EvalReport report;
  report.points = n;
  if (n == 0)
    return report;

  // Labels and clean correctness of every point; attacks only need the clean-correct ones, and a
  // point counts as robust only if it is also correct clean (so robust <= clean always holds).
  auto clean_correct = torch::zeros({n}, torch::kBool);
  const int64_t batches = (n + options.batch_size - 1) / options.batch_size;
  {
    torch::NoGradGuard no_grad;
    Progress progress(options.label + " clean", batches);
    for (int64_t b = 0; b < batches; ++b) {
      const int64_t lo = b * options.batch_size, hi = std::min(n, lo + options.batch_size);
      const auto batch =
          data.get(options.split, torch::arange(lo, hi, torch::kLong), Augmentation::none());
      const auto pred = model.logits(batch.x.to(device)).argmax(1).cpu();
      clean_correct.slice(0, lo, hi).copy_(pred.eq(batch.y));
      progress.update(b + 1);
      if (interrupt_requested())
        throw Interrupted();
    }
    progress.finish();
  }
  report.clean_accuracy = clean_correct.to(torch::kDouble).mean().item<double>();
  if (!attacks.empty()) {
    const int64_t m = std::min(n, options.batch_size);
    report.warnings = model_checks(
        model, data.get(options.split, torch::arange(0, m, torch::kLong), Augmentation::none()),
        device);
  }
  auto worst = clean_correct.clone();

  const auto candidates = clean_correct.nonzero().squeeze(1);
  for (const auto& named : attacks) {
    const auto attack_start = std::chrono::steady_clock::now();
    auto robust = torch::zeros({n}, torch::kBool);
    const int64_t m = candidates.size(0);
    const int64_t attack_batches = (m + options.batch_size - 1) / options.batch_size;
    Progress progress(options.label + " " + named.name, attack_batches);
    for (int64_t b = 0; b < attack_batches; ++b) {
      const auto rows =
          candidates.slice(0, b * options.batch_size, std::min(m, (b + 1) * options.batch_size));
      const auto batch = data.get(options.split, rows, Augmentation::none());
      AttackTarget target;
      target.model = &model;
      target.bn_mode = BnMode::eval;
      const auto x = batch.x.to(device), y = batch.y.to(device);
      const auto x_adv = named.attack->perturb(target, x, y);
      torch::NoGradGuard no_grad;
      const auto pred = model.logits(x_adv).argmax(1).cpu();
      robust.index_put_({rows}, pred.eq(batch.y));
      const int64_t attacked = b * options.batch_size + rows.size(0);
      progress.update(b + 1,
                      fmt::format("robust {}/{} attacked", robust.sum().item<int64_t>(), attacked));
      if (interrupt_requested())
        throw Interrupted();
    }
    AttackResult result;
    result.name = named.name;
    result.accuracy = robust.to(torch::kDouble).mean().item<double>();
    result.seconds = seconds_since(attack_start);
    progress.finish(fmt::format("robust {:.2f}%", 100 * result.accuracy));
    report.attacks.push_back(result);
    worst &= robust;
  }
  report.worst_case = worst.to(torch::kDouble).mean().item<double>();
  // A score-based attack that beats every gradient attack means the gradients mislead.
  std::optional<double> best_gradient, best_free;
  std::string free_name;
  for (size_t i = 0; i < attacks.size(); ++i) {
    const double acc = report.attacks[i].accuracy;
    if (attacks[i].attack->uses_gradients()) {
      best_gradient = std::min(best_gradient.value_or(acc), acc);
    } else if (!best_free || acc < *best_free) {
      best_free = acc;
      free_name = attacks[i].name;
    }
  }
  if (best_gradient && best_free && *best_free < *best_gradient - 1e-9)
    report.warnings.push_back(fmt::format(
        "the gradient-free attack '{}' ({:.2f}%) beats every gradient attack (best {:.2f}%): a "
        "sign of gradient masking",
        free_name, 100 * *best_free, 100 * *best_gradient));
  for (const auto& w : report.warnings)
    log_line("warning: " + w);
  report.seconds = seconds_since(start);
  return report;
}

std::string format_report_table(const std::vector<std::pair<std::string, EvalReport>>& rows) {
  std::vector<std::string> attack_names;
  for (const auto& [label, report] : rows)
    for (const auto& a : report.attacks)
      if (std::find(attack_names.begin(), attack_names.end(), a.name) == attack_names.end())
        attack_names.push_back(a.name);
  size_t label_width = 5;
  for (const auto& [label, report] : rows)
    label_width = std::max(label_width, label.size());
  std::string out = fmt::format("{:<{}}  {:>7}  {:>7}", "model", label_width, "points", "clean");
  for (const auto& name : attack_names)
    out += fmt::format("  {:>8}", name);
  out += fmt::format("  {:>8}\n", attack_names.empty() ? "" : "worst");
  for (const auto& [label, report] : rows) {
    out += fmt::format("{:<{}}  {:>7}  {:>7.2f}", label, label_width, report.points,
                       100 * report.clean_accuracy);
    for (const auto& name : attack_names) {
      auto it = std::find_if(report.attacks.begin(), report.attacks.end(),
                             [&](const AttackResult& a) { return a.name == name; });
      out += it == report.attacks.end() ? fmt::format("  {:>8}", "-")
                                        : fmt::format("  {:>8.2f}", 100 * it->accuracy);
    }
    out += attack_names.empty() ? "\n" : fmt::format("  {:>8.2f}\n", 100 * report.worst_case);
  }
  return out;
}

}  // namespace ardkit
