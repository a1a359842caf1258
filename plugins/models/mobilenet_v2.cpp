// Model plugin `mobilenet_v2`: the CIFAR MobileNetV2 of kuangliu/pytorch-cifar, ARD and RSLAD
// (stride-1 stem and stride-1 second stage). Names: conv1, bn1, layers.J.{conv1,bn1,conv2,bn2,
// conv3,bn3,shortcut.0,shortcut.1}, conv2, bn2, linear.
#include <ardkit/ardkit.hpp>
#include <ardkit/nn/batch_norm.hpp>
#include <ardkit/nn/input_normalization.hpp>
#include <ardkit/nn/layers.hpp>

namespace {

namespace nn = torch::nn;

using ardkit::nn::conv_no_bias;

// Expand (1x1), depthwise (3x3), project (1x1, linear).
class InvertedResidualImpl : public nn::Module {
 public:
  InvertedResidualImpl(int64_t in, int64_t out, int64_t expansion, int64_t stride)
      : stride_(stride) {
    const int64_t planes = expansion * in;
    conv1_ = register_module("conv1", conv_no_bias(in, planes, 1, 1));
    bn1_ = register_module("bn1", ardkit::nn::BatchNorm2d(planes));
    conv2_ = register_module("conv2", conv_no_bias(planes, planes, 3, stride, planes));
    bn2_ = register_module("bn2", ardkit::nn::BatchNorm2d(planes));
    conv3_ = register_module("conv3", conv_no_bias(planes, out, 1, 1));
    bn3_ = register_module("bn3", ardkit::nn::BatchNorm2d(out));
    if (stride == 1 && in != out)
      shortcut_ = register_module(
          "shortcut", nn::Sequential(conv_no_bias(in, out, 1, 1), ardkit::nn::BatchNorm2d(out)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = torch::relu(bn1_(conv1_(x)));
    out = torch::relu(bn2_(conv2_(out)));
    out = bn3_(conv3_(out));
    if (stride_ != 1)
      return out;
    return out + (shortcut_ ? shortcut_->forward(x) : x);
  }

 private:
  int64_t stride_;
  nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  ardkit::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr};
  nn::Sequential shortcut_{nullptr};
};
TORCH_MODULE(InvertedResidual);

class MobileNetV2 : public ardkit::Model {
 public:
  MobileNetV2(int64_t channels, int64_t classes, ardkit::nn::InputNormalization normalize)
      : normalize_(std::move(normalize)) {
    // (expansion, out_planes, blocks, stride) of the CIFAR variant.
    const int64_t cfg[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 1},  {6, 32, 3, 2}, {6, 64, 4, 2},
                               {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    conv1_ = register_module("conv1", conv_no_bias(channels, 32, 3, 1));
    bn1_ = register_module("bn1", ardkit::nn::BatchNorm2d(32));
    nn::Sequential layers;
    int64_t in = 32;
    for (const auto& c : cfg)
      for (int64_t b = 0; b < c[2]; ++b) {
        layers->push_back(InvertedResidual(in, c[1], c[0], b == 0 ? c[3] : 1));
        in = c[1];
      }
    layers_ = register_module("layers", layers);
    conv2_ = register_module("conv2", conv_no_bias(320, 1280, 1, 1));
    bn2_ = register_module("bn2", ardkit::nn::BatchNorm2d(1280));
    linear_ = register_module("linear", nn::Linear(1280, classes));
  }

  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    auto out = torch::relu(bn1_(conv1_(normalize_(x))));
    out = layers_->forward(out);
    out = torch::relu(bn2_(conv2_(out)));
    // Global average pooling: the reference's avg_pool2d(4) on the 4x4 map of 32x32 inputs.
    auto features = torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
    return {linear_(features), features};
  }
  int64_t feature_dim() const override {
    return 1280;
  }

 private:
  ardkit::nn::InputNormalization normalize_;
  nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  ardkit::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  nn::Sequential layers_{nullptr};
  nn::Linear linear_{nullptr};
};

ardkit::ParamSchema schema() {
  ardkit::ParamSchema s;
  ardkit::nn::add_normalization_params(s);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::model, "mobilenet_v2", "1.0.0",
               "MobileNetV2, CIFAR variant (kuangliu / ARD / RSLAD names)", schema(),
               [](const ardkit::Params& p, const ardkit::BuildContext& c) {
                 return std::make_shared<MobileNetV2>(
                     c.data.channels, c.data.num_classes,
                     ardkit::nn::normalization_from(p, c.data.channels));
               });
}
