// Model plugin `lenet5`: LeNet-5 as in DAFL/DFAD (the data-free distillation MNIST baseline),
// with conv1, conv2, conv3, fc1, fc2; `half = true` gives LeNet5Half, their student. The
// reference takes 32x32 inputs; smaller square inputs (28x28 MNIST) are zero-padded in conv1 so
// conv3 still ends at 1x1, which keeps every weight shape the same.
#include <ardkit/ardkit.hpp>
#include <ardkit/nn/input_normalization.hpp>

namespace {

namespace nn = torch::nn;

class LeNet5 : public ardkit::Model {
 public:
  LeNet5(int64_t channels, int64_t classes, bool half, int64_t padding,
         ardkit::nn::InputNormalization normalize)
      : normalize_(std::move(normalize)), features_(half ? 60 : 120) {
    const int64_t c1 = half ? 3 : 6, c2 = half ? 8 : 16, hidden = half ? 42 : 84;
    conv1_ =
        register_module("conv1", nn::Conv2d(nn::Conv2dOptions(channels, c1, 5).padding(padding)));
    conv2_ = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(c1, c2, 5)));
    conv3_ = register_module("conv3", nn::Conv2d(nn::Conv2dOptions(c2, features_, 5)));
    fc1_ = register_module("fc1", nn::Linear(features_, hidden));
    fc2_ = register_module("fc2", nn::Linear(hidden, classes));
  }

  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    auto out = torch::max_pool2d(torch::relu(conv1_(normalize_(x))), 2, 2);
    out = torch::max_pool2d(torch::relu(conv2_(out)), 2, 2);
    auto features = torch::relu(conv3_(out)).flatten(1);
    return {fc2_(torch::relu(fc1_(features))), features};
  }
  int64_t feature_dim() const override {
    return features_;
  }

 private:
  ardkit::nn::InputNormalization normalize_;
  int64_t features_;
  nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  nn::Linear fc1_{nullptr}, fc2_{nullptr};
};

std::shared_ptr<ardkit::Component> make(const ardkit::Params& p, const ardkit::BuildContext& c) {
  const int64_t h = c.data.height, w = c.data.width;
  if (h != w || h > 32 || (32 - h) % 2 != 0)
    ardkit::throw_config_error(
        p.where() +
        ": lenet5 needs square inputs of at most 32x32 pixels (an even margin to "
        "32), the data has " +
        std::to_string(h) + "x" + std::to_string(w) + "; use small_cnn or resnet instead");
  return std::make_shared<LeNet5>(c.data.channels, c.data.num_classes, p.get_bool("half"),
                                  (32 - h) / 2, ardkit::nn::normalization_from(p, c.data.channels));
}

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      boolean("half", false).help("LeNet5Half: half the channels (3, 8, 60) and 42 hidden units"),
  };
  ardkit::nn::add_normalization_params(s);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::model, "lenet5", "1.0.0",
               "LeNet-5 / LeNet5Half of DAFL and DFAD (32x32 inputs, smaller ones padded)",
               schema(), make);
}
