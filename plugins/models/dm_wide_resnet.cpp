// Model plugin `dm_wide_resnet`: DeepMind's WideResNet (Gowal et al. 2020, "Uncovering the Limits
// of Adversarial Training against Norm-Bounded Adversarial Examples"; deepmind-research
// adversarial_robustness/pytorch/model_zoo.py), the architecture of RobustBench's strongest
// CIFAR entries (Gowal2020Uncovering, Rebuffi2021Fixing with Swish; Wang2023Better with SiLU,
// the same function), as RobustBench's model_zoo/architectures/dm_wide_resnet.py defines it.
// State-dict names: init_conv, layer.G.block.B.{batchnorm_0, conv_0, batchnorm_1, conv_1,
// shortcut}, batchnorm, logits; mean and std are not in the state dict (the zoo's are
// non-persistent buffers), they are this plugin's `mean` and `std`.
//
// Where it differs from TRADES' WideResNet (`wide_resnet`): the first convolution of a block pads
// explicitly, (1, 1, 1, 1) at stride 1 but (0, 1, 0, 1) at stride 2 (TensorFlow's SAME), so a
// strided block samples other pixels; the activation can be Swish; the input may be zero-padded.
#include <ardkit/ardkit.hpp>
#include <ardkit/nn/batch_norm.hpp>
#include <ardkit/nn/input_normalization.hpp>
#include <ardkit/nn/layers.hpp>

namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

using ardkit::nn::conv_no_bias;

torch::Tensor activate(const torch::Tensor& x, bool swish) {
  return swish ? x * torch::sigmoid(x) : torch::relu(x);
}

class DmBlockImpl : public nn::Module {
 public:
  DmBlockImpl(int64_t in, int64_t out, int64_t stride, bool swish)
      : batchnorm_0_(register_module("batchnorm_0", ardkit::nn::BatchNorm2d(in))),
        conv_0_(register_module(
            "conv_0",
            nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(0).bias(false)))),
        batchnorm_1_(register_module("batchnorm_1", ardkit::nn::BatchNorm2d(out))),
        conv_1_(register_module("conv_1", conv_no_bias(out, out, 3, 1))),
        pad_(stride == 1 ? std::vector<int64_t>{1, 1, 1, 1} : std::vector<int64_t>{0, 1, 0, 1}),
        swish_(swish) {
    if (in != out)
      shortcut_ = register_module("shortcut", conv_no_bias(in, out, 1, stride));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    // As in the reference: with a projection, both paths start from the activated input; with
    // the identity, the skip adds the raw input.
    const auto activated = activate(batchnorm_0_(x), swish_);
    auto out = conv_0_(F::pad(activated, F::PadFuncOptions(pad_)));
    out = conv_1_(activate(batchnorm_1_(out), swish_));
    return (shortcut_ ? shortcut_(activated) : x) + out;
  }

 private:
  ardkit::nn::BatchNorm2d batchnorm_0_;
  nn::Conv2d conv_0_;
  ardkit::nn::BatchNorm2d batchnorm_1_;
  nn::Conv2d conv_1_;
  nn::Conv2d shortcut_{nullptr};
  std::vector<int64_t> pad_;
  bool swish_;
};
TORCH_MODULE(DmBlock);

// The reference's _BlockGroup: a `block` Sequential of n blocks.
class DmBlockGroupImpl : public nn::Module {
 public:
  DmBlockGroupImpl(int64_t n, int64_t in, int64_t out, int64_t stride, bool swish) {
    nn::Sequential block;
    for (int64_t i = 0; i < n; ++i)
      block->push_back(DmBlock(i == 0 ? in : out, out, i == 0 ? stride : 1, swish));
    block_ = register_module("block", block);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return block_->forward(x);
  }

 private:
  nn::Sequential block_{nullptr};
};
TORCH_MODULE(DmBlockGroup);

struct DmOptions {
  int64_t depth = 28, width = 10, channels = 3, classes = 10, padding = 0;
  bool swish = false;
};

class DmWideResNet : public ardkit::Model {
 public:
  DmWideResNet(const DmOptions& o, ardkit::nn::InputNormalization normalize)
      : normalize_(std::move(normalize)),
        width_(64 * o.width),
        padding_(o.padding),
        swish_(o.swish) {
    const int64_t n = (o.depth - 4) / 6;
    const int64_t w[] = {16, 16 * o.width, 32 * o.width, 64 * o.width};
    init_conv_ = register_module("init_conv", conv_no_bias(o.channels, w[0], 3, 1));
    nn::Sequential layer;
    layer->push_back(DmBlockGroup(n, w[0], w[1], 1, o.swish));
    layer->push_back(DmBlockGroup(n, w[1], w[2], 2, o.swish));
    layer->push_back(DmBlockGroup(n, w[2], w[3], 2, o.swish));
    layer_ = register_module("layer", layer);
    batchnorm_ = register_module("batchnorm", ardkit::nn::BatchNorm2d(w[3]));
    logits_ = register_module("logits", nn::Linear(w[3], o.classes));
  }

  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    auto in =
        padding_ > 0 ? F::pad(x, F::PadFuncOptions({padding_, padding_, padding_, padding_})) : x;
    return from(0, init_conv_(normalize_(in)));
  }
  ardkit::ModelOutput forward_from_impl(const std::string& name,
                                        const torch::Tensor& value) override {
    const auto& names = tap_names();  // {"layer0", ..., "features"}: point 1 onward
    return from(
        static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin()) + 1,
        value);
  }
  std::vector<std::string> resumable_taps() const override {
    return tap_names();
  }
  int64_t feature_dim() const override {
    return width_;
  }
  std::vector<std::string> tap_names() const override {
    // "batchnorm": the last BatchNorm's output before its activation.
    return {"layer0", "layer1", "layer2", "batchnorm", "features"};
  }

 private:
  // The network after point `at` (0: init_conv's output, then the taps in tap_names() order).
  ardkit::ModelOutput from(size_t at, torch::Tensor out) {
    if (at == 5)
      return {logits_(out), out};
    for (size_t g = at; g < 3; ++g) {
      out = layer_[g]->as<DmBlockGroup>()->forward(out);
      tap("layer" + std::to_string(g), out);
    }
    if (at < 4) {
      out = batchnorm_(out);
      tap("batchnorm", out);
    }
    out = activate(out, swish_);
    // The reference's avg_pool2d(8) then view(-1, C): on the 8x8 map of a 32x32 input (9x9 with
    // the zoo's padding 4 ... up to 15x15) it averages the top-left 8x8 window; on other sizes,
    // where the reference would fail or mix samples, the whole map.
    const bool window =
        out.size(2) >= 8 && out.size(2) < 16 && out.size(3) >= 8 && out.size(3) < 16;
    auto features =
        (window ? torch::avg_pool2d(out, 8) : torch::adaptive_avg_pool2d(out, {1, 1})).flatten(1);
    tap("features", features);
    return {logits_(features), features};
  }
  ardkit::nn::InputNormalization normalize_;
  int64_t width_, padding_;
  bool swish_;
  nn::Conv2d init_conv_{nullptr};
  nn::Sequential layer_{nullptr};
  ardkit::nn::BatchNorm2d batchnorm_{nullptr};
  nn::Linear logits_{nullptr};
};

std::shared_ptr<ardkit::Component> make(const ardkit::Params& p, const ardkit::BuildContext& c) {
  DmOptions o;
  o.depth = p.get_int("depth");
  o.width = p.get_int("width");
  o.padding = p.get_int("padding");
  o.swish = p.get_string("activation") == "swish";
  o.channels = c.data.channels;
  o.classes = c.data.num_classes;
  if ((o.depth - 4) % 6 != 0)
    ardkit::throw_config_error(p.origin("depth") + ": " + p.where() +
                               ": depth must be 6n+4 (10, 16, 28, 34, 70, 106), got " +
                               std::to_string(o.depth));
  return std::make_shared<DmWideResNet>(o, ardkit::nn::normalization_from(p, o.channels));
}

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      integer("depth", 28).at_least(10).help("6n+4 layers, n blocks per stage"),
      integer("width", 10).at_least(1).help("width multiplier k (stages 16k, 32k, 64k)"),
      string("activation", "relu")
          .one_of({"relu", "swish"})
          .help("relu (the class default) or swish = SiLU (the zoo's Gowal 2020, Rebuffi 2021 "
                "and Wang 2023 entries)"),
      integer("padding", 0).at_least(0).help("zero padding added around the input first"),
  };
  ardkit::nn::add_normalization_params(s);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::model, "dm_wide_resnet", "1.0.0",
               "DeepMind's WideResNet (RobustBench DMWideResNet names; Swish, SAME padding)",
               schema(), make);
}
