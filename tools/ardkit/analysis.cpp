#include "analysis.hpp"

#include <torch/torch.h>

#include "ardkit/error.hpp"

namespace ardkit::analysis {

namespace {

torch::Tensor as_rows(const torch::Tensor& t) {
  return t.detach().to(torch::kCPU, torch::kDouble).flatten(1);
}

void check_pair(const torch::Tensor& x, const torch::Tensor& y, const char* what) {
  if (x.size(0) != y.size(0) || x.size(0) < 2)
    throw_runtime_error(std::string(what) + ": both feature sets need the same N >= 2 rows");
}

}  // namespace

double linear_cka(const torch::Tensor& x_in, const torch::Tensor& y_in) {
  check_pair(x_in, y_in, "linear CKA");
  const auto x = as_rows(x_in) - as_rows(x_in).mean(0, true);
  const auto y = as_rows(y_in) - as_rows(y_in).mean(0, true);
  const double cross = torch::mm(y.t(), x).pow(2).sum().item<double>();
  const double xx = torch::mm(x.t(), x).pow(2).sum().sqrt().item<double>();
  const double yy = torch::mm(y.t(), y).pow(2).sum().sqrt().item<double>();
  return xx > 0 && yy > 0 ? cross / (xx * yy) : 0.0;
}

double structure_correlation(const torch::Tensor& x_in, const torch::Tensor& y_in) {
  check_pair(x_in, y_in, "structure correlation");
  const auto cosine = [](const torch::Tensor& t) {
    const auto unit = torch::nn::functional::normalize(
        as_rows(t), torch::nn::functional::NormalizeFuncOptions().dim(1));
    return torch::mm(unit, unit.t());
  };
  const int64_t n = x_in.size(0);
  const auto upper = torch::triu_indices(n, n, 1);
  const auto pick = [&](const torch::Tensor& m) { return m.index({upper[0], upper[1]}); };
  const auto a = pick(cosine(x_in)), b = pick(cosine(y_in));
  const auto da = a - a.mean(), db = b - b.mean();
  const double denominator = (da.pow(2).sum() * db.pow(2).sum()).sqrt().item<double>();
  return denominator > 0 ? (da * db).sum().item<double>() / denominator : 0.0;
}

double relative_shift(const torch::Tensor& clean, const torch::Tensor& adversarial) {
  check_pair(clean, adversarial, "relative shift");
  const auto c = as_rows(clean), a = as_rows(adversarial);
  return ((a - c).norm(2, 1) / c.norm(2, 1).clamp_min(1e-12)).mean().item<double>();
}

double agreement(const torch::Tensor& logits_a, const torch::Tensor& logits_b) {
  check_pair(logits_a, logits_b, "agreement");
  return logits_a.argmax(1).eq(logits_b.argmax(1)).to(torch::kDouble).mean().item<double>();
}

}  // namespace ardkit::analysis
