// Multi-tensor walking (apex multi_tensor_apply style): every tensor of a list is cut into fixed-size
// chunks, a table passed as a kernel parameter says where each tensor's chunks start, and one launch walks
// the chunks of all its tensors with a grid-stride loop. Lists longer than one table take one launch per
// table, with chunks numbered across the whole list (launch.cuh builds the tables).
#pragma once

#include "device.cuh"

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

// One row of a chunk table.
struct TensorMeta {
  void* data;
  uint32_t* mask;  // bit j of word i: element 32 * i + j survives
  int64_t numel;
  int64_t first_chunk;  // index of this tensor's first chunk in the chunk numbering of the whole list
};

// Rows per table. The table travels as a kernel parameter (3 KiB of the 4 KiB any GPU accepts) rather than
// as a host-to-device copy, so a launch reads nothing the host wrote after it was enqueued: captured in a
// CUDA graph, a replay reads the values of the capture, and nothing waits for the host.
constexpr int kTableRows = 96;

// The tensors one launch walks: rows[0, n_tensors) are tensors tensor_base ... of the op's list, and the
// launch owns the chunks [chunk_base, chunk_base + n_chunks) of the list's numbering.
struct ChunkTable {
  TensorMeta rows[kTableRows];
  int n_tensors;
  int tensor_base;
  int64_t chunk_base;
  int64_t n_chunks;
};

// The elements [begin, end) of one tensor that one block processes.
struct ChunkView {
  int tensor;  // index in the op's tensor list
  int64_t begin, end;
  void* data;
  uint32_t* mask;
  bool vector_ok;  // the data pointer is 16-byte aligned (tile offsets are multiples of 16 bytes)
};

// Row holding chunk c: the last row whose first chunk is <= c. Empty tensors own no chunk and share their
// first_chunk with the next tensor, so the search never lands on one.
__device__ __forceinline__ int row_of_chunk(const ChunkTable& table, int64_t c) {
  int lo = 0, hi = table.n_tensors - 1;  // invariant: rows[lo].first_chunk <= c
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (table.rows[mid].first_chunk <= c) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

__device__ __forceinline__ ChunkView chunk_view(const ChunkTable& table, int64_t c) {
  const int r = row_of_chunk(table, c);
  const TensorMeta& row = table.rows[r];
  const int64_t begin = (c - row.first_chunk) * kChunk;
  const int64_t end = begin + kChunk < row.numel ? begin + kChunk : row.numel;
  return ChunkView{table.tensor_base + r, begin, end, row.data, row.mask,
                   reinterpret_cast<uintptr_t>(row.data) % 16 == 0};
}

// Calls f(chunk, c) for every chunk c (in the list's numbering) of this block. Block-uniform: f may
// synchronize.
template <typename F>
__device__ __forceinline__ void for_each_chunk(const ChunkTable& table, F&& f) {
  for (int64_t c = blockIdx.x; c < table.n_chunks; c += gridDim.x)
    f(chunk_view(table, table.chunk_base + c), table.chunk_base + c);
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
    RGP_CHECK_ALIGNED(data + i, 16);
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
  RGP_CHECK_ALIGNED(data + i, 16);
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
