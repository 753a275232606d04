// Multi-tensor walking (apex multi_tensor_apply style): every tensor of a list is cut into fixed-size
// chunks, a small metadata table on the device says where each tensor's chunks start, and one launch
// walks the chunks of all tensors with a grid-stride loop.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace rgprune {
namespace cuda {

constexpr int kThreads = 256;  // threads per block of every chunk-walking kernel
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFullMask = 0xffffffffu;
// Elements per chunk: a multiple of every tile (kThreads threads x 16-byte packs of >= 2-byte elements, at
// most 2048 elements), so tiles never straddle chunks and tile offsets keep 16-byte alignment; and a
// multiple of 128, so a mask word never straddles two chunks.
constexpr int64_t kChunk = 8192;
// Block histograms count in 32-bit shared counters; bounding the chunks per block bounds every count.
constexpr int64_t kMaxChunksPerBlock = (int64_t(1) << 31) / kChunk;

// One row of the device metadata table (the layout is shared by the host builder and the kernels).
struct TensorMeta {
  void* data;
  uint32_t* mask;  // bit j of word i: element 32 * i + j survives
  int64_t numel;
  int64_t first_chunk;  // index of this tensor's first chunk in the launch's chunk numbering
};
static_assert(sizeof(TensorMeta) == 4 * sizeof(int64_t), "TensorMeta is stored in an int64 tensor");

// ------------------------------------------------------------------------------------------------------
// Host: the metadata table
// ------------------------------------------------------------------------------------------------------

struct ChunkTable {
  at::Tensor rows;  // TensorMeta[n_tensors] on the device (undefined when there are no chunks)
  int n_tensors = 0;
  int64_t n_chunks = 0;
  const TensorMeta* data() const { return reinterpret_cast<const TensorMeta*>(rows.data_ptr()); }
};

// Builds the table of tensors[which[j]] in pinned host memory and copies it to the device asynchronously
// on the current stream (torch's caching host allocator keeps the pinned block alive until the copy
// has run), so any number of tensors works without a host synchronization.
inline ChunkTable make_chunk_table(const at::TensorList& tensors, const at::TensorList& masks,
                                   const std::vector<size_t>& which) {
  ChunkTable table;
  table.n_tensors = int(which.size());
  auto host = at::empty({int64_t(which.size()) * 4}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
  auto* rows = reinterpret_cast<TensorMeta*>(host.data_ptr());
  for (size_t j = 0; j < which.size(); ++j) {
    const auto& t = tensors[which[j]];
    rows[j] = TensorMeta{t.data_ptr(), reinterpret_cast<uint32_t*>(masks[which[j]].data_ptr()), t.numel(),
                         table.n_chunks};
    table.n_chunks += (t.numel() + kChunk - 1) / kChunk;
  }
  if (table.n_chunks > 0) {
    table.rows = at::empty(host.sizes(), tensors[0].options().dtype(at::kLong));
    table.rows.copy_(host, /*non_blocking=*/true);
  }
  return table;
}

inline std::vector<size_t> all_indices(size_t n) {
  std::vector<size_t> which(n);
  for (size_t i = 0; i < n; ++i) which[i] = i;
  return which;
}

// Blocks for a chunk-walking kernel: one full wave (so each block flushes its shared histogram once),
// more only if a block would otherwise count past its 32-bit shared counters, never more than chunks.
template <typename Kernel>
int grid_for(Kernel kernel, int64_t n_chunks) {
  int blocks_per_sm = 0;
  C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel, kThreads, 0));
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, c10::cuda::current_device()));
  int64_t grid = int64_t(std::max(1, blocks_per_sm)) * sms;
  grid = std::max(grid, (n_chunks + kMaxChunksPerBlock - 1) / kMaxChunksPerBlock);
  return int(std::min(grid, n_chunks));
}

// ------------------------------------------------------------------------------------------------------
// Device: chunks, packs and mask bits
// ------------------------------------------------------------------------------------------------------

// The elements [begin, end) of one tensor that one block processes.
struct ChunkView {
  int tensor;
  int64_t begin, end;
  void* data;
  uint32_t* mask;
  bool vector_ok;  // the data pointer is 16-byte aligned (tile offsets are multiples of 16 bytes)
};

// Index of the tensor holding chunk c: the last row whose first chunk is <= c. Empty tensors own no
// chunk and share their first_chunk with the next tensor, so the search never lands on one.
__device__ __forceinline__ int tensor_of_chunk(const TensorMeta* meta, int n_tensors, int64_t c) {
  int lo = 0, hi = n_tensors - 1;  // invariant: meta[lo].first_chunk <= c
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (meta[mid].first_chunk <= c) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

__device__ __forceinline__ ChunkView chunk_view(const TensorMeta* meta, int n_tensors, int64_t c) {
  const int t = tensor_of_chunk(meta, n_tensors, c);
  const TensorMeta row = meta[t];
  const int64_t begin = (c - row.first_chunk) * kChunk;
  const int64_t end = begin + kChunk < row.numel ? begin + kChunk : row.numel;
  return ChunkView{t, begin, end, row.data, row.mask,
                   reinterpret_cast<uintptr_t>(row.data) % 16 == 0};
}

// Calls f(chunk, c) for every chunk c of this block (grid-stride). Block-uniform: f may synchronize.
template <typename F>
__device__ __forceinline__ void for_each_chunk(const TensorMeta* meta, int n_tensors, int64_t n_chunks, F&& f) {
  for (int64_t c = blockIdx.x; c < n_chunks; c += gridDim.x) f(chunk_view(meta, n_tensors, c), c);
}

// 16 bytes of consecutive elements (raw bit patterns): what one thread handles per tile.
template <typename B>
struct Pack {
  static constexpr int kLen = 16 / int(sizeof(B));
  B v[kLen];
};

// Calls f(i) with the first element index of this thread's pack in each tile of the chunk. Tiles are
// kThreads consecutive packs: lane-consecutive packs make 512-byte coalesced warp accesses, and a warp's
// tile segment covers whole mask words. Every thread runs every tile (block-uniform), also past `end`.
template <int kLen, typename F>
__device__ __forceinline__ void for_each_tile(const ChunkView& ch, F&& f) {
  for (int64_t tile = ch.begin; tile < ch.end; tile += int64_t(kThreads) * kLen)
    f(tile + int64_t(threadIdx.x) * kLen);
}

// The pack at element i: one 16-byte load when aligned and complete, element loads otherwise (zeros
// past `end`).
template <typename B>
__device__ __forceinline__ Pack<B> load_pack(const B* data, int64_t i, int64_t end, bool vector_ok) {
  Pack<B> p;
  if (vector_ok && i + Pack<B>::kLen <= end) {
    const uint4 q = *reinterpret_cast<const uint4*>(data + i);
    memcpy(p.v, &q, sizeof(q));
  } else {
#pragma unroll
    for (int j = 0; j < Pack<B>::kLen; ++j) p.v[j] = i + j < end ? data[i + j] : B(0);
  }
  return p;
}

template <typename B>
__device__ __forceinline__ void store_pack(B* data, int64_t i, const Pack<B>& p) {
  uint4 q;
  memcpy(&q, p.v, sizeof(q));
  *reinterpret_cast<uint4*>(data + i) = q;
}

// The mask word holding the pack at element i and the pack's bits (bit j: element i + j). `valid` marks
// the elements before `end`; survivor bits past it are cleared: tail bits of a tensor's last mask word
// are never trusted.
struct PackMask {
  uint32_t word;
  unsigned survivors;
  unsigned valid;
};

template <int kLen>
__device__ __forceinline__ PackMask load_pack_mask(const uint32_t* mask, int64_t i, int64_t end) {
  static_assert(32 % kLen == 0, "a pack must not straddle two mask words");
  if (i >= end) return PackMask{0u, 0u, 0u};
  const uint32_t word = mask[i >> 5];  // the lanes of a warp read consecutive words: coalesced
  const unsigned valid = end - i >= kLen ? (1u << kLen) - 1u : (1u << (end - i)) - 1u;
  return PackMask{word, (word >> (i & 31)) & valid, valid};
}

}  // namespace cuda
}  // namespace rgprune
