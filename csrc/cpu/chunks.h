// How the CPU kernels share out work and combine results: every tensor is cut into fixed-size chunks,
// at::parallel_for hands chunks to threads, per-thread histograms are merged at the end and per-chunk sums
// are reduced in chunk order, so a result does not depend on the number of threads.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../rgprune.h"

namespace rgprune {
namespace cpu {

// Elements per work item. A multiple of 32, so a mask word never straddles two chunks.
constexpr int64_t kChunk = int64_t(1) << 16;

struct Chunk {
  int64_t tensor, begin, end;
};

std::vector<Chunk> make_chunks(const at::TensorList& tensors);

// Calls f(c, chunk) for every chunk of `chunks`, the chunks shared out over threads by at::parallel_for.
template <typename F>
void parallel_chunks(const std::vector<Chunk>& chunks, F&& f) {
  at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) f(c, chunks[c]);
  });
}

// Mask bits of the word starting at `base`, restricted to elements before `end` (never trust tail bits).
inline uint32_t valid_word(const uint32_t* mask, int64_t base, int64_t end) {
  uint32_t word = mask[base / 32];
  if (end - base < 32) word &= (uint32_t(1) << (end - base)) - 1u;
  return word;
}

// Per-thread histogram of a pass: nbins real bins + 64 dummy bins, one per lane of a mask word (two in the
// threshold's first pass, which tells the dead lanes whose key is 0 from the others: hist_words_f32_avx2),
// where the SIMD word routines count the lanes that must not count (no branch, and no store-to-load chain
// on one real bin).
inline size_t local_hist_size(size_t nbins) { return nbins + 64; }
inline void merge_local(std::vector<int64_t>& hist, const std::vector<int64_t>& h, size_t nbins) {
  for (size_t b = 0; b < nbins && b < h.size(); ++b) hist[b] += h[b];
}

// The bin holding the element of 1-based rank `rank` in a histogram, and how many elements the bins
// before it hold. rank must be in [1, sum of hist].
struct RankedBin {
  size_t bin;
  int64_t below;
};
inline RankedBin bin_of_rank(const std::vector<int64_t>& hist, int64_t rank) {
  RankedBin at{0, 0};
  while (at.bin + 1 < hist.size() && at.below + hist[at.bin] < rank) at.below += hist[at.bin++];
  TORCH_INTERNAL_ASSERT(rank >= 1 && at.below + hist[at.bin] >= rank, "rgprune: rank ", rank,
                        " is outside the histogram");
  return at;
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
  // Entries whose mask bit is 0 but whose key is not 0 (NaN included): counted by the threshold's first
  // pass only (the passes instantiated with kOutside), 0 elsewhere.
  int64_t outside = 0;
  // Merges the statistics of another part of the same chunk (the order of merges fixes the sums' rounding).
  ChunkStats& operator+=(const ChunkStats& o) {
    count += o.count;
    nans += o.nans;
    abs_sum += o.abs_sum;
    sq_sum += o.sq_sum;
    outside += o.outside;
    return *this;
  }
};

// How many of the elements x[j] with bit j of `dead` set have a key other than 0 (+0.0 and -0.0 have key 0;
// NaN counts): weights outside the masks. Set-bit iteration, for tails and rare words.
template <typename K>
inline int64_t count_outside_bits(const typename K::bits_t* x, uint32_t dead) {
  int64_t n = 0;
  for (; dead; dead &= dead - 1) n += K::key(x[__builtin_ctz(dead)]) != 0;
  return n;
}

at::Tensor to_tensor(const std::vector<int64_t>& v);

// The Stats of an op: the merged histogram and the per-tensor reduction of chunk statistics, in chunk order.
Stats make_stats(const at::TensorList& tensors, const std::vector<Chunk>& chunks,
                 const std::vector<ChunkStats>& chunk_stats, const std::vector<int64_t>& hist);

}  // namespace cpu
}  // namespace rgprune
