// The C++ side of the PyTorch interop tests. make_fixtures.py (run first by CTest) writes
// state dicts, inputs and PyTorch's logits into $ARDKIT_INTEROP_DIR; these tests load them into
// the ardkit plugins and export the weights back for check_export.py (run afterwards).
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include <ardkit/ardkit.hpp>
#include <ardkit/pytorch_file.hpp>
#include <ardkit/weights.hpp>

#include "test_util.hpp"

namespace fs = std::filesystem;
using ardkit::ErrorKind;
using ardkit::PluginKind;

namespace {

fs::path fixtures() {
  const char* dir = std::getenv("ARDKIT_INTEROP_DIR");
  REQUIRE_MESSAGE(dir != nullptr, "ARDKIT_INTEROP_DIR must name make_fixtures.py's output");
  return dir;
}

torch::Tensor entry(const fs::path& file, const std::string& key) {
  for (const auto& [k, v] : ardkit::read_pytorch_state_dict(file))
    if (k == key)
      return v;
  FAIL("no entry " << key << " in " << file);
  return {};
}

ardkit::BuildContext context(int64_t channels, int64_t height, int64_t width, int64_t classes) {
  ardkit::BuildContext c;
  c.data.channels = channels;
  c.data.height = height;
  c.data.width = width;
  c.data.num_classes = classes;
  return c;
}

std::map<std::string, ardkit::Value> overrides_from(const nlohmann::json& params) {
  std::map<std::string, ardkit::Value> out;
  for (const auto& [key, value] : params.items()) {
    if (value.is_boolean())
      out[key] = value.get<bool>();
    else if (value.is_number_integer())
      out[key] = value.get<int64_t>();
    else if (value.is_number())
      out[key] = value.get<double>();
    else
      out[key] = value.get<std::string>();
  }
  return out;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a - b).abs().max().item<double>();
}

std::shared_ptr<ardkit::Model> trades_cnn() {
  return test::make<ardkit::Model>(PluginKind::model, "small_cnn",
                                   {{"variant", std::string("trades")}}, context(1, 28, 28, 10));
}

}  // namespace

TEST_CASE("every architecture has PyTorch's names and counts and computes PyTorch's logits") {
  std::ifstream in(fixtures() / "cases.json");
  const auto cases = nlohmann::json::parse(in);
  REQUIRE(cases.size() >= 13);
  for (const auto& c : cases) {
    const std::string name = c["name"];
    CAPTURE(name);
    auto model =
        test::make<ardkit::Model>(PluginKind::model, c["plugin"], overrides_from(c["params"]),
                                  context(c["channels"], c["height"], c["width"], c["classes"]));
    std::vector<std::string> names;
    for (const auto& [key, tensor] : ardkit::model_state_dict(*model))
      names.push_back(key);
    CHECK(names == c["keys"].get<std::vector<std::string>>());
    int64_t count = 0;
    for (const auto& p : model->parameters())
      count += p.numel();
    CHECK(count == c["parameters"].get<int64_t>());
    if (c.value("shape_only", false))
      continue;  // a real teacher's size: names and counts are the point, weights are not stored

    ardkit::load_weights(*model, fixtures() / (name + ".pt"));
    model->eval();
    const fs::path io = fixtures() / (name + ".io.pt");
    torch::NoGradGuard no_grad;
    const auto out = model->forward(entry(io, "input"));
    CHECK(max_diff(out.logits, entry(io, "logits")) < 1e-4);
    CHECK(out.features.size(1) == model->feature_dim());
    // For check_export.py: the weights as ardkit writes them for PyTorch.
    ardkit::write_pytorch_state_dict(fixtures() / (name + ".export.pt"),
                                     ardkit::model_state_dict(*model));
  }
}

TEST_CASE("training checkpoints: legacy and zip format, nested state dict, DataParallel prefix") {
  const fs::path io = fixtures() / "checkpoint.io.pt";
  for (const char* file : {"checkpoint_zip.pt", "checkpoint_legacy.pt", "state_dict_legacy.pt"}) {
    CAPTURE(file);
    auto model = trades_cnn();
    ardkit::load_weights(*model, fixtures() / file);  // finds 'state_dict', strips 'module.'
    model->eval();
    torch::NoGradGuard no_grad;
    CHECK(max_diff(model->logits(entry(io, "input")), entry(io, "logits")) < 1e-5);
  }
  // The same through an explicit key and a rename rule instead of the prefix stripping.
  ardkit::WeightOptions options;
  options.key = "state_dict";
  options.strip_prefixes = {};
  options.renames = {"^module\\.(.*)$=$1"};
  auto model = trades_cnn();
  ardkit::load_weights(*model, fixtures() / "checkpoint_legacy.pt", options);
  model->eval();
  torch::NoGradGuard no_grad;
  CHECK(max_diff(model->logits(entry(io, "input")), entry(io, "logits")) < 1e-5);
}

TEST_CASE("weights that do not fit are one clear error listing the keys") {
  ardkit::WeightOptions options;
  options.where = "exp.toml [teacher]";
  options.strip_prefixes = {};
  auto model = trades_cnn();
  const auto no_strip = test::error_of(
      [&] { ardkit::load_weights(*model, fixtures() / "checkpoint_zip.pt", options); },
      ErrorKind::config);
  CHECK(test::contains(no_strip, "exp.toml [teacher]"));
  CHECK(test::contains(no_strip, "14 missing: feature_extractor.conv1.weight"));
  CHECK(test::contains(no_strip, "14 unexpected: module.feature_extractor.conv1.weight"));
  CHECK(test::contains(no_strip, "strip_prefix"));

  // ResNet-18 weights into ResNet-34: the extra blocks are missing; strict = false loads the rest.
  auto resnet34 = test::make<ardkit::Model>(PluginKind::model, "resnet", {{"depth", int64_t(34)}},
                                            context(3, 32, 32, 10));
  const auto missing = test::error_of(
      [&] { ardkit::load_weights(*resnet34, fixtures() / "resnet18.pt"); }, ErrorKind::config);
  CHECK(test::contains(missing, "missing: layer1.2.conv1.weight"));
  CHECK(test::contains(missing, "strict = false"));
  ardkit::WeightOptions lenient;
  lenient.strict = false;
  ardkit::load_weights(*resnet34, fixtures() / "resnet18.pt", lenient);
  const auto loaded = entry(fixtures() / "resnet18.pt", "layer1.0.conv1.weight");
  CHECK(max_diff(resnet34->named_parameters()["layer1.0.conv1.weight"], loaded) == 0.0);

  // Mis-shaped tensors are errors even when not strict: 100 classes in the file, 10 here.
  auto ten = test::make<ardkit::Model>(PluginKind::model, "resnet", {{"depth", int64_t(34)}},
                                       context(3, 32, 32, 10));
  const auto shape = test::error_of(
      [&] { ardkit::load_weights(*ten, fixtures() / "resnet34.pt", lenient); }, ErrorKind::config);
  CHECK(test::contains(shape, "mis-shaped: linear.weight (file [100,512] vs model [10,512])"));

  // A key that is not there, or not a state dict.
  options.key = "nope";
  const auto no_key = test::error_of(
      [&] { ardkit::load_weights(*model, fixtures() / "checkpoint_zip.pt", options); },
      ErrorKind::config);
  CHECK(test::contains(no_key, "no entry 'nope'"));
  CHECK(test::contains(no_key, "epoch, best_acc, arch, flags, state_dict, optimizer"));
  options.key = "optimizer";
  CHECK(test::contains(
      test::error_of(
          [&] { ardkit::load_weights(*model, fixtures() / "checkpoint_zip.pt", options); },
          ErrorKind::config),
      "'optimizer' is not a dict of tensors"));
  options.key = "";
  options.renames = {"no-equals-sign"};
  CHECK(test::contains(
      test::error_of(
          [&] { ardkit::load_weights(*model, fixtures() / "checkpoint_zip.pt", options); },
          ErrorKind::config),
      "has no '='"));
}

TEST_CASE("truncated and foreign files are runtime errors naming the file") {
  test::TempDir dir;
  auto truncate = [&](const std::string& source, double fraction) {
    std::ifstream in(fixtures() / source, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const fs::path out = dir / ("cut-" + source);
    std::ofstream(out, std::ios::binary) << bytes.substr(0, size_t(bytes.size() * fraction));
    return out;
  };
  auto model = trades_cnn();
  for (const auto& file :
       {truncate("state_dict_legacy.pt", 0.5), truncate("state_dict_legacy.pt", 0.01),
        truncate("small_cnn_trades.pt", 0.5)}) {
    CAPTURE(file);
    const auto message =
        test::error_of([&] { ardkit::load_weights(*model, file); }, ErrorKind::runtime);
    CHECK(test::contains(message, file.string()));
    CHECK(test::contains(message, "cannot read PyTorch weights"));
  }
  const auto whole = test::error_of(
      [&] { ardkit::load_weights(*model, fixtures() / "whole_model.pt"); }, ErrorKind::config);
  CHECK(test::contains(whole, "pickled Python object (reference_models.TradesSmallCNN)"));
  CHECK(test::contains(whole, "model.state_dict()"));
  const fs::path text = dir / "notes.pt";
  test::write_text(text, "not weights at all");
  CHECK(test::contains(
      test::error_of([&] { ardkit::load_weights(*model, text); }, ErrorKind::runtime),
      "neither torch.save's zip format nor its legacy pickle format"));
  // A missing file is a configuration error (exit 2), like every other missing input.
  CHECK(test::contains(
      test::error_of([&] { ardkit::load_weights(*model, dir / "absent.pt"); }, ErrorKind::config),
      "not found"));
}

TEST_CASE("a pickle whose reduce names a shell command runs nothing") {
  // make_fixtures.py pickled os.system("touch MARKER") (GLOBAL posix.system + REDUCE); Python's
  // unpickler would run it. The reader only ever interprets the torch names it knows.
  const fs::path marker = fixtures() / "pickle_ran_a_command";
  REQUIRE_FALSE(fs::exists(marker));
  for (const char* format : {"zip", "legacy"}) {
    CAPTURE(format);
    auto model = trades_cnn();
    const fs::path beside = fixtures() / fmt::format("reduce_beside_weights_{}.pt", format);
    ardkit::load_weights(*model, beside);  // the weights load; the callable is inert data
    const fs::path alone = fixtures() / fmt::format("reduce_alone_{}.pt", format);
    const auto message =
        test::error_of([&] { ardkit::load_weights(*model, alone); }, ErrorKind::config);
    CHECK(test::contains(message, alone.string()));
    CHECK(test::contains(message, "posix.system"));
    CHECK(message.find('\n') == std::string::npos);
    CHECK_FALSE(fs::exists(marker));
  }
}

TEST_CASE("torchscript: traced and scripted models, features, frozen, input gradients") {
  const fs::path io = fixtures() / "torchscript.io.pt";
  const auto x = entry(io, "input");
  auto traced = test::make<ardkit::Model>(PluginKind::model, "torchscript",
                                          {{"file", (fixtures() / "trades.ts.pt").string()}},
                                          context(1, 28, 28, 10));
  auto scripted = test::make<ardkit::Model>(
      PluginKind::model, "torchscript", {{"file", (fixtures() / "lenet_features.ts.pt").string()}},
      context(1, 28, 28, 10));
  {
    torch::NoGradGuard no_grad;
    const auto a = traced->forward(x);
    CHECK(max_diff(a.logits, entry(io, "logits")) < 1e-5);
    CHECK(traced->feature_dim() == 10);  // no features: the logits stand in
    const auto b = scripted->forward(x);
    CHECK(max_diff(b.logits, entry(io, "lenet_logits")) < 1e-5);
    CHECK(max_diff(b.features, entry(io, "lenet_features")) < 1e-5);
    CHECK(scripted->feature_dim() == 120);
  }
  traced->train();
  CHECK_FALSE(traced->is_training());
  // Attacks need the input gradient through the scripted graph.
  auto input = x.clone().requires_grad_(true);
  torch::nn::functional::cross_entropy(traced->logits(input), torch::zeros({4}, torch::kLong))
      .backward();
  REQUIRE(input.grad().defined());
  CHECK(input.grad().abs().sum().item<double>() > 0);

  CHECK(test::contains(test::error_of(
                           [&] {
                             test::make<ardkit::Model>(
                                 PluginKind::model, "torchscript",
                                 {{"file", (fixtures() / "trades.ts.pt").string()}},
                                 context(1, 28, 28, 100));
                           },
                           ErrorKind::config),
                       "expected [batch, 100] logits"));
  CHECK(test::contains(test::error_of(
                           [&] {
                             test::make<ardkit::Model>(
                                 PluginKind::model, "torchscript",
                                 {{"file", (fixtures() / "resnet18.pt").string()}},
                                 context(3, 32, 32, 10));
                           },
                           ErrorKind::runtime),
                       "not a loadable TorchScript model"));
}
