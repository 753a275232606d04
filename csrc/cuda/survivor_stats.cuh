// Block-level accumulation of the survivors' statistics: shared-memory histograms with warp-aggregated
// atomics, and per-chunk counts and float64 sums reduced over the block.
#pragma once

#include <type_traits>

#include "../format.h"
#include "device.cuh"
#include "multi_tensor.cuh"

namespace rgprune {
namespace cuda {

constexpr int kMaxBins = 1 << kMaxHistBits;  // 4096 32-bit counters: 16 KB of shared memory
constexpr unsigned kNoBin = 0xffffffffu;     // a lane with nothing to count

// ------------------------------------------------------------------------------------------------------
// Shared-memory histogram
// ------------------------------------------------------------------------------------------------------

__device__ __forceinline__ void zero_shared_histogram(unsigned* hist, int nbins) {
  for (int b = threadIdx.x; b < nbins; b += kThreads) hist[b] = 0;
  __syncthreads();
}

// Adds one count per lane to bin `bin` (kNoBin: nothing). Lanes hitting the same bin are grouped and
// their leader adds the group size: one shared atomic per distinct bin instead of one per lane, which
// matters because weight magnitudes crowd into a few bins. Every lane of the warp must call it.
__device__ __forceinline__ void add_to_shared_histogram(unsigned* hist, unsigned bin) {
  if (!__any_sync(kFullMask, bin != kNoBin)) return;  // warp-uniform: common in sparse masks
  const unsigned peers = __match_any_sync(kFullMask, bin);
  const int leader = __ffs(peers) - 1;
  if (bin != kNoBin && int(threadIdx.x % 32) == leader) atomicAdd(&hist[bin], unsigned(__popc(peers)));
}

// Adds the block's histogram to the global int64 histogram, skipping empty bins.
__device__ __forceinline__ void flush_shared_histogram(const unsigned* hist, int nbins, unsigned long long* out) {
  __syncthreads();
  for (int b = threadIdx.x; b < nbins; b += kThreads)
    if (hist[b] != 0) atomicAdd(&out[b], static_cast<unsigned long long>(hist[b]));
}

// ------------------------------------------------------------------------------------------------------
// Block sums
// ------------------------------------------------------------------------------------------------------

// Statistics of the survivors of one chunk (or, per thread, of its share of it). An aggregate without
// member initializers (value-initialize with {}), so that it may live in shared memory.
struct ChunkSums {
  unsigned long long count, nans;
  double abs_sum, sq_sum;

  __device__ __forceinline__ void add(double magnitude) {
    ++count;
    abs_sum += magnitude;
    sq_sum += magnitude * magnitude;
  }
};

__device__ __forceinline__ long long warp_sum(long long v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(kFullMask, v, offset);
  return v;
}

__device__ __forceinline__ ChunkSums warp_sum(ChunkSums s) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    s.count += __shfl_down_sync(kFullMask, s.count, offset);
    s.nans += __shfl_down_sync(kFullMask, s.nans, offset);
    s.abs_sum += __shfl_down_sync(kFullMask, s.abs_sum, offset);
    s.sq_sum += __shfl_down_sync(kFullMask, s.sq_sum, offset);
  }
  return s;
}

// Sum over the block, valid in thread 0. `scratch` holds kWarps values; the trailing barrier lets the
// caller reuse it at once. Every thread of the block must call it; every warp sums the warp totals (only
// warp 0's result is used), so no warp-synchronous call sits in code that only some warps run.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  v = warp_sum(v);
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  v = warp_sum(lane < kWarps ? scratch[lane] : T{});
  __syncthreads();
  return v;
}

// Counts of 0..15 per lane, summed over the warp from 4 ballots of their bits: the lanes below this one
// (`before`) and the whole warp (`total`). Every lane of the warp must call it.
__device__ __forceinline__ void warp_count(int mine, int& before, int& total) {
  const unsigned lanes_below = (1u << (threadIdx.x % 32)) - 1u;
  before = total = 0;
#pragma unroll
  for (int bit = 0; bit < 4; ++bit) {
    const unsigned has = __ballot_sync(kFullMask, (mine >> bit) & 1);
    before += __popc(has & lanes_below) << bit;
    total += __popc(has) << bit;
  }
}

// Per-tensor outputs of a statistics pass (int64 / float64 tensors of one entry per tensor).
struct StatsOut {
  unsigned long long* hist;
  unsigned long long* counts;
  double* abs_sums;
  double* sq_sums;
  unsigned long long* nans;
};

// Called by thread 0 with a chunk's block sums.
__device__ __forceinline__ void flush_chunk_sums(const ChunkSums& s, int tensor, const StatsOut& out) {
  if (s.count) atomicAdd(&out.counts[tensor], s.count);
  if (s.nans) atomicAdd(&out.nans[tensor], s.nans);
  if (s.abs_sum != 0) atomicAdd(&out.abs_sums[tensor], s.abs_sum);
  if (s.sq_sum != 0) atomicAdd(&out.sq_sums[tensor], s.sq_sum);
}

// ------------------------------------------------------------------------------------------------------
// Keys
// ------------------------------------------------------------------------------------------------------

// |w| as a double from its key (the sign-cleared bit pattern); all conversions are exact.
template <typename K>
__device__ __forceinline__ double magnitude_of(typename K::bits_t key) {
  if constexpr (std::is_same<K, F16Keys>::value) {
    return __half2float(__ushort_as_half(key));
  } else if constexpr (std::is_same<K, BF16Keys>::value) {
    return __uint_as_float(uint32_t(key) << 16);  // bfloat16 is the top half of a float32
  } else if constexpr (std::is_same<K, F32Keys>::value) {
    return __uint_as_float(key);
  } else {
    return __longlong_as_double(static_cast<long long>(key));
  }
}

template <typename B>
__device__ __forceinline__ unsigned bin_of(B key, int shift, unsigned bin_mask) {
  return static_cast<unsigned>((key >> shift) & bin_mask);
}

}  // namespace cuda
}  // namespace rgprune
