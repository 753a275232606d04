// Sampling the survivors and choosing the threshold's key window (key_window.h).
//
// The sample: runs of 64 consecutive weights (one 256-byte block: a few cache lines of one page) every
// `step` weights, at a deterministic pseudo-random offset per chunk, about 2^20 weights in all (all of them
// below that). It is read twice, in parallel over chunks with runs prefetched ahead: a 12-bit histogram of
// the sampled survivors' keys, then the next 12 bits of the sampled keys in the two bins holding the
// window's ends (O(bins) memory whatever the weights' distribution).
//
// The window spans the sampled keys of ranks r -+ z*s around the k-th survivor's expected rank r, rounded
// out to sub-bin edges; s = 1.25 x the binomial standard deviation of that rank (runs are not independent
// draws, so the sample is a little overdispersed), z <= 4 and small enough that the expected number of
// gathered keys fills at most 4/5 of the key buffer.
#include <ATen/Parallel.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "key_window.h"
#include "simd_words.h"

namespace rgprune {
namespace cpu {
namespace {

std::atomic<int64_t> window_counts[2];  // thresholds that had a window, and that selected in it

constexpr int kShift = 31 - kRadixBits;         // float32 key -> its 12-bit bin
constexpr int kSubShift = 31 - 2 * kRadixBits;  // float32 key -> its 12-bit sub-bin (with kSubMask)
constexpr uint32_t kSubMask = (1u << kRadixBits) - 1;
constexpr size_t kBins = size_t(1) << kRadixBits;
constexpr uint32_t kInfKey = 0x7F800000u;

#if defined(RGPRUNE_AVX2_PATHS)
inline uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// kSampleAhead: runs prefetched ahead of the one being read (a run takes tens of ns, its lines a TLB miss
// and a memory access each).
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
// ahead; returns the number of sampled positions.
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

// Scan 1 of the sample, one run: the 12-bit histogram of its surviving non-NaN keys (`hist` with the dummy
// bins of hist_words_f32_avx2), begin a multiple of 32.
__attribute__((target("avx2"))) void sample_run_histogram(const uint32_t* w, const uint32_t* mask, int64_t begin,
                                                          int64_t end, int64_t* hist) {
  ChunkStats st{};
  const int64_t base = hist_words_f32_avx2</*kSums=*/false, /*kWindow=*/false, /*kOutside=*/false,
                                           /*kPrefetch=*/false>(w, mask, begin, end, kShift, int64_t(kBins), hist,
                                                                st, nullptr);
  for (uint32_t word = base < end ? valid_word(mask, base, end) : 0u; word; word &= word - 1) {
    const uint32_t key = w[base + __builtin_ctz(word)] & 0x7FFFFFFFu;
    if (key <= kInfKey) ++hist[key >> kShift];
  }
}

// Scan 2 of the sample, one run: the next 12 bits of the surviving keys whose top 12 bits are bin_a (into
// sub_a) or bin_b (into sub_b; the same array when bin_a == bin_b).
inline void sample_run_subbins(const uint32_t* w, const uint32_t* mask, int64_t begin, int64_t end, uint32_t bin_a,
                               uint32_t bin_b, int64_t* sub_a, int64_t* sub_b) {
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

struct SampleHistogram {
  std::vector<int64_t> hist;  // sampled survivors per 12-bit bin
  int64_t positions = 0;      // sampled weights, survivors or not
};

SampleHistogram sample_histogram(const at::TensorList& tensors, const at::TensorList& masks,
                                 const std::vector<Chunk>& chunks, int64_t step) {
  const int nthreads = at::get_num_threads();
  std::vector<std::vector<int64_t>> local(nthreads);
  std::vector<int64_t> local_positions(nthreads, 0);
  at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t c0, int64_t c1) {
    const int t = at::get_thread_num();
    auto& h = local[t];
    if (h.empty()) h.assign(local_hist_size(kBins), 0);
    local_positions[t] += for_each_sample_run(tensors, masks, chunks, c0, c1, step,
                                              [&](const uint32_t* w, const uint32_t* mask, int64_t b, int64_t e) {
                                                sample_run_histogram(w, mask, b, e, h.data());
                                              });
  });
  SampleHistogram out{std::vector<int64_t>(kBins, 0), 0};
  for (int t = 0; t < nthreads; ++t) {
    out.positions += local_positions[t];
    merge_local(out.hist, local[t], kBins);
  }
  return out;
}

// The sub-bin histograms of the sampled keys in bins bin_a and bin_b (equal when bin_a == bin_b).
std::pair<std::vector<int64_t>, std::vector<int64_t>> sample_subbins(const at::TensorList& tensors,
                                                                     const at::TensorList& masks,
                                                                     const std::vector<Chunk>& chunks, int64_t step,
                                                                     uint32_t bin_a, uint32_t bin_b) {
  const int nthreads = at::get_num_threads();
  std::vector<std::vector<int64_t>> subs(2 * size_t(nthreads));
  at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t c0, int64_t c1) {
    const int t = at::get_thread_num();
    auto& sa = subs[2 * t];
    auto& sb = subs[2 * t + 1];
    if (sa.empty()) sa.assign(kBins, 0);
    if (sb.empty()) sb.assign(kBins, 0);
    for_each_sample_run(tensors, masks, chunks, c0, c1, step,
                        [&](const uint32_t* w, const uint32_t* mask, int64_t b, int64_t e) {
                          sample_run_subbins(w, mask, b, e, bin_a, bin_b, sa.data(), sb.data());
                        });
  });
  std::vector<int64_t> sub_a(kBins, 0), sub_b(kBins, 0);
  for (int t = 0; t < nthreads; ++t) {
    merge_local(sub_a, subs[2 * t], kBins);
    merge_local(sub_b, subs[2 * t + 1], kBins);
  }
  if (bin_b == bin_a) sub_b = sub_a;
  return {std::move(sub_a), std::move(sub_b)};
}

// 0-based ranks of the window's ends among the n_sampled sampled survivor keys (an end past the sample is
// open), or nothing when the key buffer allows no useful window.
std::optional<std::pair<int64_t, int64_t>> window_ranks(WindowMode mode, int64_t n, int64_t k, int64_t cap,
                                                        int64_t positions) {
  const double p = std::min(1.0, double(k) / double(n));
  const double r = p * double(positions);  // expected number of sampled keys below the k-th survivor
  const double sd = 1.25 * std::sqrt(double(positions) * p * (1.0 - p));
  const double per_sample = double(n) / double(positions);  // weights per sampled position
  double z = std::min(4.0, (0.8 * double(cap) / per_sample - 1.0) / (2.0 * sd + 1e-9));
  if (mode == WindowMode::kNarrow) {
    z = 0.0;
  } else if (z < 0.5) {
    return std::nullopt;
  }
  return std::make_pair(int64_t(std::floor(r - z * sd)), int64_t(std::ceil(r + z * sd)));
}
#endif  // RGPRUNE_AVX2_PATHS

}  // namespace

WindowMode window_mode() {
  const char* v = std::getenv("RGPRUNE_THRESHOLD_WINDOW");
  if (v == nullptr || v[0] == '\0' || std::strcmp(v, "auto") == 0) return WindowMode::kAuto;
  if (std::strcmp(v, "on") == 0) return WindowMode::kOn;
  if (std::strcmp(v, "off") == 0) return WindowMode::kOff;
  if (std::strcmp(v, "narrow") == 0) return WindowMode::kNarrow;
  TORCH_CHECK(false, "rgprune: RGPRUNE_THRESHOLD_WINDOW must be auto, on, off or narrow, got '", v, "'");
}

std::optional<KeyRange> choose_window(const at::TensorList& tensors, const at::TensorList& masks,
                                      const std::vector<Chunk>& chunks, int64_t n, int64_t k, int64_t cap) {
  const WindowMode mode = window_mode();
  if (mode == WindowMode::kOff || (mode == WindowMode::kAuto && n < kWindowMinWeights) || n == 0 || k <= 0) {
    return std::nullopt;
  }
#if !defined(RGPRUNE_AVX2_PATHS)
  return std::nullopt;  // the window is part of the AVX2 first pass
#else
  const int64_t step = std::max<int64_t>(kSampleRun, (n / (int64_t(1) << 20)) * kSampleRun);
  const SampleHistogram sample = sample_histogram(tensors, masks, chunks, step);
  int64_t n_sampled = 0;
  for (auto h : sample.hist) n_sampled += h;
  if (n_sampled == 0) return std::nullopt;
  const auto ranks = window_ranks(mode, n, k, cap, sample.positions);
  if (!ranks) return std::nullopt;
  const auto [a, b] = *ranks;
  if (a >= n_sampled) return std::nullopt;  // the sample puts the k-th survivor above all its keys
  const int64_t a_rank = std::max<int64_t>(a, 0), b_rank = std::min<int64_t>(b, n_sampled - 1);
  // The bins holding ranks a and b, then their sub-bins (the next 12 bits): the window's ends are rounded
  // out to sub-bin edges, which widens it by two sub-bins (~1/4096 of a bin each).
  const RankedBin at_a = bin_of_rank(sample.hist, a_rank + 1), at_b = bin_of_rank(sample.hist, b_rank + 1);
  const uint32_t bin_a = uint32_t(at_a.bin), bin_b = uint32_t(at_b.bin);
  const auto [sub_a, sub_b] = sample_subbins(tensors, masks, chunks, step, bin_a, bin_b);
  int64_t in_a = 0, in_b = 0;
  for (size_t i = 0; i < kBins; ++i) {
    in_a += sub_a[i];
    in_b += sub_b[i];
  }
  if (in_a != sample.hist[bin_a] || in_b != sample.hist[bin_b]) return std::nullopt;  // the weights changed
  const uint32_t sub_lo = uint32_t(bin_of_rank(sub_a, a_rank - at_a.below + 1).bin);
  const uint32_t sub_hi = uint32_t(bin_of_rank(sub_b, b_rank - at_b.below + 1).bin);
  KeyRange range;
  range.lo = a < 0 ? 0u : (bin_a << kShift) | (sub_lo << kSubShift);
  range.hi = b >= n_sampled ? kInfKey
                            : std::min<uint32_t>(kInfKey, (bin_b << kShift) | (sub_hi << kSubShift) |
                                                              ((1u << kSubShift) - 1));
  return range;
#endif
}

void count_window_use(bool selected_in_window) {
  window_counts[0].fetch_add(1, std::memory_order_relaxed);
  if (selected_in_window) window_counts[1].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace cpu

std::pair<int64_t, int64_t> threshold_window_counts() {
  return {cpu::window_counts[0].load(), cpu::window_counts[1].load()};
}

}  // namespace rgprune
