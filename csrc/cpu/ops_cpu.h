// The CPU kernels of the ops declared in csrc/ops.cpp, registered by register_cpu.cpp.
#pragma once

#include "../rgprune.h"

namespace rgprune {
namespace cpu {

Stats magnitude_histogram_cpu(at::TensorList tensors, at::TensorList masks, int64_t bits);
std::tuple<at::Tensor, at::Tensor> global_magnitude_threshold_cpu(at::TensorList tensors, at::TensorList masks,
                                                                  int64_t k);
at::Tensor radix_histogram_cpu(at::TensorList tensors, at::TensorList masks, int64_t prefix, int64_t prefix_bits,
                               int64_t bits);
Stats apply_threshold_cpu(at::TensorList tensors, at::TensorList masks, const at::Tensor& info, int64_t bits);
void apply_masks_cpu(at::TensorList tensors, at::TensorList masks);
void masks_where_one_cpu(at::TensorList tensors, at::TensorList masks);
void threshold_masks_cpu(at::TensorList tensors, at::TensorList masks, const at::Tensor& info);

}  // namespace cpu
}  // namespace rgprune
