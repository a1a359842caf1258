#include "ardkit/host/loss_balance.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "ardkit/error.hpp"

namespace ardkit {

LossBalance::LossBalance(bool adaptive, double momentum, double lo, double hi)
    : adaptive_(adaptive), momentum_(momentum), lo_(lo), hi_(hi) {}

std::vector<double> LossBalance::weights(const std::vector<std::string>& names,
                                         const std::vector<double>& base,
                                         const std::vector<double>& values) {
  if (!adaptive_)
    return base;
  for (size_t k = 0; k < names.size(); ++k) {
    const double m = std::abs(values[k]);
    const auto found = magnitude_.find(names[k]);
    magnitude_[names[k]] =
        found == magnitude_.end() ? m : momentum_ * found->second + (1 - momentum_) * m;
  }
  double weighted = 0, total = 0;
  for (size_t k = 0; k < names.size(); ++k) {
    weighted += base[k] * magnitude_[names[k]];
    total += base[k];
  }
  const double scale = total > 0 ? weighted / total : 0.0;
  std::vector<double> out(names.size());
  for (size_t k = 0; k < names.size(); ++k) {
    const double m = magnitude_[names[k]];
    const double factor = m > 0 ? scale / m : hi_;
    out[k] = base[k] * std::clamp(factor, lo_, hi_);
  }
  return out;
}

void LossBalance::save(torch::serialize::OutputArchive& archive) const {
  for (const auto& [name, m] : magnitude_)
    archive.write(name, torch::tensor(m, torch::kDouble));
}

void LossBalance::load(torch::serialize::InputArchive& archive) {
  magnitude_.clear();
  for (const auto& key : archive.keys()) {
    torch::Tensor t;
    archive.read(key, t);
    magnitude_[key] = t.item<double>();
  }
}

}  // namespace ardkit
