// What a run needs from its experiment, checked once when its components are built (before a run
// folder exists), and the label-space rule, also applied to the models' probed class counts.
#include <fmt/format.h>

#include "ardkit/error.hpp"
#include "ardkit/host/trainer.hpp"

namespace ardkit {

Knobs declared_knobs(const TrainSetup& setup) {
  Knobs knobs;
  setup.objective->declare_knobs(knobs);
  if (setup.attack) {
    const ThreatModel threat = setup.attack->threat();
    knobs.declare("attack.eps", threat.eps,
                  threat.norm == "linf" ? KnobRange::between(0, 1) : KnobRange::at_least(0));
  }
  return knobs;
}

void check_label_spaces(const ExperimentConfig& config, int64_t teacher_classes,
                        const std::string& teacher_space, int64_t classes,
                        const std::string& space) {
  if (!config.objective->needs(Need::same_label_space) ||
      (teacher_classes == classes && teacher_space == space))
    return;
  throw_config_error(fmt::format(
      "{}: objective '{}' distills the teacher's class probabilities, but the teacher has {} "
      "classes of '{}' and the student {} of '{}': soft labels need one label space; for a "
      "teacher from another task use an objective that distills features, or train the student "
      "without a teacher",
      config.file.string(), config.objective->plugin, teacher_classes, teacher_space, classes,
      space));
}

namespace {

// Hooks name knobs by string: a typo or a knob this objective lacks is caught here, before a run
// folder exists, rather than at the first step.
void check_hook_knobs(const TrainSetup& setup) {
  if (setup.hooks.empty())
    return;
  const ExperimentConfig& config = *setup.config;
  const Knobs knobs = declared_knobs(setup);
  for (size_t i = 0; i < setup.hooks.size(); ++i) {
    try {
      setup.hooks[i]->check_knobs(knobs);
    } catch (const Error& e) {
      const PluginTable& table = config.hooks.at(i);
      const std::string where =
          table.params.has("knob") ? table.params.origin("knob") : config.file.string();
      throw Error(e.kind(), fmt::format("{}: [hook[{}]] (plugin '{}'): {}", where, i, table.plugin,
                                        e.what()));
    }
  }
}

}  // namespace

void check_requirements(const TrainSetup& setup) {
  const ExperimentConfig& config = *setup.config;
  check_hook_knobs(setup);
  if (setup.generator && !setup.teacher)
    throw_config_error(
        fmt::format("{}: [generator] synthesises training data from a teacher, but the "
                    "experiment has no [teacher] table: add one with plugin and checkpoint "
                    "(or experiment)",
                    config.file.string()));
  // A teacher from another experiment's task. (A class count that differs for other reasons is
  // caught when train() probes the models.)
  if (setup.teacher && setup.data) {
    const DataSpec data = setup.data->spec();
    check_label_spaces(config, setup.teacher_data.num_classes, label_space_of(setup.teacher_data),
                       data.num_classes, label_space_of(data));
  }
}

}  // namespace ardkit
