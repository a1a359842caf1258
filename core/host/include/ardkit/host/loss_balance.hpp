#pragma once
// Adaptive balance of a generator's loss terms (DFARD's Adaptive Generator Balance, as ardkit
// derives it: the paper's full text was not available to us, and no code is released).
#include <map>
#include <string>
#include <vector>

#include <torch/serialize/archive.h>

#include "ardkit/export.hpp"

namespace ardkit {

// With fixed weights the term with the largest raw magnitude steers the generator: in data-free
// robust distillation that is the adversarial discrepancy term, which grows as the student
// learns and pulls the samples away from what the teacher's statistics and confident classes
// say about the data. The adaptive rule reads each term's weight as the share of the loss it
// should have: it tracks each term's magnitude m_k (an exponential moving average of |l_k|, the
// first observation taken as is) and sets
//
//     w_k = b_k * clamp(M / m_k, lo, hi),   M = sum_j b_j m_j / sum_j b_j,
//
// so each weighted term contributes b_k * M: proportional to its base weight b_k, on the common
// scale M of the base-weighted mean magnitude (the total stays on the scale of the fixed-weight
// loss). The clamp keeps a term that has vanished (a one-hot loss at zero) from exploding.
// "fixed" returns b_k.
class ARDKIT_API LossBalance {
 public:
  LossBalance(bool adaptive, double momentum, double lo, double hi);
  // The weights to apply to terms with these names, base weights and current values; updates
  // the magnitudes first (so the first call already balances).
  std::vector<double> weights(const std::vector<std::string>& names,
                              const std::vector<double>& base, const std::vector<double>& values);
  const std::map<std::string, double>& magnitudes() const {
    return magnitude_;
  }
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  bool adaptive_;
  double momentum_, lo_, hi_;
  std::map<std::string, double> magnitude_;
};

}  // namespace ardkit
