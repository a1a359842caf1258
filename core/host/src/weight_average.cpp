#include "ardkit/host/weight_average.hpp"

#include <torch/nn/modules/batchnorm.h>

#include "ardkit/interrupt.hpp"
#include "ardkit/nn/batch_norm.hpp"
#include "ardkit/weights.hpp"

namespace ardkit {

namespace {

// A BatchNorm layer's momentum and statistics, whichever class it is.
struct BatchNormLayer {
  std::function<void(c10::optional<double>)> set_momentum;
  c10::optional<double> momentum;
  torch::Tensor running_mean, running_var, num_batches_tracked;
};

template <class Impl>
bool add_layer(torch::nn::Module& module, std::vector<BatchNormLayer>& out) {
  auto* bn = dynamic_cast<Impl*>(&module);
  if (!bn || !bn->options.track_running_stats())
    return bn != nullptr;
  out.push_back({[bn](c10::optional<double> m) { bn->options.momentum(m); }, bn->options.momentum(),
                 bn->running_mean, bn->running_var, bn->num_batches_tracked});
  return true;
}

std::vector<BatchNormLayer> batchnorm_layers(Model& model) {
  std::vector<BatchNormLayer> out;
  for (const auto& item : model.named_modules("", false)) {
    torch::nn::Module& m = *item.value();
    add_layer<nn::BatchNorm2dImpl>(m, out) || add_layer<torch::nn::BatchNorm2dImpl>(m, out) ||
        add_layer<torch::nn::BatchNorm1dImpl>(m, out);
  }
  return out;
}

}  // namespace

void recompute_batchnorm(Model& model, const std::function<Batch()>& draw, int64_t batches) {
  auto layers = batchnorm_layers(model);
  if (layers.empty() || batches <= 0)
    return;
  torch::NoGradGuard no_grad;
  for (auto& layer : layers) {
    layer.running_mean.zero_();
    layer.running_var.fill_(1);
    layer.num_batches_tracked.zero_();
    layer.set_momentum(c10::nullopt);  // cumulative: each batch counts 1 / batches
  }
  const bool was_training = model.is_training();
  model.train();
  const torch::Device device = device_of(model);
  const auto restore = [&] {
    model.train(was_training);
    for (auto& layer : layers)
      layer.set_momentum(layer.momentum);
  };
  try {
    // A pass over a CIFAR-sized split takes minutes on a CPU: Ctrl-C ends it within seconds (a
    // resumed run reloads its last checkpoint and averages again).
    for (int64_t i = 0; i < batches; ++i) {
      check_interrupt();
      model.logits(draw().x.to(device));
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

WeightAverage::WeightAverage(Model& student, int64_t from) : student_(student), from_(from) {}

void WeightAverage::end_epoch(int64_t epoch) {
  if (!active() || epoch < from_)
    return;
  torch::NoGradGuard no_grad;
  const auto parameters = student_.parameters();
  if (mean_.empty())
    for (const auto& p : parameters)
      mean_.push_back(p.detach().clone());
  else
    for (size_t i = 0; i < parameters.size(); ++i)  // mean += (w - mean) / (n + 1)
      mean_[i].add_(parameters[i].detach() - mean_[i], 1.0 / static_cast<double>(count_ + 1));
  count_ += 1;
}

void WeightAverage::save(torch::serialize::OutputArchive& archive) const {
  archive.write("count", torch::tensor(count_));
  for (size_t i = 0; i < mean_.size(); ++i)
    archive.write("mean" + std::to_string(i), mean_[i]);
}

void WeightAverage::load(torch::serialize::InputArchive& archive) {
  torch::Tensor count;
  archive.read("count", count);
  count_ = count.item<int64_t>();
  mean_.clear();
  const torch::Device device = device_of(student_);
  for (int64_t i = 0; count_ > 0 && i < static_cast<int64_t>(student_.parameters().size()); ++i) {
    torch::Tensor t;
    archive.read("mean" + std::to_string(i), t);
    mean_.push_back(t.to(device));
  }
}

void WeightAverage::apply(const std::function<Batch()>& draw, int64_t batches) {
  if (count_ == 0)
    return;
  {
    torch::NoGradGuard no_grad;
    const auto parameters = student_.parameters();
    for (size_t i = 0; i < parameters.size(); ++i)
      parameters[i].copy_(mean_[i]);
  }
  recompute_batchnorm(student_, draw, batches);
}

}  // namespace ardkit
