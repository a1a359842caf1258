// Model plugin `torchscript`: any model saved with torch.jit.trace / torch.jit.script, frozen.
// This is how a RobustBench or other PyTorch model enters ardkit as a teacher or for evaluation.
// forward may return logits, or a tuple (logits, features); without features, the logits stand
// in for them. The module is always run in eval mode and its parameters never need gradients;
// attacks still differentiate through it with respect to the input.
#include <fmt/format.h>

#include <filesystem>

#include <torch/script.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/nn/input_normalization.hpp>

namespace {

class TorchScriptModel : public ardkit::Model {
 public:
  TorchScriptModel(torch::jit::Module module, ardkit::nn::InputNormalization normalize,
                   const ardkit::DataSpec& spec, const std::string& where)
      : module_(std::move(module)), normalize_(std::move(normalize)) {
    module_.eval();
    for (auto p : module_.parameters())
      p.requires_grad_(false);
    // One probe forward: the output structure and sizes must fit the data.
    torch::NoGradGuard no_grad;
    const auto probe = forward(torch::zeros({2, spec.channels, spec.height, spec.width}));
    if (probe.logits.dim() != 2 || probe.logits.size(1) != spec.num_classes)
      ardkit::throw_config_error(fmt::format(
          "{}: the TorchScript model outputs shape {} on {}x{}x{} inputs, expected [batch, {}] "
          "logits for this data; check the model file and [data]",
          where, fmt::join(probe.logits.sizes(), "x"), spec.channels, spec.height, spec.width,
          spec.num_classes));
    feature_dim_ = probe.features.size(1);
  }

  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    const torch::IValue out = module_.forward({normalize_->forward(x)});
    if (out.isTensor()) {
      auto logits = out.toTensor();
      return {logits, logits};
    }
    if (out.isTuple()) {
      const auto& items = out.toTupleRef().elements();
      if (items.size() == 2 && items[0].isTensor() && items[1].isTensor())
        return {items[0].toTensor(), items[1].toTensor().flatten(1)};
    }
    ardkit::throw_runtime_error(
        "TorchScript model: forward must return a tensor of logits or a tuple (logits, "
        "features), it returned " +
        out.tagKind());
  }
  int64_t feature_dim() const override {
    return feature_dim_;
  }
  bool pretrained() const override {
    return true;
  }
  // Frozen: whatever mode the engine or an attack asks for, the scripted module stays in eval.
  void train(bool /*on*/) override {
    torch::nn::Module::train(false);
  }

 private:
  torch::jit::Module module_;
  ardkit::nn::InputNormalization normalize_;
  int64_t feature_dim_ = 0;
};

std::shared_ptr<ardkit::Component> make(const ardkit::Params& p, const ardkit::BuildContext& c) {
  const std::string& file = p.get_string("file");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    ardkit::throw_config_error(p.origin("file") + ": " + p.where() + ": TorchScript file " + file +
                               " not found; save one with torch.jit.trace(model, x).save(path)");
  torch::jit::Module module;
  try {
    module = torch::jit::load(file, torch::Device(c.device));
  } catch (const c10::Error& e) {
    ardkit::throw_runtime_error(
        fmt::format("{}: not a loadable TorchScript model ({}); save it with torch.jit.trace or "
                    "torch.jit.script, not torch.save",
                    file, e.what_without_backtrace()));
  }
  return std::make_shared<TorchScriptModel>(
      std::move(module), ardkit::nn::normalization_from(p, c.data.channels), c.data, p.where());
}

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      required(ardkit::ParamType::string, "file")
          .help("the .pt file written by torch.jit.trace(...).save or torch.jit.script(...).save"),
  };
  ardkit::nn::add_normalization_params(s);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::model, "torchscript", "1.0.0",
               "a frozen TorchScript model file (traced or scripted in PyTorch)", schema(), make);
}
