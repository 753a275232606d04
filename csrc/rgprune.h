// Shared declarations of rgprune's kernels. The semantics are defined by rgprune/kernels/reference.py;
// every implementation (cpu/, cuda/) must match it exactly.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#if defined(__CUDACC__)
#define RGP_HD __host__ __device__ __forceinline__
#else
#define RGP_HD inline
#endif

namespace rgprune {

// Bits resolved per radix-select pass; the first pass doubles as the RG histogram.
constexpr int kRadixBits = 12;
constexpr int kMaxHistBits = 12;
// Layout of the int64 info vector of global_magnitude_threshold.
enum InfoSlot : int { kInfoKey = 0, kInfoBelow, kInfoTies, kInfoEqual, kInfoSurvivors, kInfoNan, kInfoLen };

// Magnitude keys: the sign-cleared bit pattern, compared as unsigned integers.
template <typename Bits, int KeyBits, uint64_t InfKey>
struct KeyTraits {
  using bits_t = Bits;
  static constexpr int key_bits = KeyBits;
  static constexpr uint64_t inf_key = InfKey;
  static constexpr Bits key_mask = static_cast<Bits>((uint64_t(1) << KeyBits) - 1);
  static RGP_HD Bits key(Bits raw) { return raw & key_mask; }
  static RGP_HD bool is_nan(Bits key) { return uint64_t(key) > InfKey; }
};
using F32Keys = KeyTraits<uint32_t, 31, 0x7F800000ull>;
using F16Keys = KeyTraits<uint16_t, 15, 0x7C00ull>;
using BF16Keys = KeyTraits<uint16_t, 15, 0x7F80ull>;
using F64Keys = KeyTraits<uint64_t, 63, 0x7FF0000000000000ull>;

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

inline int64_t mask_words(int64_t numel) { return (numel + 31) / 32; }

// Result of a statistics pass: (histogram, counts, abs_sums, sq_sums, nan_counts).
using Stats = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Argument checks shared by the CPU and CUDA kernels (the Python API checks first with friendlier
// errors; these guard direct torch.ops calls). same_dtype: all tensors must share one float dtype.
void check_tensor_lists(const at::TensorList& tensors, const at::TensorList& masks, bool same_dtype);
void check_bits(int64_t bits, at::ScalarType dtype);
int key_bits_of(at::ScalarType dtype);

// True when the CPU kernels were compiled with OpenMP, i.e. at::parallel_for really uses torch's intra-op
// threads (it is a header template: without -fopenmp it silently runs serially).
bool cpu_kernels_parallel();

// How many CPU float32 thresholds (since the library was loaded) read a key window in their first pass,
// and how many of those found the k-th survivor in it (the rest took the second pass; bench/NOTES.md 16).
std::pair<int64_t, int64_t> threshold_window_counts();

}  // namespace rgprune
