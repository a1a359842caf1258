// Out-of-line virtual destructors: they anchor the vtables and type information of the plugin
// interfaces in libardkit_sdk, one copy for the host and every plugin library.
#include "ardkit/component.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "ardkit/attack.hpp"
#include "ardkit/data.hpp"
#include "ardkit/error.hpp"
#include "ardkit/generator.hpp"
#include "ardkit/hook.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/model.hpp"
#include "ardkit/nn/batch_norm.hpp"
#include "ardkit/objective.hpp"
#include "ardkit/text.hpp"

namespace ardkit {

Component::~Component() = default;
Model::~Model() = default;

std::vector<std::string> Model::batch_norm_taps() {
  std::vector<std::string> out;
  for (const auto& item : named_modules("", false))
    if (dynamic_cast<nn::BatchNorm2dImpl*>(item.value().get()))
      out.push_back("bn:" + item.key());
  return out;
}

std::vector<std::string> Model::available_taps() {
  auto out = tap_names();
  for (auto& name : batch_norm_taps())
    out.push_back(std::move(name));
  return out;
}

ModelOutput Model::forward_from(const std::string& tap, const torch::Tensor& value) {
  const auto resumable = resumable_taps();
  if (std::find(resumable.begin(), resumable.end(), tap) == resumable.end())
    throw_config_error(fmt::format("this model cannot run from tap '{}'{}; it can from: {}", tap,
                                   did_you_mean(tap, resumable),
                                   resumable.empty() ? "none" : join(resumable, ", ")));
  return forward_from_impl(tap, value);
}

ModelOutput Model::forward_from_impl(const std::string& tap, const torch::Tensor& /*value*/) {
  throw_runtime_error(fmt::format(
      "model plugin lists tap '{}' in resumable_taps() but does not implement forward_from_impl",
      tap));
}

void Model::set_taps(const std::vector<std::string>& names) {
  wanted_.clear();
  add_taps(names);
}

void Model::add_taps(const std::vector<std::string>& names) {
  const auto valid = available_taps();
  for (const auto& name : names)
    if (std::find(valid.begin(), valid.end(), name) == valid.end())
      throw_config_error(fmt::format("this model has no tap '{}'{}; its taps: {}", name,
                                     did_you_mean(name, valid),
                                     valid.empty() ? "none" : join(valid, ", ")));
  wanted_.insert(names.begin(), names.end());
  tapped_.clear();
  // BatchNorm layers report their input statistics only when asked: an untapped forward is the
  // plain torch one.
  for (const auto& item : named_modules("", false))
    if (auto* bn = dynamic_cast<nn::BatchNorm2dImpl*>(item.value().get())) {
      const std::string name = "bn:" + item.key();
      if (wanted_.count(name))
        bn->record = [this, name](const torch::Tensor& stats) { tapped_[name] = stats; };
      else
        bn->record = nullptr;
    }
}

namespace nn {

torch::Tensor channel_statistics(const torch::Tensor& input) {
  const auto mean = input.mean({0, 2, 3});
  const auto var = input.var({0, 2, 3}, /*unbiased=*/false);
  return torch::stack({mean, var});
}

BatchNorm2dImpl::BatchNorm2dImpl(const torch::nn::BatchNorm2dOptions& options) : options(options) {
  reset();
}

// As torch::nn::NormImplBase::reset: the same names, shapes and initial values.
void BatchNorm2dImpl::reset() {
  const int64_t n = options.num_features();
  if (options.affine()) {
    weight = register_parameter("weight", torch::ones({n}));
    bias = register_parameter("bias", torch::zeros({n}));
  } else {
    weight = register_parameter("weight", torch::Tensor(), /*requires_grad=*/false);
    bias = register_parameter("bias", torch::Tensor(), /*requires_grad=*/false);
  }
  if (options.track_running_stats()) {
    running_mean = register_buffer("running_mean", torch::zeros({n}));
    running_var = register_buffer("running_var", torch::ones({n}));
    num_batches_tracked = register_buffer("num_batches_tracked", torch::tensor(0, torch::kLong));
  } else {
    running_mean = register_buffer("running_mean", torch::Tensor());
    running_var = register_buffer("running_var", torch::Tensor());
    num_batches_tracked = register_buffer("num_batches_tracked", torch::Tensor());
  }
}

void BatchNorm2dImpl::pretty_print(std::ostream& stream) const {
  stream << "ardkit::nn::BatchNorm2d(" << options.num_features() << ", eps=" << options.eps()
         << ", affine=" << options.affine()
         << ", track_running_stats=" << options.track_running_stats() << ")";
}

// As torch::nn::BatchNormImplBase::forward (momentum None = cumulative average).
torch::Tensor BatchNorm2dImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4, "expected 4D input (got ", input.dim(), "D input)");
  if (record)
    record(channel_statistics(input));
  double factor = options.momentum().value_or(0.0);
  if (is_training() && options.track_running_stats() && num_batches_tracked.defined()) {
    num_batches_tracked += 1;
    if (!options.momentum().has_value())
      factor = 1.0 / num_batches_tracked.item<double>();
  }
  return torch::batch_norm(input, weight, bias, running_mean, running_var,
                           is_training() || !options.track_running_stats(), factor, options.eps(),
                           at::globalContext().userEnabledCuDNN());
}

}  // namespace nn

const torch::Tensor& Model::tapped(const std::string& name) const {
  const auto found = tapped_.find(name);
  if (found == tapped_.end())
    throw_runtime_error(
        fmt::format("tap '{}' was not recorded: ask for it with set_taps before "
                    "the forward",
                    name));
  return found->second;
}

std::map<std::string, std::vector<int64_t>> Model::tap_shapes(const std::vector<std::string>& names,
                                                              const torch::Tensor& input) {
  const auto wanted = wanted_;
  const auto last = tapped_;
  const bool training = is_training();
  set_taps(names);
  eval();
  {
    torch::NoGradGuard no_grad;
    forward(input);
  }
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& [name, value] : tapped_)
    out[name] = value.sizes().vec();
  wanted_ = wanted;
  tapped_ = last;
  train(training);
  return out;
}

namespace {

template <class T>
T& named_role(const std::map<std::string, T*>& models, const std::string& name, const char* group) {
  const auto it = models.find(name);
  if (it == models.end() || !it->second)
    throw_runtime_error(fmt::format(
        "the objective asked for the model [{}.{}], which this run does not have: declare it "
        "at registration (.uses({{\"{}.{}\"}})) so that experiments must give it",
        group, name, group, name));
  return *it->second;
}

}  // namespace

Model& StepContext::teacher_named(const std::string& name) const {
  return named_role(teachers, name, "teachers");
}
Model& StepContext::companion(const std::string& name) const {
  return named_role(companions, name, "companions");
}
torch::optim::Optimizer& StepContext::companion_optimizer(const std::string& name) const {
  return named_role(companion_optimizers, name, "companions");
}

const torch::Tensor& LossTerms::output(const std::string& name, const std::string& who) const {
  const auto it = outputs.find(name);
  if (it == outputs.end() || !it->second.defined())
    throw_runtime_error(fmt::format(
        "{} needs the output \"{}\" of the objective it wraps, which that objective does not "
        "publish: wrap one that attacks and fills LossTerms::outputs (adaad, rslad, ard, trades, "
        "pgd_at, mtard, dgad)",
        who, name));
  return it->second;
}

LossTerms Objective::step(StepContext& c) {
  if (!c.optimizer)
    throw_runtime_error("Objective::step needs the run's optimizer in its StepContext");
  c.optimizer->zero_grad();
  LossTerms loss = compute(c);
  if (c.extra_terms)
    c.extra_terms(loss);
  if (c.check_finite)
    c.check_finite(loss);
  loss.total.backward();
  c.optimizer->step();
  return loss;
}

void Objective::save_state(torch::serialize::OutputArchive& archive) {
  if (auto module = trainable())
    module->save(archive);
}

void Objective::load_state(torch::serialize::InputArchive& archive) {
  if (auto module = trainable())
    module->load(archive);
}

bool Objective::has_state() {
  return trainable() != nullptr;
}

const char* kind_name(PluginKind kind) {
  switch (kind) {
    case PluginKind::model:
      return "model";
    case PluginKind::data:
      return "data";
    case PluginKind::attack:
      return "attack";
    case PluginKind::objective:
      return "objective";
    case PluginKind::hook:
      return "hook";
    case PluginKind::generator:
      return "generator";
  }
  return "?";
}

const char* split_name(Split split) {
  switch (split) {
    case Split::train:
      return "train";
    case Split::validation:
      return "validation";
    case Split::test:
      return "test";
  }
  return "?";
}

void Hook::check_knobs(const Knobs& declared) const {
  for (const auto& name : knobs())
    if (!declared.has(name)) {
      std::vector<std::string> names;
      for (const auto& [k, v] : declared.all())
        names.push_back(k);
      throw_config_error(fmt::format(
          "the knob '{}' is not declared by this experiment's objective or attack{}; declared "
          "knobs: {}",
          name, did_you_mean(name, names), names.empty() ? "none" : join(names, ", ")));
    }
}

bool KnobRange::contains(double value) const {
  return (min_exclusive ? value > min : value >= min) && value <= max;
}

std::string KnobRange::text() const {
  const bool low = std::isfinite(min), high = std::isfinite(max);
  if (low && high)
    return fmt::format("{}{}, {}]", min_exclusive ? "(" : "[", min, max);
  if (low)
    return fmt::format("{} {}", min_exclusive ? ">" : ">=", min);
  if (high)
    return fmt::format("<= {}", max);
  return "finite";
}

void Knobs::declare(const std::string& name, double initial, KnobRange range) {
  if (values_.emplace(name, initial).second)
    ranges_.emplace(name, range);
}
bool Knobs::has(const std::string& name) const {
  return values_.count(name) != 0;
}
double Knobs::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    std::vector<std::string> names;
    for (const auto& [k, v] : values_)
      names.push_back(k);
    throw_config_error("knob '" + name + "' was never declared" + did_you_mean(name, names) +
                       "; known knobs: " + (names.empty() ? "none" : join(names, ", ")));
  }
  return it->second;
}
const KnobRange& Knobs::range(const std::string& name) const {
  get(name);  // same error for an unknown knob
  return ranges_.at(name);
}
void Knobs::set(const std::string& name, double value) {
  const KnobRange& r = range(name);
  if (!std::isfinite(value) || !r.contains(value))
    throw_config_error(
        fmt::format("knob '{}' set to {}, outside its range {}", name, value, r.text()));
  values_[name] = value;
}

}  // namespace ardkit
