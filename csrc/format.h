// The mask, magnitude-key and threshold-info format every rgprune kernel shares (the Python twin is
// rgprune/kernels/format.py). Free of ATen and of the CUDA runtime: it compiles with nvcc, with the host
// compiler, and as host C++ under the SIMT simulator's prelude (tests/cuda_sim), so the CUDA device code
// that includes it runs on the CPU in the tests unchanged.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define RGP_HD __host__ __device__ __forceinline__
#else
#define RGP_HD inline
#endif

namespace rgprune {

// Bits resolved per radix-select pass; the first pass doubles as the RG histogram.
constexpr int kRadixBits = 12;
constexpr int kMaxHistBits = 12;
// Layout of the int64 info vector of global_magnitude_threshold. kInfoOutside: entries whose mask bit is 0
// but whose key is not 0 (weights that grew back outside the masks; NaN counted, -0.0 not), counted by the
// threshold's first pass so that the pruner's check costs no read of its own.
enum InfoSlot : int {
  kInfoKey = 0,
  kInfoBelow,
  kInfoTies,
  kInfoEqual,
  kInfoSurvivors,
  kInfoNan,
  kInfoOutside,
  kInfoLen
};

// Magnitude keys: the sign-cleared bit pattern, compared as unsigned integers. `one` is the bit pattern of
// 1.0, the only one equal to 1 (masks_where_one_ compares raw bits with it).
template <typename Bits, int KeyBits, uint64_t InfKey, uint64_t One>
struct KeyTraits {
  using bits_t = Bits;
  static constexpr int key_bits = KeyBits;
  static constexpr uint64_t inf_key = InfKey;
  static constexpr Bits one = static_cast<Bits>(One);
  static constexpr Bits key_mask = static_cast<Bits>((uint64_t(1) << KeyBits) - 1);
  static RGP_HD Bits key(Bits raw) { return raw & key_mask; }
  static RGP_HD bool is_nan(Bits key) { return uint64_t(key) > InfKey; }
};
using F32Keys = KeyTraits<uint32_t, 31, 0x7F800000ull, 0x3F800000ull>;
using F16Keys = KeyTraits<uint16_t, 15, 0x7C00ull, 0x3C00ull>;
using BF16Keys = KeyTraits<uint16_t, 15, 0x7F80ull, 0x3F80ull>;
using F64Keys = KeyTraits<uint64_t, 63, 0x7FF0000000000000ull, 0x3FF0000000000000ull>;

RGP_HD int64_t mask_words(int64_t numel) { return (numel + 31) / 32; }

}  // namespace rgprune
