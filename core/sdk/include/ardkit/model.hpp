#pragma once
#include <atomic>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "ardkit/component.hpp"

namespace ardkit {

struct ModelOutput {
  torch::Tensor logits;    // [B, classes]
  torch::Tensor features;  // [B, feature_dim]: the penultimate representation (GACD, analysis)
};

// A classifier on inputs in [0,1] pixel space. Input normalization (mean/std) is part of the
// model, so attacks and data never need to know about it. Parameter names follow the reference
// PyTorch definitions, so weights move both ways between ardkit and PyTorch.
class ARDKIT_API Model : public Component, public torch::nn::Module {
 public:
  ~Model() override;
  // Runs the model (forward_impl, which a model plugin defines) and counts the images it ran on.
  ModelOutput forward(const torch::Tensor& x) {
    queries_.fetch_add(x.dim() > 0 ? x.size(0) : 1, std::memory_order_relaxed);
    return forward_impl(x);
  }
  // Images through forward() since construction or the last set_queries: the engine records a
  // teacher's count as a run's teacher queries (attack iterations included), so budgets can be
  // compared across methods.
  int64_t queries() const {
    return queries_.load(std::memory_order_relaxed);
  }
  void set_queries(int64_t n) {
    queries_.store(n, std::memory_order_relaxed);
  }
  virtual int64_t feature_dim() const = 0;
  // True when the plugin's own parameters already gave it trained weights (a TorchScript file),
  // so it can be a teacher without a checkpoint.
  virtual bool pretrained() const {
    return false;
  }
  // In float32 even under autocast ([run] precision): the losses built on logits then keep their
  // precision, whatever the last layer computed in.
  torch::Tensor logits(const torch::Tensor& x) {
    auto z = forward(x).logits;
    const auto type = z.scalar_type();
    return type == torch::kBFloat16 || type == torch::kHalf ? z.to(torch::kFloat) : z;
  }

  // Named intermediate activations ("taps"), so a feature method can distill a chosen layer:
  // a plugin lists the points its forward() passes (tap_names) and hands each activation to
  // tap(name, value); only the names a caller asked for with set_taps are kept, so an untapped
  // forward costs nothing. tapped() holds the last forward's values.
  virtual std::vector<std::string> tap_names() const {
    return {};
  }
  // Every tap a caller may ask for: tap_names() and, for each BatchNorm layer built with
  // ardkit::nn::BatchNorm2d, "bn:PATH" (PATH its module path, e.g. "layer1.0.bn1"). A BatchNorm
  // tap's value is [2, C]: the mean and biased variance of the layer's input per channel, with
  // their graph; compare them with the buffers PATH.running_mean and PATH.running_var.
  std::vector<std::string> available_taps();
  // The BatchNorm taps alone, in forward order of registration.
  std::vector<std::string> batch_norm_taps();
  // Asks for these names (an unknown one is a config error listing the model's names); an empty
  // list stops tapping.
  void set_taps(const std::vector<std::string>& names);
  // Adds names to those already asked for (components that share a model: an objective's layer
  // and a generator's BatchNorm statistics).
  void add_taps(const std::vector<std::string>& names);
  const std::map<std::string, torch::Tensor>& tapped() const {
    return tapped_;
  }
  // The last forward's value of one requested tap (a runtime error if it was not recorded).
  const torch::Tensor& tapped(const std::string& name) const;
  // The rest of the network from a tap: the output forward() would give if the activation at
  // `tap` were `value` (FERD's informative-feature search perturbs a teacher's feature map and
  // reads the logits this way). Only the taps resumable_taps() lists; another name is a config
  // error listing them. Not counted in queries(): no image goes in.
  ModelOutput forward_from(const std::string& tap, const torch::Tensor& value);
  // The taps a plugin can continue its forward from (forward_from_impl); none by default.
  virtual std::vector<std::string> resumable_taps() const {
    return {};
  }
  // The sizes each of `names` has on one eval-mode, no-grad forward of `input`, for choosing
  // layers by shape before a run; the taps asked for, the last values and the mode are left as
  // they were. A name the forward did not pass is absent.
  std::map<std::string, std::vector<int64_t>> tap_shapes(const std::vector<std::string>& names,
                                                         const torch::Tensor& input);

 protected:
  // The model itself: logits and penultimate features of x (in [0,1] pixel space).
  virtual ModelOutput forward_impl(const torch::Tensor& x) = 0;
  // forward_from for a name in resumable_taps() (checked before the call).
  virtual ModelOutput forward_from_impl(const std::string& tap, const torch::Tensor& value);
  void tap(const std::string& name, const torch::Tensor& value) {
    if (!wanted_.empty() && wanted_.count(name))
      tapped_[name] = value;
  }

 private:
  std::atomic<int64_t> queries_{0};
  std::set<std::string> wanted_;
  std::map<std::string, torch::Tensor> tapped_;
};

using ModelPtr = std::shared_ptr<Model>;

}  // namespace ardkit
