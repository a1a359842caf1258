#pragma once
#include <string>
#include <utility>
#include <vector>

#include <functional>
#include <map>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include "ardkit/attack.hpp"
#include "ardkit/data.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/model.hpp"

namespace ardkit {

// Names of LossTerms::outputs that objectives which attack publish.
namespace output {
// The adversarial examples the step trained on (no graph).
inline constexpr const char* x_adv = "x_adv";
// The student's logits on them, with their graph: a wrapper that needs them again reuses them,
// because a second train-mode forward would move BatchNorm's running statistics once more.
inline constexpr const char* student_adv_logits = "student_adv_logits";
}  // namespace output

// The loss to minimize plus named terms for the logs (detached or not; they are only read).
struct LossTerms {
  torch::Tensor total;
  std::vector<std::pair<std::string, torch::Tensor>> terms;
  // What the step computed that a wrapping objective may build on (output::x_adv, ...); empty
  // for objectives that publish nothing.
  std::map<std::string, torch::Tensor> outputs;
  // The output `name`, or a runtime error naming `who` (the objective that needs it) and the
  // output, for an inner objective that does not publish it.
  ARDKIT_API const torch::Tensor& output(const std::string& name, const std::string& who) const;
};

// Everything one training step may need. The teacher (when present) is frozen and in eval mode;
// the student (and the objective's trainable() module) is in train mode when the step starts,
// and the objective decides what else runs in which mode (the attack's BatchNorm mode goes in
// its AttackTarget).
struct StepContext {
  Model& student;
  Model* teacher = nullptr;  // null when the experiment has no teacher
  Attack* attack = nullptr;  // the [attack] table's plugin; null when there is none
  const Batch& batch;
  int64_t epoch = 0;  // 0-based
  int64_t step = 0;   // global step, 0-based
  Knobs& knobs;
  // The run's optimizer: the student's parameters (group 0) and the objective's trainable()
  // module's (group 1, with its own lr factor and weight decay). Null outside training (tests
  // that call compute() directly).
  torch::optim::Optimizer* optimizer = nullptr;
  // Throws, naming the term, when a loss term is NaN or infinite; the engine's default step
  // calls it before backward, so a blow-up never reaches the weights. A custom step should too.
  std::function<void(const LossTerms&)> check_finite;
  // Terms the run adds to the objective's loss on this batch (in a data-free run, a generator's
  // student terms such as ZSKT's attention transfer); empty when there are none. The default step
  // calls it after compute(); a custom step should too, before check_finite.
  std::function<void(LossTerms&)> extra_terms;
  // The models of the roles the objective declared (PluginInfo::uses), by NAME: teachers of
  // [teachers.NAME] (frozen, eval mode) and companions of [companions.NAME] (in the mode their
  // table says, the student's by default) with their own optimizers, which the objective steps.
  std::map<std::string, Model*> teachers, companions;
  std::map<std::string, torch::optim::Optimizer*> companion_optimizers;
  // The model of a declared role; a name the experiment lacks is a runtime error naming it.
  ARDKIT_API Model& teacher_named(const std::string& name) const;
  ARDKIT_API Model& companion(const std::string& name) const;
  ARDKIT_API torch::optim::Optimizer& companion_optimizer(const std::string& name) const;
};

// What an objective learns about the run before the optimizer exists and before a resume loads
// its state: enough to size projection heads (feature dimensions) and memory banks (train_size).
// Feature dimensions and class counts come from one eval-mode, no-grad forward of each model on
// a zero batch of the data's shape, so they are what compute() will see.
struct ObjectiveSetup {
  int64_t train_size = 0;  // samples in the training split (indices 0..train_size-1)
  // The run's [train] epochs, for terms ramped over the run (IGDM's e / E); 0 outside a run.
  int64_t epochs = 0;
  // True in a data-free run: every batch is new images from a generator, and Batch::index is a
  // position within the epoch, not a sample, so per-sample state (memory banks) cannot follow.
  bool synthetic = false;
  int64_t num_classes = 0;  // of the data (the student's label space)
  int64_t student_features = 0;
  int64_t student_classes = 0;
  int64_t teacher_features = 0;  // 0 when there is no teacher
  int64_t teacher_classes = 0;
  // What the labels mean (label_space_of): equal strings and class counts = one label space, so
  // class probabilities of the two models can be compared; otherwise only features pass.
  std::string label_space, teacher_label_space;
  bool same_label_space() const {
    return teacher_classes == num_classes && teacher_label_space == label_space;
  }
  torch::Device device = torch::kCPU;
  DataSpec data;  // the input shape, for probing a tapped layer's width
  // The models themselves, to ask for taps (Model::set_taps) of chosen layers; the teacher is
  // null when there is none. Valid for the run.
  Model* student = nullptr;
  Model* teacher = nullptr;
  // The training split's labels by sample index (int64 [train_size], on the CPU), gathered from
  // the data source when first called (a pass over the split, kept for the run) for objectives
  // that sample by class, such as CRD's negatives from other classes. Null in a data-free run.
  std::function<torch::Tensor()> train_labels;
  // The named models (StepContext::teachers, companions), on setup.device; valid for the run.
  std::map<std::string, Model*> teachers, companions;
};

class ARDKIT_API Objective : public Component {
 public:
  // Called once per run, after the models are on their device and before the optimizer is made
  // or a checkpoint is loaded: build heads and buffers here (on setup.device).
  virtual void setup(const ObjectiveSetup& /*setup*/) {}
  virtual LossTerms compute(StepContext& context) = 0;
  // One optimization step on context.batch. The default is the usual one: zero_grad, compute,
  // check_finite, backward, optimizer step. Override it for several updates per batch or a second
  // optimizer of the objective's own (save its state in save_state).
  virtual LossTerms step(StepContext& context);
  // What the objective needs from the experiment (a teacher, an attack, one label space) is
  // declared where it registers: manifest.add(...).needs({Need::teacher, ...}) (plugin.hpp).
  // Knobs this objective reads, with their starting values (e.g. "temperature").
  virtual void declare_knobs(Knobs& /*knobs*/) {}
  // Extra trainable state (projection heads, memory banks as registered buffers): optimized with
  // the student in its own parameter group ([optimizer] extra_lr_factor, extra_weight_decay), put
  // in train/eval mode with the student, and saved in checkpoints with all its buffers. Null when
  // the objective has none.
  virtual std::shared_ptr<torch::nn::Module> trainable() {
    return nullptr;
  }
  // Everything else the objective must carry across a resume (a second optimizer, counters).
  // The defaults save and load trainable(); `load_state` is only called when save_state wrote.
  virtual void save_state(torch::serialize::OutputArchive& archive);
  virtual void load_state(torch::serialize::InputArchive& archive);
  // Whether save_state writes anything (the default: when trainable() is not null).
  virtual bool has_state();
};

using ObjectivePtr = std::shared_ptr<Objective>;

}  // namespace ardkit
