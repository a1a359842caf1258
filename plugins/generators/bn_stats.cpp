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

class BnStats : public GanGenerator {
 public:
  explicit BnStats(const Params& p)
      : GanGenerator(p, options()),
        bn_(p.get_real("bn")),
        oh_(p.get_real("oh")),
        adv_(p.get_real("adv")) {}

  void setup(const ardkit::GeneratorSetup& setup) override {
    GanGenerator::setup(setup);
    batch_ = setup.batch_size;
    classes_ = setup.data.num_classes;
    // The BatchNorm layers the forward runs: a registered layer it never calls (TRADES' WRN-34-10
    // keeps an unused sub_block1) has no statistics to match, and DeepInversion's forward hooks
    // never fire on it either.
    const auto recorded = setup.teacher->tap_shapes(
        setup.teacher->batch_norm_taps(),
        torch::zeros({2, setup.data.channels, setup.data.height, setup.data.width},
                     torch::TensorOptions().device(setup.device)));
    layers_.clear();
    for (const auto& layer : setup.teacher->batch_norm_taps())
      if (recorded.count(layer))
        layers_.push_back(layer);
    if (layers_.empty() && bn_ > 0)
      ardkit::throw_config_error(
          "[generator] bn_stats matches the teacher's BatchNorm statistics, but the teacher has "
          "no BatchNorm layer (built with ardkit::nn::BatchNorm2d); use another generator or "
          "set bn = 0");
    if (bn_ > 0)
      setup.teacher->add_taps(layers_);
    for (const auto& layer : layers_) {
      const std::string path = layer.substr(3);  // "bn:PATH"
      running_.push_back({*setup.teacher->named_buffers().find(path + ".running_mean"),
                          *setup.teacher->named_buffers().find(path + ".running_var")});
    }
    reinitialize();
  }
  torch::nn::Module& network() override {
    return *latent_net_;
  }
  torch::Tensor latent(int64_t /*n: always the whole fixed batch*/) override {
    return latent_net_->z;
  }
  std::vector<torch::Tensor> latent_parameters() override {
    return {latent_net_->z};
  }
  torch::Tensor synthesize(const torch::Tensor& z) override {
    return latent_net_->net->forward(z);
  }
  void reinitialize() override {
    latent_net_ = LatentNet(options_, batch_, classes_, device_);
  }

  std::vector<ardkit::GeneratorTerm> losses(const torch::Tensor& x,
                                            ardkit::GeneratorContext& c) override {
    const auto t = c.teacher.logits(x);
    torch::Tensor matching = torch::zeros({}, x.options());
    if (bn_ > 0)
      for (size_t l = 0; l < layers_.size(); ++l) {
        const auto& stats = c.teacher.tapped(layers_[l]);
        matching = matching + torch::norm(stats[0] - running_[l].first, 2) +
                   torch::norm(stats[1] - running_[l].second, 2);
      }
    const auto s = c.student.logits(x);
    const auto kl =
        torch::kl_div(torch::log_softmax(s, 1), torch::softmax(t, 1), at::Reduction::Sum) /
        x.size(0);
    return {{"bn", matching, bn_},
            {"one_hot", torch::cross_entropy_loss(t, latent_net_->targets), oh_},
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
  std::vector<std::string> layers_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> running_;
  LatentNet latent_net_{nullptr};
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::GeneratorOptions d;
  d.lr = 2e-3;
  d.beta1 = 0.5;
  d.latent_lr = 0.015;
  d.reinitialize = "epoch";
  d.synthesis_steps = 200;
  d.generator_steps = 0;
  d.iterations = 400;
  d.student_steps = 1;
  d.student_batch = "pool";
  d.student_mode = "eval";  // FERD runs the student in eval() while it synthesises
  ardkit::ParamSchema s = {
      real("bn", 5.0).at_least(0).help("weight of the BatchNorm-statistics matching term"),
      real("oh", 1.0).at_least(0).help("weight of the one-hot term (CE to drawn labels)"),
      real("adv", 1.0).at_least(0).help("weight of the adversarial discrepancy -KL(T||S)"),
  };
  add_gan_params(s, 100, 64);
  ardkit::add_generator_params(s, d);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::generator, "bn_stats", "1.0.0",
               "DeepInversion-style: teacher BatchNorm statistics, one-hot and adversarial "
               "discrepancy, latent optimized and re-drawn every epoch",
               schema(), [](const Params& p, const ardkit::BuildContext&) {
                 return std::make_shared<BnStats>(p);
               });
}
