#pragma once
// Turns a validated experiment into live plugin objects: the wiring between the experiment
// file's tables and the registry.
#include <ardkit/config.hpp>
#include <ardkit/registry.hpp>
#include <ardkit/trainer.hpp>

namespace ardkit {

// Reads, overrides, loads plugins along the full search path and validates.
struct ARDKIT_API LoadedExperiment {
  std::unique_ptr<Registry> registry;
  ExperimentConfig config;
};
ARDKIT_API LoadedExperiment load_experiment(const std::filesystem::path& file,
                                            const std::vector<std::string>& overrides,
                                            const std::vector<std::filesystem::path>& plugin_path);

// The [[eval]] attacks, labelled by their `name` (default: the plugin name; labels must differ).
ARDKIT_API std::vector<NamedAttack> build_named_attacks(const Registry& registry,
                                                        const std::vector<PluginTable>& tables,
                                                        const std::filesystem::path& file,
                                                        const BuildContext& context);

// Builds every component (data first: models size themselves from it).
ARDKIT_API TrainSetup build_components(const LoadedExperiment& experiment);

}  // namespace ardkit
