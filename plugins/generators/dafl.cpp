// Generator plugin `dafl`: DAFL (Chen et al., "Data-Free Learning of Student Networks", ICCV
// 2019), as the official training script computes it (huawei-noah/Data-Efficient-Model-
// Compression@5e8f4e4c, DAFL/DAFL-train.py; the same file in huawei-noah/Efficient-Computing):
//   - the network: DAFL's Generator, whose inner BatchNorms are built as nn.BatchNorm2d(C, 0.8):
//     the second positional argument is eps, so they normalize with eps = 0.8 (kept: `eps`);
//   - the loss on G(z), teacher in eval mode: oh * CE(T(x), argmax T(x)) + ie * sum_c p_c log10
//     p_c (p = batch mean of the teacher's softmax: the information entropy term, minimized when
//     classes are balanced; torch.log10 in the script) - a * mean |f_T(x)| (the activation term
//     on the teacher's penultimate features), with the script's defaults oh 1, ie 5, a 0.1. The
//     fork happen2me/DAFL_train@ba25512 uses the natural log and ie 10, a class-balance term
//     ln(10) * 2 = 4.6x stronger: entropy_log = "ln", ie = 10;
//   - one generator step and one student step per iteration on the same batch: the student
//     trains on that iteration's images, detached (student_batch = "update_batch"); Adam lr 0.2,
//     120 iterations per epoch, batch 512 in the script. The README's CIFAR-10 recipe: lr 0.02,
//     latent 1000, oh 0.05, ie 5, a 0.01 (its `--act` is the script's `--a`), batch 1024;
//     CIFAR-100: oh 0.5, ie 20, a 0.1 (experiments/cifar*/datafree/dafl_*.toml).
#include "gan_generator.hpp"

namespace {

using ardkit::Params;
using namespace ardkit_generators;

class Dafl : public GanGenerator {
 public:
  explicit Dafl(const Params& p)
      : GanGenerator(p, options(p)),
        oh_(p.get_real("oh")),
        ie_(p.get_real("ie")),
        a_(p.get_real("a")),
        log10_(p.get_string("entropy_log") == "log10") {}

  std::vector<ardkit::GeneratorTerm> losses(const torch::Tensor& x,
                                            ardkit::GeneratorContext& c) override {
    const ardkit::ModelOutput t = c.teacher.forward(x);
    const auto pred = t.logits.detach().argmax(1);
    const auto p = torch::softmax(t.logits, 1).mean(0);
    return {{"one_hot", torch::cross_entropy_loss(t.logits, pred), oh_},
            {"information_entropy", (p * (log10_ ? torch::log10(p) : torch::log(p))).sum(), ie_},
            {"activation", -t.features.abs().mean(), a_}};
  }

 private:
  static GanOptions options(const Params& p) {
    GanOptions o;
    o.width = 64;  // 128 -> 128 -> 64 channels
    o.eps = p.get_real("eps");
    o.head = "tanh_bn";
    return o;
  }
  double oh_, ie_, a_;
  bool log10_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      real("oh", 1.0).at_least(0).help("weight of the one-hot (teacher confidence) term"),
      real("ie", 5.0).at_least(0).help("weight of the information-entropy (class balance) term"),
      string("entropy_log", "log10")
          .one_of({"log10", "ln"})
          .help("logarithm of the information entropy: log10 (the official script) or ln (the "
                "fork happen2me/DAFL_train, with ie = 10)"),
      real("a", 0.1).at_least(0).help("weight of the activation term"),
      real("eps", 0.8)
          .greater_than(0)
          .help("eps of the two inner BatchNorms (DAFL's nn.BatchNorm2d(C, 0.8) quirk)"),
  };
  add_gan_params(s, 100, 64);
  return s;
}

// The engine's keys of [generator], as DAFL-train.py drives the generator.
std::vector<std::pair<std::string, ardkit::Value>> engine() {
  return {{"lr", 0.2},
          {"iterations", int64_t{120}},
          {"generator_steps", int64_t{1}},
          {"student_steps", int64_t{1}},
          {"student_batch", std::string("update_batch")}};
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(ardkit::PluginKind::generator, "dafl", "1.0.0",
           "DAFL: one-hot, information-entropy and activation losses on the teacher", schema(),
           [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Dafl>(p); })
      .engine(engine());
}
