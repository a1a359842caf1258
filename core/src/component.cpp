// Out-of-line virtual destructors: they anchor the vtables and type information of the plugin
// interfaces in libardkit_core, one copy for the host and every plugin library.
#include "ardkit/component.hpp"

#include <fmt/format.h>

#include <algorithm>
#include "ardkit/attack.hpp"
#include "ardkit/data.hpp"
#include "ardkit/error.hpp"
#include "ardkit/generator.hpp"
#include "ardkit/hook.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/model.hpp"
#include "ardkit/objective.hpp"
#include "ardkit/text.hpp"

namespace ardkit {

Component::~Component() = default;
Model::~Model() = default;

void Model::set_taps(const std::vector<std::string>& names) {
  const auto valid = tap_names();
  for (const auto& name : names)
    if (std::find(valid.begin(), valid.end(), name) == valid.end())
      throw_config_error(fmt::format("this model has no tap '{}'{}; its taps: {}", name,
                                     did_you_mean(name, valid),
                                     valid.empty() ? "none" : join(valid, ", ")));
  wanted_ = std::set<std::string>(names.begin(), names.end());
  tapped_.clear();
}

const torch::Tensor& Model::tapped(const std::string& name) const {
  const auto found = tapped_.find(name);
  if (found == tapped_.end())
    throw_runtime_error(
        fmt::format("tap '{}' was not recorded: ask for it with set_taps before "
                    "the forward",
                    name));
  return found->second;
}

LossTerms Objective::step(StepContext& c) {
  if (!c.optimizer)
    throw_runtime_error("Objective::step needs the run's optimizer in its StepContext");
  c.optimizer->zero_grad();
  LossTerms loss = compute(c);
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

void Knobs::declare(const std::string& name, double initial) {
  values_.emplace(name,
                  initial);  // a knob declared twice keeps its first (possibly adjusted) value
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
    throw_runtime_error("knob '" + name + "' was never declared" + did_you_mean(name, names) +
                        "; known knobs: " + (names.empty() ? "none" : join(names, ", ")));
  }
  return it->second;
}
void Knobs::set(const std::string& name, double value) {
  get(name);  // same error for an unknown knob
  values_[name] = value;
}

}  // namespace ardkit
