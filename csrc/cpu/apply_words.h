// The definition of apply_words_f32 (declared in simd_words.h), written once for any lane set: a type
// `Lanes` with a vector V of 8 uint32 lanes and these static functions:
//   set1(x), lane_bits() (lane j: 1 << j), lane_index() (lane j: j), load(p), store(p, v), store_aligned(p, v),
//   and_, or_, andnot (~a & b), cmpeq, cmpgt (signed), add, srli8 (each lane >> 8), srl(v, count),
//   select(m, a, b) (a where m, else b), movemask (bit j = sign of lane j), prefetch(p),
// and a float64 accumulator Lanes::Sums with add(magnitudes, chain) and reduce(abs_sum, sq_sum).
//
// Included only by the files that instantiate it, apply_words_sse2.cpp and apply_words_avx2.cpp: the AVX2
// one compiles it for AVX2 (a target pragma around this include), which a function template cannot get
// for one instantiation only.
#pragma once

#include "simd_words.h"

namespace rgprune {
namespace cpu {

template <typename Lanes, bool kTies, bool kStore, bool kSums, bool kOutside>
int64_t apply_words_f32(uint32_t* w, uint32_t* mask, int64_t begin, int64_t end, const WordCut& cut, int64_t* hist,
                        ChunkStats& st, int64_t& ties) {
  static_assert(!(kOutside && (kStore || kTies)), "rgprune: entries outside the masks are counted by a histogram pass");
  using V = typename Lanes::V;
  const V key_mask = Lanes::set1(0x7FFFFFFFu), inf = Lanes::set1(0x7F800000u);
  const V lane = Lanes::lane_bits();
  const V cut_key = Lanes::set1(cut.cut), tie_key = Lanes::set1(cut.tie);
  const __m128i shift = _mm_cvtsi32_si128(cut.shift);
  const V dummy0 = Lanes::add(Lanes::set1(uint32_t(cut.nbins)), Lanes::lane_index());
  typename Lanes::Sums sums;
  const V zero = Lanes::set1(0u);
  int64_t count = 0, nans = 0, tie_count = 0, outside = 0;
  alignas(32) uint32_t bins[32];
  int64_t base = begin;
  for (; base + 32 <= end; base += 32) {
    uint32_t* x = w + base;
    Lanes::prefetch(x);
    const uint32_t alive_bits = mask[base / 32];
    V wordv = Lanes::set1(alive_bits);
    uint32_t keep = 0, nan = 0, tied = 0, alive_or_zero = 0;
    for (int o = 0; o < 32; o += 8) {
      const V raw = Lanes::load(x + o);
      const V key = Lanes::and_(raw, key_mask);
      const V alive = Lanes::cmpeq(Lanes::and_(wordv, lane), lane);
      wordv = Lanes::srli8(wordv);
      if (kOutside) alive_or_zero |= Lanes::movemask(Lanes::or_(alive, Lanes::cmpeq(key, zero))) << o;
      // keys < 2^31, so the signed compare is the unsigned one; cut <= InfKey + 1
      const V keepv = Lanes::andnot(Lanes::cmpgt(cut_key, key), alive);
      if (kStore) Lanes::store(x + o, Lanes::and_(raw, keepv));
      V skip = Lanes::cmpgt(key, inf);  // NaN: kept, counted apart
      nan |= Lanes::movemask(skip) << o;
      if (kTies) {
        const V t = Lanes::and_(Lanes::cmpeq(key, tie_key), keepv);
        tied |= Lanes::movemask(t) << o;
        skip = Lanes::or_(skip, t);
      }
      const V live = Lanes::andnot(skip, keepv);
      keep |= Lanes::movemask(keepv) << o;
      const V dummy = Lanes::add(dummy0, Lanes::set1(uint32_t(o)));
      Lanes::store_aligned(bins + o, Lanes::select(live, Lanes::srl(key, shift), dummy));
      // |w| of counted lanes, else +0.0; two chains per sum, one add per 8 lanes each
      if (kSums) sums.add(Lanes::and_(key, live), (o >> 3) & 1);
    }
    for (int j = 0; j < 32; ++j) ++hist[bins[j]];
    nan &= keep;
    count += __builtin_popcount(keep & ~nan & ~tied);
    if (nan) nans += __builtin_popcount(nan);  // rare
    if (kTies && tied) tie_count += __builtin_popcount(tied);
    if (kOutside) outside += __builtin_popcount(~alive_or_zero);
    if (kStore && alive_bits != keep) mask[base / 32] = keep;
  }
  if (kSums) sums.reduce(st.abs_sum, st.sq_sum);
  st.count += count;
  st.nans += nans;
  st.outside += outside;
  ties += tie_count;
  return base;
}

}  // namespace cpu
}  // namespace rgprune
