// SIMD routines over whole mask words (32 weights) of float32 chunks. SSE2 is always there on x86-64; the
// AVX2 versions are compiled for AVX2 (target attribute) and chosen at run time by cpu_has_avx2(), so the
// extension still runs on CPUs without AVX2.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RGPRUNE_AVX2_PATHS 1
#endif

#include "chunks.h"
#include "key_gather.h"

namespace rgprune {
namespace cpu {

// What the float32 apply routine decides per lane: survivors whose key is below `cut` are pruned (the
// histogram passes use cut 0); with kTies, survivors whose key is `tie` are kept but not counted (the apply
// pass decides them after the pass, in model order). A counted lane goes to bin key >> shift; a lane that
// does not count goes to its own dummy bin nbins + lane (local_hist_size), so the scatter never branches.
struct WordCut {
  uint32_t cut, tie;
  int shift;
  int64_t nbins;
};

// 8 float32 lanes as two SSE2 registers or one AVX2 register; defined beside apply_words_f32's
// instantiations (apply_words_sse2.cpp, apply_words_avx2.cpp).
struct Sse2Lanes;
struct Avx2Lanes;

// Decides, rewrites and counts the whole mask words [begin, end) of a float32 chunk in two phases per word:
// SIMD over the lanes (decide, select, store, the keep/NaN/tie bitmaps by movemask, each lane's bin, the
// float64 sums of the counted lanes), then a scalar scatter of the 32 bins. Writes the mask word where it
// changed. kStore = false: a histogram pass (nothing written); kSums = false: no float64 sums; kOutside
// (histogram pass only: the threshold's first) also counts the lanes whose bit is 0 but whose key is not
// into st.outside. Adds the chunk's count, NaNs and sums to `st` and its deferred ties to `ties`; returns
// where it stopped (the tail, fewer than 32 elements, is left to the caller). The order of additions depends
// on the lane set only, so a chunk's sums do not depend on the thread running it. Defined in apply_words.h.
template <typename Lanes, bool kTies, bool kStore, bool kSums, bool kOutside = false>
int64_t apply_words_f32(uint32_t* w, uint32_t* mask, int64_t begin, int64_t end, const WordCut& cut, int64_t* hist,
                        ChunkStats& st, int64_t& ties);

#if defined(RGPRUNE_AVX2_PATHS)
// RGPRUNE_NO_AVX2=1 forces the SSE2 paths (the tests use it to check them on machines that have AVX2).
inline bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && std::getenv("RGPRUNE_NO_AVX2") == nullptr;
  return has;
}

// Software prefetch distance of the AVX2 word routines, in elements (4 KB of float32). Their histogram
// scatter issues many uops per word; without a software prefetch the loads do not run ahead of it, and the
// memory stream and the scatter do not overlap (distance scan: bench/NOTES.md, attempt 15c). A prefetch
// past the end of a tensor never faults.
constexpr int64_t kPrefetchAhead = 1024;
__attribute__((target("avx2"))) inline void prefetch_word(const uint32_t* x) {
  _mm_prefetch(reinterpret_cast<const char*>(x + kPrefetchAhead), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(x + kPrefetchAhead + 16), _MM_HINT_T0);
}

// Refinement pass over the whole mask words of a float32 chunk, AVX2: 8 prefix compares per instruction,
// then visitor.visit (which checks the prefix again) for each alive candidate. Returns where it stopped
// (the tail, fewer than 32 elements, is left to the caller).
template <typename Visitor>
__attribute__((target("avx2"))) int64_t filtered_words_f32_avx2(const uint32_t* w, const uint32_t* mask,
                                                                 int64_t begin, int64_t end, uint32_t prefix,
                                                                 int prefix_shift, Visitor& visitor) {
  const __m256i key_mask = _mm256_set1_epi32(0x7FFFFFFF), want = _mm256_set1_epi32(int32_t(prefix));
  const __m128i count = _mm_cvtsi32_si128(prefix_shift);
  int64_t base = begin;
  for (; base + 32 <= end; base += 32) {
    prefetch_word(w + base);
    uint32_t m = 0;
    for (int q = 0; q < 4; ++q) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + base + 8 * q));
      const __m256i hit = _mm256_cmpeq_epi32(_mm256_srl_epi32(_mm256_and_si256(raw, key_mask), count), want);
      m |= uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(hit))) << (8 * q);
    }
    for (uint32_t word = mask[base / 32] & m; word; word &= word - 1) {
      const int j = __builtin_ctz(word);
      float value;
      std::memcpy(&value, w + base + j, sizeof(value));
      visitor.visit(w[base + j], value, j & 1);
    }
  }
  return base;
}

// ++hist[bins[j]] for the 32 bins of a word: the scatter of hist_words_f32_avx2, a 16-17-byte loop run 32
// times per word. Where the compiler puts such a loop depends on all the code before it, and one that
// straddles a 32-byte boundary ran ~20% slower on the AMD EPYC of bench/NOTES.md ("2026-12-01 (later): the
// threshold's first pass counts the weights outside the masks"), so it is written out here, starting at offset
// 0-15 of a 32-byte block (at most 16 bytes of padding, run once per word).
inline void scatter_word_bins(int64_t* hist, const uint32_t* bins) {
  const uint32_t* p = bins;
  const uint32_t* const end = bins + 32;
  asm volatile(
      ".p2align 5,,16\n"
      "1:\n\t"
      "movl (%[p]), %%eax\n\t"
      "addq $4, %[p]\n\t"
      "addq $1, (%[hist],%%rax,8)\n\t"
      "cmpq %[end], %[p]\n\t"
      "jne 1b"
      : [p] "+r"(p)
      : [hist] "r"(hist), [end] "r"(end)
      : "rax", "cc", "memory");
}

// A word of hist_words_f32_avx2 that holds a NaN key (alive or not), lane by lane: the rare path.
template <bool kSums, bool kWindow, bool kOutside>
inline void hist_word_with_nan(const uint32_t* x, uint32_t alive_bits, int shift_bits, int64_t* hist, int64_t& count,
                               int64_t& nans, int64_t& outside, double& abs_sum, double& sq_sum,
                               WindowCollector* win) {
  if (kOutside) outside += count_outside_bits<F32Keys>(x, ~alive_bits);
  for (uint32_t a = alive_bits; a; a &= a - 1) {
    const int j = __builtin_ctz(a);
    const uint32_t k = x[j] & 0x7FFFFFFFu;
    if (k > 0x7F800000u) {
      ++nans;
      continue;
    }
    ++count;
    ++hist[k >> shift_bits];
    if (kWindow) win->visit(k);
    if (kSums) {
      float f;
      std::memcpy(&f, &k, sizeof(f));
      abs_sum += double(f);
      sq_sum += double(f) * double(f);
    }
  }
}

// The unfiltered float32 histogram pass (cut 0, nothing stored) over the whole mask words [begin, end) of a
// chunk in AVX2, with fewer instructions per word than apply_words_f32: a lane's mask bit is moved to its
// sign bit by one variable shift and used by blendv_ps directly; NaN keys are looked for once per word (the
// max of its 32 keys), and a word holding one (alive or not) takes a scalar path. Every other word: counted
// lanes = alive lanes, bins of dead lanes go to their dummy bins, the float64 sums are those of
// apply_words_f32<Avx2Lanes> (same order of additions). kWindow: the threshold's first pass also feeds `win`
// (two compares per 8 lanes; the few lanes inside the window are gathered one by one). kOutside: the
// threshold's first pass also counts the lanes whose bit is 0 but whose key is not into st.outside, through
// the dummy bins (two instructions per 8 lanes): a dead lane goes to dummy bin nbins + 2 * lane when its key
// is not 0, nbins + 2 * lane + 1 when it is (64 dummy bins, local_hist_size), and the even dummy bins'
// growth over the call is the count (a NaN word counts its own on the scalar path). kPrefetch = false for
// the threshold's sample, whose runs are too short for a prefetch 4 KB ahead to land in them. Returns where
// it stopped. (One loop body on purpose, like apply_words_f32: its accumulators stay in registers across the
// words.)
template <bool kSums, bool kWindow, bool kOutside, bool kPrefetch = true>
__attribute__((target("avx2"))) int64_t hist_words_f32_avx2(const uint32_t* w, const uint32_t* mask, int64_t begin,
                                                             int64_t end, int shift_bits, int64_t nbins,
                                                             int64_t* hist, ChunkStats& st, WindowCollector* win) {
  const __m256i key_mask = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
  const __m256i win_lo = _mm256_set1_epi32(kWindow ? int32_t(win->lo) : 0);
  const __m256i win_hi = _mm256_set1_epi32(kWindow ? int32_t(win->hi) : 0);
  const __m128i shift = _mm_cvtsi32_si128(shift_bits);
  const __m256i to_sign = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);  // lane j of group g: bit 8g + j
  constexpr int kDummyStride = kOutside ? 2 : 1;  // dummy bins per lane
  const __m256i dummy0 = _mm256_add_epi32(_mm256_set1_epi32(int32_t(nbins)),
                                          _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                             _mm256_set1_epi32(kDummyStride)));
  const __m256i eight = _mm256_set1_epi32(8), dummy_step = _mm256_set1_epi32(8 * kDummyStride);
  const __m256i zero = _mm256_setzero_si256();
  __m256d abs_acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  __m256d sq_acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  double abs_scalar = 0, sq_scalar = 0;
  int64_t count = 0, nans = 0, outside = 0;
  const auto dead_nonzero = [&] {  // the even dummy bins: dead lanes with a key other than 0, so far
    int64_t n = 0;
    for (int j = 0; j < 32; ++j) n += hist[nbins + 2 * j];
    return n;
  };
  if (kOutside) outside -= dead_nonzero();
  alignas(32) uint32_t bins[32];
  int64_t base = begin;
  for (; base + 32 <= end; base += 32) {
    const uint32_t* x = w + base;
    if (kPrefetch) prefetch_word(x);
    const uint32_t alive_bits = mask[base / 32];
    __m256i key[4];
    for (int g = 0; g < 4; ++g)
      key[g] = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 8 * g)), key_mask);
    const __m256i top = _mm256_max_epu32(_mm256_max_epu32(key[0], key[1]), _mm256_max_epu32(key[2], key[3]));
    if (__builtin_expect(!_mm256_testz_si256(_mm256_cmpgt_epi32(top, inf), _mm256_cmpgt_epi32(top, inf)), 0)) {
      hist_word_with_nan<kSums, kWindow, kOutside>(x, alive_bits, shift_bits, hist, count, nans, outside, abs_scalar,
                                                   sq_scalar, win);
      continue;
    }
    count += __builtin_popcount(alive_bits);
    const __m256i wordv = _mm256_set1_epi32(int32_t(alive_bits));
    __m256i sh = to_sign, dummy = dummy0;
    uint32_t below = 0, above = 0;
    for (int g = 0; g < 4; ++g) {
      if (kWindow) {  // keys < 2^31: the signed compares are the unsigned ones
        below |= uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(win_lo, key[g])))) << (8 * g);
        above |= uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(key[g], win_hi)))) << (8 * g);
      }
      const __m256 alive = _mm256_castsi256_ps(_mm256_sllv_epi32(wordv, sh));  // sign bit = mask bit
      sh = _mm256_sub_epi32(sh, eight);
      // kOutside: a dead lane whose key is 0 goes to the odd dummy bin beside its even one (dummy - (-1))
      const __m256i dead_bin = kOutside ? _mm256_sub_epi32(dummy, _mm256_cmpeq_epi32(key[g], zero)) : dummy;
      const __m256 bin = _mm256_blendv_ps(_mm256_castsi256_ps(dead_bin),
                                          _mm256_castsi256_ps(_mm256_srl_epi32(key[g], shift)), alive);
      dummy = _mm256_add_epi32(dummy, dummy_step);
      _mm256_store_ps(reinterpret_cast<float*>(bins + 8 * g), bin);
      if (!kSums) continue;
      const __m256 mag = _mm256_blendv_ps(_mm256_setzero_ps(), _mm256_castsi256_ps(key[g]), alive);
      const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(mag));
      const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(mag, 1));
      const int acc = g & 1;
      abs_acc[acc] = _mm256_add_pd(abs_acc[acc], _mm256_add_pd(lo, hi));
      sq_acc[acc] = _mm256_add_pd(sq_acc[acc], _mm256_add_pd(_mm256_mul_pd(lo, lo), _mm256_mul_pd(hi, hi)));
    }
    scatter_word_bins(hist, bins);
    if (kWindow) {
      win->below += __builtin_popcount(below & alive_bits);
      for (uint32_t in = alive_bits & ~(below | above); in; in &= in - 1) win->keys.push(x[__builtin_ctz(in)] & 0x7FFFFFFFu);
    }
  }
  if (kSums) {
    alignas(32) double a[4], q[4];
    _mm256_store_pd(a, _mm256_add_pd(abs_acc[0], abs_acc[1]));
    _mm256_store_pd(q, _mm256_add_pd(sq_acc[0], sq_acc[1]));
    st.abs_sum += ((a[0] + a[1]) + (a[2] + a[3])) + abs_scalar;
    st.sq_sum += ((q[0] + q[1]) + (q[2] + q[3])) + sq_scalar;
  }
  if (kOutside) st.outside += outside + dead_nonzero();
  st.count += count;
  st.nans += nans;
  return base;
}
#endif  // RGPRUNE_AVX2_PATHS

#if defined(__SSE2__)
// w[j] &= (bit j of word ? all ones : 0) for the 32 elements of one whole mask word, branch-free: each
// lane's bit is isolated by AND with a per-lane constant and widened to a lane mask by a compare. E is
// uint32_t (4 lanes per register) or uint64_t (2 lanes, each testing its bit in both 32-bit halves).
template <typename E>
inline void select_word(E* w, uint32_t word) {
  static_assert(sizeof(E) == 4 || sizeof(E) == 8, "select_word: 2-byte elements have their own overload");
  constexpr int kLanes = 16 / sizeof(E);
  const __m128i lane = sizeof(E) == 4 ? _mm_setr_epi32(1, 2, 4, 8) : _mm_setr_epi32(1, 1, 2, 2);
  __m128i bits = _mm_set1_epi32(int32_t(word));
  for (int j = 0; j < 32; j += kLanes) {
    const __m128i keep = _mm_cmpeq_epi32(_mm_and_si128(bits, lane), lane);
    bits = _mm_srli_epi32(bits, kLanes);
    __m128i* p = reinterpret_cast<__m128i*>(w + j);
    _mm_storeu_si128(p, _mm_and_si128(_mm_loadu_si128(p), keep));
  }
}
inline void select_word(uint16_t* w, uint32_t word) {
  const __m128i lane = _mm_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128);
  for (int half = 0; half < 2; ++half) {
    __m128i bits = _mm_set1_epi16(int16_t(uint16_t(word >> (16 * half))));
    for (int j = 16 * half; j < 16 * half + 16; j += 8) {
      const __m128i keep = _mm_cmpeq_epi16(_mm_and_si128(bits, lane), lane);
      bits = _mm_srli_epi16(bits, 8);
      __m128i* p = reinterpret_cast<__m128i*>(w + j);
      _mm_storeu_si128(p, _mm_and_si128(_mm_loadu_si128(p), keep));
    }
  }
}
#endif  // __SSE2__

}  // namespace cpu
}  // namespace rgprune
