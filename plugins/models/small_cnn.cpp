// Model plugin `small_cnn`: small CNNs for MNIST-size data.
//   variant = "compact": conv-pool-conv-pool-fc-fc (conv1, conv2, fc1, fc2), the CPU workhorse.
//   variant = "trades":  TRADES' MNIST SmallCNN, names identical to its models/small_cnn.py
//                        (feature_extractor.conv1-4, classifier.fc1-3), dropout after fc1.
#include <ardkit/ardkit.hpp>
#include <ardkit/nn/batch_norm.hpp>
#include <ardkit/nn/input_normalization.hpp>

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
      bn1_ = register_module("bn1", ardkit::nn::BatchNorm2d(o.conv1));
      bn2_ = register_module("bn2", ardkit::nn::BatchNorm2d(o.conv2));
    }
  }

  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    auto h = conv1_->forward(normalize_->forward(x));
    if (bn1_)
      h = bn1_->forward(h);
    h = torch::max_pool2d(torch::relu(h), 2);
    tap("block1", h);
    return forward_from_impl("block1", h);
  }
  ardkit::ModelOutput forward_from_impl(const std::string& name,
                                        const torch::Tensor& value) override {
    if (name == "features")
      return {fc2_->forward(value), value};
    auto h = value;
    if (name == "block1") {
      h = conv2_->forward(h);
      if (bn2_)
        h = bn2_->forward(h);
      h = torch::max_pool2d(torch::relu(h), 2);
      tap("block2", h);
    }
    auto features = torch::relu(fc1_->forward(h.flatten(1)));
    tap("features", features);
    return {fc2_->forward(features), features};
  }
  std::vector<std::string> resumable_taps() const override {
    return tap_names();
  }
  int64_t feature_dim() const override {
    return options_.hidden;
  }
  std::vector<std::string> tap_names() const override {
    return {"block1", "block2", "features"};  // after each conv block's pooling; fc1's output
  }

 private:
  SmallCnnOptions options_;
  ardkit::nn::InputNormalization normalize_;
  torch::nn::Conv2d conv1_;
  torch::nn::Conv2d conv2_;
  torch::nn::Linear fc1_;
  torch::nn::Linear fc2_;
  ardkit::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
};

// TRADES' classifier head: fc1 -> relu -> dropout -> fc2 -> relu (the features) -> fc3.
class TradesHeadImpl : public torch::nn::Module {
 public:
  TradesHeadImpl(int64_t in, int64_t classes, double dropout)
      : fc1(register_module("fc1", torch::nn::Linear(in, 200))),
        fc2(register_module("fc2", torch::nn::Linear(200, 200))),
        fc3(register_module("fc3", torch::nn::Linear(200, classes))),
        dropout(dropout) {}
  torch::nn::Linear fc1, fc2, fc3;
  double dropout;
};
TORCH_MODULE(TradesHead);

// TRADES' SmallCNN: 3x3 valid convolutions 32-32-pool-64-64-pool, then 200-200-classes.
class TradesSmallCnn : public ardkit::Model {
 public:
  TradesSmallCnn(const SmallCnnOptions& o, double dropout, ardkit::nn::InputNormalization normalize)
      : normalize_(std::move(normalize)) {
    namespace nn = torch::nn;
    features_ =
        register_module("feature_extractor",
                        nn::Sequential({{"conv1", nn::Conv2d(nn::Conv2dOptions(o.channels, 32, 3))},
                                        {"relu1", nn::ReLU()},
                                        {"conv2", nn::Conv2d(nn::Conv2dOptions(32, 32, 3))},
                                        {"relu2", nn::ReLU()},
                                        {"maxpool1", nn::MaxPool2d(2)},
                                        {"conv3", nn::Conv2d(nn::Conv2dOptions(32, 64, 3))},
                                        {"relu3", nn::ReLU()},
                                        {"conv4", nn::Conv2d(nn::Conv2dOptions(64, 64, 3))},
                                        {"relu4", nn::ReLU()},
                                        {"maxpool2", nn::MaxPool2d(2)}}));
    const int64_t h = ((o.height - 4) / 2 - 4) / 2, w = ((o.width - 4) / 2 - 4) / 2;
    head_ = register_module("classifier", TradesHead(64 * h * w, o.classes, dropout));
  }

  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    auto h = features_->forward(normalize_->forward(x)).flatten(1);
    h = torch::dropout(torch::relu(head_->fc1(h)), head_->dropout, is_training());
    auto features = torch::relu(head_->fc2(h));
    return {head_->fc3(features), features};
  }
  int64_t feature_dim() const override {
    return 200;
  }

 private:
  ardkit::nn::InputNormalization normalize_;
  torch::nn::Sequential features_{nullptr};
  TradesHead head_{nullptr};
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
  if (p.get_string("variant") == "trades") {
    if (o.height < 16 || o.width < 16)
      ardkit::throw_config_error(p.where() +
                                 ": the trades small_cnn needs inputs of at least 16x16 pixels");
    return std::make_shared<TradesSmallCnn>(o, p.get_real("dropout"),
                                            ardkit::nn::normalization_from(p, o.channels));
  }
  if (o.height < 4 || o.width < 4)
    ardkit::throw_config_error(p.where() +
                               ": small_cnn needs inputs of at least 4x4 pixels, the data has " +
                               std::to_string(o.height) + "x" + std::to_string(o.width));
  return std::make_shared<SmallCnn>(o, ardkit::nn::normalization_from(p, o.channels));
}

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      string("variant", "compact")
          .one_of({"compact", "trades"})
          .help("compact: conv-pool-conv-pool-fc-fc; trades: TRADES' MNIST SmallCNN"),
      real("dropout", 0.5).at_least(0).at_most(0.99).help("trades variant: dropout after fc1"),
      integer("conv1", 32).at_least(1).help("compact: channels of the first 3x3 convolution"),
      integer("conv2", 64).at_least(1).help("compact: channels of the second 3x3 convolution"),
      integer("hidden", 128)
          .at_least(1)
          .help("compact: width of the hidden fully connected layer (the features)"),
      boolean("batch_norm", false).help("compact: BatchNorm after each convolution (bn1, bn2)"),
  };
  ardkit::nn::add_normalization_params(s);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::model, "small_cnn", "1.0.0",
               "small CNNs for MNIST-size images (compact, or TRADES' SmallCNN)", schema(), make);
}
