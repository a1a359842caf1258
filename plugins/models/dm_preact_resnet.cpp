// Model plugin `dm_preact_resnet`: DeepMind's pre-activation ResNet (Gowal et al. 2021, "Improving
// Robustness using Generated Data"; Rebuffi et al. 2021, "Fixing Data Augmentation to Improve
// Adversarial Robustness"), the ResNet-18 of RobustBench's Rebuffi2021Fixing_R18 and
// Gowal2021Improving_R18 entries, as RobustBench's model_zoo/architectures/dm_wide_resnet.py
// defines DMPreActResNet. State-dict names: conv_2d, layer_L.B.{batchnorm_0, conv_2d_1,
// batchnorm_1, conv_2d_2, shortcut}, batchnorm, logits; mean and std are this plugin's `mean` and
// `std` (the zoo's are non-persistent buffers).
//
// Where it differs from kuangliu's PreActResNet (`preact_resnet18`): the projection shortcut is a
// 3x3 convolution of the raw (not activated) input, both strided convolutions pad (0, 1, 0, 1)
// (TensorFlow's SAME), a final BatchNorm and activation precede the pooling, the activation can
// be Swish.
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

nn::Conv2d unpadded(int64_t in, int64_t out, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(0).bias(false));
}

class DmPreActBlockImpl : public nn::Module {
 public:
  DmPreActBlockImpl(int64_t in, int64_t out, int64_t stride, bool swish)
      : batchnorm_0_(register_module("batchnorm_0", ardkit::nn::BatchNorm2d(in))),
        conv_2d_1_(register_module("conv_2d_1", unpadded(in, out, stride))),
        batchnorm_1_(register_module("batchnorm_1", ardkit::nn::BatchNorm2d(out))),
        conv_2d_2_(register_module("conv_2d_2", conv_no_bias(out, out, 3, 1))),
        pad_(stride == 1 ? std::vector<int64_t>{1, 1, 1, 1} : std::vector<int64_t>{0, 1, 0, 1}),
        swish_(swish) {
    if (stride != 1 || in != out)
      shortcut_ = register_module("shortcut", unpadded(in, out, stride));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const auto out = activate(batchnorm_0_(x), swish_);
    // As in the reference: the projection reads the raw input, padded like the main path.
    const auto skip = shortcut_ ? shortcut_(pad(x)) : x;
    return conv_2d_2_(activate(batchnorm_1_(conv_2d_1_(pad(out))), swish_)) + skip;
  }

 private:
  torch::Tensor pad(const torch::Tensor& x) const {
    return F::pad(x, F::PadFuncOptions(pad_));
  }
  ardkit::nn::BatchNorm2d batchnorm_0_;
  nn::Conv2d conv_2d_1_;
  ardkit::nn::BatchNorm2d batchnorm_1_;
  nn::Conv2d conv_2d_2_;
  nn::Conv2d shortcut_{nullptr};
  std::vector<int64_t> pad_;
  bool swish_;
};
TORCH_MODULE(DmPreActBlock);

struct DmPreActOptions {
  int64_t depth = 18, channels = 3, classes = 10, padding = 0;
  bool swish = false;
};

class DmPreActResNet : public ardkit::Model {
 public:
  DmPreActResNet(const DmPreActOptions& o, ardkit::nn::InputNormalization normalize)
      : normalize_(std::move(normalize)), padding_(o.padding), swish_(o.swish) {
    const std::vector<int64_t> blocks =
        o.depth == 18 ? std::vector<int64_t>{2, 2, 2, 2} : std::vector<int64_t>{3, 4, 6, 3};
    const int64_t widths[] = {64, 128, 256, 512};
    conv_2d_ = register_module("conv_2d", conv_no_bias(o.channels, 64, 3, 1));
    int64_t in = 64;
    for (size_t l = 0; l < 4; ++l) {
      nn::Sequential layer;
      for (int64_t b = 0; b < blocks[l]; ++b) {
        layer->push_back(DmPreActBlock(in, widths[l], b == 0 && l > 0 ? 2 : 1, o.swish));
        in = widths[l];
      }
      layers_.push_back(register_module("layer_" + std::to_string(l), layer));
    }
    batchnorm_ = register_module("batchnorm", ardkit::nn::BatchNorm2d(512));
    logits_ = register_module("logits", nn::Linear(512, o.classes));
  }

  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    auto in =
        padding_ > 0 ? F::pad(x, F::PadFuncOptions({padding_, padding_, padding_, padding_})) : x;
    return from(0, conv_2d_(normalize_(in)));
  }
  ardkit::ModelOutput forward_from_impl(const std::string& name,
                                        const torch::Tensor& value) override {
    const auto& names = tap_names();  // {"layer_0", ..., "features"}: point 1 onward
    return from(
        static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin()) + 1,
        value);
  }
  std::vector<std::string> resumable_taps() const override {
    return tap_names();
  }
  int64_t feature_dim() const override {
    return 512;
  }
  std::vector<std::string> tap_names() const override {
    return {"layer_0", "layer_1", "layer_2", "layer_3", "batchnorm", "features"};
  }

 private:
  // The network after point `at` (0: conv_2d's output, then the taps in tap_names() order).
  ardkit::ModelOutput from(size_t at, torch::Tensor out) {
    if (at == 6)
      return {logits_(out), out};
    for (size_t l = at; l < 4; ++l) {
      out = layers_[l]->forward(out);
      tap("layer_" + std::to_string(l), out);
    }
    if (at < 5) {
      out = batchnorm_(out);
      tap("batchnorm", out);
    }
    out = activate(out, swish_);
    // The reference's avg_pool2d(4) on the 4x4 map of a 32x32 input; other sizes: the whole map.
    const bool window = out.size(2) >= 4 && out.size(2) < 8 && out.size(3) >= 4 && out.size(3) < 8;
    auto features =
        (window ? torch::avg_pool2d(out, 4) : torch::adaptive_avg_pool2d(out, {1, 1})).flatten(1);
    tap("features", features);
    return {logits_(features), features};
  }
  ardkit::nn::InputNormalization normalize_;
  int64_t padding_;
  bool swish_;
  nn::Conv2d conv_2d_{nullptr};
  std::vector<nn::Sequential> layers_;
  ardkit::nn::BatchNorm2d batchnorm_{nullptr};
  nn::Linear logits_{nullptr};
};

std::shared_ptr<ardkit::Component> make(const ardkit::Params& p, const ardkit::BuildContext& c) {
  DmPreActOptions o;
  o.depth = p.get_int("depth");
  o.padding = p.get_int("padding");
  o.swish = p.get_string("activation") == "swish";
  o.channels = c.data.channels;
  o.classes = c.data.num_classes;
  if (o.depth != 18 && o.depth != 34)
    ardkit::throw_config_error(p.origin("depth") + ": " + p.where() +
                               ": depth must be 18 or 34 (the reference's two), got " +
                               std::to_string(o.depth));
  return std::make_shared<DmPreActResNet>(o, ardkit::nn::normalization_from(p, o.channels));
}

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      integer("depth", 18)
          .at_least(18)
          .at_most(34)
          .help("18 (2, 2, 2, 2 blocks) or 34 (3, 4, 6, 3)"),
      string("activation", "relu")
          .one_of({"relu", "swish"})
          .help("relu (the class default) or swish = SiLU (the zoo's entries)"),
      integer("padding", 0).at_least(0).help("zero padding added around the input first"),
  };
  ardkit::nn::add_normalization_params(s);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::model, "dm_preact_resnet", "1.0.0",
               "DeepMind's pre-activation ResNet-18/34 (RobustBench DMPreActResNet names)",
               schema(), make);
}
