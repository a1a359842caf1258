// Model plugin `preact_resnet18`: pre-activation ResNet-18 with the CIFAR stem. Names follow
// kuangliu/pytorch-cifar (conv1, layerK.J.{bn1,conv1,bn2,conv2,shortcut.0}, linear); with
// final_bn = true it adds the final `bn` + ReLU of the adversarial-training codebases (Rice et
// al.'s robust_overfitting, RobustBench's PreActResNet-18).
#include <ardkit/ardkit.hpp>
#include <ardkit/nn/batch_norm.hpp>
#include <ardkit/nn/input_normalization.hpp>
#include <ardkit/nn/layers.hpp>

namespace {

namespace nn = torch::nn;

using ardkit::nn::conv_no_bias;

class PreActBlockImpl : public nn::Module {
 public:
  PreActBlockImpl(int64_t in, int64_t planes, int64_t stride)
      : bn1_(register_module("bn1", ardkit::nn::BatchNorm2d(in))),
        conv1_(register_module("conv1", conv_no_bias(in, planes, 3, stride))),
        bn2_(register_module("bn2", ardkit::nn::BatchNorm2d(planes))),
        conv2_(register_module("conv2", conv_no_bias(planes, planes, 3, 1))) {
    if (stride != 1 || in != planes)
      shortcut_ = register_module("shortcut", nn::Sequential(conv_no_bias(in, planes, 1, stride)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = torch::relu(bn1_(x));
    // The projection shortcut sees the activated input, the identity one the raw input.
    auto skip = shortcut_ ? shortcut_->forward(out) : x;
    out = conv1_(out);
    out = conv2_(torch::relu(bn2_(out)));
    return out + skip;
  }

 private:
  ardkit::nn::BatchNorm2d bn1_;
  nn::Conv2d conv1_;
  ardkit::nn::BatchNorm2d bn2_;
  nn::Conv2d conv2_;
  nn::Sequential shortcut_{nullptr};
};
TORCH_MODULE(PreActBlock);

constexpr const char* kLayers[] = {"layer1", "layer2", "layer3", "layer4"};

class PreActResNet : public ardkit::Model {
 public:
  PreActResNet(int64_t channels, int64_t classes, bool final_bn,
               ardkit::nn::InputNormalization normalize)
      : normalize_(std::move(normalize)),
        conv1_(register_module("conv1", conv_no_bias(channels, 64, 3, 1))) {
    int64_t in = 64;
    const int64_t widths[] = {64, 128, 256, 512};
    for (int stage = 0; stage < 4; ++stage) {
      nn::Sequential layer;
      for (int b = 0; b < 2; ++b) {
        layer->push_back(PreActBlock(in, widths[stage], b == 0 && stage > 0 ? 2 : 1));
        in = widths[stage];
      }
      layers_.push_back(register_module("layer" + std::to_string(stage + 1), layer));
    }
    if (final_bn)
      bn_ = register_module("bn", ardkit::nn::BatchNorm2d(512));
    linear_ = register_module("linear", nn::Linear(512, classes));
  }

  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    return from_stage(conv1_(normalize_(x)), 0);
  }
  ardkit::ModelOutput forward_from_impl(const std::string& name,
                                        const torch::Tensor& value) override {
    if (name == "features")
      return {linear_(value), value};
    return from_stage(value, static_cast<size_t>(name.back() - '0'));  // after "layerK"
  }
  std::vector<std::string> resumable_taps() const override {
    return tap_names();
  }
  int64_t feature_dim() const override {
    return 512;
  }
  std::vector<std::string> tap_names() const override {
    return {"layer1", "layer2", "layer3", "layer4", "features"};
  }

 private:
  ardkit::ModelOutput from_stage(torch::Tensor out, size_t first) {
    for (size_t i = first; i < layers_.size(); ++i) {
      out = layers_[i]->forward(out);
      tap(kLayers[i], out);
    }
    if (bn_)
      out = torch::relu(bn_(out));
    auto features = torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
    tap("features", features);
    return {linear_(features), features};
  }
  ardkit::nn::InputNormalization normalize_;
  nn::Conv2d conv1_;
  std::vector<nn::Sequential> layers_;
  ardkit::nn::BatchNorm2d bn_{nullptr};
  nn::Linear linear_{nullptr};
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      boolean("final_bn", false)
          .help("final BatchNorm + ReLU before pooling (robust_overfitting / RobustBench)"),
  };
  ardkit::nn::add_normalization_params(s);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::model, "preact_resnet18", "1.0.0",
               "pre-activation ResNet-18, CIFAR stem (kuangliu names; optional final bn)", schema(),
               [](const ardkit::Params& p, const ardkit::BuildContext& c) {
                 return std::make_shared<PreActResNet>(
                     c.data.channels, c.data.num_classes, p.get_bool("final_bn"),
                     ardkit::nn::normalization_from(p, c.data.channels));
               });
}
