#pragma once
// DeepInversion's BatchNorm-statistics matching (Yin et al., "Dreaming to Distill", CVPR 2020),
// as FERD's DeepInversionHook computes it with no momentum (mayaobuduyao/FERD@c975d9e1,
// networks/deepinversion.py): sum over the teacher's BatchNorm layers of
// ||mu_l(x) - running_mean_l||_2 + ||var_l(x) - running_var_l||_2 (the layers' inputs, biased
// variance), read through the BatchNorm taps. Shared by the `bn_stats` and `ferd` generators.
#include <ardkit/ardkit.hpp>
#include <ardkit/nn/batch_norm.hpp>

namespace ardkit_generators {

class BatchNormMatching {
 public:
  // Finds the BatchNorm layers the teacher's forward runs and asks for their taps; `who` names
  // the generator in the error when the teacher has none.
  void setup(const ardkit::GeneratorSetup& setup, const std::string& who) {
    // A registered layer the forward never calls (TRADES' WRN-34-10 keeps an unused sub_block1)
    // has no statistics to match, and DeepInversion's forward hooks never fire on it either.
    const auto recorded = setup.teacher->tap_shapes(
        setup.teacher->batch_norm_taps(),
        torch::zeros({2, setup.data.channels, setup.data.height, setup.data.width},
                     torch::TensorOptions().device(setup.device)));
    layers_.clear();
    running_.clear();
    for (const auto& layer : setup.teacher->batch_norm_taps())
      if (recorded.count(layer))
        layers_.push_back(layer);
    if (layers_.empty())
      ardkit::throw_config_error(
          "[generator] " + who +
          " matches the teacher's BatchNorm statistics, but the teacher has no BatchNorm layer "
          "(built with ardkit::nn::BatchNorm2d); use another generator or set bn = 0");
    setup.teacher->add_taps(layers_);
    for (const auto& layer : layers_) {
      const std::string path = layer.substr(3);  // "bn:PATH"
      running_.push_back({*setup.teacher->named_buffers().find(path + ".running_mean"),
                          *setup.teacher->named_buffers().find(path + ".running_var")});
    }
  }
  // The term on the teacher's last forward.
  torch::Tensor loss(const ardkit::Model& teacher, const torch::TensorOptions& options) const {
    torch::Tensor matching = torch::zeros({}, options);
    for (size_t l = 0; l < layers_.size(); ++l) {
      const auto& stats = teacher.tapped(layers_[l]);
      matching = matching + torch::norm(stats[0] - running_[l].first, 2) +
                 torch::norm(stats[1] - running_[l].second, 2);
    }
    return matching;
  }

 private:
  std::vector<std::string> layers_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> running_;
};

}  // namespace ardkit_generators
