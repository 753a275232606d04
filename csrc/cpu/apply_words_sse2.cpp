// apply_words_f32 with SSE2: 8 lanes as two registers of 4. Used where the CPU has no AVX2 (or
// RGPRUNE_NO_AVX2=1), for the apply pass and for the unfiltered float32 histogram pass.
#include "simd_words.h"

#if defined(__SSE2__)
#include "apply_words.h"

namespace rgprune {
namespace cpu {

struct Sse2Lanes {
  struct V {
    __m128i lo, hi;  // lanes 0-3, 4-7
  };
  template <typename F>
  static V map(V a, V b, F f) {
    return {f(a.lo, b.lo), f(a.hi, b.hi)};
  }

  static V set1(uint32_t x) {
    const __m128i v = _mm_set1_epi32(int32_t(x));
    return {v, v};
  }
  static V lane_bits() { return {_mm_setr_epi32(1, 2, 4, 8), _mm_setr_epi32(16, 32, 64, 128)}; }
  static V lane_index() { return {_mm_setr_epi32(0, 1, 2, 3), _mm_setr_epi32(4, 5, 6, 7)}; }
  static V load(const uint32_t* p) {
    return {_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)),
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 4))};
  }
  static void store(uint32_t* p, V v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v.lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 4), v.hi);
  }
  static void store_aligned(uint32_t* p, V v) {
    _mm_store_si128(reinterpret_cast<__m128i*>(p), v.lo);
    _mm_store_si128(reinterpret_cast<__m128i*>(p + 4), v.hi);
  }
  static V and_(V a, V b) { return map(a, b, [](__m128i x, __m128i y) { return _mm_and_si128(x, y); }); }
  static V or_(V a, V b) { return map(a, b, [](__m128i x, __m128i y) { return _mm_or_si128(x, y); }); }
  static V andnot(V a, V b) { return map(a, b, [](__m128i x, __m128i y) { return _mm_andnot_si128(x, y); }); }
  static V cmpeq(V a, V b) { return map(a, b, [](__m128i x, __m128i y) { return _mm_cmpeq_epi32(x, y); }); }
  static V cmpgt(V a, V b) { return map(a, b, [](__m128i x, __m128i y) { return _mm_cmpgt_epi32(x, y); }); }
  static V add(V a, V b) { return map(a, b, [](__m128i x, __m128i y) { return _mm_add_epi32(x, y); }); }
  static V srli8(V a) { return {_mm_srli_epi32(a.lo, 8), _mm_srli_epi32(a.hi, 8)}; }
  static V srl(V a, __m128i count) { return {_mm_srl_epi32(a.lo, count), _mm_srl_epi32(a.hi, count)}; }
  static V select(V m, V a, V b) { return or_(and_(m, a), andnot(m, b)); }  // SSE2 has no blend
  static uint32_t movemask(V a) {
    return uint32_t(_mm_movemask_ps(_mm_castsi128_ps(a.lo))) |
           (uint32_t(_mm_movemask_ps(_mm_castsi128_ps(a.hi))) << 4);
  }
  // No software prefetch: this is the fallback for CPUs without AVX2, and its speed was never tuned.
  static void prefetch(const uint32_t*) {}

  struct Sums {
    __m128d abs_acc[2], sq_acc[2];
    Sums() { abs_acc[0] = abs_acc[1] = sq_acc[0] = sq_acc[1] = _mm_setzero_pd(); }
    // mag: 8 float32 magnitudes (bit patterns); each half is summed in float64 pairs, then both halves
    // are added to one chain.
    void add(V mag, int chain) {
      __m128d a2[2], s2[2];
      const __m128 half[2] = {_mm_castsi128_ps(mag.lo), _mm_castsi128_ps(mag.hi)};
      for (int h = 0; h < 2; ++h) {
        const __m128d lo = _mm_cvtps_pd(half[h]), hi = _mm_cvtps_pd(_mm_movehl_ps(half[h], half[h]));
        a2[h] = _mm_add_pd(lo, hi);
        s2[h] = _mm_add_pd(_mm_mul_pd(lo, lo), _mm_mul_pd(hi, hi));
      }
      abs_acc[chain] = _mm_add_pd(abs_acc[chain], _mm_add_pd(a2[0], a2[1]));
      sq_acc[chain] = _mm_add_pd(sq_acc[chain], _mm_add_pd(s2[0], s2[1]));
    }
    void reduce(double& abs_sum, double& sq_sum) const {
      alignas(16) double a[2], s[2];
      _mm_store_pd(a, _mm_add_pd(abs_acc[0], abs_acc[1]));
      _mm_store_pd(s, _mm_add_pd(sq_acc[0], sq_acc[1]));
      abs_sum += a[0] + a[1];
      sq_sum += s[0] + s[1];
    }
  };
};

// the apply pass (with and without deferred ties), the histogram pass with and without sums, and the
// threshold's first pass (no sums, entries outside the masks counted)
template int64_t apply_words_f32<Sse2Lanes, false, true, true>(uint32_t*, uint32_t*, int64_t, int64_t,
                                                               const WordCut&, int64_t*, ChunkStats&, int64_t&);
template int64_t apply_words_f32<Sse2Lanes, true, true, true>(uint32_t*, uint32_t*, int64_t, int64_t,
                                                              const WordCut&, int64_t*, ChunkStats&, int64_t&);
template int64_t apply_words_f32<Sse2Lanes, false, false, true>(uint32_t*, uint32_t*, int64_t, int64_t,
                                                                const WordCut&, int64_t*, ChunkStats&, int64_t&);
template int64_t apply_words_f32<Sse2Lanes, false, false, false>(uint32_t*, uint32_t*, int64_t, int64_t,
                                                                 const WordCut&, int64_t*, ChunkStats&, int64_t&);
template int64_t apply_words_f32<Sse2Lanes, false, false, false, true>(uint32_t*, uint32_t*, int64_t, int64_t,
                                                                       const WordCut&, int64_t*, ChunkStats&,
                                                                       int64_t&);

}  // namespace cpu
}  // namespace rgprune
#endif  // __SSE2__
