// Model plugin `wide_resnet`: the pre-activation WideResNet of TRADES and Madry-style robust
// checkpoints (WRN-34-10 by default). Names: conv1, blockK.layer.J.{bn1,conv1,bn2,conv2,
// convShortcut}, bn1, fc. TRADES' definition also declares a `sub_block1` that forward never
// uses; it is kept (sub_block1 = true) so TRADES' released checkpoints load strictly. Rice et al.
// 2020's checkpoints (RobustBench's Rice2020OverfittingNet) keep their input normalisation as
// buffers `mu` and `sigma` in the state dict: `normalization_buffers = true` has them there.
#include <ardkit/ardkit.hpp>
#include <ardkit/nn/batch_norm.hpp>
#include <ardkit/nn/input_normalization.hpp>
#include <ardkit/nn/layers.hpp>

namespace {

namespace nn = torch::nn;

using ardkit::nn::conv_no_bias;

class WideBlockImpl : public nn::Module {
 public:
  WideBlockImpl(int64_t in, int64_t out, int64_t stride, double dropout)
      : bn1_(register_module("bn1", ardkit::nn::BatchNorm2d(in))),
        conv1_(register_module("conv1", conv_no_bias(in, out, 3, stride))),
        bn2_(register_module("bn2", ardkit::nn::BatchNorm2d(out))),
        conv2_(register_module("conv2", conv_no_bias(out, out, 3, 1))),
        dropout_(dropout) {
    if (in != out)
      shortcut_ = register_module("convShortcut", conv_no_bias(in, out, 1, stride));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    // As in the reference: with a projection, both paths start from relu(bn1(x)); with the
    // identity, the skip adds the raw input.
    auto activated = torch::relu(bn1_(x));
    auto out = torch::relu(bn2_(conv1_(activated)));
    if (dropout_ > 0)
      out = torch::dropout(out, dropout_, is_training());
    out = conv2_(out);
    return (shortcut_ ? shortcut_(activated) : x) + out;
  }

 private:
  ardkit::nn::BatchNorm2d bn1_;
  nn::Conv2d conv1_;
  ardkit::nn::BatchNorm2d bn2_;
  nn::Conv2d conv2_;
  nn::Conv2d shortcut_{nullptr};
  double dropout_;
};
TORCH_MODULE(WideBlock);

// TRADES' NetworkBlock: a `layer` Sequential of n blocks.
class NetworkBlockImpl : public nn::Module {
 public:
  NetworkBlockImpl(int64_t n, int64_t in, int64_t out, int64_t stride, double dropout) {
    nn::Sequential layer;
    for (int64_t i = 0; i < n; ++i)
      layer->push_back(WideBlock(i == 0 ? in : out, out, i == 0 ? stride : 1, dropout));
    layer_ = register_module("layer", layer);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return layer_->forward(x);
  }

 private:
  nn::Sequential layer_{nullptr};
};
TORCH_MODULE(NetworkBlock);

struct WideOptions {
  int64_t depth = 34, widen = 10, channels = 3, classes = 10;
  double dropout = 0;
  bool sub_block1 = true;
  std::vector<double> buffer_mean, buffer_std;  // set: normalise with buffers mu, sigma
};

class WideResNet : public ardkit::Model {
 public:
  WideResNet(const WideOptions& o, ardkit::nn::InputNormalization normalize)
      : normalize_(std::move(normalize)), width_(64 * o.widen) {
    const int64_t n = (o.depth - 4) / 6;
    const int64_t w[] = {16, 16 * o.widen, 32 * o.widen, 64 * o.widen};
    conv1_ = register_module("conv1", conv_no_bias(o.channels, w[0], 3, 1));
    block1_ = register_module("block1", NetworkBlock(n, w[0], w[1], 1, o.dropout));
    if (o.sub_block1)  // never called: exists for checkpoint compatibility only
      register_module("sub_block1", NetworkBlock(n, w[0], w[1], 1, o.dropout));
    block2_ = register_module("block2", NetworkBlock(n, w[1], w[2], 2, o.dropout));
    block3_ = register_module("block3", NetworkBlock(n, w[2], w[3], 2, o.dropout));
    bn1_ = register_module("bn1", ardkit::nn::BatchNorm2d(w[3]));
    fc_ = register_module("fc", nn::Linear(w[3], o.classes));
    if (!o.buffer_mean.empty()) {
      const auto n = static_cast<int64_t>(o.buffer_mean.size());
      mu_ = register_buffer("mu", torch::tensor(o.buffer_mean, torch::kFloat).view({1, n, 1, 1}));
      sigma_ =
          register_buffer("sigma", torch::tensor(o.buffer_std, torch::kFloat).view({1, n, 1, 1}));
    }
  }

  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    return from(0, conv1_(mu_.defined() ? (x - mu_) / sigma_ : normalize_(x)));
  }
  ardkit::ModelOutput forward_from_impl(const std::string& name,
                                        const torch::Tensor& value) override {
    const auto& names = tap_names();  // {"block1", ..., "features"}: point 1 onward
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
    // "bn1": the last BatchNorm's output before its ReLU (FERD's IFD layer, pop = 3).
    return {"block1", "block2", "block3", "bn1", "features"};
  }

 private:
  // The network after point `at` (0: conv1's output, then the taps in tap_names() order) with
  // `out` there; the forward itself starts at 0, with no name to look up.
  ardkit::ModelOutput from(size_t at, torch::Tensor out) {
    if (at == 5)
      return {fc_(out), out};
    if (at < 1) {
      out = block1_(out);
      tap("block1", out);
    }
    if (at < 2) {
      out = block2_(out);
      tap("block2", out);
    }
    if (at < 3) {
      out = block3_(out);
      tap("block3", out);
    }
    if (at < 4) {
      out = bn1_(out);
      tap("bn1", out);
    }
    // Global average pooling: the reference's avg_pool2d(8) on the 8x8 map of 32x32 inputs.
    auto features = torch::adaptive_avg_pool2d(torch::relu(out), {1, 1}).flatten(1);
    tap("features", features);
    return {fc_(features), features};
  }
  ardkit::nn::InputNormalization normalize_;
  int64_t width_;
  torch::Tensor mu_, sigma_;
  nn::Conv2d conv1_{nullptr};
  NetworkBlock block1_{nullptr}, block2_{nullptr}, block3_{nullptr};
  ardkit::nn::BatchNorm2d bn1_{nullptr};
  nn::Linear fc_{nullptr};
};

std::shared_ptr<ardkit::Component> make(const ardkit::Params& p, const ardkit::BuildContext& c) {
  WideOptions o;
  o.depth = p.get_int("depth");
  o.widen = p.get_int("widen_factor");
  o.dropout = p.get_real("dropout");
  o.sub_block1 = p.get_bool("sub_block1");
  o.channels = c.data.channels;
  o.classes = c.data.num_classes;
  if ((o.depth - 4) % 6 != 0)
    ardkit::throw_config_error(p.origin("depth") + ": " + p.where() +
                               ": depth must be 6n+4 (16, 22, 28, 34, 40, 70), got " +
                               std::to_string(o.depth));
  auto normalize = ardkit::nn::normalization_from(p, o.channels);
  if (p.get_bool("normalization_buffers")) {
    if (normalize->identity())
      ardkit::throw_config_error(p.origin("normalization_buffers") + ": " + p.where() +
                                 ": normalization_buffers = true needs mean and std (the "
                                 "buffers' initial values; a checkpoint's replace them)");
    o.buffer_mean = p.get_real_list("mean");
    o.buffer_std = p.get_real_list("std");
    normalize = ardkit::nn::InputNormalization();  // the buffers normalise, once
  }
  return std::make_shared<WideResNet>(o, std::move(normalize));
}

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      integer("depth", 34).at_least(10).help("6n+4 layers, n blocks per stage"),
      integer("widen_factor", 10).at_least(1).help("width multiplier k (stages 16k, 32k, 64k)"),
      real("dropout", 0.0).at_least(0).at_most(0.99).help("dropout inside each block (training)"),
      boolean("sub_block1", true)
          .help("declare TRADES' unused sub_block1 (needed to load TRADES/RSLAD checkpoints)"),
      boolean("normalization_buffers", false)
          .help("normalise with buffers mu and sigma in the state dict, from mean and std (Rice "
                "et al. 2020's checkpoints)"),
  };
  ardkit::nn::add_normalization_params(s);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::model, "wide_resnet", "1.0.0",
               "pre-activation WideResNet (TRADES / Madry names, WRN-34-10 by default)", schema(),
               make);
}
