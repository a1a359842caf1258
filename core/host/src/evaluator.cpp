#include "ardkit/host/evaluator.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "ardkit/host/run_dir.hpp"
#include "ardkit/interrupt.hpp"
#include "ardkit/progress.hpp"
#include "ardkit/weights.hpp"

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

namespace {

// Flags as a string of '0' and '1': the state file stays readable and small.
std::string to_bits(const torch::Tensor& flags) {
  const auto a = flags.to(torch::kBool).cpu().contiguous();
  const bool* p = a.data_ptr<bool>();
  std::string bits(static_cast<size_t>(a.numel()), '0');
  for (int64_t i = 0; i < a.numel(); ++i)
    if (p[i])
      bits[static_cast<size_t>(i)] = '1';
  return bits;
}

torch::Tensor from_bits(const std::string& bits) {
  auto flags = torch::zeros({static_cast<int64_t>(bits.size())}, torch::kBool);
  bool* p = flags.data_ptr<bool>();
  for (size_t i = 0; i < bits.size(); ++i)
    p[i] = bits[i] == '1';
  return flags;
}

// How far one attack got: robust flags of the points attacked so far, and its stages' flags.
struct AttackProgress {
  std::string name;
  int64_t batches_done = 0;
  bool complete = false;
  double seconds = 0.0;
  torch::Tensor robust;  // [n] bool
  std::vector<std::string> stage_names;
  std::vector<torch::Tensor> stage_robust;
  std::vector<double> stage_seconds;
};

// Everything an interrupted evaluation needs to go on where it stopped.
struct EvalState {
  torch::Tensor clean;  // undefined until the clean pass is done
  std::vector<AttackProgress> attacks;

  void save(const EvalOptions& options, int64_t n) const {
    if (options.state_file.empty())
      return;
    nlohmann::json j;
    j["format"] = "ardkit-eval-state-1";
    j["fingerprint"] = options.fingerprint;
    j["points"] = n;
    j["batch_size"] = options.batch_size;
    j["clean"] = clean.defined() ? to_bits(clean) : "";
    j["attacks"] = nlohmann::json::array();
    for (const auto& a : attacks) {
      nlohmann::json stages = nlohmann::json::array();
      for (size_t k = 0; k < a.stage_names.size(); ++k)
        stages.push_back({{"name", a.stage_names[k]},
                          {"robust", to_bits(a.stage_robust[k])},
                          {"seconds", a.stage_seconds[k]}});
      j["attacks"].push_back({{"name", a.name},
                              {"batches_done", a.batches_done},
                              {"complete", a.complete},
                              {"seconds", a.seconds},
                              {"robust", to_bits(a.robust)},
                              {"stages", stages}});
    }
    if (!options.state_file.parent_path().empty())
      std::filesystem::create_directories(options.state_file.parent_path());
    write_file_atomic(options.state_file, j.dump() + "\n");
  }

  // The saved state when it belongs to this very evaluation; nothing otherwise (a state from
  // another configuration, or an unreadable file, means starting over, with a log line).
  static std::optional<EvalState> load(const EvalOptions& options, int64_t n) {
    if (options.state_file.empty() || !std::filesystem::exists(options.state_file))
      return std::nullopt;
    const std::string file = options.state_file.string();
    try {
      std::ifstream in(options.state_file);
      const auto j = nlohmann::json::parse(in);
      if (j.at("format") != "ardkit-eval-state-1" || j.at("fingerprint") != options.fingerprint ||
          j.at("points") != n || j.at("batch_size") != options.batch_size) {
        log_line(file + " belongs to another evaluation (different settings); starting over");
        return std::nullopt;
      }
      EvalState state;
      if (const std::string clean = j.at("clean"); !clean.empty())
        state.clean = from_bits(clean);
      for (const auto& a : j.at("attacks")) {
        AttackProgress p;
        p.name = a.at("name");
        p.batches_done = a.at("batches_done");
        p.complete = a.at("complete");
        p.seconds = a.at("seconds");
        p.robust = from_bits(a.at("robust"));
        for (const auto& stage : a.at("stages")) {
          p.stage_names.push_back(stage.at("name"));
          p.stage_robust.push_back(from_bits(stage.at("robust")));
          p.stage_seconds.push_back(stage.at("seconds"));
        }
        state.attacks.push_back(std::move(p));
      }
      const auto sized = [n](const torch::Tensor& t) { return !t.defined() || t.numel() == n; };
      bool ok = sized(state.clean);
      for (const auto& a : state.attacks) {
        ok = ok && sized(a.robust);
        for (const auto& t : a.stage_robust)
          ok = ok && sized(t);
      }
      if (!ok)
        throw std::runtime_error("flag strings of the wrong length");
      return state;
    } catch (const std::exception& e) {
      log_line(fmt::format("{}: unreadable evaluation state ({}); starting over", file, e.what()));
      return std::nullopt;
    }
  }
};

}  // namespace

bool evaluation_state_usable(const EvalOptions& options, int64_t points) {
  return EvalState::load(options, points).has_value();
}

namespace {

// The evaluation reseeds the default generator per batch; the caller's stream is put back.
class DefaultGeneratorGuard {
 public:
  DefaultGeneratorGuard() : generator_(at::detail::getDefaultCPUGenerator()) {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    state_ = generator_.get_state();
  }
  ~DefaultGeneratorGuard() {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    generator_.set_state(state_);
  }
  DefaultGeneratorGuard(const DefaultGeneratorGuard&) = delete;
  DefaultGeneratorGuard& operator=(const DefaultGeneratorGuard&) = delete;

 private:
  at::Generator generator_;
  torch::Tensor state_;
};

uint64_t batch_seed(int64_t seed, size_t attack, int64_t batch) {
  // splitmix64 of the three: nearby (seed, attack, batch) give unrelated streams.
  uint64_t z = static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ull +
               (attack + 1) * 0xBF58476D1CE4E5B9ull +
               static_cast<uint64_t>(batch + 1) * 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

namespace {

// What one evaluation walks through: the model, the points, the state saved after every batch.
struct EvalRun {
  Model& model;
  DataSource& data;
  const EvalOptions& options;
  int64_t n;
  torch::Device device;
  EvalState& state;
};

// Clean correctness of every point. Attacks only need the clean-correct ones, and a point counts
// as robust only if it is also correct clean (so robust <= clean always holds).
torch::Tensor clean_pass(const EvalRun& r) {
  const int64_t batch_size = r.options.batch_size;
  const int64_t batches = (r.n + batch_size - 1) / batch_size;
  auto clean_correct = torch::zeros({r.n}, torch::kBool);
  torch::NoGradGuard no_grad;
  Progress progress(r.options.label + " clean", batches);
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t lo = b * batch_size, hi = std::min(r.n, lo + batch_size);
    const auto batch =
        r.data.get(r.options.split, torch::arange(lo, hi, torch::kLong), Augmentation::none());
    const auto pred = r.model.logits(batch.x.to(r.device)).argmax(1).cpu();
    clean_correct.slice(0, lo, hi).copy_(pred.eq(batch.y));
    progress.update(b + 1);
    if (interrupt_requested())
      throw Interrupted();
  }
  progress.finish();
  return clean_correct;
}

// One batch of clean-correct points attacked, its robust flags (and each stage's) recorded.
void attack_batch(const EvalRun& r, const NamedAttack& named, size_t a, int64_t b,
                  const torch::Tensor& rows, AttackProgress& p) {
  torch::manual_seed(batch_seed(r.options.seed, a, b));
  const auto batch = r.data.get(r.options.split, rows, Augmentation::none());
  AttackTarget target;
  target.model = &r.model;
  target.bn_mode = BnMode::eval;
  const auto x = batch.x.to(r.device), y = batch.y.to(r.device);
  std::vector<AttackStage> stages;
  const auto x_adv = named.attack->perturb_staged(target, x, y, stages);
  torch::NoGradGuard no_grad;
  const auto pred = r.model.logits(x_adv).argmax(1).cpu();
  p.robust.index_put_({rows}, pred.eq(batch.y));
  if (!stages.empty() && p.stage_names.empty())
    for (const auto& stage : stages) {
      p.stage_names.push_back(stage.name);
      p.stage_robust.push_back(torch::zeros({r.n}, torch::kBool));
      p.stage_seconds.push_back(0.0);
    }
  for (size_t k = 0; k < stages.size() && k < p.stage_names.size(); ++k) {
    p.stage_robust[k].index_put_({rows}, stages[k].robust.cpu());
    p.stage_seconds[k] += stages[k].seconds;
  }
}

// The attack's result from its finished progress, with a progress line naming each stage.
AttackResult attack_result(const std::string& name, const AttackProgress& p, Progress& progress) {
  AttackResult result;
  result.name = name;
  result.accuracy = p.robust.to(torch::kDouble).mean().item<double>();
  result.seconds = p.seconds;
  std::string stage_text;
  for (size_t k = 0; k < p.stage_names.size(); ++k) {
    StageResult stage{p.stage_names[k], p.stage_robust[k].to(torch::kDouble).mean().item<double>(),
                      p.stage_seconds[k]};
    stage_text +=
        fmt::format("{}{} {:.2f}%", k ? ", " : " (after ", stage.name, 100 * stage.accuracy);
    result.stages.push_back(stage);
  }
  if (!stage_text.empty())
    stage_text += ")";
  progress.finish(fmt::format("robust {:.2f}%{}", 100 * result.accuracy, stage_text));
  return result;
}

// Attack `a` over the candidates batch by batch, from where a saved state left it.
AttackResult run_attack(const EvalRun& r, const NamedAttack& named, size_t a,
                        const torch::Tensor& candidates) {
  EvalState& state = r.state;
  if (state.attacks.size() <= a || state.attacks[a].name != named.name) {
    state.attacks.resize(a);
    AttackProgress fresh;
    fresh.name = named.name;
    fresh.robust = torch::zeros({r.n}, torch::kBool);
    state.attacks.push_back(std::move(fresh));
  }
  AttackProgress& p = state.attacks[a];
  const int64_t batch_size = r.options.batch_size;
  const int64_t m = candidates.size(0);
  const int64_t attack_batches = (m + batch_size - 1) / batch_size;
  Progress progress(r.options.label + " " + named.name, attack_batches);
  for (int64_t b = p.complete ? attack_batches : p.batches_done; b < attack_batches; ++b) {
    const auto batch_start = std::chrono::steady_clock::now();
    const auto rows = candidates.slice(0, b * batch_size, std::min(m, (b + 1) * batch_size));
    {
      // A batch can take minutes (AutoAttack): the attack reports its stage and steps inside it.
      const ProgressWithin within(progress, b);
      attack_batch(r, named, a, b, rows, p);
    }
    p.batches_done = b + 1;
    p.seconds += seconds_since(batch_start);
    state.save(r.options, r.n);
    const int64_t attacked = b * batch_size + rows.size(0);
    progress.update(b + 1,
                    fmt::format("robust {}/{} attacked", p.robust.sum().item<int64_t>(), attacked));
    if (interrupt_requested())
      throw Interrupted();
  }
  if (!p.complete) {
    p.complete = true;
    state.save(r.options, r.n);
  }
  return attack_result(named.name, p, progress);
}

// A score-based attack that beats every gradient attack means the gradients mislead.
std::optional<std::string> masking_warning(const std::vector<NamedAttack>& attacks,
                                           const EvalReport& report) {
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
  if (!best_gradient || !best_free || *best_free >= *best_gradient - 1e-9)
    return std::nullopt;
  return fmt::format(
      "the gradient-free attack '{}' ({:.2f}%) beats every gradient attack (best {:.2f}%): a "
      "sign of gradient masking",
      free_name, 100 * *best_free, 100 * *best_gradient);
}

}  // namespace

// Stages: the saved state (if any), the clean pass, each attack on the clean-correct points,
// the worst case over them, the warnings.
EvalReport evaluate(Model& model, DataSource& data, const std::vector<NamedAttack>& attacks,
                    const EvalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  BnModeGuard eval_mode(model, BnMode::eval);
  DefaultGeneratorGuard keep_generator;
  const int64_t available = data.size(options.split);
  const int64_t n = options.points > 0 ? std::min(options.points, available) : available;
  EvalReport report;
  report.points = n;
  if (n == 0)
    return report;
  EvalState state;
  if (auto loaded = EvalState::load(options, n)) {
    state = std::move(*loaded);
    int64_t complete = 0;
    for (const auto& a : state.attacks)
      complete += a.complete ? 1 : 0;
    log_line(fmt::format("resuming from {}: {} of {} attacks complete", options.state_file.string(),
                         complete, attacks.size()));
  }
  const EvalRun r{model, data, options, n, device_of(model), state};
  if (!state.clean.defined()) {
    state.clean = clean_pass(r);
    state.save(options, n);
  }
  const auto clean_correct = state.clean;
  report.clean_accuracy = clean_correct.to(torch::kDouble).mean().item<double>();
  if (!attacks.empty()) {
    const int64_t m = std::min(n, options.batch_size);
    report.warnings = model_checks(
        model, data.get(options.split, torch::arange(0, m, torch::kLong), Augmentation::none()),
        r.device);
  }
  auto worst = clean_correct.clone();
  const auto candidates = clean_correct.nonzero().squeeze(1);
  for (size_t a = 0; a < attacks.size(); ++a) {
    report.attacks.push_back(run_attack(r, attacks[a], a, candidates));
    worst &= state.attacks[a].robust;
  }
  report.worst_case = worst.to(torch::kDouble).mean().item<double>();
  if (auto warning = masking_warning(attacks, report))
    report.warnings.push_back(*warning);
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
