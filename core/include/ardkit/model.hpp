#pragma once
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
  virtual ModelOutput forward(const torch::Tensor& x) = 0;
  virtual int64_t feature_dim() const = 0;
  // True when the plugin's own parameters already gave it trained weights (a TorchScript file),
  // so it can be a teacher without a checkpoint.
  virtual bool pretrained() const {
    return false;
  }
  torch::Tensor logits(const torch::Tensor& x) {
    return forward(x).logits;
  }
};

using ModelPtr = std::shared_ptr<Model>;

}  // namespace ardkit
