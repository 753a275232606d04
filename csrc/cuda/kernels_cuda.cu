// CUDA kernels: one launch walks all tensors of a list (multi_tensor.cuh), block histograms live in
// shared memory (survivor_stats.cuh), and nothing ever waits for the device: the radix select runs its
// passes and their bin selection entirely on the GPU, and apply_threshold_ reads the threshold from the
// device. Semantics: rgprune/kernels/reference.py; the algorithm follows the CPU kernels in csrc/cpu/ (threshold_cpu.cpp, apply_cpu.cpp).

// c10's stream header rather than ATen/cuda/CUDAContext.h (the same current stream), which would also
// pull in the cuSPARSE/cuBLAS headers that a minimal CUDA toolkit lacks.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <initializer_list>
#include <vector>

#include "../rgprune.h"
#include "multi_tensor.cuh"
#include "survivor_stats.cuh"

namespace rgprune {
namespace cuda {
namespace {

// Which keys a histogram pass counts and into which bin.
struct HistogramPass {
  int bits;          // 2^bits bins
  int shift;         // bin = (key >> shift) & (2^bits - 1)
  int prefix_shift;  // refinement passes count only keys with (key >> prefix_shift) == the selected prefix
};

// Device state of the radix select, handed from each select kernel to the next histogram pass.
struct SelectState {
  unsigned long long nan_total;  // surviving NaN weights, counted by the first pass
  unsigned long long prefix;     // the top bits of the k-th smallest key resolved so far
  long long remaining;           // rank (1-based) of the k-th key among the keys with that prefix
  long long n_below;             // survivors whose key is below every key with that prefix
  long long active;              // 0: nothing (more) to select, the remaining passes exit at once
};
constexpr int64_t kStateWords = sizeof(SelectState) / sizeof(int64_t);
static_assert(sizeof(SelectState) % sizeof(int64_t) == 0, "SelectState is stored in an int64 tensor");

constexpr int kSelectThreads = 256;
constexpr int kScanThreads = 512;
constexpr int kScanItems = 4;

// ------------------------------------------------------------------------------------------------------
// Histogram passes: magnitude_histogram (kStats) and the radix-select passes
// ------------------------------------------------------------------------------------------------------

// kStats: also per-tensor counts, sums and NaN counts (out.*). Otherwise a radix pass: the first one
// (!kRefine) counts NaN survivors into state->nan_total; refinement passes (kRefine) count only the keys
// under the prefix selected so far, read from `state`.
template <typename K, bool kStats, bool kRefine>
__global__ void __launch_bounds__(kThreads)
    histogram_kernel(const TensorMeta* meta, int n_tensors, int64_t n_chunks, HistogramPass pass, StatsOut out,
                     SelectState* state) {
  using B = typename K::bits_t;
  constexpr int kLen = Pack<B>::kLen;
  __shared__ unsigned hist[kMaxBins];
  __shared__ ChunkSums chunk_scratch[kWarps];
  __shared__ long long nan_scratch[kWarps];

  uint64_t prefix = 0;
  if constexpr (kRefine) {
    if (state->active == 0) return;  // block-uniform
    prefix = state->prefix;
  }
  const int nbins = 1 << pass.bits;
  const unsigned bin_mask = unsigned(nbins) - 1u;
  zero_shared_histogram(hist, nbins);

  long long block_nans = 0;  // radix passes: this thread's NaN survivors over all its chunks
  for_each_chunk(meta, n_tensors, n_chunks, [&](const ChunkView& ch, int64_t) {
    const B* data = static_cast<const B*>(ch.data);
    ChunkSums sums{};
    for_each_tile<kLen>(ch, [&](int64_t i) {
      const PackMask m = load_pack_mask<kLen>(ch.mask, i, ch.end);
      Pack<B> p{};
      if (m.survivors) p = load_pack(data, i, ch.end, ch.vector_ok);  // pruned packs are never read
#pragma unroll
      for (int j = 0; j < kLen; ++j) {
        const B key = K::key(p.v[j]);
        unsigned bin = kNoBin;
        if ((m.survivors >> j) & 1u) {
          if (K::is_nan(key)) {
            ++sums.nans;
          } else if (!kRefine || (uint64_t(key) >> pass.prefix_shift) == prefix) {
            bin = bin_of(key, pass.shift, bin_mask);
            if constexpr (kStats) sums.add(magnitude_of<K>(key));
          }
        }
        add_to_shared_histogram(hist, bin);
      }
    });
    if constexpr (kStats) {
      const ChunkSums total = block_sum(sums, chunk_scratch);
      if (threadIdx.x == 0) flush_chunk_sums(total, ch.tensor, out);
    } else {
      block_nans += sums.nans;
    }
  });
  if constexpr (!kStats && !kRefine) {
    const long long nans = block_sum(block_nans, nan_scratch);
    if (threadIdx.x == 0 && nans != 0) atomicAdd(&state->nan_total, static_cast<unsigned long long>(nans));
  }
  flush_shared_histogram(hist, nbins, out.hist);
}

// ------------------------------------------------------------------------------------------------------
// Radix select: one tiny single-block kernel after each histogram pass
// ------------------------------------------------------------------------------------------------------

// Finds the bin holding the k-th smallest key in the pass's histogram (the first bin whose cumulative
// count reaches `remaining`) and appends it to the prefix. The first pass also decides whether there
// is anything to select and writes info's defaults; the last pass writes the threshold into info.
__global__ void __launch_bounds__(kSelectThreads)
    select_kernel(const long long* hist, int bits, bool first, bool last, int64_t k, SelectState* state,
                  int64_t* info) {
  using BlockScan = cub::BlockScan<long long, kSelectThreads>;
  __shared__ typename BlockScan::TempStorage scan_storage;
  if (!first && state->active == 0) return;  // block-uniform
  const long long remaining = first ? static_cast<long long>(k) : state->remaining;
  __syncthreads();  // every thread has read the state before one thread rewrites it

  const int nbins = 1 << bits;
  const int per_thread = nbins > kSelectThreads ? nbins / kSelectThreads : 1;
  const int lo = min(int(threadIdx.x) * per_thread, nbins), hi = min(lo + per_thread, nbins);
  long long local = 0;
  for (int b = lo; b < hi; ++b) local += hist[b];
  long long before, total;
  BlockScan(scan_storage).ExclusiveSum(local, before, total);

  if (first) {
    // Defaults for "nothing to prune"; the last pass overwrites the first four slots.
    if (threadIdx.x == 0) {
      info[kInfoKey] = -1;
      info[kInfoBelow] = info[kInfoTies] = info[kInfoEqual] = 0;
      info[kInfoSurvivors] = total;
      info[kInfoNan] = static_cast<int64_t>(state->nan_total);
    }
    if (k == 0 || k > total) return;  // state->active stays 0 (zero-initialized): later passes skip
  }
  // Exactly one thread's bin range holds the k-th key: counts are non-negative and total >= remaining.
  if (!(before < remaining && remaining <= before + local)) return;
  long long below = before;
  int b = lo;
  while (below + hist[b] < remaining) below += hist[b++];
  const unsigned long long prefix = ((first ? 0ull : state->prefix) << bits) | unsigned(b);
  const long long n_below = (first ? 0ll : state->n_below) + below;
  if (last) {
    info[kInfoKey] = static_cast<int64_t>(prefix);
    info[kInfoBelow] = n_below;
    info[kInfoTies] = remaining - below;
    info[kInfoEqual] = hist[b];
  } else {
    state->prefix = prefix;
    state->n_below = n_below;
    state->remaining = remaining - below;
    state->active = 1;
  }
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

__device__ __forceinline__ ThresholdPlan read_plan(const int64_t* info) {
  const long long key = info[kInfoKey], n_ties = info[kInfoTies], n_equal = info[kInfoEqual];
  ThresholdPlan plan{0, 0, n_ties, false};
  if (key < 0) return plan;  // nothing to prune
  plan.key = uint64_t(key);
  plan.partial_ties = n_ties > 0 && n_ties < n_equal;
  plan.cut = n_ties > 0 && n_ties == n_equal ? plan.key + 1 : plan.key;  // all ties go: prune key <= thr
  return plan;
}

// Per chunk: the surviving ties (key == threshold). Needed only when ties are split; exits otherwise.
template <typename K>
__global__ void __launch_bounds__(kThreads)
    count_ties_kernel(const TensorMeta* meta, int n_tensors, int64_t n_chunks, const int64_t* info,
                      long long* tie_counts) {
  using B = typename K::bits_t;
  constexpr int kLen = Pack<B>::kLen;
  __shared__ long long scratch[kWarps];
  const ThresholdPlan plan = read_plan(info);
  if (!plan.partial_ties) return;  // block-uniform
  for_each_chunk(meta, n_tensors, n_chunks, [&](const ChunkView& ch, int64_t c) {
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
// tile's total), in earlier warps of the tile, earlier lanes of the warp (counted from ballots of the
// bits of each lane's tie count, at most 8), and earlier elements of the pack. Block-uniform call.
template <int kLen>
__device__ __forceinline__ unsigned surviving_ties(unsigned ties, long long n_ties, long long& ties_before,
                                                   int* warp_ties) {
  static_assert(kLen <= 8, "lane tie counts must fit in 4 bits");
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int mine = __popc(ties);
  const unsigned lanes_below = (1u << lane) - 1u;
  int lane_before = 0, warp_total = 0;
#pragma unroll
  for (int bit = 0; bit < 4; ++bit) {
    const unsigned has = __ballot_sync(kFullMask, (mine >> bit) & 1);
    lane_before += __popc(has & lanes_below) << bit;
    warp_total += __popc(has) << bit;
  }
  if (lane == 0) warp_ties[warp] = warp_total;
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

// Prunes, writes back weights and mask words, and accumulates the survivors' statistics.
template <typename K>
__global__ void __launch_bounds__(kThreads)
    apply_threshold_kernel(const TensorMeta* meta, int n_tensors, int64_t n_chunks, const int64_t* info,
                           const long long* tie_offsets, HistogramPass pass, StatsOut out) {
  using B = typename K::bits_t;
  constexpr int kLen = Pack<B>::kLen;
  constexpr int kLanesPerWord = 32 / kLen;
  __shared__ unsigned hist[kMaxBins];
  __shared__ ChunkSums chunk_scratch[kWarps];
  __shared__ int warp_ties[kWarps];

  const ThresholdPlan plan = read_plan(info);
  const int nbins = 1 << pass.bits;
  const unsigned bin_mask = unsigned(nbins) - 1u;
  zero_shared_histogram(hist, nbins);

  for_each_chunk(meta, n_tensors, n_chunks, [&](const ChunkView& ch, int64_t c) {
    B* data = static_cast<B*>(ch.data);
    long long ties_before = plan.partial_ties ? tie_offsets[c] : 0;
    ChunkSums sums{};
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

      // New mask word: OR of the keep bits of the lanes sharing it; its first lane stores it if changed
      // (tail bits past the tensor's end become 0).
      unsigned word = keep << (i & 31);
#pragma unroll
      for (int offset = 1; offset < kLanesPerWord; offset *= 2) word |= __shfl_xor_sync(kFullMask, word, offset);
      if (m.valid && (i & 31) == 0 && word != m.word) ch.mask[i >> 5] = word;

      // Every weight whose bit is now 0 becomes +0.0 (bit pattern 0); only changed weights are written.
      unsigned dirty = 0;
#pragma unroll
      for (int j = 0; j < kLen; ++j) dirty |= unsigned(p.v[j] != 0) << j;
      dirty &= m.valid & ~keep;
      if (dirty != 0) {
        if (ch.vector_ok && m.valid == (1u << kLen) - 1u) {
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

#pragma unroll
      for (int j = 0; j < kLen; ++j) {
        const B key = K::key(p.v[j]);
        unsigned bin = kNoBin;
        if ((keep >> j) & 1u) {
          if (K::is_nan(key)) {
            ++sums.nans;
          } else {
            bin = bin_of(key, pass.shift, bin_mask);
            sums.add(magnitude_of<K>(key));
          }
        }
        add_to_shared_histogram(hist, bin);
      }
    });
    const ChunkSums total = block_sum(sums, chunk_scratch);
    if (threadIdx.x == 0) flush_chunk_sums(total, ch.tensor, out);
  });
  flush_shared_histogram(hist, nbins, out.hist);
}

// ------------------------------------------------------------------------------------------------------
// apply_masks_
// ------------------------------------------------------------------------------------------------------

// Zeroes the elements whose mask bit is 0, on raw bits of element type E (any dtype of that size).
// Element values are never read: pruned elements are written, fully surviving packs skipped.
template <typename E>
__global__ void __launch_bounds__(kThreads)
    zero_pruned_kernel(const TensorMeta* meta, int n_tensors, int64_t n_chunks) {
  constexpr int kLen = Pack<E>::kLen;
  for_each_chunk(meta, n_tensors, n_chunks, [&](const ChunkView& ch, int64_t) {
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
// Host side
// ------------------------------------------------------------------------------------------------------

unsigned long long* u64_ptr(const at::Tensor& t) { return reinterpret_cast<unsigned long long*>(t.data_ptr<int64_t>()); }

Stats zero_stats(const at::TensorList& tensors, int64_t bits) {
  const auto opts = tensors[0].options();
  const int64_t n = int64_t(tensors.size());
  return {at::zeros({int64_t(1) << bits}, opts.dtype(at::kLong)), at::zeros({n}, opts.dtype(at::kLong)),
          at::zeros({n}, opts.dtype(at::kDouble)), at::zeros({n}, opts.dtype(at::kDouble)),
          at::zeros({n}, opts.dtype(at::kLong))};
}

StatsOut stats_out(const Stats& s) {
  return StatsOut{u64_ptr(std::get<0>(s)), u64_ptr(std::get<1>(s)), std::get<2>(s).data_ptr<double>(),
                  std::get<3>(s).data_ptr<double>(), u64_ptr(std::get<4>(s))};
}

template <typename K, bool kStats, bool kRefine>
void launch_histogram(const ChunkTable& table, const HistogramPass& pass, const StatsOut& out,
                      SelectState* state) {
  const auto kernel = histogram_kernel<K, kStats, kRefine>;
  kernel<<<grid_for(kernel, table.n_chunks), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      table.data(), table.n_tensors, table.n_chunks, pass, out, state);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

Stats magnitude_histogram_cuda(at::TensorList tensors, at::TensorList masks, int64_t bits) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  check_bits(bits, tensors[0].scalar_type());
  const c10::cuda::CUDAGuard guard(tensors[0].device());
  Stats stats = zero_stats(tensors, bits);
  const ChunkTable table = make_chunk_table(tensors, masks, all_indices(tensors.size()));
  if (table.n_chunks > 0) {
    dispatch_keys(tensors[0].scalar_type(), [&](auto traits) {
      using K = decltype(traits);
      const HistogramPass pass{int(bits), K::key_bits - int(bits), 0};
      launch_histogram<K, true, false>(table, pass, stats_out(stats), nullptr);
    });
  }
  return stats;
}

// Radix select by histogram refinement, as on the CPU, with every decision taken on the device: pass p
// histograms the next min(12, remaining) key bits of the survivors under the prefix chosen so far, and a
// select kernel extends the prefix. Passes: 2 for 15-bit keys, 3 for 31-bit, 6 for 63-bit.
template <typename K>
void radix_select(const ChunkTable& table, int64_t k, const at::Tensor& top, const at::Tensor& info,
                  const at::Tensor& state_words) {
  constexpr int kb = K::key_bits;
  static_assert(kb > kRadixBits, "the first select pass must not be the last (both would write info)");
  std::vector<int> pass_bits;
  int64_t refine_bins = 0;
  for (int consumed = 0; consumed < kb; consumed += pass_bits.back()) {
    pass_bits.push_back(std::min(kRadixBits, kb - consumed));
    if (consumed > 0) refine_bins += int64_t(1) << pass_bits.back();
  }
  const at::Tensor refine_hists = at::zeros({refine_bins}, top.options());
  auto* state = reinterpret_cast<SelectState*>(state_words.data_ptr<int64_t>());
  const auto stream = c10::cuda::getCurrentCUDAStream();

  int consumed = 0;
  int64_t refine_offset = 0;
  for (size_t p = 0; p < pass_bits.size(); ++p) {
    const int bits = pass_bits[p];
    const HistogramPass pass{bits, kb - consumed - bits, kb - consumed};
    unsigned long long* hist = p == 0 ? u64_ptr(top) : u64_ptr(refine_hists) + refine_offset;
    const StatsOut out{hist, nullptr, nullptr, nullptr, nullptr};
    if (table.n_chunks > 0) {
      if (p == 0) launch_histogram<K, false, false>(table, pass, out, state);
      else launch_histogram<K, false, true>(table, pass, out, state);
    }
    consumed += bits;
    select_kernel<<<1, kSelectThreads, 0, stream>>>(reinterpret_cast<const long long*>(hist), bits, p == 0,
                                                    consumed == kb, k, state, info.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (p > 0) refine_offset += int64_t(1) << bits;
  }
}

std::tuple<at::Tensor, at::Tensor> global_magnitude_threshold_cuda(at::TensorList tensors, at::TensorList masks,
                                                                   int64_t k) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  TORCH_CHECK(k >= 0, "rgprune: k must be >= 0, got ", k);
  const c10::cuda::CUDAGuard guard(tensors[0].device());
  const auto long_opts = tensors[0].options().dtype(at::kLong);
  const at::Tensor top = at::zeros({int64_t(1) << kRadixBits}, long_opts);
  const at::Tensor info = at::empty({kInfoLen}, long_opts);  // written by the first select kernel
  const at::Tensor state = at::zeros({kStateWords}, long_opts);
  const ChunkTable table = make_chunk_table(tensors, masks, all_indices(tensors.size()));
  dispatch_keys(tensors[0].scalar_type(), [&](auto traits) {
    radix_select<decltype(traits)>(table, k, top, info, state);
  });
  return {info, top};
}

// Three launches: tie counts per chunk and their scan (both exit at once unless ties are split, which
// they learn from info on the device), then the pruning pass.
template <typename K>
void launch_apply_threshold(const ChunkTable& table, const at::Tensor& info, int64_t bits, const StatsOut& out) {
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t* info_ptr = info.data_ptr<int64_t>();
  const at::Tensor tie_offsets = at::empty({table.n_chunks}, info.options());
  auto* ties = reinterpret_cast<long long*>(tie_offsets.data_ptr<int64_t>());

  const auto count = count_ties_kernel<K>;
  count<<<grid_for(count, table.n_chunks), kThreads, 0, stream>>>(table.data(), table.n_tensors, table.n_chunks,
                                                                  info_ptr, ties);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  scan_tie_counts_kernel<<<1, kScanThreads, 0, stream>>>(info_ptr, ties, table.n_chunks);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  const HistogramPass pass{int(bits), K::key_bits - int(bits), 0};
  const auto apply = apply_threshold_kernel<K>;
  apply<<<grid_for(apply, table.n_chunks), kThreads, 0, stream>>>(table.data(), table.n_tensors, table.n_chunks,
                                                                  info_ptr, ties, pass, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

Stats apply_threshold_cuda(at::TensorList tensors, at::TensorList masks, const at::Tensor& info, int64_t bits) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  check_bits(bits, tensors[0].scalar_type());
  TORCH_CHECK(info.scalar_type() == at::kLong && info.numel() == kInfoLen,
              "rgprune: info must be the int64 vector returned by global_magnitude_threshold");
  TORCH_CHECK(info.device() == tensors[0].device(), "rgprune: info is on ", info.device(), " but the tensors are on ",
              tensors[0].device(), "; pass the info computed for these tensors");
  const c10::cuda::CUDAGuard guard(tensors[0].device());
  const at::Tensor plan_info = info.contiguous();
  Stats stats = zero_stats(tensors, bits);
  const ChunkTable table = make_chunk_table(tensors, masks, all_indices(tensors.size()));
  if (table.n_chunks > 0) {
    dispatch_keys(tensors[0].scalar_type(), [&](auto traits) {
      launch_apply_threshold<decltype(traits)>(table, plan_info, bits, stats_out(stats));
    });
  }
  return stats;
}

template <typename E>
void launch_zero_pruned(const ChunkTable& table) {
  const auto kernel = zero_pruned_kernel<E>;
  kernel<<<grid_for(kernel, table.n_chunks), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      table.data(), table.n_tensors, table.n_chunks);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// One launch per element size present (the kernels work on raw bits, so dtypes of one size share it).
void apply_masks_cuda(at::TensorList tensors, at::TensorList masks) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/false);
  const c10::cuda::CUDAGuard guard(tensors[0].device());
  for (const int64_t size : {2, 4, 8}) {
    std::vector<size_t> which;
    for (size_t i = 0; i < tensors.size(); ++i)
      if (tensors[i].element_size() == size) which.push_back(i);
    if (which.empty()) continue;
    const ChunkTable table = make_chunk_table(tensors, masks, which);
    if (table.n_chunks == 0) continue;
    if (size == 2) launch_zero_pruned<uint16_t>(table);
    else if (size == 4) launch_zero_pruned<uint32_t>(table);
    else launch_zero_pruned<uint64_t>(table);
  }
}

}  // namespace
}  // namespace cuda
}  // namespace rgprune

TORCH_LIBRARY_IMPL(rgprune, CUDA, m) {
  m.impl("magnitude_histogram", &rgprune::cuda::magnitude_histogram_cuda);
  m.impl("global_magnitude_threshold", &rgprune::cuda::global_magnitude_threshold_cuda);
  m.impl("apply_threshold_", &rgprune::cuda::apply_threshold_cuda);
  m.impl("apply_masks_", &rgprune::cuda::apply_masks_cuda);
}
