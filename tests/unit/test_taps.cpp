// Named intermediate activations ("taps"): every model plugin that lists taps records exactly the
// requested ones with the shapes its layers produce, refuses unknown names, and a feature
// objective can distill a tapped layer.
#include <ardkit/ardkit.hpp>

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
