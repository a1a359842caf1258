#pragma once
// FERD's `dkl_loss` (mayaobuduyao/FERD@c975d9e1, losses.py, the definition in force): shared by
// the `ferd` objective (the student step) and the `ferd` generator (its adversarial term).
//   dkl(s, t) = 0.25 * sum_{i,j,k} (dt_ijk - ds_ijk)^2 p_ijk / sum p  +  soft CE(softmax t, s)
// with d_ijk = z_ij - z_ik the pairwise logit differences of sample i and p_i = q_i q_i^T. The
// soft cross-entropy's teacher side is detached, as the official; q keeps whatever graph the
// caller gives it (the generator's q = softmax(t / 100) passes gradients, as the official's).
#include <torch/torch.h>

namespace ardkit_ferd {

inline torch::Tensor dkl(const torch::Tensor& student, const torch::Tensor& teacher,
                         const torch::Tensor& q) {
  const auto differences = [](const torch::Tensor& z) { return z.unsqueeze(2) - z.unsqueeze(1); };
  const auto p = q.unsqueeze(2) * q.unsqueeze(1);
  const auto mse =
      0.25 * ((differences(teacher) - differences(student)).pow(2) * p).sum() / p.sum();
  const auto soft_ce =
      -(torch::softmax(teacher, 1).detach() * torch::log_softmax(student, 1)).sum(1).mean();
  return mse + soft_ce;
}

}  // namespace ardkit_ferd
