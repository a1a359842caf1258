#pragma once
// Data-free distillation: a generator plugin synthesises the student's training batches from the
// teacher (DAFL, DFAD, ZSKT, DeepInversion-style BatchNorm matching). A plugin says what the
// network is and which loss terms drive it; the engine (data_free.hpp) owns everything the
// methods share: the optimizer and its schedule, the alternation of generator and student steps,
// the balance of the loss terms (fixed or adaptive), the pool of synthetic batches, checkpoints.
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "ardkit/component.hpp"
#include "ardkit/data.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/model.hpp"
#include "ardkit/params.hpp"

namespace ardkit {

// One loss term of a generator update before balancing: the value carries the graph back to
// the generator, `weight` is its weight when the balance is "fixed" (the method's own weights).
struct GeneratorTerm {
  std::string name;
  torch::Tensor value;
  double weight = 1.0;
};

struct GeneratorSetup {
  DataSpec data;  // the shape to synthesise and the number of classes
  torch::Device device = torch::kCPU;
  int64_t batch_size = 0;    // images per synthetic batch ([train] batch_size)
  Model* teacher = nullptr;  // frozen, eval mode; ask it for taps (set_taps) here
  Model* student = nullptr;
};

// What a generator's loss sees: the teacher is frozen in eval mode; the student is in train mode,
// as the official codes leave it during generator steps (its BatchNorm statistics see the
// synthetic batch too).
struct GeneratorContext {
  Model& teacher;
  Model& student;
  Knobs& knobs;
  int64_t epoch = 0;
};

class ARDKIT_API Generator : public Component {
 public:
  // Builds the network (on setup.device) and asks the models for the taps its losses read.
  virtual void setup(const GeneratorSetup& setup) = 0;
  // The network: its parameters are optimized and its weights and buffers checkpointed. An
  // optimized latent (latent_parameters) is registered in it too.
  virtual torch::nn::Module& network() = 0;
  // The latent code of `n` images: fresh noise, or the optimized latent (then n must be its size).
  virtual torch::Tensor latent(int64_t n) = 0;
  // Images in [0,1] from a latent batch, differentiable with respect to the network (and latent).
  virtual torch::Tensor synthesize(const torch::Tensor& z) = 0;
  // The terms of one generator update on images it just made.
  virtual std::vector<GeneratorTerm> losses(const torch::Tensor& x, GeneratorContext& context) = 0;
  // Terms added to the student's loss on a synthetic batch (ZSKT's attention transfer); empty by
  // default. Weighted by `weight`, never balanced.
  virtual std::vector<GeneratorTerm> student_terms(const torch::Tensor& /*x*/,
                                                   GeneratorContext& /*context*/) {
    return {};
  }
  // Called once a round of updates is done (an epoch's synthesis, or an iteration's
  // generator_steps), after its last step: a method that adapts between rounds does it here
  // (FERD re-weights the classes it draws labels from). Anything it changes that decides what
  // comes next belongs in network()'s buffers, so checkpoints carry it.
  virtual void end_round(GeneratorContext& /*context*/) {}
  // Draws fresh initial weights (and latent): the per-epoch re-initialisation.
  virtual void reinitialize() = 0;
  // Parameters of `network()` that form an optimized latent (their own lr, latent_lr).
  virtual std::vector<torch::Tensor> latent_parameters() {
    return {};
  }
};

using GeneratorPtr = std::shared_ptr<Generator>;

// Pixels from a generator's normalized output: the DAFL/DFAD/ZSKT networks end in a BatchNorm,
// so their images live in the teacher's normalized input space; `mean` and `std` per channel map
// them back, x = out * std + mean. Their official code feeds `out` to the teacher unbounded;
// attacks and the eps-ball need [0,1], and a plain clamp stops the gradient at every clamped
// pixel (with out ~ N(0,1) and Fashion-MNIST's mean/std, about a quarter of them). `mode`:
//   "straight_through": clamped to [0,1] forward, the identity backward (the default);
//   "clamp": clamped both ways (no gradient through a clamped pixel);
//   "none": unbounded, as the official code (the teacher sees exactly `out`).
ARDKIT_API torch::Tensor to_pixels(const torch::Tensor& normalized, const std::vector<double>& mean,
                                   const std::vector<double>& std,
                                   const std::string& mode = "straight_through");

}  // namespace ardkit
