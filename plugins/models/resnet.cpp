// Model plugin `resnet`: ResNet-18/34 with the CIFAR stem (3x3 conv, stride 1, no max-pool), as
// in kuangliu/pytorch-cifar and the ARD, RSLAD and IAD repositories. State-dict names match
// theirs: conv1, bn1, layerK.J.{conv1,bn1,conv2,bn2,shortcut.0,shortcut.1}, linear.
#include <ardkit/ardkit.hpp>
#include <ardkit/nn/batch_norm.hpp>
#include <ardkit/nn/input_normalization.hpp>
#include <ardkit/nn/layers.hpp>

namespace {

namespace nn = torch::nn;

using ardkit::nn::conv_no_bias;

class BasicBlockImpl : public nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride)
      : conv1_(register_module("conv1", conv_no_bias(in, planes, 3, stride))),
        bn1_(register_module("bn1", ardkit::nn::BatchNorm2d(planes))),
        conv2_(register_module("conv2", conv_no_bias(planes, planes, 3, 1))),
        bn2_(register_module("bn2", ardkit::nn::BatchNorm2d(planes))) {
    // The reference registers an empty Sequential otherwise; it has no weights either way.
    if (stride != 1 || in != planes)
      shortcut_ = register_module("shortcut", nn::Sequential(conv_no_bias(in, planes, 1, stride),
                                                             ardkit::nn::BatchNorm2d(planes)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = torch::relu(bn1_(conv1_(x)));
    out = bn2_(conv2_(out));
    return torch::relu(out + (shortcut_ ? shortcut_->forward(x) : x));
  }

 private:
  nn::Conv2d conv1_;
  ardkit::nn::BatchNorm2d bn1_;
  nn::Conv2d conv2_;
  ardkit::nn::BatchNorm2d bn2_;
  nn::Sequential shortcut_{nullptr};
};
TORCH_MODULE(BasicBlock);

constexpr const char* kLayers[] = {"layer1", "layer2", "layer3", "layer4"};

class ResNet : public ardkit::Model {
 public:
  ResNet(const std::vector<int64_t>& blocks, int64_t channels, int64_t classes,
         ardkit::nn::InputNormalization normalize)
      : normalize_(std::move(normalize)),
        conv1_(register_module("conv1", conv_no_bias(channels, 64, 3, 1))),
        bn1_(register_module("bn1", ardkit::nn::BatchNorm2d(64))) {
    int64_t in = 64;
    const int64_t widths[] = {64, 128, 256, 512};
    for (size_t stage = 0; stage < 4; ++stage) {
      nn::Sequential layer;
      for (int64_t b = 0; b < blocks[stage]; ++b) {
        layer->push_back(BasicBlock(in, widths[stage], b == 0 && stage > 0 ? 2 : 1));
        in = widths[stage];
      }
      layers_.push_back(register_module("layer" + std::to_string(stage + 1), layer));
    }
    linear_ = register_module("linear", nn::Linear(512, classes));
  }

  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    auto out = torch::relu(bn1_(conv1_(normalize_(x))));
    tap("stem", out);
    return from_stage(out, 0);
  }
  ardkit::ModelOutput forward_from_impl(const std::string& name,
                                        const torch::Tensor& value) override {
    if (name == "features")
      return {linear_(value), value};
    // "stem" continues with stage 0, "layerK" with stage K.
    return from_stage(value, name == "stem" ? 0 : static_cast<size_t>(name.back() - '0'));
  }
  std::vector<std::string> resumable_taps() const override {
    return tap_names();
  }
  int64_t feature_dim() const override {
    return 512;
  }
  std::vector<std::string> tap_names() const override {
    return {"stem", "layer1", "layer2", "layer3", "layer4", "features"};
  }

 private:
  ardkit::ModelOutput from_stage(torch::Tensor out, size_t first) {
    for (size_t i = first; i < layers_.size(); ++i) {
      out = layers_[i]->forward(out);
      tap(kLayers[i], out);
    }
    // Global average pooling: the reference's avg_pool2d(4) on the 4x4 map of 32x32 inputs.
    auto features = torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
    tap("features", features);
    return {linear_(features), features};
  }
  ardkit::nn::InputNormalization normalize_;
  nn::Conv2d conv1_;
  ardkit::nn::BatchNorm2d bn1_;
  std::vector<nn::Sequential> layers_;
  nn::Linear linear_{nullptr};
};

std::shared_ptr<ardkit::Component> make(const ardkit::Params& p,
                                        const ardkit::BuildContext& context) {
  const auto depth = p.get_int("depth");
  if (depth != 18 && depth != 34)
    ardkit::throw_config_error(p.origin("depth") + ": " + p.where() +
                               ": depth must be 18 or 34, got " + std::to_string(depth));
  const std::vector<int64_t> blocks =
      depth == 18 ? std::vector<int64_t>{2, 2, 2, 2} : std::vector<int64_t>{3, 4, 6, 3};
  return std::make_shared<ResNet>(blocks, context.data.channels, context.data.num_classes,
                                  ardkit::nn::normalization_from(p, context.data.channels));
}

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      integer("depth", 18).help("18 or 34 (BasicBlock ResNets)"),
  };
  ardkit::nn::add_normalization_params(s);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::model, "resnet", "1.0.0",
               "ResNet-18/34, CIFAR stem (kuangliu/pytorch-cifar names)", schema(), make);
}
