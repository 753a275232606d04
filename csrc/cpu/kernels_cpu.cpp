// CPU kernels: at::parallel_for over fixed-size chunks of every tensor, per-thread histograms merged at
// the end, per-chunk sums reduced in chunk order (so CPU results are deterministic).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RGPRUNE_AVX2_PATHS 1  // functions compiled for AVX2 (target attribute), chosen at run time
#endif

#include "../rgprune.h"

namespace rgprune {
namespace {

// Elements per work item. A multiple of 32, so a mask word never straddles two chunks.
constexpr int64_t kChunk = int64_t(1) << 16;

// Per-thread histogram of a pass: nbins real bins + 32 dummy bins (one per lane of a word, for the lanes
// of ApplyF32 that do not count). (4 interleaved sub-histograms, against store-to-load chains on hot bins,
// were tried and were slower: bench/NOTES.md, attempt 11.)
inline size_t local_hist_size(size_t nbins) { return nbins + 32; }
inline void merge_local(std::vector<int64_t>& hist, const std::vector<int64_t>& h, size_t nbins) {
  for (size_t b = 0; b < nbins && b < h.size(); ++b) hist[b] += h[b];
}

struct Chunk {
  int64_t tensor, begin, end;
};

std::vector<Chunk> make_chunks(const at::TensorList& tensors) {
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int64_t n = tensors[i].numel();
    for (int64_t b = 0; b < n; b += kChunk) chunks.push_back({int64_t(i), b, std::min(n, b + kChunk)});
  }
  return chunks;
}

// Mask bits of the word starting at `base`, restricted to elements before `end` (never trust tail bits).
inline uint32_t valid_word(const uint32_t* mask, int64_t base, int64_t end) {
  uint32_t word = mask[base / 32];
  if (end - base < 32) word &= (uint32_t(1) << (end - base)) - 1u;
  return word;
}

// Which keys a histogram pass counts and into which bin.
struct RadixPass {
  bool has_prefix;
  int prefix_shift;  // keys count only if (key >> prefix_shift) == prefix
  uint64_t prefix;
  int shift;  // bin = (key >> shift) & (2^bits - 1)
  int bits;
};

struct ChunkStats {
  int64_t count = 0, nans = 0;
  double abs_sum = 0, sq_sum = 0;
  // Merges the statistics of another part of the same chunk (the order of merges fixes the sums' rounding).
  ChunkStats& operator+=(const ChunkStats& o) {
    count += o.count;
    nans += o.nans;
    abs_sum += o.abs_sum;
    sq_sum += o.sq_sum;
    return *this;
  }
};

// Keys gathered by a threshold pass into one bounded buffer: survivors whose value (a bin of the second
// pass, or a key of the first pass's window) lies in [lo, lo + width]. A thread collects keys in a small
// local array (KeyAppender) and reserves room in the shared buffer with one atomic add per flush; when the
// buffer would overflow, `overflow` is set and the caller falls back to the next radix pass.
template <typename B>
struct KeyGather {
  B* const buf;
  const int64_t cap;
  const B lo, width;
  std::atomic<int64_t> used{0};
  std::atomic<bool> overflow{false};
  KeyGather(B* b, int64_t c, B l, B h) : buf(b), cap(c), lo(l), width(B(h - l)) {}
};

template <typename B>
struct KeyAppender {
  static constexpr int kLocal = 256;
  KeyGather<B>& g;
  int n = 0;
  B local[kLocal];

  explicit KeyAppender(KeyGather<B>& gather) : g(gather) {}
  ~KeyAppender() { flush(); }
  inline void push(B key) {
    local[n++] = key;
    if (n == kLocal) flush();
  }
  void flush() {
    if (n == 0) return;
    const int64_t at = g.used.fetch_add(n, std::memory_order_relaxed);
    if (at + n <= g.cap) {
      std::memcpy(g.buf + at, local, sizeof(B) * size_t(n));
    } else {
      g.overflow.store(true, std::memory_order_relaxed);
    }
    n = 0;
  }
};

// The first threshold pass's key window (float32 on AVX2, see threshold_impl): survivors with
// lo <= key <= hi are gathered, those below lo counted.
struct KeyWindow {
  KeyGather<uint32_t> gather;
  std::atomic<int64_t> below{0};
  KeyWindow(uint32_t* buf, int64_t cap, uint32_t lo, uint32_t hi) : gather(buf, cap, lo, hi) {}
};

// One thread's share of a KeyWindow; finish() publishes it.
struct WindowCollector {
  KeyWindow& win;
  const uint32_t lo, hi;
  int64_t below = 0;
  KeyAppender<uint32_t> keys;
  explicit WindowCollector(KeyWindow& w)
      : win(w), lo(w.gather.lo), hi(w.gather.lo + w.gather.width), keys(w.gather) {}
  // key: a survivor's key that is not NaN
  inline void visit(uint32_t key) {
    if (key < lo) {
      ++below;
    } else if (key <= hi) {
      keys.push(key);
    }
  }
  void finish() {
    keys.flush();
    win.below.fetch_add(below, std::memory_order_relaxed);
    below = 0;
  }
};

// Per-element work of a histogram pass. Templated on whether a prefix filter applies and whether sums
// are wanted, so the hot loops carry no run-time branches on either.
template <typename K, bool kPrefix, bool kSums>
struct HistogramVisitor {
  using B = typename K::bits_t;
  static constexpr bool kFiltered = kPrefix;
  // Copies of the pass parameters and local accumulators (not references into shared structs), so the
  // compiler keeps them in registers instead of reloading them after every histogram store.
  const int prefix_shift, shift;
  const uint64_t prefix;
  const B bin_mask;
  int64_t* const hist;
  int64_t count = 0, nans = 0;
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
      for (int j = 0; j < 32; j += 16) {  // 16 compare results packed to bytes, one movemask
        __m128i hit[4];
        for (int q = 0; q < 4; ++q) {
          const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + j + 4 * q));
          hit[q] = _mm_cmpeq_epi32(_mm_srl_epi32(_mm_and_si128(raw, key_mask), count), want);
        }
        const __m128i bytes = _mm_packs_epi16(_mm_packs_epi32(hit[0], hit[1]), _mm_packs_epi32(hit[2], hit[3]));
        m |= uint32_t(_mm_movemask_epi8(bytes)) << j;
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

  ChunkStats result() const { return ChunkStats{count, nans, abs_even + abs_odd, sq_even + sq_odd}; }
};

#if defined(__SSE2__)
// Float32 apply pass over one whole mask word, in two phases. Phase 1 (SSE2, 4 lanes at a time): decide,
// select, store, the keep bitmap by movemask, each lane's histogram bin, and the float64 sums of the
// counted lanes (others contribute +0.0). Phase 2 (scalar): the histogram scatter over all 32 lanes without
// a branch; a lane that does not count goes to its own dummy bin nbins + j past the real ones, so pruned
// lanes neither branch nor form a store-to-load chain on one bin. With kTies, surviving lanes whose key is
// `tie` are kept but not counted: the caller decides them after the pass (ties go in model order).
struct ApplyF32 {
  const __m128i cut, tie, shift, dummy0;
  int64_t* const hist;
  int64_t count = 0, nans = 0, ties = 0;
  __m128d abs_acc[2], sq_acc[2];

  ApplyF32(uint32_t cut_key, uint32_t tie_key, int shift_bits, int64_t nbins, int64_t* h)
      : cut(_mm_set1_epi32(int32_t(cut_key))), tie(_mm_set1_epi32(int32_t(tie_key))),
        shift(_mm_cvtsi32_si128(shift_bits)),
        dummy0(_mm_add_epi32(_mm_set1_epi32(int32_t(nbins)), _mm_setr_epi32(0, 1, 2, 3))),
        hist(h) {
    abs_acc[0] = abs_acc[1] = sq_acc[0] = sq_acc[1] = _mm_setzero_pd();
  }

  // Decides the 32 weights at w (mask bits `alive_bits`), rewrites them and returns the new mask word.
  // kStore = false: a histogram pass (cut 0, nothing written); kSums = false: no float64 sums.
  template <bool kTies, bool kStore = true, bool kSums = true>
  inline uint32_t apply(uint32_t* w, uint32_t alive_bits) {
    const __m128i key_mask = _mm_set1_epi32(0x7FFFFFFF), inf = _mm_set1_epi32(0x7F800000);
    const __m128i lane = _mm_setr_epi32(1, 2, 4, 8);
    alignas(16) uint32_t bins[32];
    __m128i wordv = _mm_set1_epi32(int32_t(alive_bits));
    uint32_t keep = 0, nan = 0, tied = 0;
    for (int j = 0; j < 32; j += 8) {
      __m128d a2[2], s2[2];
      for (int h = 0; h < 2; ++h) {
        const int o = j + 4 * h;
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + o));
        const __m128i key = _mm_and_si128(raw, key_mask);
        const __m128i alive = _mm_cmpeq_epi32(_mm_and_si128(wordv, lane), lane);
        wordv = _mm_srli_epi32(wordv, 4);
        // keys < 2^31, so the signed compare is the unsigned one; cut <= InfKey + 1
        const __m128i keepv = _mm_andnot_si128(_mm_cmpgt_epi32(cut, key), alive);
        if (kStore) _mm_storeu_si128(reinterpret_cast<__m128i*>(w + o), _mm_and_si128(raw, keepv));
        __m128i skip = _mm_cmpgt_epi32(key, inf);  // NaN: kept, counted apart
        nan |= uint32_t(_mm_movemask_ps(_mm_castsi128_ps(skip))) << o;
        if (kTies) {
          const __m128i t = _mm_and_si128(_mm_cmpeq_epi32(key, tie), keepv);
          tied |= uint32_t(_mm_movemask_ps(_mm_castsi128_ps(t))) << o;
          skip = _mm_or_si128(skip, t);
        }
        const __m128i live = _mm_andnot_si128(skip, keepv);
        keep |= uint32_t(_mm_movemask_ps(_mm_castsi128_ps(keepv))) << o;
        const __m128i dummy = _mm_add_epi32(dummy0, _mm_set1_epi32(o));
        const __m128i bin = _mm_or_si128(_mm_and_si128(live, _mm_srl_epi32(key, shift)),
                                         _mm_andnot_si128(live, dummy));
        _mm_store_si128(reinterpret_cast<__m128i*>(bins + o), bin);
        if (!kSums) continue;
        const __m128 mag = _mm_castsi128_ps(_mm_and_si128(key, live));  // |w| of counted lanes, else +0.0
        const __m128d lo = _mm_cvtps_pd(mag), hi = _mm_cvtps_pd(_mm_movehl_ps(mag, mag));
        a2[h] = _mm_add_pd(lo, hi);
        s2[h] = _mm_add_pd(_mm_mul_pd(lo, lo), _mm_mul_pd(hi, hi));
      }
      if (!kSums) continue;
      const int acc = (j >> 3) & 1;  // two chains per sum, one add per 8 lanes each
      abs_acc[acc] = _mm_add_pd(abs_acc[acc], _mm_add_pd(a2[0], a2[1]));
      sq_acc[acc] = _mm_add_pd(sq_acc[acc], _mm_add_pd(s2[0], s2[1]));
    }
    for (int j = 0; j < 32; ++j) ++hist[bins[j]];
    nan &= keep;
    count += __builtin_popcount(keep & ~nan & ~tied);
    if (nan) nans += __builtin_popcount(nan);  // rare
    if (kTies && tied) ties += __builtin_popcount(tied);
    return keep;
  }

  ChunkStats result() const {
    alignas(16) double a[2], s[2];
    _mm_store_pd(a, _mm_add_pd(abs_acc[0], abs_acc[1]));
    _mm_store_pd(s, _mm_add_pd(sq_acc[0], sq_acc[1]));
    return ChunkStats{count, nans, a[0] + a[1], s[0] + s[1]};
  }
};
#endif

// Calls visitor.visit for every surviving element of a chunk: a straight loop over fully surviving
// mask words (the common case, friendly to the branch predictor), set-bit iteration otherwise.
template <typename scalar_t, typename Visitor>
inline void for_each_survivor(const Chunk& ch, const at::TensorList& tensors, const at::TensorList& masks,
                              Visitor& visitor) {
  using B = typename Visitor::B;
  const B* bits = reinterpret_cast<const B*>(tensors[ch.tensor].data_ptr());
  const scalar_t* vals = tensors[ch.tensor].data_ptr<scalar_t>();
  const uint32_t* mask = reinterpret_cast<const uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
  for (int64_t base = ch.begin; base < ch.end; base += 32) {
    uint32_t word = valid_word(mask, base, ch.end);
    if (base + 32 <= ch.end) word &= visitor.candidates(bits + base);
    if (word == ~0u) {
      for (int j = 0; j < 32; ++j) visitor.visit(bits[base + j], vals[base + j], j & 1);
    } else if (!Visitor::kFiltered && base + 32 <= ch.end) {
      // Partly pruned word of an unfiltered pass: branch-free over all 32, dead elements counted as 0.
      for (int j = 0; j < 32; ++j) {
        const bool alive = (word >> j) & 1u;
        visitor.template visit_if<scalar_t>(bits[base + j] & static_cast<B>(B(0) - B(alive)), alive);
      }
    } else {
      for (uint32_t w = word; w; w &= w - 1) {
        const int j = __builtin_ctz(w);
        visitor.visit(bits[base + j], vals[base + j], j & 1);
      }
    }
  }
}

#if defined(RGPRUNE_AVX2_PATHS)
// RGPRUNE_NO_AVX2=1 forces the SSE2 paths (the tests use it to check them on machines that have AVX2).
inline bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && std::getenv("RGPRUNE_NO_AVX2") == nullptr;
  return has;
}

// Software prefetch distance of the AVX2 word routines, in elements (4 KB of float32; bench/NOTES.md,
// attempt 15c). Without it the first threshold pass ran at ~2.7x a read on one thread, although its loads
// alone ran at ~1.2x and its scatter adds ~1.3x: the two did not overlap (likely the scatter's uops filling
// the reorder buffer, so the stream fell behind). A prefetch past the end of a tensor never faults.
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

// ApplyF32 over the whole mask words [begin, end) of a float32 chunk in AVX2: the same two phases with 8
// lanes per instruction (decide, select, store, movemask, bins; float64 sums 4 doubles per instruction, two
// chains per sum, one add per 8 lanes each), then the same branch-free scatter with dummy bins; rewrites
// the weights and the mask words (the histogram passes use the leaner hist_words_f32_avx2 below). Adds the
// chunk's count, NaNs and sums to `st` and its deferred ties to `ties`; returns where it stopped (the tail,
// fewer than 32 elements, is left to the caller). A chunk's sums do not depend on the thread running it.
template <bool kTies, typename H>
__attribute__((target("avx2"))) int64_t apply_words_f32_avx2(uint32_t* w, uint32_t* mask, int64_t begin,
                                                              int64_t end, uint32_t cut_key, uint32_t tie_key,
                                                              int shift_bits, int64_t nbins, H* hist,
                                                              ChunkStats& st, int64_t& ties) {
  const __m256i key_mask = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
  const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i cut = _mm256_set1_epi32(int32_t(cut_key)), tie = _mm256_set1_epi32(int32_t(tie_key));
  const __m128i shift = _mm_cvtsi32_si128(shift_bits);
  const __m256i dummy0 = _mm256_add_epi32(_mm256_set1_epi32(int32_t(nbins)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256d abs_acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  __m256d sq_acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  int64_t count = 0, nans = 0, tie_count = 0;
  alignas(32) uint32_t bins[32];
  int64_t base = begin;
  for (; base + 32 <= end; base += 32) {
    uint32_t* x = w + base;
    prefetch_word(x);
    const uint32_t alive_bits = mask[base / 32];
    __m256i wordv = _mm256_set1_epi32(int32_t(alive_bits));
    uint32_t keep = 0, nan = 0, tied = 0;
    for (int o = 0; o < 32; o += 8) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + o));
      const __m256i key = _mm256_and_si256(raw, key_mask);
      const __m256i alive = _mm256_cmpeq_epi32(_mm256_and_si256(wordv, lane), lane);
      wordv = _mm256_srli_epi32(wordv, 8);
      // keys < 2^31, so the signed compare is the unsigned one; cut <= InfKey + 1
      const __m256i keepv = _mm256_andnot_si256(_mm256_cmpgt_epi32(cut, key), alive);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(x + o), _mm256_and_si256(raw, keepv));
      __m256i skip = _mm256_cmpgt_epi32(key, inf);  // NaN: kept, counted apart
      nan |= uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(skip))) << o;
      if (kTies) {
        const __m256i t = _mm256_and_si256(_mm256_cmpeq_epi32(key, tie), keepv);
        tied |= uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(t))) << o;
        skip = _mm256_or_si256(skip, t);
      }
      const __m256i live = _mm256_andnot_si256(skip, keepv);
      keep |= uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(keepv))) << o;
      const __m256i dummy = _mm256_add_epi32(dummy0, _mm256_set1_epi32(o));
      const __m256i bin = _mm256_blendv_epi8(dummy, _mm256_srl_epi32(key, shift), live);
      _mm256_store_si256(reinterpret_cast<__m256i*>(bins + o), bin);
      const __m256 mag = _mm256_castsi256_ps(_mm256_and_si256(key, live));  // |w| of counted lanes, else +0.0
      const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(mag));
      const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(mag, 1));
      const int acc = (o >> 3) & 1;
      abs_acc[acc] = _mm256_add_pd(abs_acc[acc], _mm256_add_pd(lo, hi));
      sq_acc[acc] = _mm256_add_pd(sq_acc[acc], _mm256_add_pd(_mm256_mul_pd(lo, lo), _mm256_mul_pd(hi, hi)));
    }
    for (int j = 0; j < 32; ++j) ++hist[bins[j]];
    nan &= keep;
    count += __builtin_popcount(keep & ~nan & ~tied);
    if (nan) nans += __builtin_popcount(nan);  // rare
    if (kTies && tied) tie_count += __builtin_popcount(tied);
    if (alive_bits != keep) mask[base / 32] = keep;
  }
  alignas(32) double a[4], q[4];
  _mm256_store_pd(a, _mm256_add_pd(abs_acc[0], abs_acc[1]));
  _mm256_store_pd(q, _mm256_add_pd(sq_acc[0], sq_acc[1]));
  st.abs_sum += (a[0] + a[1]) + (a[2] + a[3]);
  st.sq_sum += (q[0] + q[1]) + (q[2] + q[3]);
  st.count += count;
  st.nans += nans;
  ties += tie_count;
  return base;
}

// The unfiltered float32 histogram pass (cut 0, nothing stored) over the whole mask words [begin, end) of a
// chunk in AVX2, with fewer instructions per word than apply_words_f32_avx2 (15b): a lane's mask bit is
// moved to its sign bit by one variable shift and used by blendv_ps directly; NaN keys are looked for once
// per word (the max of its 32 keys), and a word holding one (alive or not) takes a scalar path. Every
// other word: counted lanes = alive lanes, bins of dead lanes go to their dummy bins, the float64 sums
// are those of apply_words_f32_avx2 (same order of additions). kWindow: the threshold's first pass also
// feeds `win` (two compares per 8 lanes; the few lanes inside the window are gathered one by one).
// Returns where it stopped.
template <bool kSums, bool kWindow, typename H, bool kPrefetch = true>
__attribute__((target("avx2"))) int64_t hist_words_f32_avx2(const uint32_t* w, const uint32_t* mask, int64_t begin,
                                                             int64_t end, int shift_bits, int64_t nbins, H* hist,
                                                             ChunkStats& st, WindowCollector* win) {
  const __m256i key_mask = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
  const __m256i win_lo = _mm256_set1_epi32(kWindow ? int32_t(win->lo) : 0);
  const __m256i win_hi = _mm256_set1_epi32(kWindow ? int32_t(win->hi) : 0);
  const __m128i shift = _mm_cvtsi32_si128(shift_bits);
  const __m256i to_sign = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);  // lane j of group g: bit 8g + j
  const __m256i dummy0 = _mm256_add_epi32(_mm256_set1_epi32(int32_t(nbins)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i eight = _mm256_set1_epi32(8);
  __m256d abs_acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  __m256d sq_acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  double abs_scalar = 0, sq_scalar = 0;
  int64_t count = 0, nans = 0;
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
      // A NaN key in the word: lane by lane.
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
          abs_scalar += double(f);
          sq_scalar += double(f) * double(f);
        }
      }
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
      const __m256 bin = _mm256_blendv_ps(_mm256_castsi256_ps(dummy),
                                          _mm256_castsi256_ps(_mm256_srl_epi32(key[g], shift)), alive);
      dummy = _mm256_add_epi32(dummy, eight);
      _mm256_store_ps(reinterpret_cast<float*>(bins + 8 * g), bin);
      if (!kSums) continue;
      const __m256 mag = _mm256_blendv_ps(_mm256_setzero_ps(), _mm256_castsi256_ps(key[g]), alive);
      const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(mag));
      const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(mag, 1));
      const int acc = g & 1;
      abs_acc[acc] = _mm256_add_pd(abs_acc[acc], _mm256_add_pd(lo, hi));
      sq_acc[acc] = _mm256_add_pd(sq_acc[acc], _mm256_add_pd(_mm256_mul_pd(lo, lo), _mm256_mul_pd(hi, hi)));
    }
    for (int j = 0; j < 32; ++j) ++hist[bins[j]];
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
  st.count += count;
  st.nans += nans;
  return base;
}
#endif

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

// Adds a bin count per surviving non-NaN key accepted by `pass` into `hist`; fills per-chunk stats.
// `window` (threshold's first pass, float32, AVX2 only): also fed with every survivor's key.
template <typename scalar_t, bool kSums>
void histogram_pass(const at::TensorList& tensors, const at::TensorList& masks, const std::vector<Chunk>& chunks,
                    const RadixPass& pass, std::vector<int64_t>& hist, std::vector<ChunkStats>& chunk_stats,
                    KeyWindow* window = nullptr) {
  using K = typename KeysFor<scalar_t>::type;
  const size_t nbins = size_t(1) << pass.bits;
  std::vector<std::vector<int64_t>> local(at::get_num_threads());
  chunk_stats.assign(chunks.size(), ChunkStats{});
  at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t lo, int64_t hi) {
    auto& h = local[at::get_thread_num()];
    if (h.empty()) h.assign(local_hist_size(nbins), 0);  // + one dummy bin per lane of a word (ApplyF32)
    std::unique_ptr<WindowCollector> win(window ? new WindowCollector(*window) : nullptr);
    for (int64_t c = lo; c < hi; ++c) {
#if defined(__SSE2__)
      if (std::is_same<scalar_t, float>::value && !pass.has_prefix) {
        // Unfiltered float32 pass: SSE2 over whole words (no branch on the mask bits), scalar on the tail.
        const Chunk& ch = chunks[c];
        uint32_t* w = reinterpret_cast<uint32_t*>(tensors[ch.tensor].data_ptr());
        const uint32_t* mask = reinterpret_cast<const uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
        ApplyF32 simd(0, ~0u, pass.shift, int64_t(nbins), h.data());
        int64_t base = ch.begin;
        ChunkStats avx{};
#if defined(RGPRUNE_AVX2_PATHS)
        if (cpu_has_avx2()) {
          base = win ? hist_words_f32_avx2<kSums, true>(w, mask, base, ch.end, pass.shift, int64_t(nbins), h.data(),
                                                        avx, win.get())
                     : hist_words_f32_avx2<kSums, false>(w, mask, base, ch.end, pass.shift, int64_t(nbins),
                                                         h.data(), avx, nullptr);
        }
#endif
        TORCH_INTERNAL_ASSERT(!win || base + 32 > ch.end, "rgprune: the key window needs the AVX2 pass");
        for (; base + 32 <= ch.end; base += 32) simd.apply<false, false, kSums>(w + base, mask[base / 32]);
        HistogramVisitor<K, false, kSums> v(pass, h.data());
        if (base < ch.end) {
          const scalar_t* vals = tensors[ch.tensor].data_ptr<scalar_t>();
          for (uint32_t word = valid_word(mask, base, ch.end); word; word &= word - 1) {
            const int j = __builtin_ctz(word);
            v.visit(typename K::bits_t(w[base + j]), vals[base + j], j & 1);
            const uint32_t key = w[base + j] & 0x7FFFFFFFu;
            if (win && key <= 0x7F800000u) win->visit(key);
          }
        }
        ChunkStats st = v.result();
        st += simd.result();
        st += avx;
        chunk_stats[c] = st;
        continue;
      }
#endif
      if (pass.has_prefix) {
        HistogramVisitor<K, true, kSums> v(pass, h.data());
        filtered_chunk<scalar_t>(chunks[c], tensors, masks, pass, v);
        chunk_stats[c] = v.result();
      } else {
        HistogramVisitor<K, false, kSums> v(pass, h.data());
        for_each_survivor<scalar_t>(chunks[c], tensors, masks, v);
        chunk_stats[c] = v.result();
      }
    }
    if (win) win->finish();
  });
  hist.assign(nbins, 0);
  for (const auto& h : local) merge_local(hist, h, nbins);
}

at::Tensor to_tensor(const std::vector<int64_t>& v) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::TensorOptions().dtype(at::kLong));
}

// Per-tensor reduction of chunk statistics, in chunk order.
Stats make_stats(const at::TensorList& tensors, const std::vector<Chunk>& chunks,
                 const std::vector<ChunkStats>& chunk_stats, const std::vector<int64_t>& hist) {
  const int64_t n = tensors.size();
  auto counts = at::zeros({n}, at::kLong), nans = at::zeros({n}, at::kLong);
  auto abs_sums = at::zeros({n}, at::kDouble), sq_sums = at::zeros({n}, at::kDouble);
  auto pc = counts.data_ptr<int64_t>(), pn = nans.data_ptr<int64_t>();
  auto pa = abs_sums.data_ptr<double>(), ps = sq_sums.data_ptr<double>();
  for (size_t c = 0; c < chunks.size(); ++c) {
    const auto t = chunks[c].tensor;
    pc[t] += chunk_stats[c].count;
    pn[t] += chunk_stats[c].nans;
    pa[t] += chunk_stats[c].abs_sum;
    ps[t] += chunk_stats[c].sq_sum;
  }
  return {to_tensor(hist), counts, abs_sums, sq_sums, nans};
}

Stats magnitude_histogram_cpu(at::TensorList tensors, at::TensorList masks, int64_t bits) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  check_bits(bits, tensors[0].scalar_type());
  const auto chunks = make_chunks(tensors);
  std::vector<int64_t> hist;
  std::vector<ChunkStats> chunk_stats;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, tensors[0].scalar_type(), "magnitude_histogram", [&] {
    const int kb = KeysFor<scalar_t>::type::key_bits;
    const RadixPass pass{false, 0, 0, kb - int(bits), int(bits)};
    histogram_pass<scalar_t, true>(tensors, masks, chunks, pass, hist, chunk_stats);
  });
  return make_stats(tensors, chunks, chunk_stats, hist);
}

template <typename K>
struct GatherVisitor : HistogramVisitor<K, true, false> {
  using Base = HistogramVisitor<K, true, false>;
  using B = typename K::bits_t;
  KeyAppender<B> keys;
  const uint32_t lo, width;

  GatherVisitor(const RadixPass& pass, int64_t* h, KeyGather<B>& gather)
      : Base(pass, h), keys(gather), lo(uint32_t(gather.lo)), width(uint32_t(gather.width)) {}

  template <typename scalar_t>
  inline void visit(B raw, const scalar_t&, bool) {
    const B key = K::key(raw);
    if ((uint64_t(key) >> this->prefix_shift) != this->prefix) return;
    if (K::is_nan(key)) {
      ++this->nans;
      return;
    }
    const uint32_t bin = uint32_t((key >> this->shift) & this->bin_mask);
    ++this->hist[bin];
    if (bin - lo <= width) keys.push(key);
  }
};

// A refinement pass (prefix filter, histogram of the next bits) that also gathers keys into `gather`.
template <typename scalar_t>
void gather_pass(const at::TensorList& tensors, const at::TensorList& masks, const std::vector<Chunk>& chunks,
                 const RadixPass& pass, std::vector<int64_t>& hist, KeyGather<typename KeysFor<scalar_t>::type::bits_t>& gather) {
  using K = typename KeysFor<scalar_t>::type;
  const size_t nbins = size_t(1) << pass.bits;
  std::vector<std::vector<int64_t>> local(at::get_num_threads());
  at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t lo, int64_t hi) {
    auto& h = local[at::get_thread_num()];
    if (h.empty()) h.assign(nbins, 0);
    GatherVisitor<K> v(pass, h.data(), gather);
    for (int64_t c = lo; c < hi; ++c) filtered_chunk<scalar_t>(chunks[c], tensors, masks, pass, v);
  });
  hist.assign(nbins, 0);
  for (const auto& h : local)
    for (size_t b = 0; b < nbins && b < h.size(); ++b) hist[b] += h[b];
}

// The first pass's key window (float32, AVX2; see threshold_impl), chosen from a sample: runs of 64
// consecutive weights (one 256-byte block: a few cache lines of one page) every `step` weights, at a
// deterministic pseudo-random offset per chunk, about 2^20 weights in all (all of them below that). The
// sample is read twice, in parallel over chunks with runs prefetched ahead: a 12-bit histogram of the
// sampled survivors' keys, then the next 12 bits of the sampled keys in the two bins holding the window's
// ends (O(bins) memory whatever the weights' distribution). The window spans the sampled keys of ranks
// r -+ z*s around the k-th survivor's expected rank r, rounded out to sub-bin edges; s = 1.25 x the
// binomial standard deviation of that rank (runs are not independent draws), z <= 4 and small enough that
// the expected number of gathered keys fills at most 4/5 of `cap`. Returns false (no window) when the
// sample has no survivor, puts the k-th survivor past its end, or the buffer is too small to be worth it.
// The sample costs ~2 ms whatever the size (it is latency-bound), so the window pays only from ~30M
// weights on (bench/NOTES.md, attempt 16: 8M weights 4.7 -> 6.9 ms, 25M 9.3 -> 9.7, 40M 17.1 -> 15.2,
// BERT-base's 85M 39 -> 30); by default (RGPRUNE_THRESHOLD_WINDOW unset or auto) it is used from
// kWindowMinWeights on. RGPRUNE_THRESHOLD_WINDOW=on uses it at any size, =off never, =narrow shrinks it
// to the sub-bin of the sampled key at rank r (the k-th survivor is then rarely inside): on and narrow
// are for tests of both paths.
constexpr int64_t kWindowMinWeights = int64_t(1) << 25;
enum class WindowMode { kAuto, kOn, kOff, kNarrow };
std::atomic<int64_t> window_counts[2];  // thresholds that had a window, and that selected in it
inline WindowMode window_mode() {  // read at every call (once per threshold), so tests can switch it
  const char* v = std::getenv("RGPRUNE_THRESHOLD_WINDOW");
  if (v == nullptr || v[0] == '\0' || std::strcmp(v, "auto") == 0) return WindowMode::kAuto;
  if (std::strcmp(v, "on") == 0) return WindowMode::kOn;
  if (std::strcmp(v, "off") == 0) return WindowMode::kOff;
  if (std::strcmp(v, "narrow") == 0) return WindowMode::kNarrow;
  TORCH_CHECK(false, "rgprune: RGPRUNE_THRESHOLD_WINDOW must be auto, on, off or narrow, got '", v, "'");
}

inline uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

constexpr int64_t kSampleRun = 64, kSampleAhead = 24;

// Walks the sampled runs of the chunks [c, stop): run `begin` (a multiple of 32 in its tensor) of chunk c.
struct SampleCursor {
  const std::vector<Chunk>& chunks;
  const int64_t stop, step;
  int64_t c, begin = 0;
  SampleCursor(const std::vector<Chunk>& ch, int64_t lo, int64_t hi, int64_t s) : chunks(ch), stop(hi), step(s), c(lo) {
    settle(first_run());
  }
  bool done() const { return c >= stop; }
  int64_t end() const { return std::min(chunks[c].end, begin + kSampleRun); }
  void next() { settle(begin + step); }

 private:
  int64_t first_run() const {
    return c < stop ? chunks[c].begin + int64_t(mix64(uint64_t(c)) % uint64_t(step / kSampleRun)) * kSampleRun : 0;
  }
  void settle(int64_t run) {  // the first run at or after `run`, moving on to the next chunks as needed
    for (; c < stop; ++c, run = first_run()) {
      if (run < chunks[c].end) {
        begin = run;
        return;
      }
    }
  }
};

// Calls f(w, mask, begin, end) for every sampled run of the chunks [lo, hi), prefetching kSampleAhead runs
// ahead (a run takes tens of ns, its lines a TLB miss and a memory access each); returns the number of
// sampled positions.
template <typename F>
int64_t for_each_sample_run(const at::TensorList& tensors, const at::TensorList& masks,
                            const std::vector<Chunk>& chunks, int64_t lo, int64_t hi, int64_t step, F&& f) {
  auto data = [&](const SampleCursor& at) {
    return std::make_pair(reinterpret_cast<const uint32_t*>(tensors[chunks[at.c].tensor].data_ptr()),
                          reinterpret_cast<const uint32_t*>(masks[chunks[at.c].tensor].data_ptr<int32_t>()));
  };
  SampleCursor cur(chunks, lo, hi, step), ahead(chunks, lo, hi, step);
  for (int64_t i = 0; i < kSampleAhead && !ahead.done(); ++i) ahead.next();
  int64_t positions = 0;
  for (; !cur.done(); cur.next()) {
    if (!ahead.done()) {
      const auto wm = data(ahead);
      for (int64_t o = 0; o < kSampleRun; o += 16) __builtin_prefetch(wm.first + ahead.begin + o);
      __builtin_prefetch(wm.second + ahead.begin / 32);
      ahead.next();
    }
    const auto wm = data(cur);
    positions += cur.end() - cur.begin;
    f(wm.first, wm.second, cur.begin, cur.end());
  }
  return positions;
}

// Scan 1 of the sample: the 12-bit histogram of a run's surviving non-NaN keys (`hist` with the dummy bins
// of hist_words_f32_avx2), begin a multiple of 32.
__attribute__((target("avx2"))) void sample_run_histogram(const uint32_t* w, const uint32_t* mask, int64_t begin,
                                                          int64_t end, int64_t* hist) {
  ChunkStats st{};
  constexpr int kShift = 31 - kRadixBits;
  const int64_t base = hist_words_f32_avx2<false, false, int64_t, false>(w, mask, begin, end, kShift,
                                                                         int64_t(1) << kRadixBits, hist, st, nullptr);
  for (uint32_t word = base < end ? valid_word(mask, base, end) : 0u; word; word &= word - 1) {
    const uint32_t key = w[base + __builtin_ctz(word)] & 0x7FFFFFFFu;
    if (key <= 0x7F800000u) ++hist[key >> kShift];
  }
}

// Scan 2 of the sample: the next 12 bits of the surviving keys whose top 12 bits are bin_a (into sub_a) or
// bin_b (into sub_b; the same array when bin_a == bin_b).
inline void sample_run_subbins(const uint32_t* w, const uint32_t* mask, int64_t begin, int64_t end, uint32_t bin_a,
                               uint32_t bin_b, int64_t* sub_a, int64_t* sub_b) {
  constexpr int kShift = 31 - kRadixBits, kSubShift = 31 - 2 * kRadixBits;
  constexpr uint32_t kSubMask = (1u << kRadixBits) - 1;
  for (int64_t base = begin; base < end; base += 32) {
    for (uint32_t word = valid_word(mask, base, end); word; word &= word - 1) {
      const uint32_t key = w[base + __builtin_ctz(word)] & 0x7FFFFFFFu;
      const uint32_t bin = key >> kShift;
      if (bin - bin_a > bin_b - bin_a) continue;  // outside [bin_a, bin_b] (NaN keys are above any bin_b)
      if (bin == bin_a) ++sub_a[(key >> kSubShift) & kSubMask];
      if (bin == bin_b && bin_b != bin_a) ++sub_b[(key >> kSubShift) & kSubMask];
    }
  }
}

bool choose_window(const at::TensorList& tensors, const at::TensorList& masks, const std::vector<Chunk>& chunks,
                   int64_t n, int64_t k, int64_t cap, uint32_t& lo, uint32_t& hi) {
  const WindowMode mode = window_mode();
  if (mode == WindowMode::kOff || (mode == WindowMode::kAuto && n < kWindowMinWeights) || n == 0 || k <= 0) {
    return false;
  }
  const int64_t step = std::max<int64_t>(kSampleRun, (n / (int64_t(1) << 20)) * kSampleRun);
  constexpr int kShift = 31 - kRadixBits;
  const size_t nbins = size_t(1) << kRadixBits;
  const int nthreads = at::get_num_threads();
  std::vector<std::vector<int64_t>> local(nthreads);
  std::vector<int64_t> local_positions(nthreads, 0);
  at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t c0, int64_t c1) {
    const int t = at::get_thread_num();
    auto& h = local[t];
    if (h.empty()) h.assign(local_hist_size(nbins), 0);
    local_positions[t] += for_each_sample_run(tensors, masks, chunks, c0, c1, step,
                                              [&](const uint32_t* w, const uint32_t* mask, int64_t b, int64_t e) {
                                                sample_run_histogram(w, mask, b, e, h.data());
                                              });
  });
  std::vector<int64_t> hist(nbins, 0);
  int64_t positions = 0, n_sampled = 0;
  for (int t = 0; t < nthreads; ++t) {
    positions += local_positions[t];
    merge_local(hist, local[t], nbins);
  }
  for (auto h : hist) n_sampled += h;
  if (n_sampled == 0) return false;
  const double p = std::min(1.0, double(k) / double(n));
  const double r = p * double(positions);  // expected number of sampled keys below the k-th survivor
  const double sd = 1.25 * std::sqrt(double(positions) * p * (1.0 - p));
  const double per_sample = double(n) / double(positions);  // weights per sampled position
  double z = std::min(4.0, (0.8 * double(cap) / per_sample - 1.0) / (2.0 * sd + 1e-9));
  if (mode == WindowMode::kNarrow) {
    z = 0.0;
  } else if (z < 0.5) {
    return false;
  }
  // 0-based ranks of the window's ends among the sampled keys; an end past the sample is open
  const int64_t a = int64_t(std::floor(r - z * sd)), b = int64_t(std::ceil(r + z * sd));
  if (a >= n_sampled) return false;  // the sample puts the k-th survivor above all its keys
  const int64_t a_rank = std::max<int64_t>(a, 0), b_rank = std::min<int64_t>(b, n_sampled - 1);
  // The bins holding ranks a and b, then their sub-bins (the next 12 bits): the window's ends are rounded
  // out to sub-bin edges, which widens it by two sub-bins (~1/4096 of a bin each).
  auto locate = [](const std::vector<int64_t>& h, int64_t rank, int64_t& below) {
    size_t bin = 0;
    below = 0;
    while (below + h[bin] <= rank) below += h[bin++];
    return uint32_t(bin);
  };
  int64_t below_a = 0, below_b = 0;
  const uint32_t bin_a = locate(hist, a_rank, below_a), bin_b = locate(hist, b_rank, below_b);
  std::vector<std::vector<int64_t>> subs(2 * size_t(nthreads));
  at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t c0, int64_t c1) {
    const int t = at::get_thread_num();
    auto& sa = subs[2 * t];
    auto& sb = subs[2 * t + 1];
    if (sa.empty()) sa.assign(nbins, 0);
    if (sb.empty()) sb.assign(nbins, 0);
    for_each_sample_run(tensors, masks, chunks, c0, c1, step,
                        [&](const uint32_t* w, const uint32_t* mask, int64_t b, int64_t e) {
                          sample_run_subbins(w, mask, b, e, bin_a, bin_b, sa.data(), sb.data());
                        });
  });
  std::vector<int64_t> sub_a(nbins, 0), sub_b(nbins, 0);
  for (int t = 0; t < nthreads; ++t) {
    merge_local(sub_a, subs[2 * t], nbins);
    merge_local(sub_b, subs[2 * t + 1], nbins);
  }
  if (bin_b == bin_a) sub_b = sub_a;
  int64_t in_a = 0, in_b = 0;
  for (size_t i = 0; i < nbins; ++i) {
    in_a += sub_a[i];
    in_b += sub_b[i];
  }
  if (in_a != hist[bin_a] || in_b != hist[bin_b]) return false;  // the weights changed under us: no window
  constexpr int kShift2 = 31 - 2 * kRadixBits;
  int64_t unused = 0;
  lo = a < 0 ? 0u : (bin_a << kShift) | (locate(sub_a, a_rank - below_a, unused) << kShift2);
  hi = b >= n_sampled ? 0x7F800000u
                      : std::min<uint32_t>(0x7F800000u, (bin_b << kShift) | (locate(sub_b, b_rank - below_b, unused)
                                                                             << kShift2) | ((1u << kShift2) - 1));
  return true;
}

// The threshold's info once the k-th survivor is known to be the rank-th smallest (1-based) of keys[0, m),
// which holds every survivor key equal to it, after nth_element put it at keys[rank - 1]; `offset`
// survivors are below keys[0, m).
template <typename B>
std::vector<int64_t> select_info(const B* keys, int64_t m, int64_t rank, int64_t offset, int64_t n_surv,
                                 int64_t n_nan) {
  const B v = keys[rank - 1];
  int64_t less = 0, equal = 0;
  for (int64_t i = 0; i < m; ++i) {
    less += keys[i] < v;
    equal += keys[i] == v;
  }
  return {int64_t(v), offset + less, rank - less, equal, n_surv, n_nan};
}

// Radix select by histogram refinement: the top kRadixBits bits, then the next bits restricted to the
// bin holding the k-th survivor, until the whole key is resolved.
//
// Shortcut for keys of more than 2 * kRadixBits bits (float32, float64): the second pass also gathers the
// keys of the boundary bin's sub-bins near the one that will hold the k-th survivor (guessed by linear
// interpolation of its rank within the boundary bin; keys are linear in the value inside one binade) into a
// buffer bounded by 1/256 of the weights' bytes, at least 1024 keys (so rgprune's extra memory stays well
// under 1%; the window is sized to fill ~1/8 of it, and pages never written are never resident). When the
// second pass's histogram shows that the k-th survivor's sub-bin lies in the gathered range and nothing
// overflowed, the rest of the key is selected in memory (nth_element) instead of by 1 (float32) or 4
// (float64) more passes over the weights; otherwise the ordinary passes run. The result is the same.
//
// Shortcut for float32 on AVX2 (bench/NOTES.md, attempt 16): before the first pass, a sample of ~2^20
// weights (choose_window) gives a key window [lo, hi] expected to hold the k-th survivor; the first pass
// then also counts the survivors below lo and gathers those in the window into the same bounded buffer
// (the window is sized to fill at most 4/5 of it). When those counts bracket k and nothing overflowed,
// the k-th survivor is selected in the buffer and the second pass never runs; otherwise the passes above
// run as if there had been no window. The result is the same either way.
template <typename scalar_t>
std::tuple<at::Tensor, at::Tensor> threshold_impl(const at::TensorList& tensors, const at::TensorList& masks,
                                                  int64_t k) {
  constexpr int kb = KeysFor<scalar_t>::type::key_bits;
  using B = typename KeysFor<scalar_t>::type::bits_t;
  const auto chunks = make_chunks(tensors);
  int64_t n_weights = 0, weight_bytes = 0;
  for (const auto& t : tensors) {
    n_weights += t.numel();
    weight_bytes += t.numel() * int64_t(t.element_size());
  }
  // the key buffer's bound (below)
  const int64_t cap = std::max<int64_t>(1024, weight_bytes / 256 / int64_t(sizeof(B)));
  std::unique_ptr<KeyWindow> window;
  std::unique_ptr<uint32_t[]> window_buf;
#if defined(RGPRUNE_AVX2_PATHS)
  uint32_t win_lo = 0, win_hi = 0;
  if (std::is_same<scalar_t, float>::value && cpu_has_avx2() &&
      choose_window(tensors, masks, chunks, n_weights, k, cap, win_lo, win_hi)) {
    window_buf.reset(new uint32_t[size_t(cap)]);  // not initialized: untouched pages stay free
    window.reset(new KeyWindow(window_buf.get(), cap, win_lo, win_hi));
  }
#endif
  std::vector<int64_t> hist;
  std::vector<ChunkStats> chunk_stats;
  RadixPass pass{false, 0, 0, kb - kRadixBits, kRadixBits};
  histogram_pass<scalar_t, false>(tensors, masks, chunks, pass, hist, chunk_stats, window.get());
  const at::Tensor top = to_tensor(hist);
  int64_t n_surv = 0, n_nan = 0;
  for (auto h : hist) n_surv += h;
  for (const auto& s : chunk_stats) n_nan += s.nans;
  std::vector<int64_t> info{-1, 0, 0, 0, n_surv, n_nan};
  if (window) window_counts[0].fetch_add(1, std::memory_order_relaxed);
  if (window && k > 0 && k <= n_surv && !window->gather.overflow.load()) {
    // The k-th survivor is in the window when the keys below it and in it bracket k: select it there.
    const int64_t below = window->below.load(), used = window->gather.used.load();
    if (below < k && k <= below + used) {
      window_counts[1].fetch_add(1, std::memory_order_relaxed);
      uint32_t* keys = window_buf.get();
      std::nth_element(keys, keys + (k - below - 1), keys + used);
      info = select_info(keys, used, k - below, below, n_surv, n_nan);
      return {to_tensor(info), top};
    }
  }
  window.reset();
  window_buf.reset();
  if (k > 0 && k <= n_surv) {
    int64_t remaining = k, n_below = 0;
    uint64_t prefix = 0;
    int consumed = 0;
    while (true) {
      size_t b = 0;
      int64_t below = 0;
      while (below + hist[b] < remaining) below += hist[b++];
      n_below += below;
      remaining -= below;
      prefix = (prefix << pass.bits) | b;
      consumed += pass.bits;
      if (consumed == kb) {
        info = {int64_t(prefix), n_below, remaining, hist[b], n_surv, n_nan};
        break;
      }
      const int bits = std::min(kRadixBits, kb - consumed);
      pass = RadixPass{true, kb - consumed, prefix, kb - consumed - bits, bits};
      if (consumed == kRadixBits && kb - consumed > kRadixBits) {
        // Second pass with the key gather (see above).
        const int64_t in_bin = hist[b];  // survivors in the boundary bin
        const int64_t nsub = int64_t(1) << bits;
        uint32_t lo = 0, hi = uint32_t(nsub - 1);
        if (in_bin > cap) {
          // Expect to fill an eighth of the buffer if the bin's density is flat, centred on the interpolated
          // sub-bin (on BERT-base the k-th survivor's sub-bin was within 5 of the guess; the window is ~100).
          const int64_t width = std::max<int64_t>(1, (cap * nsub) / (8 * in_bin));
          const int64_t guess = std::min<int64_t>(nsub - 1, int64_t((double(remaining) - 0.5) / double(in_bin) * double(nsub)));
          const int64_t l = std::max<int64_t>(0, std::min<int64_t>(guess - width / 2, nsub - width));
          lo = uint32_t(l);
          hi = uint32_t(std::min<int64_t>(nsub - 1, l + width - 1));
        }
        std::unique_ptr<B[]> buf(new B[size_t(std::min(cap, in_bin))]);  // not initialized: untouched pages stay free
        KeyGather<B> gather(buf.get(), std::min(cap, in_bin), lo, hi);
        gather_pass<scalar_t>(tensors, masks, chunks, pass, hist, gather);
        size_t b2 = 0;
        int64_t below2 = 0;
        while (below2 + hist[b2] < remaining) below2 += hist[b2++];
        const int64_t used = gather.used.load();
        if (!gather.overflow.load() && b2 >= lo && b2 <= hi && used <= gather.cap) {
          // Keep the keys of sub-bin b2 (there must be exactly hist[b2] of them), then select.
          B* keys = buf.get();
          const int sub_shift = pass.shift;
          const B sub_mask = static_cast<B>(nsub - 1);
          int64_t m = 0;
          for (int64_t i = 0; i < used; ++i)
            if (size_t((keys[i] >> sub_shift) & sub_mask) == b2) keys[m++] = keys[i];
          if (m == hist[b2]) {
            const int64_t rank = remaining - below2;  // 1-based within sub-bin b2
            std::nth_element(keys, keys + (rank - 1), keys + m);
            info = select_info(keys, m, rank, n_below + below2, n_surv, n_nan);
            break;
          }
        }
        continue;  // the histogram of this pass is in `hist`: resolve its bits as usual
      }
      histogram_pass<scalar_t, false>(tensors, masks, chunks, pass, hist, chunk_stats);
    }
  }
  return {to_tensor(info), top};
}

std::tuple<at::Tensor, at::Tensor> global_magnitude_threshold_cpu(at::TensorList tensors, at::TensorList masks,
                                                                  int64_t k) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  TORCH_CHECK(k >= 0, "rgprune: k must be >= 0, got ", k);
  window_mode();  // a bad RGPRUNE_THRESHOLD_WINDOW fails for every dtype and CPU, not only where it is used
  return AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, tensors[0].scalar_type(),
                                         "global_magnitude_threshold",
                                         [&] { return threshold_impl<scalar_t>(tensors, masks, k); });
}

// One refinement pass of the radix select on its own (rgprune.distributed sums each pass over ranks):
// survivors whose key's top prefix_bits bits equal prefix, binned by the next bits bits.
at::Tensor radix_histogram_cpu(at::TensorList tensors, at::TensorList masks, int64_t prefix, int64_t prefix_bits,
                               int64_t bits) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  check_bits(bits, tensors[0].scalar_type());
  const int kb = key_bits_of(tensors[0].scalar_type());
  TORCH_CHECK(prefix_bits >= 0 && prefix_bits + bits <= kb, "rgprune: prefix_bits + bits must be in [bits, ", kb,
              "] for this dtype, got prefix_bits=", prefix_bits, " and bits=", bits);
  TORCH_CHECK(prefix >= 0 && (prefix >> prefix_bits) == 0, "rgprune: prefix must be in [0, 2**prefix_bits), got ",
              prefix, " for prefix_bits=", prefix_bits);
  const auto chunks = make_chunks(tensors);
  std::vector<int64_t> hist;
  std::vector<ChunkStats> chunk_stats;
  const RadixPass pass{prefix_bits > 0, kb - int(prefix_bits), uint64_t(prefix), kb - int(prefix_bits + bits),
                       int(bits)};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, tensors[0].scalar_type(), "radix_histogram", [&] {
    histogram_pass<scalar_t, false>(tensors, masks, chunks, pass, hist, chunk_stats);
  });
  return to_tensor(hist);
}

template <typename scalar_t>
Stats apply_threshold_impl(const at::TensorList& tensors, const at::TensorList& masks, const int64_t* info,
                           int64_t bits) {
  using K = typename KeysFor<scalar_t>::type;
  using B = typename K::bits_t;
  const auto chunks = make_chunks(tensors);
  const bool any = info[kInfoKey] >= 0;
  const uint64_t thr = any ? uint64_t(info[kInfoKey]) : 0;
  const int64_t n_ties = info[kInfoTies], n_equal = info[kInfoEqual];
  const bool all_ties = any && n_ties > 0 && n_ties == n_equal;
  const bool partial_ties = any && n_ties > 0 && n_ties < n_equal;
  const uint64_t cut = all_ties ? thr + 1 : thr;  // survivors with key < cut are pruned
  const uint64_t cut_if_any = any ? cut : 0;

  // Ties are pruned in model order. With some but not all of them pruned (partial_ties), the pass keeps
  // every survivor whose key is `thr` without counting it and counts them per chunk; the ties are decided
  // after the pass, once the number of ties in the chunks before each chunk is known.
  const size_t nbins = size_t(1) << bits;
  const int shift = K::key_bits - int(bits);
  const RadixPass stats_pass{false, 0, 0, shift, int(bits)};
  std::vector<std::vector<int64_t>> local(at::get_num_threads());
  std::vector<ChunkStats> chunk_stats(chunks.size());
  std::vector<int64_t> chunk_ties(chunks.size(), 0);
  at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t lo, int64_t hi) {
    auto& h = local[at::get_thread_num()];
    if (h.empty()) h.assign(local_hist_size(nbins), 0);  // + one dummy bin per lane of a word (ApplyF32)
    for (int64_t c = lo; c < hi; ++c) {
      const Chunk& ch = chunks[c];
      B* w = reinterpret_cast<B*>(tensors[ch.tensor].data_ptr());
      const scalar_t* vals = tensors[ch.tensor].data_ptr<scalar_t>();
      uint32_t* mask = reinterpret_cast<uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
      int64_t ties = 0;
      HistogramVisitor<K, false, true> survivors(stats_pass, h.data());
#if defined(__SSE2__)
      constexpr bool kSimd = std::is_same<scalar_t, float>::value;
      ApplyF32 simd(uint32_t(cut_if_any), partial_ties ? uint32_t(thr) : ~0u, shift, int64_t(nbins), h.data());
#endif
      int64_t start = ch.begin;
      ChunkStats avx{};
#if defined(RGPRUNE_AVX2_PATHS)
      if (kSimd && cpu_has_avx2()) {
        uint32_t* w32 = reinterpret_cast<uint32_t*>(w);
        start = partial_ties
                    ? apply_words_f32_avx2<true>(w32, mask, start, ch.end, uint32_t(cut_if_any),
                                                             uint32_t(thr), shift, int64_t(nbins), h.data(), avx, ties)
                    : apply_words_f32_avx2<false>(w32, mask, start, ch.end, uint32_t(cut_if_any), ~0u,
                                                              shift, int64_t(nbins), h.data(), avx, ties);
      }
#endif
      for (int64_t base = start; base < ch.end; base += 32) {
        const int valid = int(std::min<int64_t>(32, ch.end - base));
        const uint32_t valid_bits = valid == 32 ? ~0u : (uint32_t(1) << valid) - 1u;
        const uint32_t word = mask[base / 32] & valid_bits;
        uint32_t keep = 0;
#if defined(__SSE2__)
        if (kSimd && valid == 32) {
          uint32_t* w32 = reinterpret_cast<uint32_t*>(w + base);
          keep = partial_ties ? simd.apply<true>(w32, word) : simd.apply<false>(w32, word);
        } else
#endif
        if (valid == 32 && !partial_ties) {
          // A whole word, branch-free: every element is decided and rewritten (a cache line of 16 weights
          // almost always holds a pruned one, so rewriting costs no extra memory traffic). Words pruned
          // before are partly dead after round 1, so this is the common path in every round.
          for (int j = 0; j < 32; ++j) {
            const B raw = w[base + j];
            const bool k = ((word >> j) & 1u) & (uint64_t(K::key(raw)) >= cut_if_any);
            const B kept = raw & static_cast<B>(B(0) - B(k));
            keep |= uint32_t(k) << j;
            survivors.template visit_if<scalar_t>(kept, k);
            w[base + j] = kept;
          }
        } else {
          for (uint32_t alive = word; alive; alive &= alive - 1) {
            const int j = __builtin_ctz(alive);
            const uint64_t key = K::key(w[base + j]);
            if (partial_ties && key == thr) {  // kept for now, decided after the pass
              keep |= uint32_t(1) << j;
              ++ties;
              continue;
            }
            if (any && key < cut) continue;
            keep |= uint32_t(1) << j;
            survivors.visit(w[base + j], vals[base + j], j & 1);
          }
          // Every weight whose bit is now 0 is stored as +0.0 (also weights pruned before).
          for (uint32_t dead = ~keep & valid_bits; dead; dead &= dead - 1) {
            const int64_t i = base + __builtin_ctz(dead);
            if (w[i] != 0) w[i] = 0;
          }
        }
        if (mask[base / 32] != keep) mask[base / 32] = keep;
      }
      ChunkStats st = survivors.result();
      st += avx;
#if defined(__SSE2__)
      if (kSimd) {
        const ChunkStats v = simd.result();
        st += v;
        ties += simd.ties;
      }
#endif
      chunk_stats[c] = st;
      chunk_ties[c] = ties;
    }
  });
  std::vector<int64_t> hist(nbins, 0);
  for (const auto& h : local) merge_local(hist, h, nbins);

  if (partial_ties) {
    // The first n_ties ties in model order go; the others are counted as survivors now. All ties have the
    // same magnitude, so a chunk's kept ties add kept * |w| and kept * w^2 to its sums.
    const B thr_bits = static_cast<B>(thr);
    scalar_t thr_val;
    std::memcpy(&thr_val, &thr_bits, sizeof(thr_val));
    const double v = static_cast<double>(thr_val);
    const size_t thr_bin = size_t(thr >> shift) & (nbins - 1);
    std::vector<int64_t> prune_in(chunks.size(), 0);
    int64_t before = 0;
    for (size_t c = 0; c < chunks.size(); ++c) {
      const int64_t t = chunk_ties[c];
      const int64_t p = std::min(t, std::max<int64_t>(0, n_ties - before));
      before += t;
      prune_in[c] = p;
      const int64_t kept = t - p;
      if (kept > 0) {
        chunk_stats[c].count += kept;
        chunk_stats[c].abs_sum += double(kept) * v;
        chunk_stats[c].sq_sum += double(kept) * (v * v);
        hist[thr_bin] += kept;
      }
    }
    at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        int64_t p = prune_in[c];
        if (p == 0) continue;
        const Chunk& ch = chunks[c];
        B* w = reinterpret_cast<B*>(tensors[ch.tensor].data_ptr());
        uint32_t* mask = reinterpret_cast<uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
        for (int64_t base = ch.begin; base < ch.end && p > 0; base += 32) {
          uint32_t word = mask[base / 32];
          for (uint32_t alive = word; alive && p > 0; alive &= alive - 1) {
            const int j = __builtin_ctz(alive);
            if (uint64_t(K::key(w[base + j])) == thr) {
              w[base + j] = 0;
              word &= ~(uint32_t(1) << j);
              --p;
            }
          }
          mask[base / 32] = word;
        }
      }
    });
  }
  return make_stats(tensors, chunks, chunk_stats, hist);
}

Stats apply_threshold_cpu(at::TensorList tensors, at::TensorList masks, const at::Tensor& info, int64_t bits) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  check_bits(bits, tensors[0].scalar_type());
  TORCH_CHECK(info.scalar_type() == at::kLong && info.numel() == kInfoLen,
              "rgprune: info must be the int64 vector returned by global_magnitude_threshold");
  const auto host_info = info.to(at::kCPU).contiguous();
  const int64_t* pinfo = host_info.data_ptr<int64_t>();
  return AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, tensors[0].scalar_type(), "apply_threshold_",
                                         [&] { return apply_threshold_impl<scalar_t>(tensors, masks, pinfo, bits); });
}

#if defined(__SSE2__)
// w[j] &= (bit j of word ? all ones : 0) for the 32 elements of one whole mask word, branch-free: each
// lane's bit is isolated by AND with a per-lane constant and widened to a lane mask by a compare.
inline void select_word(uint32_t* w, uint32_t word) {
  const __m128i lane = _mm_setr_epi32(1, 2, 4, 8);
  __m128i bits = _mm_set1_epi32(int32_t(word));
  for (int j = 0; j < 32; j += 4) {
    const __m128i keep = _mm_cmpeq_epi32(_mm_and_si128(bits, lane), lane);
    bits = _mm_srli_epi32(bits, 4);
    __m128i* p = reinterpret_cast<__m128i*>(w + j);
    _mm_storeu_si128(p, _mm_and_si128(_mm_loadu_si128(p), keep));
  }
}
inline void select_word(uint64_t* w, uint32_t word) {
  const __m128i lane = _mm_setr_epi32(1, 1, 2, 2);  // both halves of a 64-bit lane test the same bit
  __m128i bits = _mm_set1_epi32(int32_t(word));
  for (int j = 0; j < 32; j += 2) {
    const __m128i keep = _mm_cmpeq_epi32(_mm_and_si128(bits, lane), lane);
    bits = _mm_srli_epi32(bits, 2);
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
#endif

// Zeroes weights whose mask bit is 0. Works on raw element bits, so tensors may have different dtypes.
// A whole word with any 0 bit is rewritten in full by a branch-free select (one streaming pass whatever
// the density: a per-dead-bit loop cost ~1.4 ns per pruned element); fully surviving words are skipped.
template <typename E>
void zero_pruned(E* w, const uint32_t* mask, int64_t begin, int64_t end) {
  int64_t base = begin;
#if defined(__SSE2__)
  for (; base + 32 <= end; base += 32) {
    const uint32_t word = mask[base / 32];
    if (word != ~0u) select_word(w + base, word);
  }
#endif
  for (; base < end; base += 32) {
    const int valid = int(std::min<int64_t>(32, end - base));
    const uint32_t valid_bits = valid == 32 ? ~0u : (uint32_t(1) << valid) - 1u;
    for (uint32_t dead = ~mask[base / 32] & valid_bits; dead; dead &= dead - 1) w[base + __builtin_ctz(dead)] = 0;
  }
}

void apply_masks_cpu(at::TensorList tensors, at::TensorList masks) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/false);
  const auto chunks = make_chunks(tensors);
  at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      const Chunk& ch = chunks[c];
      const auto& t = tensors[ch.tensor];
      const uint32_t* mask = reinterpret_cast<const uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
      switch (t.element_size()) {
        case 2: zero_pruned(reinterpret_cast<uint16_t*>(t.data_ptr()), mask, ch.begin, ch.end); break;
        case 4: zero_pruned(reinterpret_cast<uint32_t*>(t.data_ptr()), mask, ch.begin, ch.end); break;
        case 8: zero_pruned(reinterpret_cast<uint64_t*>(t.data_ptr()), mask, ch.begin, ch.end); break;
        default: TORCH_CHECK(false, "rgprune: unsupported element size");
      }
    }
  });
}

}  // namespace

std::pair<int64_t, int64_t> threshold_window_counts() {
  return {window_counts[0].load(), window_counts[1].load()};
}

bool cpu_kernels_parallel() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace rgprune

TORCH_LIBRARY_IMPL(rgprune, CPU, m) {
  m.impl("magnitude_histogram", &rgprune::magnitude_histogram_cpu);
  m.impl("global_magnitude_threshold", &rgprune::global_magnitude_threshold_cpu);
  m.impl("radix_histogram", &rgprune::radix_histogram_cpu);
  m.impl("apply_threshold_", &rgprune::apply_threshold_cpu);
  m.impl("apply_masks_", &rgprune::apply_masks_cpu);
}
