// A model written outside the ardkit tree: a multilayer perceptron on the flattened image. It
// shows what a model plugin provides: logits and penultimate features from inputs in [0,1],
// input normalization inside the model (so attacks never see it), a size taken from the data,
// and submodule names a PyTorch definition would use, so weights move both ways.
#include <torch/torch.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/nn/input_normalization.hpp>

namespace {

class Mlp : public ardkit::Model {
 public:
  Mlp(const ardkit::Params& p, const ardkit::DataSpec& data)
      : normalize_(
            ardkit::nn::normalization_from(p, data.channels)),  // not a submodule: no weights
        hidden_(register_module("fc1", torch::nn::Linear(data.channels * data.height * data.width,
                                                         p.get_int("hidden")))),
        out_(register_module("fc2", torch::nn::Linear(p.get_int("hidden"), data.num_classes))),
        hidden_size_(p.get_int("hidden")) {}

  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    const auto features = torch::relu(hidden_->forward(normalize_->forward(x).flatten(1)));
    return {out_->forward(features), features};
  }
  int64_t feature_dim() const override {
    return hidden_size_;
  }

 private:
  ardkit::nn::InputNormalization normalize_;
  torch::nn::Linear hidden_, out_;
  int64_t hidden_size_;
};

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  ardkit::ParamSchema schema = {
      ardkit::param::integer("hidden", 256).at_least(1).at_most(1 << 16).help("hidden units")};
  ardkit::nn::add_normalization_params(schema);  // `mean` and `std`, as every built-in model
  manifest.add(ardkit::PluginKind::model, "mlp", "0.1.0",
               "one hidden ReLU layer on the flattened image", schema,
               [](const ardkit::Params& p, const ardkit::BuildContext& context) {
                 return std::make_shared<Mlp>(p, context.data);
               });
}
