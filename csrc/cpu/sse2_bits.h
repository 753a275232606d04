// Compare results to bit masks with SSE2: 16 lanes of 32-bit compare results (all ones or all zeros, four per
// register) become 16 bits in lane order. Packing to bytes first needs one movemask instead of four.
#pragma once

#if defined(__SSE2__)
#include <emmintrin.h>

#include <cstdint>

namespace rgprune {
namespace cpu {

inline uint32_t bits_of_16_lanes(const __m128i (&lanes)[4]) {
  const __m128i bytes =
      _mm_packs_epi16(_mm_packs_epi32(lanes[0], lanes[1]), _mm_packs_epi32(lanes[2], lanes[3]));
  return uint32_t(_mm_movemask_epi8(bytes));
}

}  // namespace cpu
}  // namespace rgprune
#endif
