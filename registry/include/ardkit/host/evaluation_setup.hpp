#pragma once
// Turns a validated evaluation (see evaluation_config.hpp) into a model, data and attacks.
#include <ardkit/host/evaluation_config.hpp>
#include <ardkit/host/evaluator.hpp>
#include <ardkit/host/registry.hpp>

namespace ardkit {

struct ARDKIT_API LoadedEvaluation {
  std::unique_ptr<Registry> registry;
  EvaluationConfig config;
};
// `root` is the evaluation's TOML after overrides; `file` names it in messages.
ARDKIT_API LoadedEvaluation load_evaluation(const toml::table& root,
                                            const std::filesystem::path& file,
                                            const std::vector<std::filesystem::path>& plugin_path);

struct EvaluationSetup {
  ModelPtr model;
  std::shared_ptr<DataSource> data;
  std::vector<NamedAttack> attacks;
};
ARDKIT_API EvaluationSetup build_evaluation(const LoadedEvaluation& evaluation);

}  // namespace ardkit
