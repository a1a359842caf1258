#pragma once
// Representation similarity between two models on the same inputs, for `ardkit analyze`: how
// much of a teacher's structure a student took over, on clean and on adversarial inputs. All
// take features [N, D] (rows: the same N inputs; D may differ between the two) and compute in
// double precision.
#include <torch/types.h>

#include "ardkit/export.hpp"

namespace ardkit::analysis {

// Linear CKA (Kornblith et al., ICML 2019): with column-centred X, Y,
// ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), in [0, 1]; 1 for representations equal up to a
// rotation and isotropic scaling.
ARDKIT_API double linear_cka(const torch::Tensor& x, const torch::Tensor& y);

// "Structural knowledge": Pearson correlation between the off-diagonal entries of the two
// models' cosine-similarity matrices (how alike the models find each pair of inputs).
ARDKIT_API double structure_correlation(const torch::Tensor& x, const torch::Tensor& y);

// Mean over inputs of ||f(x') - f(x)|| / ||f(x)||: how far an attack moves the representation.
ARDKIT_API double relative_shift(const torch::Tensor& clean, const torch::Tensor& adversarial);

// Fraction of inputs on which two models predict the same class.
ARDKIT_API double agreement(const torch::Tensor& logits_a, const torch::Tensor& logits_b);

}  // namespace ardkit::analysis
