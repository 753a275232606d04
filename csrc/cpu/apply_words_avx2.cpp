// apply_words_f32 with AVX2: 8 lanes in one register. Chosen at run time by cpu_has_avx2(), for the apply
// pass (the unfiltered histogram pass has its leaner hist_words_f32_avx2).
#include "simd_words.h"

#if defined(RGPRUNE_AVX2_PATHS)
// Everything defined from here to the pop is compiled for AVX2: the lane set and the instantiations of
// apply_words_f32 below. Headers with inline code used elsewhere are all included above, so that no
// function shared with other files gets compiled for AVX2 here.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif

#include "apply_words.h"

namespace rgprune {
namespace cpu {

struct Avx2Lanes {
  using V = __m256i;
  static V set1(uint32_t x) { return _mm256_set1_epi32(int32_t(x)); }
  static V lane_bits() { return _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128); }
  static V lane_index() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
  static V load(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store(uint32_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static void store_aligned(uint32_t* p, V v) { _mm256_store_si256(reinterpret_cast<__m256i*>(p), v); }
  static V and_(V a, V b) { return _mm256_and_si256(a, b); }
  static V or_(V a, V b) { return _mm256_or_si256(a, b); }
  static V andnot(V a, V b) { return _mm256_andnot_si256(a, b); }
  static V cmpeq(V a, V b) { return _mm256_cmpeq_epi32(a, b); }
  static V cmpgt(V a, V b) { return _mm256_cmpgt_epi32(a, b); }
  static V add(V a, V b) { return _mm256_add_epi32(a, b); }
  static V srli8(V a) { return _mm256_srli_epi32(a, 8); }
  static V srl(V a, __m128i count) { return _mm256_srl_epi32(a, count); }
  static V select(V m, V a, V b) { return _mm256_blendv_epi8(b, a, m); }
  static uint32_t movemask(V a) { return uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(a))); }
  static void prefetch(const uint32_t* p) { prefetch_word(p); }

  struct Sums {
    __m256d abs_acc[2], sq_acc[2];
    // a constructor of its own: an implicit one would not be compiled for AVX2
    Sums() { abs_acc[0] = abs_acc[1] = sq_acc[0] = sq_acc[1] = _mm256_setzero_pd(); }
    // mag: 8 float32 magnitudes (bit patterns), summed in float64 4 at a time
    void add(V mag, int chain) {
      const __m256 m = _mm256_castsi256_ps(mag);
      const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(m)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(m, 1));
      abs_acc[chain] = _mm256_add_pd(abs_acc[chain], _mm256_add_pd(lo, hi));
      sq_acc[chain] = _mm256_add_pd(sq_acc[chain], _mm256_add_pd(_mm256_mul_pd(lo, lo), _mm256_mul_pd(hi, hi)));
    }
    void reduce(double& abs_sum, double& sq_sum) const {
      alignas(32) double a[4], q[4];
      _mm256_store_pd(a, _mm256_add_pd(abs_acc[0], abs_acc[1]));
      _mm256_store_pd(q, _mm256_add_pd(sq_acc[0], sq_acc[1]));
      abs_sum += (a[0] + a[1]) + (a[2] + a[3]);
      sq_sum += (q[0] + q[1]) + (q[2] + q[3]);
    }
  };
};

// the apply pass, with and without deferred ties
template int64_t apply_words_f32<Avx2Lanes, false, true, true>(uint32_t*, uint32_t*, int64_t, int64_t,
                                                               const WordCut&, int64_t*, ChunkStats&, int64_t&);
template int64_t apply_words_f32<Avx2Lanes, true, true, true>(uint32_t*, uint32_t*, int64_t, int64_t,
                                                              const WordCut&, int64_t*, ChunkStats&, int64_t&);

}  // namespace cpu
}  // namespace rgprune

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // RGPRUNE_AVX2_PATHS
