// The RobustBench model zoo's architectures against the zoo's own code: the references were made
// by RobustBench's architecture files at a pinned commit, executed unchanged
// (tests/models/zoo_official.py), with random weights and BatchNorm statistics saved as the zoo
// stores a checkpoint. Each plugin loads the file strictly and must give the same eval-mode
// logits, and at the released size the same state-dict keys and shapes. Then the zoo by name
// (`zoo = "NAME"`, registry/zoo/robustbench.toml): a released-size checkpoint in each layout zoo
// files come in (tests/interop/make_fixtures.py), wrong files, hashes and names.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include <ardkit/ardkit.hpp>
#include <ardkit/file.hpp>
#include <ardkit/host/evaluation_setup.hpp>
#include <ardkit/host/zoo.hpp>
#include <ardkit/pytorch_file.hpp>
#include <ardkit/weights.hpp>

#include "test_util.hpp"

namespace {

std::filesystem::path zoo_reference() {
  return test::reference_dir("ARDKIT_ZOO_REFERENCE_DIR");
}

nlohmann::json zoo_index() {
  std::ifstream in(zoo_reference() / "index.json");
  return nlohmann::json::parse(in);
}

// The plugin named by an index entry, its parameters from the entry.
ardkit::ModelPtr build(const nlohmann::json& entry, int64_t classes) {
  std::map<std::string, ardkit::Value> values;
  for (const auto& [key, value] : entry["params"].items()) {
    if (value.is_array())
      values[key] = value.get<std::vector<double>>();
    else if (value.is_string())
      values[key] = value.get<std::string>();
    else if (value.is_boolean())
      values[key] = value.get<bool>();
    else
      values[key] = value.get<int64_t>();
  }
  ardkit::BuildContext context;
  context.data = ardkit::DataSpec{3, 32, 32, classes, "cifar"};
  return test::make<ardkit::Model>(ardkit::PluginKind::model, entry["plugin"].get<std::string>(),
                                   values, context);
}

// The eval-mode logits and penultimate features (what feature distillation reads) of the zoo's
// code, on the same inputs.
void check_outputs(ardkit::Model& model, const std::filesystem::path& io_file) {
  const auto io = test::load_tensors(io_file);
  torch::NoGradGuard no_grad;
  const auto out = model.forward(io.at("x"));
  REQUIRE(out.logits.sizes() == io.at("logits").sizes());
  CHECK(torch::allclose(out.logits, io.at("logits"), 1e-5, 1e-5));
  REQUIRE(out.features.sizes() == io.at("features").sizes());
  CHECK(torch::allclose(out.features, io.at("features"), 1e-5, 1e-5));
}

}  // namespace

TEST_CASE("zoo architectures: the zoo's checkpoint layout loads strictly, same outputs") {
  const auto index = zoo_index();
  REQUIRE(index["cases"].size() >= 3);
  for (const auto& [name, entry] : index["cases"].items()) {
    CAPTURE(name);
    auto model = build(entry, entry["classes"].get<int64_t>());
    ardkit::load_weights(*model, zoo_reference() / (name + ".pt"));  // strict by default
    model->eval();
    check_outputs(*model, zoo_reference() / (name + ".io.pt"));
  }
}

namespace {

// tests/models/zoo_official.py's formula_weights(), for a model too large to ship a file of.
void formula_weights(ardkit::Model& model) {
  auto state = ardkit::model_state_dict(model);
  std::sort(state.begin(), state.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  const auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < state.size(); ++k) {
    const auto& [key, t] = state[k];
    if (ends_with(key, "num_batches_tracked")) {
      t.fill_(7);
      continue;
    }
    auto v = torch::sin(0.7 * torch::arange(t.numel(), torch::kDouble) +
                        (1.3 * static_cast<double>(k) + 0.1));
    if (ends_with(key, "running_var"))
      v = 1 + 0.5 * v;
    else if (ends_with(key, "running_mean") || ends_with(key, "bias"))
      v = 0.1 * v;
    else if (t.dim() == 1)
      v = 0.5 + 0.25 * v;
    else
      v = v / std::sqrt(static_cast<double>(t.numel() / t.size(0)));
    t.copy_(v.reshape(t.sizes()).to(t.scalar_type()));
  }
}

}  // namespace

TEST_CASE("zoo architectures: released-size models from formula weights, same outputs") {
  const auto index = zoo_index();
  REQUIRE(index["formula"].size() >= 4);
  for (const auto& [name, entry] : index["formula"].items()) {
    CAPTURE(name);
    auto model = build(entry, entry["classes"].get<int64_t>());
    formula_weights(*model);
    model->eval();
    check_outputs(*model, zoo_reference() / (name + ".io.pt"));
  }
}

TEST_CASE("zoo architectures: the released sizes have the zoo's keys and shapes") {
  for (const auto& [label, entry] : zoo_index()["shapes"].items()) {
    CAPTURE(label);
    auto model = build(entry, 10);
    std::vector<std::pair<std::string, std::vector<int64_t>>> ours, theirs;
    for (const auto& [key, tensor] : ardkit::model_state_dict(*model))
      ours.emplace_back(key, tensor.sizes().vec());
    for (const auto& item : entry["keys"])
      theirs.emplace_back(item[0].get<std::string>(), item[1].get<std::vector<int64_t>>());
    std::sort(ours.begin(), ours.end());
    std::sort(theirs.begin(), theirs.end());
    CHECK(ours == theirs);
  }
}

namespace {

// An evaluation whose [model] names a zoo entry and a file, built as `ardkit eval` builds it.
ardkit::ModelPtr zoo_model(const std::string& zoo, const std::filesystem::path& file,
                           const std::string& extra = "") {
  const std::string text = fmt::format(
      "[model]\nzoo = \"{}\"\nfile = \"{}\"\n{}\n[data]\nplugin = \"synthetic\"\nchannels = "
      "3\nheight = 32\nwidth = 32\nnum_classes = 10\n",
      zoo, file.string(), extra);
  const auto root = toml::parse(std::string_view(text), std::string_view("zoo_eval.toml"));
  const auto loaded = ardkit::load_evaluation(root, "zoo_eval.toml", {});
  auto model = ardkit::build_evaluation(loaded).model;
  model->eval();
  return model;
}

constexpr auto kConfig = ardkit::ErrorKind::config;

std::filesystem::path interop_dir() {
  return test::reference_dir("ARDKIT_INTEROP_DIR");
}

}  // namespace

TEST_CASE("zoo by name: the zoo's checkpoint layouts load into the named architecture") {
  const auto io = test::load_tensors(interop_dir() / "zoo_r18.io.pt");
  for (const char* layout : {"bare", "module", "model_state_dict"}) {
    CAPTURE(layout);
    auto model = zoo_model("cifar10/Linf/Sehwag2021Proxy_R18",
                           interop_dir() / fmt::format("zoo_r18_{}.pt", layout));
    torch::NoGradGuard no_grad;
    CHECK(torch::allclose(model->logits(io.at("input")), io.at("logits"), 1e-5, 1e-5));
  }
}

TEST_CASE("zoo by name: a file of another architecture, a wrong hash, an unknown name") {
  const auto r18 = interop_dir() / "zoo_r18_bare.pt";
  // A ResNet-18 file under a WideResNet's name: one line naming the entry and the keys.
  const std::string wrong =
      test::error_of([&] { zoo_model("cifar10/Linf/Chen2021LTD_WRN34_10", r18); }, kConfig);
  CHECK(test::contains(wrong, "zoo cifar10/Linf/Chen2021LTD_WRN34_10"));
  CHECK(test::contains(wrong, "mis-shaped: conv1.weight (file [64,3,3,3] vs model [16,3,3,3])"));
  CHECK(wrong.find('\n') == std::string::npos);
  // The recorded hash is the file's; another is refused before anything is read.
  const std::string actual = ardkit::file_sha256(r18);
  CHECK(actual.size() == 64);
  zoo_model("cifar10/Linf/Sehwag2021Proxy_R18", r18, "sha256 = \"" + actual + "\"");
  const std::string other(64, 'a');
  const std::string refused = test::error_of(
      [&] { zoo_model("cifar10/Linf/Sehwag2021Proxy_R18", r18, "sha256 = \"" + other + "\""); },
      kConfig);
  CHECK(test::contains(refused, "is not the sha256"));
  CHECK(test::contains(refused, actual));
  // Names: a typo gets a suggestion; a table may not also name the architecture.
  CHECK(test::contains(
      test::error_of([&] { zoo_model("cifar10/Linf/Sehwag2021Proxy_R19", r18); }, kConfig),
      "did you mean 'cifar10/Linf/Sehwag2021Proxy_R18'"));
  CHECK(test::contains(
      test::error_of([&] { zoo_model("cifar10/Linf/Sehwag2021Proxy_R18", r18, "depth = 34"); },
                     kConfig),
      "sets 'depth', which zoo = \"cifar10/Linf/Sehwag2021Proxy_R18\" fixes"));
}

TEST_CASE("zoo by name: the resolved table records plugin, parameters, checkpoint and hash") {
  const auto r18 = interop_dir() / "zoo_r18_bare.pt";
  const std::string text = fmt::format(
      "[teacher]\nzoo = \"cifar100/Linf/Wang2023Better_WRN-28-10\"\nfile = \"{}\"\n", r18.string());
  auto root = toml::parse(std::string_view(text), std::string_view("exp.toml"));
  ardkit::expand_zoo(root, "exp.toml");
  const auto& teacher = *root["teacher"].as_table();
  CHECK(teacher["plugin"].value_or(std::string()) == "dm_wide_resnet");
  CHECK(teacher["depth"].value_or(int64_t{0}) == 28);
  CHECK(teacher["activation"].value_or(std::string()) == "swish");
  CHECK(teacher["mean"].as_array()->size() == 3);
  CHECK(teacher["checkpoint"].value_or(std::string()) == r18.string());
  CHECK_FALSE(teacher.contains("file"));
  CHECK(teacher["sha256"].value_or(std::string()) == ardkit::file_sha256(r18));
  // Every catalogue entry names a model plugin and only parameters it has, and the zoo's numbers.
  REQUIRE(ardkit::zoo_entries().size() >= 20);
  for (const auto& entry : ardkit::zoo_entries()) {
    CAPTURE(entry.name);
    const std::string plugin = entry.model["plugin"].value_or(std::string());
    std::set<std::string> keys;
    for (const auto& spec : test::builtin().find(ardkit::PluginKind::model, plugin).info.schema)
      keys.insert(spec.key);
    for (auto&& [key, value] : entry.model)
      if (key.str() != "plugin")
        CHECK(keys.count(std::string(key.str())) == 1);
    CHECK(entry.clean > entry.autoattack);
    CHECK(entry.autoattack > 0);
    CHECK_FALSE(entry.architecture.empty());
  }
}
