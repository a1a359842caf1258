// Model plugin `small_cnn`: conv-pool-conv-pool-fc-fc, the CPU workhorse for MNIST-size data.
// Parameter names (conv1, conv2, fc1, fc2) match the equivalent PyTorch module.
#include <ardkit/ardkit.hpp>

namespace {

using ardkit::Params;

struct SmallCnnOptions {
  int64_t channels = 1, height = 28, width = 28, classes = 10;
  int64_t conv1 = 32, conv2 = 64, hidden = 128;
  bool batch_norm = false;
};

class SmallCnn : public ardkit::Model {
 public:
  SmallCnn(const SmallCnnOptions& o, ardkit::nn::InputNormalization normalize)
      : options_(o),
        normalize_(std::move(normalize)),
        conv1_(register_module(
            "conv1",
            torch::nn::Conv2d(torch::nn::Conv2dOptions(o.channels, o.conv1, 3).padding(1)))),
        conv2_(register_module(
            "conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.conv1, o.conv2, 3).padding(1)))),
        fc1_(register_module(
            "fc1", torch::nn::Linear(o.conv2 * (o.height / 4) * (o.width / 4), o.hidden))),
        fc2_(register_module("fc2", torch::nn::Linear(o.hidden, o.classes))) {
    if (o.batch_norm) {
      bn1_ = register_module("bn1", torch::nn::BatchNorm2d(o.conv1));
      bn2_ = register_module("bn2", torch::nn::BatchNorm2d(o.conv2));
    }
  }

  ardkit::ModelOutput forward(const torch::Tensor& x) override {
    auto h = conv1_->forward(normalize_->forward(x));
    if (bn1_)
      h = bn1_->forward(h);
    h = torch::max_pool2d(torch::relu(h), 2);
    h = conv2_->forward(h);
    if (bn2_)
      h = bn2_->forward(h);
    h = torch::max_pool2d(torch::relu(h), 2);
    auto features = torch::relu(fc1_->forward(h.flatten(1)));
    return {fc2_->forward(features), features};
  }
  int64_t feature_dim() const override {
    return options_.hidden;
  }

 private:
  SmallCnnOptions options_;
  ardkit::nn::InputNormalization normalize_;
  torch::nn::Conv2d conv1_;
  torch::nn::Conv2d conv2_;
  torch::nn::Linear fc1_;
  torch::nn::Linear fc2_;
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
};

std::shared_ptr<ardkit::Component> make(const Params& p, const ardkit::BuildContext& context) {
  SmallCnnOptions o;
  o.channels = context.data.channels;
  o.height = context.data.height;
  o.width = context.data.width;
  o.classes = context.data.num_classes;
  o.conv1 = p.get_int("conv1");
  o.conv2 = p.get_int("conv2");
  o.hidden = p.get_int("hidden");
  o.batch_norm = p.get_bool("batch_norm");
  if (o.height < 4 || o.width < 4)
    ardkit::throw_config_error(p.where() +
                               ": small_cnn needs inputs of at least 4x4 pixels, the data has " +
                               std::to_string(o.height) + "x" + std::to_string(o.width));
  return std::make_shared<SmallCnn>(o, ardkit::nn::normalization_from(p, o.channels));
}

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      integer("conv1", 32).at_least(1).help("channels of the first 3x3 convolution"),
      integer("conv2", 64).at_least(1).help("channels of the second 3x3 convolution"),
      integer("hidden", 128)
          .at_least(1)
          .help("width of the hidden fully connected layer (the features)"),
      boolean("batch_norm", false).help("BatchNorm after each convolution (bn1, bn2)"),
  };
  ardkit::nn::add_normalization_params(s);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::model, "small_cnn", "1.0.0",
               "conv3x3-pool-conv3x3-pool-fc-fc CNN for MNIST-size images", schema(), make);
}
