// Experiment and evaluation files through everything `ardkit validate` checks short of building
// components: TOML syntax, [base] inheritance, the host's and every plugin's schemas, suites,
// plugin names, requirements and knobs.
#include <ardkit/host/evaluation_setup.hpp>
#include <ardkit/host/experiment_setup.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::builtin();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // A plugin_path key loads every library of the folder it names: a fuzzer that guessed
  // "/usr/lib" would run foreign code, which is not what is under test.
  if (text.find("plugin_path") != std::string_view::npos)
    return -1;  // not added to the corpus
  const auto file = fuzz::write(fuzz::scratch() / "experiment.toml", text);
  fuzz::expect_clean([&] { ardkit::load_experiment(file, {}, {}); });
  fuzz::expect_clean([&] {
    const toml::table root = ardkit::parse_toml_file(file, "");
    ardkit::load_evaluation(root, file, {});
  });
  return 0;
}
