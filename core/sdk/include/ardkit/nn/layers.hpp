#pragma once
// Small building blocks shared by the model plugins.
#include <torch/nn/modules/conv.h>

namespace ardkit::nn {

// A bias-free convolution with "same" padding (kernel / 2): the convolution of the CIFAR ResNet,
// WideResNet and MobileNetV2 definitions.
inline torch::nn::Conv2d conv_no_bias(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1,
                                      int64_t groups = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                               .stride(stride)
                               .padding(kernel / 2)
                               .groups(groups)
                               .bias(false));
}

}  // namespace ardkit::nn
