// Visiting the surviving weights of a chunk (the per-element work of the histogram passes, for every dtype),
// and the histogram pass over all survivors shared by magnitude_histogram, the threshold and
// radix_histogram.
#pragma once

#include <cmath>
#include <cstring>
#include <type_traits>

#include "chunks.h"
#include "key_gather.h"
#include "simd_words.h"
#include "sse2_bits.h"

namespace rgprune {
namespace cpu {

// Per-element work of a histogram pass. Templated on whether a prefix filter applies, whether sums are
// wanted and whether the entries outside the masks are counted (the threshold's first pass, unfiltered:
// for_each_survivor counts them into `outside`), so the hot loops carry no run-time branches on any.
template <typename K, bool kPrefix, bool kSums, bool kOutsideCount = false>
struct HistogramVisitor {
  using Keys = K;
  using B = typename K::bits_t;
  static constexpr bool kFiltered = kPrefix;
  static constexpr bool kOutside = kOutsideCount;
  static_assert(!(kPrefix && kOutsideCount), "rgprune: only an unfiltered pass sees every entry");
  // Copies of the pass parameters and local accumulators (not references into shared structs), so the
  // compiler keeps them in registers instead of reloading them after every histogram store.
  const int prefix_shift, shift;
  const uint64_t prefix;
  const B bin_mask;
  int64_t* const hist;
  int64_t count = 0, nans = 0, outside = 0;
  double abs_even = 0, sq_even = 0, abs_odd = 0, sq_odd = 0;  // two chains halve the add latency

  HistogramVisitor(const RadixPass& pass, int64_t* h)
      : prefix_shift(pass.prefix_shift), shift(pass.shift), prefix(pass.prefix),
        bin_mask(static_cast<B>((uint64_t(1) << pass.bits) - 1)), hist(h) {}

  // Bitmap of the 32 elements at x whose key matches the prefix: a loop the compiler vectorizes, so a
  // refinement pass, where almost nothing matches, runs at close to memory speed.
  inline uint32_t candidates(const B* x) const {
    if (!kPrefix) return ~0u;
#if defined(__SSE2__)
    if constexpr (sizeof(B) == 4) {  // float32 keys: 4 compares per instruction
      const __m128i key_mask = _mm_set1_epi32(int32_t(K::key_mask));
      const __m128i want = _mm_set1_epi32(int32_t(prefix));
      const __m128i count = _mm_cvtsi32_si128(prefix_shift);
      uint32_t m = 0;
      for (int j = 0; j < 32; j += 16) {
        __m128i hit[4];
        for (int q = 0; q < 4; ++q) {
          const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + j + 4 * q));
          hit[q] = _mm_cmpeq_epi32(_mm_srl_epi32(_mm_and_si128(raw, key_mask), count), want);
        }
        m |= bits_of_16_lanes(hit) << j;
      }
      return m;
    }
#endif
    uint32_t m = 0;
    for (int j = 0; j < 32; ++j) m |= uint32_t(B(K::key(x[j]) >> prefix_shift) == B(prefix)) << j;
    return m;
  }

  template <typename scalar_t>
  inline void visit(B raw, const scalar_t& value, bool odd) {
    const B key = K::key(raw);
    if (kPrefix && (uint64_t(key) >> prefix_shift) != prefix) return;
    if (K::is_nan(key)) {
      ++nans;
      return;
    }
    ++hist[(key >> shift) & bin_mask];
    if (kSums) add(static_cast<double>(value), odd);
  }

  // Branch-free variant for an element that may just have been pruned: `kept` is its new bit pattern
  // (the old one, or 0 = +0.0 when pruned) and it is counted only if `keep`. Selecting by bit masks
  // rather than by branches matters: whether a weight is pruned is a coin flip for the branch predictor.
  template <typename scalar_t>
  inline void visit_if(B kept, bool keep) {
    const B key = K::key(kept);
    if (K::is_nan(key)) {  // rare: a predictable branch
      nans += keep;
      return;
    }
    hist[(key >> shift) & bin_mask] += keep;
    if (kSums) {
      scalar_t value;
      std::memcpy(&value, &kept, sizeof(value));
      count += keep - 1;  // add() counts one
      add(static_cast<double>(value), false);
    }
  }

  inline void add(double v, bool odd) {
    ++count;
    if (odd) {
      abs_odd += std::fabs(v);
      sq_odd += v * v;
    } else {
      abs_even += std::fabs(v);
      sq_even += v * v;
    }
  }

  ChunkStats result() const { return ChunkStats{count, nans, abs_even + abs_odd, sq_even + sq_odd, outside}; }
};

// Calls visitor.visit for every surviving element of a chunk: a straight loop over fully surviving
// mask words (the common case, friendly to the branch predictor), set-bit iteration otherwise. With
// Visitor::kOutside (unfiltered passes only) it also counts into visitor.outside the elements whose bit is
// 0 but whose key is not: every whole word is read (a dead word too), and the dead bits of the tail.
template <typename scalar_t, typename Visitor>
inline void for_each_survivor(const Chunk& ch, const at::TensorList& tensors, const at::TensorList& masks,
                              Visitor& visitor) {
  using B = typename Visitor::B;
  using K = typename Visitor::Keys;
  const B* bits = reinterpret_cast<const B*>(tensors[ch.tensor].data_ptr());
  const scalar_t* vals = tensors[ch.tensor].data_ptr<scalar_t>();
  const uint32_t* mask = reinterpret_cast<const uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
  for (int64_t base = ch.begin; base < ch.end; base += 32) {
    uint32_t word = valid_word(mask, base, ch.end);
    if (base + 32 <= ch.end) word &= visitor.candidates(bits + base);
    if (word == ~0u) {
      for (int j = 0; j < 32; ++j) visitor.visit(bits[base + j], vals[base + j], j & 1);
    } else if (!Visitor::kFiltered && base + 32 <= ch.end) {
      // Partly pruned (or dead) word of an unfiltered pass: branch-free over all 32, dead elements counted
      // as 0 (and as outside the mask when their key is not 0).
      for (int j = 0; j < 32; ++j) {
        const bool alive = (word >> j) & 1u;
        const B raw = bits[base + j];
        if constexpr (Visitor::kOutside) visitor.outside += int64_t(!alive & (K::key(raw) != 0));
        visitor.template visit_if<scalar_t>(raw & static_cast<B>(B(0) - B(alive)), alive);
      }
    } else {
      for (uint32_t w = word; w; w &= w - 1) {
        const int j = __builtin_ctz(w);
        visitor.visit(bits[base + j], vals[base + j], j & 1);
      }
      if constexpr (Visitor::kOutside) {  // the tail: its dead bits below ch.end
        const uint32_t valid = ch.end - base < 32 ? (uint32_t(1) << (ch.end - base)) - 1u : ~0u;
        visitor.outside += count_outside_bits<K>(bits + base, ~word & valid);
      }
    }
  }
}

// Calls visitor.visit for the survivors of a chunk in a prefix-filtered pass (visit checks the prefix).
template <typename scalar_t, typename Visitor>
inline void filtered_chunk(const Chunk& ch, const at::TensorList& tensors, const at::TensorList& masks,
                           const RadixPass& pass, Visitor& visitor) {
#if defined(RGPRUNE_AVX2_PATHS)
  if (std::is_same<scalar_t, float>::value && cpu_has_avx2()) {
    const uint32_t* w = reinterpret_cast<const uint32_t*>(tensors[ch.tensor].data_ptr());
    const uint32_t* mask = reinterpret_cast<const uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
    const int64_t base = filtered_words_f32_avx2(w, mask, ch.begin, ch.end, uint32_t(pass.prefix),
                                                 pass.prefix_shift, visitor);
    if (base < ch.end) {
      const scalar_t* vals = tensors[ch.tensor].data_ptr<scalar_t>();
      for (uint32_t word = valid_word(mask, base, ch.end); word; word &= word - 1) {
        const int j = __builtin_ctz(word);
        visitor.visit(typename Visitor::B(w[base + j]), vals[base + j], j & 1);
      }
    }
    return;
  }
#endif
  for_each_survivor<scalar_t>(ch, tensors, masks, visitor);
}

// Adds a bin count per surviving non-NaN key accepted by `pass` into `hist` (resized to 2^pass.bits) and
// fills per-chunk stats (sums only with kSums; with kOutside, an unfiltered pass, the threshold's first,
// also counts each chunk's entries outside the masks into ChunkStats::outside, reading every whole word,
// dead ones included). `window` (the threshold's first pass, float32, AVX2 only): also fed with every
// survivor's key. Defined for the four float dtypes in histogram_cpu.cpp.
template <typename scalar_t, bool kSums, bool kOutside = false>
void histogram_pass(const at::TensorList& tensors, const at::TensorList& masks, const std::vector<Chunk>& chunks,
                    const RadixPass& pass, std::vector<int64_t>& hist, std::vector<ChunkStats>& chunk_stats,
                    KeyWindow* window = nullptr);

}  // namespace cpu
}  // namespace rgprune
