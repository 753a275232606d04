// masks_where_one_: bit masks of the elements equal to 1 (torch.nn.utils.prune's float masks -> bits).
#include <ATen/Parallel.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "chunks.h"
#include "ops_cpu.h"
#include "sse2_bits.h"

namespace rgprune {
namespace cpu {
namespace {

// Words [begin / 32, ceil(end / 32)) of the mask of `w`: bit j set when element 32 * word + j is `one` (raw
// bits: 1.0 has a single bit pattern). The inner loop has no branch, so the compiler vectorizes it; bits
// past `end` stay 0.
template <typename B>
void pack_ones(const B* w, B one, uint32_t* mask, int64_t begin, int64_t end) {
  int64_t base = begin;
#if defined(__SSE2__)
  if constexpr (sizeof(B) == 4) {  // float32: 4 compares per instruction, 16 results packed to bytes
    const __m128i ones = _mm_set1_epi32(int32_t(one));
    for (; base + 32 <= end; base += 32) {
      uint32_t word = 0;
      for (int j = 0; j < 32; j += 16) {
        __m128i eq[4];
        for (int q = 0; q < 4; ++q)
          eq[q] = _mm_cmpeq_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + base + j + 4 * q)), ones);
        word |= bits_of_16_lanes(eq) << j;
      }
      mask[base / 32] = word;
    }
  }
#endif
  for (; base + 32 <= end; base += 32) {
    uint32_t word = 0;
    for (int j = 0; j < 32; ++j) word |= uint32_t(w[base + j] == one) << j;
    mask[base / 32] = word;
  }
  if (base < end) {
    uint32_t word = 0;
    for (int j = 0; base + j < end; ++j) word |= uint32_t(w[base + j] == one) << j;
    mask[base / 32] = word;
  }
}

}  // namespace

void masks_where_one_cpu(at::TensorList tensors, at::TensorList masks) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/false);
  parallel_chunks(make_chunks(tensors), [&](int64_t, const Chunk& ch) {
    const auto& t = tensors[ch.tensor];
    uint32_t* mask = reinterpret_cast<uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
    dispatch_keys(t.scalar_type(), [&](auto traits) {
      using K = decltype(traits);
      using B = typename K::bits_t;
      pack_ones(static_cast<const B*>(t.data_ptr()), K::one, mask, ch.begin, ch.end);
    });
  });
}

}  // namespace cpu
}  // namespace rgprune
