// The threshold's first-pass key window (float32 on AVX2): before the first pass, a sample of about 2^20
// weights picks a key range [lo, hi] expected to hold the k-th survivor; the first pass then also counts the
// survivors below lo and gathers those inside into the bounded key buffer (KeyWindow), and when those counts
// bracket k the k-th survivor is selected there, without a second pass over the weights.
#pragma once

#include <optional>

#include "chunks.h"

namespace rgprune {
namespace cpu {

// RGPRUNE_THRESHOLD_WINDOW: auto (or unset: from kWindowMinWeights on), on (any size), off (never),
// narrow (a window of one sub-bin around the sampled estimate, which the k-th survivor is rarely inside).
// on and narrow are for tests of both paths. Read at every call (once per threshold), so tests can switch
// it; a bad value fails.
enum class WindowMode { kAuto, kOn, kOff, kNarrow };
WindowMode window_mode();

// The sample costs about 2 ms whatever the size (it is bound by memory latency), the pass it saves about
// 0.18 ns per weight: the window pays from about 30M weights on (bench/NOTES.md, attempt 16).
constexpr int64_t kWindowMinWeights = int64_t(1) << 25;

struct KeyRange {
  uint32_t lo, hi;
};

// The window for the k-th smallest survivor key of n weights, sized so that the survivors expected inside
// fill at most 4/5 of `cap` keys; nothing when the mode or size says no window, or the sample has no
// survivor, puts the k-th survivor past its end, or `cap` is too small for a useful window.
std::optional<KeyRange> choose_window(const at::TensorList& tensors, const at::TensorList& masks,
                                      const std::vector<Chunk>& chunks, int64_t n, int64_t k, int64_t cap);

// Counts, for threshold_window_counts(), a threshold that had a window and whether it selected in it.
void count_window_use(bool selected_in_window);

}  // namespace cpu
}  // namespace rgprune
