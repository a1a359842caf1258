// Named intermediate activations ("taps"): every model plugin that lists taps records exactly the
// requested ones with the shapes its layers produce, refuses unknown names, and a feature
// objective can distill a tapped layer.
#include <ardkit/ardkit.hpp>
#include <ardkit/nn/batch_norm.hpp>

#include "test_util.hpp"

namespace {

ardkit::ModelPtr model(const std::string& name, const ardkit::DataSpec& data,
                       const std::map<std::string, ardkit::Value>& values = {}) {
  ardkit::BuildContext context;
  context.data = data;
  return test::builtin().create<ardkit::Model>(
      ardkit::PluginKind::model, name, test::params_for(ardkit::PluginKind::model, name, values),
      context);
}

}  // namespace

TEST_CASE("models record the taps asked for, with their layers' shapes") {
  ardkit::DataSpec mnist;  // 1x28x28, 10 classes
  auto cnn = model("small_cnn", mnist,
                   {{"conv1", int64_t{4}}, {"conv2", int64_t{6}}, {"hidden", int64_t{12}}});
  const auto x = torch::rand({2, 1, 28, 28});
  cnn->forward(x);
  CHECK(cnn->tapped().empty());  // nothing is kept unless asked for
  cnn->set_taps({"block1", "block2"});
  const auto out = cnn->forward(x);
  CHECK(cnn->tapped().size() == 2);
  CHECK(cnn->tapped("block1").sizes() == torch::IntArrayRef({2, 4, 14, 14}));
  CHECK(cnn->tapped("block2").sizes() == torch::IntArrayRef({2, 6, 7, 7}));
  cnn->set_taps({"features"});
  const auto again = cnn->forward(x);
  CHECK(torch::equal(cnn->tapped("features"), again.features));  // the penultimate features
  CHECK_THROWS_WITH_AS(cnn->tapped("block1"), doctest::Contains("not recorded"), ardkit::Error);
  CHECK_THROWS_WITH_AS(cnn->set_taps({"block3"}), doctest::Contains("block1, block2, features"),
                       ardkit::Error);

  ardkit::DataSpec cifar{3, 32, 32, 10, "cifar10"};
  auto resnet = model("resnet", cifar);
  resnet->set_taps(resnet->tap_names());
  resnet->eval();
  resnet->forward(torch::rand({1, 3, 32, 32}));
  CHECK(resnet->tapped("stem").sizes() == torch::IntArrayRef({1, 64, 32, 32}));
  CHECK(resnet->tapped("layer3").sizes() == torch::IntArrayRef({1, 256, 8, 8}));
  CHECK(resnet->tapped("layer4").sizes() == torch::IntArrayRef({1, 512, 4, 4}));
  CHECK(resnet->tapped("features").sizes() == torch::IntArrayRef({1, 512}));
  // A model without taps says so.
  auto lenet = model("lenet5", mnist);
  CHECK_THROWS_WITH_AS(lenet->set_taps({"features"}), doctest::Contains("its taps: none"),
                       ardkit::Error);
}

TEST_CASE("forward_from each resumable tap's value gives the forward's output, every model") {
  ardkit::DataSpec mnist;
  ardkit::DataSpec cifar{3, 32, 32, 10, "cifar10"};
  const std::vector<std::tuple<std::string, ardkit::DataSpec, std::map<std::string, ardkit::Value>,
                               std::vector<std::string>>>
      cases = {
          {"small_cnn", mnist, {{"batch_norm", true}}, {"block1", "block2", "features"}},
          {"resnet", cifar, {}, {"stem", "layer1", "layer2", "layer3", "layer4", "features"}},
          {"preact_resnet18", cifar, {}, {"layer1", "layer2", "layer3", "layer4", "features"}},
          {"wide_resnet",
           cifar,
           {{"depth", int64_t{10}}, {"widen_factor", int64_t{1}}},
           {"block1", "block2", "block3", "bn1", "features"}},
          {"dm_wide_resnet",
           cifar,
           {{"depth", int64_t{10}}, {"width", int64_t{1}}, {"activation", std::string("swish")}},
           {"layer0", "layer1", "layer2", "batchnorm", "features"}},
          {"dm_preact_resnet",
           cifar,
           {{"activation", std::string("swish")}},
           {"layer_0", "layer_1", "layer_2", "layer_3", "batchnorm", "features"}},
      };
  for (const auto& [name, data, values, resumable] : cases) {
    const std::string shown = name;  // INFO cannot capture a binding (C++17)
    INFO(shown);
    auto m = model(name, data, values);
    m->eval();
    CHECK(m->resumable_taps() == resumable);
    m->set_taps(resumable);
    const auto x = torch::rand({2, data.channels, data.height, data.width});
    const auto out = m->forward(x);
    const auto recorded = m->tapped();
    const int64_t queries = m->queries();
    for (const auto& tap : resumable) {
      INFO(tap);
      const auto again = m->forward_from(tap, recorded.at(tap));
      CHECK(torch::allclose(again.logits, out.logits, 1e-5, 1e-6));
      CHECK(torch::allclose(again.features, out.features, 1e-5, 1e-6));
    }
    CHECK(m->queries() == queries);  // no image went in
    // A perturbed map changes the output: the rest of the network really runs from it.
    const auto& first = resumable.front();
    CHECK_FALSE(torch::allclose(m->forward_from(first, recorded.at(first) + 1).logits, out.logits));
  }
  auto lenet = model("lenet5", mnist);
  CHECK_THROWS_WITH_AS(lenet->forward_from("features", torch::zeros({1, 84})),
                       doctest::Contains("cannot run from tap 'features'; it can from: none"),
                       ardkit::Error);
}

TEST_CASE("BatchNorm taps record each layer's input mean and variance, for every BN model") {
  ardkit::DataSpec mnist;
  auto cnn = model("small_cnn", mnist,
                   {{"conv1", int64_t{4}}, {"conv2", int64_t{6}}, {"batch_norm", true}});
  const auto taps = cnn->available_taps();
  CHECK(std::count(taps.begin(), taps.end(), "bn:bn1") == 1);
  CHECK(std::count(taps.begin(), taps.end(), "bn:bn2") == 1);
  cnn->set_taps({"bn:bn1"});
  cnn->train();
  const auto x = torch::rand({8, 1, 28, 28}).requires_grad_();
  cnn->forward(x);
  const auto& stats = cnn->tapped("bn:bn1");
  REQUIRE(stats.sizes() == torch::IntArrayRef({2, 4}));
  CHECK(stats.requires_grad());  // generators differentiate through it
  // A train-mode BatchNorm moved its running statistics by momentum 0.1 from (0, 1) toward the
  // batch's: mean exactly, variance unbiased (n / (n - 1)), so the tap saw the layer's input.
  const auto buffers = cnn->named_buffers();
  const double n = 8 * 28 * 28;
  CHECK(torch::allclose(buffers["bn1.running_mean"], 0.1 * stats[0].detach(), 1e-5, 1e-6));
  CHECK(torch::allclose(buffers["bn1.running_var"], 0.9 + 0.1 * stats[1].detach() * n / (n - 1),
                        1e-5, 1e-6));
  CHECK(cnn->tapped().count("bn:bn2") == 0);
  // add_taps keeps what was asked before (an objective's layer and a generator's statistics).
  cnn->add_taps({"block2"});
  cnn->forward(x);
  CHECK(cnn->tapped().count("bn:bn1") == 1);
  CHECK(cnn->tapped().count("block2") == 1);
  // Every model plugin with BatchNorm lists its layers.
  ardkit::DataSpec cifar{3, 32, 32, 10, "cifar10"};
  for (const std::string name : {"resnet", "preact_resnet18", "wide_resnet", "dm_wide_resnet",
                                 "dm_preact_resnet", "mobilenet_v2"}) {
    CAPTURE(name);
    const auto bn = model(name, cifar)->batch_norm_taps();
    CHECK(bn.size() > 5);
  }
  CHECK(model("lenet5", mnist)->batch_norm_taps().empty());
}

TEST_CASE("ardkit's BatchNorm2d computes what torch's does, in both modes") {
  torch::manual_seed(3);
  ardkit::nn::BatchNorm2d ours(5);
  torch::nn::BatchNorm2d theirs(5);
  {
    torch::NoGradGuard no_grad;
    ours->weight.copy_(torch::rand({5}));
    ours->bias.copy_(torch::rand({5}));
    theirs->weight.copy_(ours->weight);
    theirs->bias.copy_(ours->bias);
  }
  for (int i = 0; i < 3; ++i) {
    const auto x = torch::randn({4, 5, 6, 6}) * 2 + 1;
    CHECK(torch::allclose(ours(x), theirs(x)));
  }
  CHECK(torch::allclose(ours->running_mean, theirs->running_mean));
  CHECK(torch::allclose(ours->running_var, theirs->running_var));
  CHECK(ours->num_batches_tracked.item<int64_t>() == 3);
  ours->eval();
  theirs->eval();
  const auto x = torch::randn({2, 5, 3, 3});
  CHECK(torch::allclose(ours(x), theirs(x)));
  // The same state dict keys as torch's.
  std::vector<std::string> a, b;
  for (const auto& p : ours->named_parameters())
    a.push_back(p.key());
  for (const auto& p : ours->named_buffers())
    a.push_back(p.key());
  for (const auto& p : theirs->named_parameters())
    b.push_back(p.key());
  for (const auto& p : theirs->named_buffers())
    b.push_back(p.key());
  CHECK(a == b);
}
