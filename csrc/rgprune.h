// Shared declarations of rgprune's kernels. The semantics are defined by rgprune/kernels/reference.py;
// every implementation (cpu/, cuda/) must match it exactly.
#pragma once

#include <ATen/ATen.h>

#include <tuple>
#include <utility>
#include <vector>

#include "format.h"

namespace rgprune {

// Calls f(Traits{}) with the key traits of a floating dtype.
template <typename F>
auto dispatch_keys(at::ScalarType dtype, F&& f) {
  switch (dtype) {
    case at::kFloat: return f(F32Keys{});
    case at::kHalf: return f(F16Keys{});
    case at::kBFloat16: return f(BF16Keys{});
    case at::kDouble: return f(F64Keys{});
    default: TORCH_CHECK(false, "rgprune: unsupported dtype ", dtype,
                         "; pass float32, float16, bfloat16 or float64 tensors");
  }
}

// Key traits of a scalar type (c10::Half, c10::BFloat16, float, double).
template <typename T> struct KeysFor;
template <> struct KeysFor<float> { using type = F32Keys; };
template <> struct KeysFor<double> { using type = F64Keys; };
template <> struct KeysFor<c10::Half> { using type = F16Keys; };
template <> struct KeysFor<c10::BFloat16> { using type = BF16Keys; };

// Result of a statistics pass: (histogram, counts, abs_sums, sq_sums, nan_counts).
using Stats = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Argument checks shared by the CPU and CUDA kernels (the Python API checks first with friendlier
// errors; these guard direct torch.ops calls). same_dtype: all tensors must share one float dtype.
void check_tensor_lists(const at::TensorList& tensors, const at::TensorList& masks, bool same_dtype);
// The info vector of global_magnitude_threshold, on the tensors' device.
void check_threshold_info(const at::Tensor& info, const at::Tensor& tensor);
void check_bits(int64_t bits, at::ScalarType dtype);
// radix_histogram: prefix_bits + bits within the key, prefix within its bits.
void check_radix_prefix(int64_t prefix, int64_t prefix_bits, int64_t bits, at::ScalarType dtype);
int key_bits_of(at::ScalarType dtype);

// True when the CPU kernels were compiled with OpenMP, i.e. at::parallel_for really uses torch's intra-op
// threads (it is a header template: without -fopenmp it silently runs serially).
bool cpu_kernels_parallel();

// How many CPU float32 thresholds (since the library was loaded) read a key window in their first pass,
// and how many of those found the k-th survivor in it (the rest took the second pass; bench/NOTES.md 16).
std::pair<int64_t, int64_t> threshold_window_counts();

}  // namespace rgprune
