#pragma once
// The generator network the data-free KD baselines share, and the plumbing of a generator plugin
// built on it. DAFL (Chen et al. 2019, DAFL_train.py `Generator`), DFAD (Fang et al. 2019,
// VainF/Data-Free-Adversarial-Distillation@c161591a network/gan.py `GeneratorA`), ZSKT (Micaelli &
// Storkey 2019, polo5/ZeroShotKnowledgeTransfer@e24915d7 models/generator.py) and the
// DeepInversion-style generator of recent data-free robust distillation (FERD,
// mayaobuduyao/FERD@c975d9e1 models/generator.py) are one shape:
//
//   l1: Linear(latent -> c0 * (H/4) * (W/4))  -> view -> conv_blocks0: BN(c0)
//   x2 nearest upsample -> conv_blocks1: Conv3x3(c0 -> c0) + BN(c0, eps) + LeakyReLU(0.2)
//   x2 nearest upsample -> conv_blocks2: Conv3x3(c0 -> c1) + BN(c1, eps) + LeakyReLU(0.2)
//                                        + Conv3x3(c1 -> C) + head
//
// with c0 = 2 * width, c1 = width, and a head of Tanh + BN(C, affine=False) (DAFL, DFAD),
// BN(C, affine=True) (ZSKT) or Sigmoid (FERD). Parameter names follow DAFL/DFAD's
// (l1.0, conv_blocks0.0, conv_blocks1.0/1, conv_blocks2.0/1/3[/5]), so their weights load as is.
#include <ardkit/ardkit.hpp>
#include <ardkit/nn/batch_norm.hpp>

namespace ardkit_generators {

struct GanOptions {
  int64_t latent_dim = 100, width = 64, channels = 1, height = 28, width_px = 28;
  double eps = 1e-5;             // BatchNorm eps of the two inner blocks (DAFL: 0.8)
  std::string head = "tanh_bn";  // "tanh_bn" | "bn" | "sigmoid"
  bool inner_bias = true;        // the two inner convolutions have biases (FERD: none)
};

class GanNetImpl : public torch::nn::Module {
 public:
  explicit GanNetImpl(const GanOptions& o) : o_(o) {
    const int64_t c0 = 2 * o.width, c1 = o.width;
    l1_ = register_module("l1", torch::nn::Sequential(torch::nn::Linear(
                                    o.latent_dim, c0 * (o.height / 4) * (o.width_px / 4))));
    blocks0_ = register_module("conv_blocks0", torch::nn::Sequential(torch::nn::BatchNorm2d(c0)));
    blocks1_ = register_module(
        "conv_blocks1",
        torch::nn::Sequential(
            torch::nn::Conv2d(torch::nn::Conv2dOptions(c0, c0, 3).padding(1).bias(o.inner_bias)),
            torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(c0).eps(o.eps)),
            torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2))));
    blocks2_ = register_module(
        "conv_blocks2",
        torch::nn::Sequential(
            torch::nn::Conv2d(torch::nn::Conv2dOptions(c0, c1, 3).padding(1).bias(o.inner_bias)),
            torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(c1).eps(o.eps)),
            torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)),
            torch::nn::Conv2d(torch::nn::Conv2dOptions(c1, o.channels, 3).padding(1))));
    if (o.head == "tanh_bn") {
      blocks2_->push_back(torch::nn::Tanh());
      blocks2_->push_back(
          torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(o.channels).affine(false)));
    } else if (o.head == "bn") {
      blocks2_->push_back(torch::nn::BatchNorm2d(o.channels));
    } else {
      blocks2_->push_back(torch::nn::Sigmoid());
    }
  }

  torch::Tensor forward(const torch::Tensor& z) {
    auto h = l1_->forward(z.flatten(1)).view({z.size(0), -1, o_.height / 4, o_.width_px / 4});
    h = blocks0_->forward(h);
    h = upsample(h);
    h = blocks1_->forward(h);
    h = upsample(h);
    return blocks2_->forward(h);
  }

 private:
  static torch::Tensor upsample(const torch::Tensor& h) {
    return torch::nn::functional::interpolate(h, torch::nn::functional::InterpolateFuncOptions()
                                                     .scale_factor(std::vector<double>{2.0, 2.0})
                                                     .mode(torch::kNearest));
  }
  GanOptions o_;
  torch::nn::Sequential l1_{nullptr}, blocks0_{nullptr}, blocks1_{nullptr}, blocks2_{nullptr};
};
TORCH_MODULE(GanNet);

// Keys every plugin on this network offers besides the engine's (add_generator_params).
inline void add_gan_params(ardkit::ParamSchema& s, int64_t latent_dim, int64_t width) {
  using namespace ardkit::param;
  s.push_back(integer("latent_dim", latent_dim).at_least(1).help("latent code size (nz)"));
  s.push_back(
      integer("width", width).at_least(1).at_most(65536).help("channels of the last block (ngf)"));
  s.push_back(
      real_list("mean", {})
          .help(
              "per-channel mean mapping the network's normalized output to pixels (x = out * std + "
              "mean); [] = 0.5 per channel"));
  s.push_back(real_list("std", {}).help("per-channel std of that mapping; [] = 0.5 per channel"));
  s.push_back(string("pixels", "straight_through")
                  .one_of({"straight_through", "clamp", "none"})
                  .help("that mapping's range: clamped to [0,1] with the identity gradient, "
                        "clamped (no gradient at clamped pixels), or unbounded as the official "
                        "code"));
}

// A generator plugin on GanNet: fresh standard-normal latents, pixels through the mean/std map
// (the sigmoid head already gives pixels). Subclasses write the loss terms.
class GanGenerator : public ardkit::Generator {
 public:
  GanGenerator(const ardkit::Params& p, GanOptions o) : options_(o) {
    options_.latent_dim = p.get_int("latent_dim");
    options_.width = p.get_int("width");
    mean_ = p.get_real_list("mean");
    std_ = p.get_real_list("std");
    pixels_ = p.get_string("pixels");
    if (mean_.size() != std_.size())
      ardkit::throw_config_error(p.origin("mean") +
                                 ": [generator] mean and std need the same number of values");
  }

  void setup(const ardkit::GeneratorSetup& setup) override {
    options_.channels = setup.data.channels;
    options_.height = setup.data.height;
    options_.width_px = setup.data.width;
    if (setup.data.height % 4 || setup.data.width % 4)
      ardkit::throw_config_error(
          "[generator] the generator upsamples twice by 2: image height and width must be "
          "multiples of 4");
    if (mean_.empty()) {
      mean_.assign(options_.channels, 0.5);
      std_.assign(options_.channels, 0.5);
    }
    device_ = setup.device;
    net_ = GanNet(options_);
  }
  torch::nn::Module& network() override {
    return *net_;
  }
  torch::Tensor latent(int64_t n) override {
    return torch::randn({n, options_.latent_dim}, torch::TensorOptions().device(device_));
  }
  torch::Tensor synthesize(const torch::Tensor& z) override {
    const auto out = net_->forward(z);
    return options_.head == "sigmoid" ? out : ardkit::to_pixels(out, mean_, std_, pixels_);
  }
  void reinitialize() override {
    net_ = GanNet(options_);
  }

 protected:
  GanOptions options_;
  std::vector<double> mean_, std_;
  std::string pixels_;
  torch::Device device_ = torch::kCPU;
  GanNet net_{nullptr};
};

// A GanGenerator whose latent is one optimized batch, held with the network in a module
// `Holder` (members `net`, a GanNet, and `z`), so that both are checkpointed and re-drawn
// together (bn_stats, ferd).
template <class Holder>
class OptimizedLatentGenerator : public GanGenerator {
 public:
  using GanGenerator::GanGenerator;
  torch::nn::Module& network() override {
    return *holder_;
  }
  torch::Tensor latent(int64_t /*n: always the whole fixed batch*/) override {
    return holder_->z;
  }
  std::vector<torch::Tensor> latent_parameters() override {
    return {holder_->z};
  }
  torch::Tensor synthesize(const torch::Tensor& z) override {
    return holder_->net->forward(z);
  }

 protected:
  Holder holder_{nullptr};
};

// FERD's schedule (mayaobuduyao/FERD@c975d9e1, README and test.py): per epoch a re-drawn
// generator and latent, N_G = 200 Adam updates (2e-3, betas (0.5, 0.999); latent 0.015) whose
// batch joins a pool, then N_S = 400 student steps on the pool, the student in eval() while
// the generator updates. bn_stats takes it as is; ferd adds the rest of FERD's choices.
inline std::vector<std::pair<std::string, ardkit::Value>> ferd_schedule() {
  return {{"lr", 2e-3},
          {"beta1", 0.5},
          {"latent_lr", 0.015},
          {"reinitialize", std::string("epoch")},
          {"synthesis_steps", int64_t{200}},
          {"generator_steps", int64_t{0}},
          {"iterations", int64_t{400}},
          {"student_steps", int64_t{1}},
          {"student_batch", std::string("pool")},
          {"student_mode", std::string("eval")}};
}

}  // namespace ardkit_generators
