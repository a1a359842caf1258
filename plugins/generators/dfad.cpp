// Generator plugin `dfad`: DFAD (Fang et al., "Data-Free Adversarial Distillation", 2019), as
// VainF/Data-Free-Adversarial-Distillation@c161591a DFAD_cifar.py and network/gan.py compute it:
//   - the network: GeneratorA (ngf 64; nz 256 for CIFAR, 100 in DFAD_mnist.py);
//   - the generator maximizes the student-teacher discrepancy: loss = -L1(S(x), T(x)), the mean
//     absolute difference of logits (F.l1_loss), student in train mode as in the script;
//   - each iteration makes 5 student steps on fresh samples, then 1 generator step
//     (order = "student_first"); Adam lr 1e-3, constant as in the script without --scheduler
//     (lr_schedule = "constant"); the README's CIFAR commands pass --scheduler, which steps both
//     rates on one MultiStepLR([100, 200], 0.1): lr_schedule = "follow" (the shipped CIFAR
//     files); 50 iterations per epoch.
#include "gan_generator.hpp"

namespace {

using ardkit::Params;
using namespace ardkit_generators;

class Dfad : public GanGenerator {
 public:
  explicit Dfad(const Params& p) : GanGenerator(p, GanOptions{}) {}

  std::vector<ardkit::GeneratorTerm> losses(const torch::Tensor& x,
                                            ardkit::GeneratorContext& c) override {
    const auto t = c.teacher.logits(x);
    const auto s = c.student.logits(x);
    return {{"discrepancy", -torch::l1_loss(s, t), 1.0}};
  }
};

ardkit::ParamSchema schema() {
  ardkit::ParamSchema s;
  add_gan_params(s, 256, 64);
  return s;
}

// The engine's keys of [generator], as DFAD_cifar.py drives the generator (its lr constant
// unless --scheduler is given).
std::vector<std::pair<std::string, ardkit::Value>> engine() {
  return {{"lr", 1e-3},
          {"lr_schedule", std::string("constant")},
          {"iterations", int64_t{50}},
          {"generator_steps", int64_t{1}},
          {"student_steps", int64_t{5}},
          {"order", std::string("student_first")},
          {"student_batch", std::string("fresh")}};
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(ardkit::PluginKind::generator, "dfad", "1.0.0",
           "DFAD: GeneratorA maximizing the L1 student-teacher logit discrepancy", schema(),
           [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Dfad>(p); })
      .engine(engine());
}
