// An objective with a teacher, written outside the ardkit tree: TRADES whose smoothness term
// pulls the student's adversarial prediction towards the robust teacher's clean one,
//   loss = CE(S(x), y) + beta * KL(T(x) || S(x')),
// with x' maximizing KL(T(x) || S(x')) through the experiment's [attack]. It shows the parts of
// the objective API a distillation method uses: declared needs, a knob, the distill helpers.
#include <torch/torch.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/distill.hpp>

namespace {

namespace distill = ardkit::distill;

class TeacherTrades : public ardkit::Objective {
 public:
  explicit TeacherTrades(const ardkit::Params& p)
      : beta_(p.get_real("beta")), mode_(distill::bn_mode(p)) {}

  // beta is a knob: a [[hook]] (linear_ramp) may move it during training, within its range.
  void declare_knobs(ardkit::Knobs& knobs) override {
    knobs.declare("beta", beta_, ardkit::KnobRange::at_least(0));
  }

  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const double beta = c.knobs.get("beta");
    const auto teacher = torch::softmax(distill::teacher_logits(*c.teacher, c.batch.x), 1);
    const auto x_adv = distill::attack_student(c, mode_, ardkit::losses::kl_to(teacher));
    const auto clean = torch::nn::functional::cross_entropy(c.student.logits(c.batch.x), c.batch.y);
    const auto kl = distill::kl_rows(teacher, c.student.logits(x_adv)).mean();
    return {clean + beta * kl, {{"clean_ce", clean}, {"kl_teacher", kl}}};
  }

 private:
  double beta_;
  ardkit::BnMode mode_;
};

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  using namespace ardkit::param;
  manifest
      .add(ardkit::PluginKind::objective, "teacher_trades", "0.1.0",
           "TRADES with the teacher's clean prediction as the smoothness target",
           {real("beta", 6.0).at_least(0).help("weight of KL(T(x) || S(x'))"),
            distill::bn_mode_param("eval", "TRADES attacks with the student in eval mode")},
           [](const ardkit::Params& p, const ardkit::BuildContext&) {
             return std::make_shared<TeacherTrades>(p);
           })
      // `ardkit validate` refuses an experiment without [teacher] or [attack], or whose teacher
      // has another label space, before anything is built.
      .needs({ardkit::Need::teacher, ardkit::Need::attack, ardkit::Need::same_label_space});
}
