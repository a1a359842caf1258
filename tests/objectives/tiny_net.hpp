// What the objectives' differential tests share: make_reference.py's TinyNet, an attack that
// keeps what it returned, and the comparisons.
#pragma once
#include <doctest/doctest.h>
#include <ardkit/ardkit.hpp>
#include <ardkit/weights.hpp>

#include "test_util.hpp"

namespace objective_test {

// make_reference.py's TinyNet, parameter for parameter.
class TinyNet : public ardkit::Model {
 public:
  TinyNet()
      : conv_(register_module("conv",
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)))),
        bn_(register_module("bn", torch::nn::BatchNorm2d(4))),
        fc_(register_module("fc", torch::nn::Linear(64, 10))) {}
  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    const auto h = torch::avg_pool2d(torch::relu(bn_(conv_(x))), 2).flatten(1);
    return {fc_(h), h};
  }
  int64_t feature_dim() const override {
    return 64;
  }

 private:
  torch::nn::Conv2d conv_;
  torch::nn::BatchNorm2d bn_;
  torch::nn::Linear fc_;
};

// A TinyNet with the weights of `file`.
inline std::shared_ptr<TinyNet> tiny(const std::filesystem::path& file) {
  auto net = std::make_shared<TinyNet>();
  ardkit::load_weights(*net, file);
  return net;
}

// Frozen and in eval mode, as the engine holds a teacher.
inline void freeze(ardkit::Model& model) {
  model.eval();
  for (auto& p : model.parameters())
    p.set_requires_grad(false);
}

// Keeps what the wrapped attack returned, to compare the adversarial examples.
class Recording : public test::WrappedAttack {
 public:
  using WrappedAttack::WrappedAttack;
  torch::Tensor last;

 protected:
  torch::Tensor run(const ardkit::AttackTarget& target, const Input& in) override {
    last = inner_->perturb(target, in.x, in.labels);
    return last;
  }
};

inline double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

inline double relative(double a, double b) {
  return std::abs(a - b) / std::max(1.0, std::abs(b));
}

}  // namespace objective_test
