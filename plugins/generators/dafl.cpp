// Generator plugin `dafl`: DAFL (Chen et al., "Data-Free Learning of Student Networks", ICCV
// 2019), as its training script computes it (DAFL/DAFL_train.py of the Huawei code, in the fork
// happen2me/DAFL_train@ba25512):
//   - the network: DAFL's Generator, whose inner BatchNorms are built as nn.BatchNorm2d(C, 0.8):
//     the second positional argument is eps, so they normalize with eps = 0.8 (kept: `eps`);
//   - the loss on G(z), teacher in eval mode: oh * CE(T(x), argmax T(x)) + ie * sum_c p_c log p_c
//     (p = batch mean of the teacher's softmax: the information entropy term, minimized when
//     classes are balanced) - a * mean |f_T(x)| (the activation term on the teacher's
//     penultimate features), with oh 1, ie 10, a 0.1;
//   - one generator step and one student step per iteration on the same batch: the student
//     trains on that iteration's images, detached (student_batch = "update_batch"); Adam lr 0.2,
//     120 iterations per epoch, batch 512 in the script.
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
        a_(p.get_real("a")) {}

  std::vector<ardkit::GeneratorTerm> losses(const torch::Tensor& x,
                                            ardkit::GeneratorContext& c) override {
    const ardkit::ModelOutput t = c.teacher.forward(x);
    const auto pred = t.logits.detach().argmax(1);
    const auto p = torch::softmax(t.logits, 1).mean(0);
    return {{"one_hot", torch::cross_entropy_loss(t.logits, pred), oh_},
            {"information_entropy", (p * torch::log(p)).sum(), ie_},
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
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::GeneratorOptions d;
  d.lr = 0.2;
  d.iterations = 120;
  d.generator_steps = 1;
  d.student_steps = 1;
  d.student_batch = "update_batch";
  ardkit::ParamSchema s = {
      real("oh", 1.0).at_least(0).help("weight of the one-hot (teacher confidence) term"),
      real("ie", 10.0).at_least(0).help("weight of the information-entropy (class balance) term"),
      real("a", 0.1).at_least(0).help("weight of the activation term"),
      real("eps", 0.8)
          .greater_than(0)
          .help("eps of the two inner BatchNorms (DAFL's nn.BatchNorm2d(C, 0.8) quirk)"),
  };
  add_gan_params(s, 100, 64);
  ardkit::add_generator_params(s, d);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(
      ardkit::PluginKind::generator, "dafl", "1.0.0",
      "DAFL: one-hot, information-entropy and activation losses on the teacher", schema(),
      [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Dafl>(p); });
}
