// The CUDA kernels: one launch walks the tensors of a chunk table (multi_tensor.cuh), block histograms live
// in shared memory (survivor_stats.cuh), and nothing ever waits for the host: the radix select takes its
// bin decisions on the device and apply_threshold_ reads the threshold from the device. Semantics:
// rgprune/kernels/reference.py. launch.cuh holds the host launch sequences. ATen-free, so that the SIMT
// simulator (tests/cuda_sim) compiles this file as host C++ and the tests run these very kernels.
#pragma once

#include "../format.h"
#include "device.cuh"
#include "multi_tensor.cuh"
#include "survivor_stats.cuh"

namespace rgprune {
namespace cuda {

// Which keys a histogram pass counts and into which bin.
struct HistogramPass {
  int bits;                   // 2^bits bins
  int shift;                  // bin = (key >> shift) & (2^bits - 1)
  int prefix_shift;           // filtered passes count only keys with (key >> prefix_shift) == prefix
  unsigned long long prefix;  // radix_histogram's prefix (the select's passes read theirs from SelectState)
};

// Device state of the radix select, handed from each select kernel to the next histogram pass.
struct SelectState {
  unsigned long long nan_total;      // surviving NaN weights, counted by the first pass
  unsigned long long outside_total;  // nonzero weights under cleared mask bits, counted by the first pass
  unsigned long long prefix;         // the top bits of the k-th smallest key resolved so far
  long long remaining;               // rank (1-based) of the k-th key among the keys with that prefix
  long long n_below;                 // survivors whose key is below every key with that prefix
  long long active;                  // 0: nothing (more) to select, the remaining passes exit at once
  long long from_keys;               // 1: the remaining passes read the key buffer, not the weights
  unsigned long long gathered;       // keys the gathering pass appended (more than the capacity: overflow)
  unsigned long long gather_lo;      // the gathering pass keeps the keys whose bin is in [lo, hi]
  unsigned long long gather_hi;
};
constexpr int64_t kStateWords = sizeof(SelectState) / sizeof(int64_t);
static_assert(sizeof(SelectState) % sizeof(int64_t) == 0, "SelectState is stored in int64 words");

// The bounded buffer the threshold's second pass gathers candidate keys into (launch.cuh sizes it).
template <typename B>
struct KeyBuffer {
  B* keys;
  long long capacity;
};

// What a histogram pass over the weights does besides its histogram.
enum class PassKind {
  kStats,   // magnitude_histogram: per-tensor counts, sums and NaN counts
  kFirst,   // the threshold's first pass: NaN survivors and nonzero weights outside the masks
  kRefine,  // a threshold pass under the prefix in SelectState (exits when the key buffer took over)
  kGather,  // kRefine that also appends the keys of the bins [gather_lo, gather_hi] to the key buffer
  kPrefix,  // radix_histogram: the keys under the prefix of HistogramPass
};

constexpr int kSelectThreads = 256;
constexpr int kScanThreads = 512;
constexpr int kScanItems = 4;

// Appends the keys of this thread's pack marked in `take` (bit j: element j) to the key buffer: one atomic
// per warp reserves the warp's slots. Keys past the capacity are counted, not stored (overflow). Every lane
// of the warp must call it.
template <typename K>
__device__ __forceinline__ void gather_keys(const Pack<typename K::bits_t>& p, unsigned take,
                                            const KeyBuffer<typename K::bits_t>& buffer, SelectState* state) {
  const int mine = __popc(take);
  if (!__any_sync(kFullMask, mine != 0)) return;  // warp-uniform
  int before, total;
  warp_count(mine, before, total);
  unsigned long long base = 0;
  if (threadIdx.x % 32 == 0) base = atomicAdd(&state->gathered, static_cast<unsigned long long>(total));
  unsigned long long slot = __shfl_sync(kFullMask, base, 0) + static_cast<unsigned long long>(before);
  for (unsigned t = take; t != 0; t &= t - 1, ++slot)
    if (slot < static_cast<unsigned long long>(buffer.capacity)) buffer.keys[slot] = K::key(p.v[__ffs(t) - 1]);
}

// Per-thread tallies of a histogram pass that are not per chunk.
struct PassTallies {
  long long nans, outside;
};

// The histogram pass over one pack: bins the survivors' keys that pass the filter, and returns the pack's
// elements to gather. Every lane of the warp must call it (the histogram add is warp-aggregated).
template <typename K, PassKind kKind>
__device__ __forceinline__ unsigned histogram_pack(const Pack<typename K::bits_t>& p, const PackMask& m,
                                                   const HistogramPass& pass, uint64_t prefix, uint64_t gather_lo,
                                                   uint64_t gather_hi, unsigned* hist, ChunkSums& sums,
                                                   PassTallies& tallies) {
  using B = typename K::bits_t;
  constexpr bool kFiltered = kKind != PassKind::kStats && kKind != PassKind::kFirst;
  const unsigned bin_mask = (1u << pass.bits) - 1u;
  unsigned take = 0;
#pragma unroll
  for (int j = 0; j < Pack<B>::kLen; ++j) {
    const B key = K::key(p.v[j]);
    unsigned bin = kNoBin;
    if ((m.survivors >> j) & 1u) {
      if (K::is_nan(key)) {
        ++tallies.nans;
      } else if (!kFiltered || (uint64_t(key) >> pass.prefix_shift) == prefix) {
        bin = bin_of(key, pass.shift, bin_mask);
        if constexpr (kKind == PassKind::kStats) sums.add(magnitude_of<K>(key));
        if constexpr (kKind == PassKind::kGather) take |= unsigned(bin >= gather_lo && bin <= gather_hi) << j;
      }
    } else if (kKind == PassKind::kFirst && ((m.valid >> j) & 1u) && key != 0) {
      ++tallies.outside;
    }
    add_to_shared_histogram(hist, bin);
  }
  return take;
}

// Adds the block's first-pass tallies to the select state (thread 0).
__device__ __forceinline__ void flush_first_pass(const PassTallies& tallies, long long* scratch, SelectState* state) {
  const long long nans = block_sum(tallies.nans, scratch);
  const long long outside = block_sum(tallies.outside, scratch);
  if (threadIdx.x != 0) return;
  if (nans != 0) atomicAdd(&state->nan_total, static_cast<unsigned long long>(nans));
  if (outside != 0) atomicAdd(&state->outside_total, static_cast<unsigned long long>(outside));
}

// A histogram pass over the weights of one chunk table; `out.hist` receives the histogram (PassKind says
// what else). kRefine / kGather read their prefix from `state` and exit when there is nothing to select.
template <typename K, PassKind kKind>
__global__ void __launch_bounds__(kThreads)
    histogram_kernel(const __grid_constant__ ChunkTable table, HistogramPass pass, StatsOut out,
                     SelectState* state, KeyBuffer<typename K::bits_t> buffer) {
  using B = typename K::bits_t;
  constexpr int kLen = Pack<B>::kLen;
  __shared__ unsigned hist[kMaxBins];
  __shared__ ChunkSums chunk_scratch[kWarps];
  __shared__ long long tally_scratch[kWarps];

  uint64_t prefix = pass.prefix, gather_lo = 0, gather_hi = 0;
  if constexpr (kKind == PassKind::kRefine || kKind == PassKind::kGather) {
    if (state->active == 0 || state->from_keys != 0) return;  // block-uniform
    prefix = state->prefix;
    gather_lo = state->gather_lo;
    gather_hi = state->gather_hi;
  }
  zero_shared_histogram(hist, 1 << pass.bits);

  PassTallies tallies{0, 0};
  for_each_chunk(table, [&](const ChunkView& ch, int64_t) {
    const B* data = static_cast<const B*>(ch.data);
    ChunkSums sums{};
    for_each_tile<kLen>(ch, [&](int64_t i) {
      const PackMask m = load_pack_mask<kLen>(ch.mask, i, ch.end);
      // Pruned packs are never read, except by the first pass, which counts the weights that grew back.
      Pack<B> p{};
      if (kKind == PassKind::kFirst ? m.valid != 0 : m.survivors != 0) p = load_pack(data, i, ch.end, ch.vector_ok);
      const unsigned take =
          histogram_pack<K, kKind>(p, m, pass, prefix, gather_lo, gather_hi, hist, sums, tallies);
      if constexpr (kKind == PassKind::kGather) gather_keys<K>(p, take, buffer, state);
    });
    if constexpr (kKind == PassKind::kStats) {
      sums.nans = static_cast<unsigned long long>(tallies.nans);
      tallies.nans = 0;
      const ChunkSums total = block_sum(sums, chunk_scratch);
      if (threadIdx.x == 0) flush_chunk_sums(total, ch.tensor, out);
    }
  });
  if constexpr (kKind == PassKind::kFirst) flush_first_pass(tallies, tally_scratch, state);
  flush_shared_histogram(hist, 1 << pass.bits, out.hist);
}

// A threshold pass over the key buffer instead of the weights: runs only when the select moved there.
template <typename K>
__global__ void __launch_bounds__(kThreads)
    key_histogram_kernel(KeyBuffer<typename K::bits_t> buffer, HistogramPass pass, unsigned long long* out_hist,
                         SelectState* state) {
  __shared__ unsigned hist[kMaxBins];
  if (state->active == 0 || state->from_keys == 0) return;  // block-uniform
  const uint64_t prefix = state->prefix;
  const long long n = static_cast<long long>(state->gathered);  // <= capacity, or from_keys would be 0
  const unsigned bin_mask = (1u << pass.bits) - 1u;
  zero_shared_histogram(hist, 1 << pass.bits);
  // Block-uniform strides, so that every lane of a warp reaches the warp-aggregated histogram add.
  for (long long base = int64_t(blockIdx.x) * kThreads; base < n; base += int64_t(gridDim.x) * kThreads) {
    const long long i = base + threadIdx.x;
    unsigned bin = kNoBin;
    if (i < n) {
      const uint64_t key = buffer.keys[i];
      if ((key >> pass.prefix_shift) == prefix) bin = bin_of(key, pass.shift, bin_mask);
    }
    add_to_shared_histogram(hist, bin);
  }
  flush_shared_histogram(hist, 1 << pass.bits, out_hist);
}

// ------------------------------------------------------------------------------------------------------
// Radix select: one tiny single-block kernel after each histogram pass
// ------------------------------------------------------------------------------------------------------

// What the select kernel after a pass decides besides the next prefix.
struct SelectStep {
  int bits;                 // the pass's bins: 2^bits
  bool first, last;         // the first pass writes info's defaults, the last one the threshold
  bool gathers_next;        // the next pass gathers keys: choose its bin window
  bool after_gather;        // this pass gathered keys: continue from the key buffer if it holds the k-th key
  int next_bits;            // bits of the next pass
  long long key_capacity;   // capacity of the key buffer
};

// The window of sub-bins (of the next pass) whose keys the gathering pass keeps: every sub-bin when the
// whole bin fits the buffer; otherwise sub-bins around the one linear interpolation expects to hold the
// rank-th key (keys are linear in |w| inside one bin), as many as fill half the buffer on average.
__device__ __forceinline__ void choose_gather_window(long long in_bin, long long rank, const SelectStep& step,
                                                     SelectState* state) {
  const long long sub_bins = 1ll << step.next_bits;
  long long lo = 0, hi = sub_bins - 1;
  if (in_bin > step.key_capacity) {
    const long long width = max(1ll, step.key_capacity * sub_bins / (2 * in_bin));
    const long long expected = (rank - 1) * sub_bins / in_bin;
    hi = min(sub_bins - 1, max(0ll, expected - width / 2) + width - 1);
    lo = max(0ll, hi - width + 1);
  }
  state->gather_lo = static_cast<unsigned long long>(lo);
  state->gather_hi = static_cast<unsigned long long>(hi);
}

// Finds the bin holding the k-th smallest key in the pass's histogram (the first bin whose cumulative
// count reaches `remaining`) and appends it to the prefix.
__global__ void __launch_bounds__(kSelectThreads)
    select_kernel(const unsigned long long* hist, SelectStep step, int64_t k, SelectState* state, int64_t* info) {
  using BlockScan = cub::BlockScan<long long, kSelectThreads>;
  __shared__ typename BlockScan::TempStorage scan_storage;
  if (!step.first && state->active == 0) return;  // block-uniform
  const long long remaining = step.first ? static_cast<long long>(k) : state->remaining;
  __syncthreads();  // every thread has read the state before one thread rewrites it

  const int nbins = 1 << step.bits;
  const int per_thread = nbins > kSelectThreads ? nbins / kSelectThreads : 1;
  const int lo = min(int(threadIdx.x) * per_thread, nbins), hi = min(lo + per_thread, nbins);
  long long local = 0;
  for (int b = lo; b < hi; ++b) local += static_cast<long long>(hist[b]);
  long long before, total;
  BlockScan(scan_storage).ExclusiveSum(local, before, total);

  if (step.first) {
    // Defaults for "nothing to prune"; the last pass overwrites the first four slots.
    if (threadIdx.x == 0) {
      info[kInfoKey] = -1;
      info[kInfoBelow] = info[kInfoTies] = info[kInfoEqual] = 0;
      info[kInfoSurvivors] = total;
      info[kInfoNan] = static_cast<int64_t>(state->nan_total);
      info[kInfoOutside] = static_cast<int64_t>(state->outside_total);
    }
    if (k == 0 || k > total) return;  // state->active stays 0 (zero-initialized): later passes skip
  }
  // Exactly one thread's bin range holds the k-th key: counts are non-negative and total >= remaining.
  if (!(before < remaining && remaining <= before + local)) return;
  long long below = before;
  int b = lo;
  while (below + static_cast<long long>(hist[b]) < remaining) below += static_cast<long long>(hist[b++]);
  const unsigned long long prefix = ((step.first ? 0ull : state->prefix) << step.bits) | unsigned(b);
  const long long n_below = (step.first ? 0ll : state->n_below) + below;
  if (step.last) {
    info[kInfoKey] = static_cast<int64_t>(prefix);
    info[kInfoBelow] = n_below;
    info[kInfoTies] = remaining - below;
    info[kInfoEqual] = static_cast<int64_t>(hist[b]);
    return;
  }
  if (step.gathers_next) choose_gather_window(static_cast<long long>(hist[b]), remaining - below, step, state);
  if (step.after_gather)
    state->from_keys = unsigned(b) >= state->gather_lo && unsigned(b) <= state->gather_hi &&
                       state->gathered <= static_cast<unsigned long long>(step.key_capacity);
  state->prefix = prefix;
  state->n_below = n_below;
  state->remaining = remaining - below;
  state->active = 1;
}

// ------------------------------------------------------------------------------------------------------
// apply_threshold_
// ------------------------------------------------------------------------------------------------------

// The pruning rule encoded by info (read on the device by every block).
struct ThresholdPlan {
  uint64_t key;       // the threshold key
  uint64_t cut;       // survivors with key < cut are pruned (0: none)
  long long n_ties;   // how many survivors at `key` are pruned, in model order
  bool partial_ties;  // some but not all survivors at `key` are pruned: they must be ranked
};

// Nothing is pruned when info says so (key -1) or when the threshold saw NaN survivors, which cannot be
// ranked: the Python API raises for those, lazily on a GPU, so the kernel must not have pruned meanwhile.
__device__ __forceinline__ ThresholdPlan read_plan(const int64_t* info) {
  const long long key = info[kInfoKey], n_ties = info[kInfoTies], n_equal = info[kInfoEqual];
  ThresholdPlan plan{0, 0, n_ties, false};
  if (key < 0 || info[kInfoNan] != 0) return plan;
  plan.key = uint64_t(key);
  plan.partial_ties = n_ties > 0 && n_ties < n_equal;
  plan.cut = n_ties > 0 && n_ties == n_equal ? plan.key + 1 : plan.key;  // all ties go: prune key <= thr
  return plan;
}

// Per chunk: the surviving ties (key == threshold). Needed only when ties are split; exits otherwise.
template <typename K>
__global__ void __launch_bounds__(kThreads)
    count_ties_kernel(const __grid_constant__ ChunkTable table, const int64_t* info, long long* tie_counts) {
  using B = typename K::bits_t;
  constexpr int kLen = Pack<B>::kLen;
  __shared__ long long scratch[kWarps];
  const ThresholdPlan plan = read_plan(info);
  if (!plan.partial_ties) return;  // block-uniform
  for_each_chunk(table, [&](const ChunkView& ch, int64_t c) {
    const B* data = static_cast<const B*>(ch.data);
    long long ties = 0;
    for_each_tile<kLen>(ch, [&](int64_t i) {
      const PackMask m = load_pack_mask<kLen>(ch.mask, i, ch.end);
      if (m.survivors == 0) return;
      const Pack<B> p = load_pack(data, i, ch.end, ch.vector_ok);
#pragma unroll
      for (int j = 0; j < kLen; ++j) ties += ((m.survivors >> j) & 1u) && uint64_t(K::key(p.v[j])) == plan.key;
    });
    ties = block_sum(ties, scratch);
    if (threadIdx.x == 0) tie_counts[c] = ties;
  });
}

// In place: per-chunk tie counts -> ties in all earlier chunks (model order = chunk order). One block.
__global__ void __launch_bounds__(kScanThreads) scan_tie_counts_kernel(const int64_t* info, long long* ties,
                                                                        int64_t n_chunks) {
  using BlockScan = cub::BlockScan<long long, kScanThreads>;
  __shared__ typename BlockScan::TempStorage scan_storage;
  if (!read_plan(info).partial_ties) return;  // block-uniform
  long long carry = 0;                         // ties in the tiles already scanned
  for (int64_t base = 0; base < n_chunks; base += int64_t(kScanThreads) * kScanItems) {
    const int64_t first = base + int64_t(threadIdx.x) * kScanItems;
    long long items[kScanItems];
#pragma unroll
    for (int j = 0; j < kScanItems; ++j) items[j] = first + j < n_chunks ? ties[first + j] : 0;
    long long tile_total;
    BlockScan(scan_storage).ExclusiveSum(items, items, tile_total);
#pragma unroll
    for (int j = 0; j < kScanItems; ++j)
      if (first + j < n_chunks) ties[first + j] = carry + items[j];
    carry += tile_total;
    __syncthreads();  // scan_storage is reused by the next tile
  }
}

// Which of this thread's ties (bit j: element j of its pack) survive. A tie's model-order rank is the
// number of ties before it: in earlier chunks and tiles (`ties_before`, block-uniform, advanced by this
// tile's total), in earlier warps of the tile, earlier lanes of the warp, and earlier elements of the
// pack. Block-uniform call.
template <int kLen>
__device__ __forceinline__ unsigned surviving_ties(unsigned ties, long long n_ties, long long& ties_before,
                                                   int* warp_ties) {
  static_assert(kLen <= 8, "lane tie counts must fit in 4 bits");
  const int warp = threadIdx.x / 32;
  int lane_before, warp_total;
  warp_count(__popc(ties), lane_before, warp_total);
  if (threadIdx.x % 32 == 0) warp_ties[warp] = warp_total;
  __syncthreads();
  int warp_before = 0, tile_total = 0;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    warp_before += w < warp ? warp_ties[w] : 0;
    tile_total += warp_ties[w];
  }
  __syncthreads();  // warp_ties is rewritten by the next tile
  long long rank = ties_before + warp_before + lane_before;
  ties_before += tile_total;
  unsigned survive = 0;
  for (unsigned t = ties; t != 0; t &= t - 1)  // in element order
    if (rank++ >= n_ties) survive |= t & (~t + 1u);
  return survive;
}

// The mask word of the lanes sharing the word of the pack at element i: the OR of their packs' bits (bit j of
// `bits`: element i + j), in every one of those lanes. Every lane of the warp must call it.
template <int kLen>
__device__ __forceinline__ unsigned word_of_lanes(int64_t i, unsigned bits) {
  unsigned word = bits << (i & 31);
#pragma unroll
  for (int offset = 1; offset < 32 / kLen; offset *= 2) word |= __shfl_xor_sync(kFullMask, word, offset);
  return word;
}

// The new mask word of the lanes sharing this pack's word (OR of their keep bits); its first lane stores it
// if it changed (tail bits past the tensor's end become 0). Every lane of the warp must call it.
template <int kLen>
__device__ __forceinline__ void store_mask_word(uint32_t* mask, int64_t i, const PackMask& m, unsigned keep) {
  const unsigned word = word_of_lanes<kLen>(i, keep);
  if (m.valid && (i & 31) == 0 && word != m.word) mask[i >> 5] = word;
}

// Every valid weight whose bit is now 0 becomes +0.0 (bit pattern 0); only changed weights are written.
template <typename B>
__device__ __forceinline__ void zero_dropped(B* data, int64_t i, const Pack<B>& p, const PackMask& m, unsigned keep,
                                             bool vector_ok) {
  constexpr int kLen = Pack<B>::kLen;
  unsigned dirty = 0;
#pragma unroll
  for (int j = 0; j < kLen; ++j) dirty |= unsigned(p.v[j] != 0) << j;
  dirty &= m.valid & ~keep;
  if (dirty == 0) return;
  if (vector_ok && m.valid == (1u << kLen) - 1u) {
    Pack<B> q = p;
#pragma unroll
    for (int j = 0; j < kLen; ++j)
      if ((dirty >> j) & 1u) q.v[j] = 0;
    store_pack(data, i, q);
  } else {
#pragma unroll
    for (int j = 0; j < kLen; ++j)
      if ((dirty >> j) & 1u) data[i + j] = 0;
  }
}

// Prunes: writes back the mask words and, with kWeights (apply_threshold_), the weights and the survivors'
// statistics; without it (threshold_masks_) the tensors are only read and `out` is not used.
template <typename K, bool kWeights>
__global__ void __launch_bounds__(kThreads)
    apply_threshold_kernel(const __grid_constant__ ChunkTable table, const int64_t* info,
                           const long long* tie_offsets, HistogramPass pass, StatsOut out) {
  using B = typename K::bits_t;
  constexpr int kLen = Pack<B>::kLen;
  __shared__ unsigned hist[kWeights ? kMaxBins : 1];
  __shared__ ChunkSums chunk_scratch[kWarps];
  __shared__ int warp_ties[kWarps];

  const ThresholdPlan plan = read_plan(info);
  if (kWeights) zero_shared_histogram(hist, 1 << pass.bits);

  for_each_chunk(table, [&](const ChunkView& ch, int64_t c) {
    B* data = static_cast<B*>(ch.data);
    long long ties_before = plan.partial_ties ? tie_offsets[c] : 0;
    ChunkSums sums{};
    PassTallies tallies{0, 0};
    for_each_tile<kLen>(ch, [&](int64_t i) {
      const PackMask m = load_pack_mask<kLen>(ch.mask, i, ch.end);
      // Every pack is read, pruned ones too: their weights must end up +0.0.
      const Pack<B> p = m.valid ? load_pack(data, i, ch.end, ch.vector_ok) : Pack<B>{};
      unsigned keep = 0, ties = 0;
#pragma unroll
      for (int j = 0; j < kLen; ++j) {
        const uint64_t key = K::key(p.v[j]);
        if (!((m.survivors >> j) & 1u)) continue;
        if (plan.partial_ties && key == plan.key) ties |= 1u << j;
        else if (key >= plan.cut) keep |= 1u << j;
      }
      if (plan.partial_ties) keep |= surviving_ties<kLen>(ties, plan.n_ties, ties_before, warp_ties);
      store_mask_word<kLen>(ch.mask, i, m, keep);
      if constexpr (kWeights) {
        zero_dropped(data, i, p, m, keep, ch.vector_ok);
        const PackMask kept{m.word, keep, m.valid};
        histogram_pack<K, PassKind::kStats>(p, kept, pass, 0, 0, 0, hist, sums, tallies);
      }
    });
    if constexpr (kWeights) {
      sums.nans = static_cast<unsigned long long>(tallies.nans);
      const ChunkSums total = block_sum(sums, chunk_scratch);
      if (threadIdx.x == 0) flush_chunk_sums(total, ch.tensor, out);
    }
  });
  if (kWeights) flush_shared_histogram(hist, 1 << pass.bits, out.hist);
}

// ------------------------------------------------------------------------------------------------------
// apply_masks_
// ------------------------------------------------------------------------------------------------------

// Zeroes the elements whose mask bit is 0, on raw bits of element type E (any dtype of that size).
// Element values are never read: pruned elements are written, fully surviving packs skipped.
template <typename E>
__global__ void __launch_bounds__(kThreads) zero_pruned_kernel(const __grid_constant__ ChunkTable table) {
  constexpr int kLen = Pack<E>::kLen;
  for_each_chunk(table, [&](const ChunkView& ch, int64_t) {
    E* data = static_cast<E*>(ch.data);
    for_each_tile<kLen>(ch, [&](int64_t i) {
      const PackMask m = load_pack_mask<kLen>(ch.mask, i, ch.end);
      const unsigned pruned = m.valid & ~m.survivors;
      if (pruned == 0) return;
      if (ch.vector_ok && pruned == (1u << kLen) - 1u) {
        store_pack(data, i, Pack<E>{});
      } else {
#pragma unroll
        for (int j = 0; j < kLen; ++j)
          if ((pruned >> j) & 1u) data[i + j] = E(0);
      }
    });
  });
}

// ------------------------------------------------------------------------------------------------------
// masks_where_one_
// ------------------------------------------------------------------------------------------------------

// Writes every mask word of the chunks: bit j of word w is 1 when element 32 * w + j has the bit pattern
// of 1.0 (K::one). The lanes sharing a word OR their pack's bits; its first lane stores it. Bits past the
// tensor's end are 0 (load_pack reads zeros there).
template <typename K>
__global__ void __launch_bounds__(kThreads) ones_to_bits_kernel(const __grid_constant__ ChunkTable table) {
  using B = typename K::bits_t;
  constexpr int kLen = Pack<B>::kLen;
  for_each_chunk(table, [&](const ChunkView& ch, int64_t) {
    const B* data = static_cast<const B*>(ch.data);
    for_each_tile<kLen>(ch, [&](int64_t i) {
      const Pack<B> p = load_pack(data, i, ch.end, ch.vector_ok);
      unsigned bits = 0;
#pragma unroll
      for (int j = 0; j < kLen; ++j) bits |= unsigned(p.v[j] == K::one) << j;
      const unsigned word = word_of_lanes<kLen>(i, bits);
      if (i < ch.end && (i & 31) == 0) ch.mask[i >> 5] = word;
    });
  });
}

}  // namespace cuda
}  // namespace rgprune
