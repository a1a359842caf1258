#pragma once
// An experiment written to a scratch folder and trained there, with the test plugins on the
// plugin path: what the engine tests drive.
#include <ardkit/host/experiment_setup.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.hpp"

namespace test {

struct ExperimentRun {
  TempDir dir;
  ardkit::LoadedExperiment experiment;
  std::unique_ptr<ardkit::RunDir> run;

  // `file` names the experiment (its stem is the run's name unless [run] name says otherwise).
  ExperimentRun(const std::string& text, const std::vector<std::string>& overrides,
                const std::string& file) {
    write_text(dir / file, text);
    experiment = ardkit::load_experiment(dir / file, overrides, {ARDKIT_TEST_PLUGIN_DIR "/good"});
    run = std::make_unique<ardkit::RunDir>(dir / "run", experiment.config.run_id(), file);
  }
  ardkit::TrainOutcome train() {
    ardkit::TrainSetup setup = ardkit::build_components(experiment);
    return ardkit::train(setup, *run);
  }
  // The metrics lines of one type ("step", "epoch").
  std::vector<nlohmann::json> lines(const std::string& type) const {
    std::vector<nlohmann::json> out;
    std::ifstream metrics(run->metrics_path());
    for (std::string line; std::getline(metrics, line);)
      if (auto j = nlohmann::json::parse(line); j["type"] == type)
        out.push_back(j);
    return out;
  }
  nlohmann::json results() const {
    std::ifstream in(run->results_path());
    return nlohmann::json::parse(in);
  }
};

}  // namespace test
