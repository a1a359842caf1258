// Generator plugin `bn_stats`: DeepInversion-style synthesis as recent data-free robust
// distillation does it (Yin et al., "Dreaming to Distill", CVPR 2020, for the BatchNorm matching;
// the schedule of FERD, mayaobuduyao/FERD@c975d9e1, IBD_module_cmi.py, for the rest):
//   - every epoch the generator and its latent are drawn afresh (reinitialize = "epoch"), then
//     synthesis_steps Adam updates (lr 2e-3, betas (0.5, 0.999); the latent itself is optimized,
//     latent_lr 0.015) make one batch, which joins a pool the student's steps sample from;
//   - the loss: bn * sum_l (||mu_l(x) - running_mean_l||_2 + ||var_l(x) - running_var_l||_2)
//     over the teacher's BatchNorm layers (their inputs' statistics, through the BatchNorm taps)
//     + oh * CE(T(x), y) for labels y drawn uniformly with the latent + adv * (-KL(T(x) || S(x)))
//     (batchmean), with bn 5, oh 1, adv 1 as in FERD;
//   - the network: FERD's generator (no biases in the two inner 3x3 convolutions, Sigmoid
//     output); the student in eval mode during synthesis (student_mode = "eval"), as FERD's,
//     so its BatchNorm statistics come from its own steps only.
// FERD's further terms (a uniformity loss on non-robust features, the agreement mask of the
// discrepancy, keeping the best batch rather than the last) are not part of this plugin.
#include "bn_matching.hpp"
#include "gan_generator.hpp"

namespace {

using ardkit::Params;
using namespace ardkit_generators;

// The network plus its optimized latent and the labels drawn with it, so all three are
// checkpointed (and re-drawn) together.
class LatentNetImpl : public torch::nn::Module {
 public:
  LatentNetImpl(const GanOptions& o, int64_t batch, int64_t classes, torch::Device device) {
    net = register_module("net", GanNet(o));
    z = register_parameter("z", torch::randn({batch, o.latent_dim}));
    targets = register_buffer("targets", torch::randint(classes, {batch}, torch::kLong));
    to(device);
  }
  GanNet net{nullptr};
  torch::Tensor z, targets;
};
TORCH_MODULE(LatentNet);

class BnStats : public OptimizedLatentGenerator<LatentNet> {
 public:
  explicit BnStats(const Params& p)
      : OptimizedLatentGenerator(p, options()),
        bn_(p.get_real("bn")),
        oh_(p.get_real("oh")),
        adv_(p.get_real("adv")) {}

  void setup(const ardkit::GeneratorSetup& setup) override {
    GanGenerator::setup(setup);
    batch_ = setup.batch_size;
    classes_ = setup.data.num_classes;
    if (bn_ > 0)
      matching_.setup(setup, "bn_stats");
    reinitialize();
  }
  void reinitialize() override {
    holder_ = LatentNet(options_, batch_, classes_, device_);
  }

  std::vector<ardkit::GeneratorTerm> losses(const torch::Tensor& x,
                                            ardkit::GeneratorContext& c) override {
    const auto t = c.teacher.logits(x);
    const torch::Tensor matching =
        bn_ > 0 ? matching_.loss(c.teacher, x.options()) : torch::zeros({}, x.options());
    const auto s = c.student.logits(x);
    const auto kl =
        torch::kl_div(torch::log_softmax(s, 1), torch::softmax(t, 1), at::Reduction::Sum) /
        x.size(0);
    return {{"bn", matching, bn_},
            {"one_hot", torch::cross_entropy_loss(t, holder_->targets), oh_},
            {"adversarial", -kl, adv_}};
  }

 private:
  static GanOptions options() {
    GanOptions o;
    o.head = "sigmoid";
    o.inner_bias = false;
    return o;
  }
  double bn_, oh_, adv_;
  int64_t batch_ = 0, classes_ = 0;
  BatchNormMatching matching_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      real("bn", 5.0).at_least(0).help("weight of the BatchNorm-statistics matching term"),
      real("oh", 1.0).at_least(0).help("weight of the one-hot term (CE to drawn labels)"),
      real("adv", 1.0).at_least(0).help("weight of the adversarial discrepancy -KL(T||S)"),
  };
  add_gan_params(s, 100, 64);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(
          ardkit::PluginKind::generator, "bn_stats", "1.0.0",
          "DeepInversion-style: teacher BatchNorm statistics, one-hot and adversarial "
          "discrepancy, latent optimized and re-drawn every epoch",
          schema(),
          [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<BnStats>(p); })
      .engine(ardkit_generators::ferd_schedule());  // FERD's schedule, as is
}
