// The host launch sequences of the CUDA ops: which kernels run, in which order, on which grids, reading
// what. Written once against a Launcher, so that the real CUDA host code (kernels_cuda.cu: ATen buffers,
// <<<>>> on the current stream) and the SIMT simulator of the tests (tests/cuda_sim: fibers on the CPU) run
// the same sequence. A Launcher provides:
//   launch(name, kernel, grid, threads, args...)  enqueue kernel<<<grid, threads>>>(args...)
//   wave(kernel)                                  blocks of one full wave of `kernel` (kThreads threads)
//   zeros<T>(n), empty<T>(n)                      device scratch that lives as long as the launcher
// Nothing here reads device memory: every decision that depends on the data is taken by a kernel.
#pragma once

#include <algorithm>
#include <vector>

#include "kernels.cuh"

namespace rgprune {
namespace cuda {

// One tensor of an op's list, as the kernels see it.
struct TensorRef {
  void* data;
  uint32_t* mask;
  int64_t numel;
};

inline int64_t chunks_of(int64_t numel) { return (numel + kChunk - 1) / kChunk; }

// The list cut into tables of at most kTableRows tensors (one launch each), chunks numbered across the list.
inline std::vector<ChunkTable> chunk_tables(const std::vector<TensorRef>& tensors) {
  std::vector<ChunkTable> tables;
  int64_t next_chunk = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (i % kTableRows == 0) {
      tables.push_back(ChunkTable{});
      tables.back().tensor_base = int(i);
      tables.back().chunk_base = next_chunk;
    }
    ChunkTable& table = tables.back();
    table.rows[table.n_tensors++] = TensorMeta{tensors[i].data, tensors[i].mask, tensors[i].numel, next_chunk};
    table.n_chunks += chunks_of(tensors[i].numel);
    next_chunk += chunks_of(tensors[i].numel);
  }
  return tables;
}

inline int64_t total_chunks(const std::vector<ChunkTable>& tables) {
  return tables.empty() ? 0 : tables.back().chunk_base + tables.back().n_chunks;
}

// Blocks for a chunk-walking kernel: one full wave (so each block flushes its shared histogram once),
// more only if a block would otherwise count past its 32-bit shared counters, never more than chunks.
template <typename L, typename Kernel>
int chunk_grid(L& launcher, Kernel kernel, int64_t n_chunks) {
  const int64_t wave = std::max(1, launcher.wave(kernel));
  const int64_t grid = std::max(wave, (n_chunks + kMaxChunksPerBlock - 1) / kMaxChunksPerBlock);
  return int(std::min(grid, n_chunks));
}

// Launches a chunk-walking kernel once per table that has chunks; args follow the table.
template <typename L, typename Kernel, typename... Args>
void launch_per_table(L& launcher, const char* name, Kernel kernel, const std::vector<ChunkTable>& tables,
                      Args... args) {
  for (const ChunkTable& table : tables)
    if (table.n_chunks > 0)
      launcher.launch(name, kernel, chunk_grid(launcher, kernel, table.n_chunks), kThreads, table, args...);
}

// ------------------------------------------------------------------------------------------------------
// magnitude_histogram and radix_histogram
// ------------------------------------------------------------------------------------------------------

template <typename K, typename L>
void launch_magnitude_histogram(L& launcher, const std::vector<ChunkTable>& tables, int bits, const StatsOut& out) {
  const HistogramPass pass{bits, K::key_bits - bits, K::key_bits, 0};
  launch_per_table(launcher, "histogram_kernel<stats>", histogram_kernel<K, PassKind::kStats>, tables, pass, out,
                   static_cast<SelectState*>(nullptr), KeyBuffer<typename K::bits_t>{nullptr, 0});
}

// One refinement pass: the survivors whose key's top prefix_bits equal prefix, binned by the next bits.
// prefix_bits == 0 filters nothing (every key shifted right by all its bits is 0).
template <typename K, typename L>
void launch_radix_histogram(L& launcher, const std::vector<ChunkTable>& tables, int64_t prefix, int prefix_bits,
                            int bits, unsigned long long* hist) {
  const HistogramPass pass{bits, K::key_bits - prefix_bits - bits, K::key_bits - prefix_bits,
                           static_cast<unsigned long long>(prefix)};
  const StatsOut out{hist, nullptr, nullptr, nullptr, nullptr};
  launch_per_table(launcher, "histogram_kernel<prefix>", histogram_kernel<K, PassKind::kPrefix>, tables, pass, out,
                   static_cast<SelectState*>(nullptr), KeyBuffer<typename K::bits_t>{nullptr, 0});
}

// ------------------------------------------------------------------------------------------------------
// global_magnitude_threshold
// ------------------------------------------------------------------------------------------------------

// Bits per radix pass for keys of key_bits bits: kRadixBits at a time, the rest last.
inline std::vector<int> radix_pass_bits(int key_bits) {
  std::vector<int> bits;
  for (int consumed = 0; consumed < key_bits; consumed += bits.back())
    bits.push_back(std::min(kRadixBits, key_bits - consumed));
  return bits;
}

// The key buffer of the threshold's gathering pass: 1/256 of the weights' bytes, at least 1024 keys (as on
// the CPU), so the extra memory stays well under 1% of the weights.
inline int64_t default_key_capacity(const std::vector<TensorRef>& tensors, int element_size) {
  int64_t bytes = 0;
  for (const TensorRef& t : tensors) bytes += t.numel * element_size;
  return std::max<int64_t>(1024, bytes / 256 / element_size);
}

// One pass of the radix select over the weights (or, from the third pass on, over the key buffer when the
// second pass gathered the k-th key's neighbourhood), then its select kernel. Kernels that are not needed
// (nothing to select, or the other source took over) exit at once: the host never learns which ran.
template <typename K, typename L>
void launch_select_pass(L& launcher, const std::vector<ChunkTable>& tables, size_t p, const HistogramPass& pass,
                        const SelectStep& step, unsigned long long* hist, SelectState* state,
                        const KeyBuffer<typename K::bits_t>& buffer, int64_t k, int64_t* info) {
  const StatsOut out{hist, nullptr, nullptr, nullptr, nullptr};
  if (p == 0) {
    launch_per_table(launcher, "histogram_kernel<first>", histogram_kernel<K, PassKind::kFirst>, tables, pass, out,
                     state, buffer);
  } else if (step.after_gather) {
    launch_per_table(launcher, "histogram_kernel<gather>", histogram_kernel<K, PassKind::kGather>, tables, pass,
                     out, state, buffer);
  } else {
    launch_per_table(launcher, "histogram_kernel<refine>", histogram_kernel<K, PassKind::kRefine>, tables, pass,
                     out, state, buffer);
    if (buffer.capacity > 0) {
      const auto kernel = key_histogram_kernel<K>;
      launcher.launch("key_histogram_kernel", kernel, chunk_grid(launcher, kernel, chunks_of(buffer.capacity)),
                      kThreads, buffer, pass, hist, state);
    }
  }
  launcher.launch("select_kernel", select_kernel, 1, kSelectThreads, static_cast<const unsigned long long*>(hist),
                  step, k, state, info);
}

// Radix select by histogram refinement with every decision taken on the device. Passes over the weights:
// 2 for 15-bit keys; for wider keys (float32, float64) the second pass also gathers the keys around the
// k-th one into a bounded buffer, and the remaining passes read that buffer, so 2 as well, unless the
// buffer overflowed or missed the k-th key (then 3 for float32, 6 for float64). `top` (2^kRadixBits bins)
// receives the first pass's histogram, `info` (kInfoLen) the result. `state`: the select's state in a
// zeroed buffer of the caller's (the simulation tests read which path it took), or nullptr for scratch.
template <typename K, typename L>
void launch_threshold(L& launcher, const std::vector<ChunkTable>& tables, int64_t k, unsigned long long* top,
                      int64_t* info, int64_t key_capacity, SelectState* state = nullptr) {
  using B = typename K::bits_t;
  constexpr int kb = K::key_bits;
  static_assert(kb > kRadixBits, "the first select pass must not be the last (both would write info)");
  const std::vector<int> bits = radix_pass_bits(kb);
  const bool gather = bits.size() > 2;
  int64_t refine_bins = 0;
  for (size_t p = 1; p < bits.size(); ++p) refine_bins += int64_t(1) << bits[p];
  unsigned long long* refine = launcher.template zeros<unsigned long long>(refine_bins);
  if (state == nullptr) state = reinterpret_cast<SelectState*>(launcher.template zeros<int64_t>(kStateWords));
  const KeyBuffer<B> buffer{gather ? launcher.template empty<B>(key_capacity) : nullptr, gather ? key_capacity : 0};

  int consumed = 0;
  for (size_t p = 0; p < bits.size(); ++p) {
    const HistogramPass pass{bits[p], kb - consumed - bits[p], kb - consumed, 0};
    consumed += bits[p];
    const SelectStep step{bits[p], p == 0, consumed == kb, gather && p == 0, gather && p == 1,
                          p + 1 < bits.size() ? bits[p + 1] : 0, buffer.capacity};
    unsigned long long* hist = p == 0 ? top : refine;
    if (p > 0) refine += int64_t(1) << bits[p];
    launch_select_pass<K>(launcher, tables, p, pass, step, hist, state, buffer, k, info);
  }
}

// ------------------------------------------------------------------------------------------------------
// apply_threshold_ and apply_masks_
// ------------------------------------------------------------------------------------------------------

// Tie counts per chunk and their scan (both exit at once unless the threshold splits a group of ties, which
// they learn from info on the device), then the pruning pass.
// threshold_masks_ is the same sequence without the weights (kWeights false: `bits` and `out` unused).
template <typename K, bool kWeights = true, typename L>
void launch_apply_threshold(L& launcher, const std::vector<ChunkTable>& tables, const int64_t* info, int bits,
                            const StatsOut& out) {
  const int64_t n_chunks = total_chunks(tables);
  if (n_chunks == 0) return;
  long long* ties = launcher.template empty<long long>(n_chunks);
  launch_per_table(launcher, "count_ties_kernel", count_ties_kernel<K>, tables, info, ties);
  launcher.launch("scan_tie_counts_kernel", scan_tie_counts_kernel, 1, kScanThreads, info, ties, n_chunks);
  const HistogramPass pass{bits, K::key_bits - bits, K::key_bits, 0};
  launch_per_table(launcher, kWeights ? "apply_threshold_kernel" : "apply_threshold_kernel<masks only>",
                   apply_threshold_kernel<K, kWeights>, tables, info, static_cast<const long long*>(ties), pass, out);
}

// apply_masks_: one launch sequence per element size present (the kernels zero raw bits, so the dtypes of
// one size share it); element_sizes[i] is the size of tensors[i] in bytes (2, 4 or 8).
template <typename L>
void launch_apply_masks(L& launcher, const std::vector<TensorRef>& tensors, const std::vector<int>& element_sizes) {
  for (const int size : {2, 4, 8}) {
    std::vector<TensorRef> group;
    for (size_t i = 0; i < tensors.size(); ++i)
      if (element_sizes[i] == size) group.push_back(tensors[i]);
    if (group.empty()) continue;
    const auto tables = chunk_tables(group);
    if (size == 2) launch_per_table(launcher, "zero_pruned_kernel<2>", zero_pruned_kernel<uint16_t>, tables);
    else if (size == 4) launch_per_table(launcher, "zero_pruned_kernel<4>", zero_pruned_kernel<uint32_t>, tables);
    else launch_per_table(launcher, "zero_pruned_kernel<8>", zero_pruned_kernel<uint64_t>, tables);
  }
}

// masks_where_one_ on tensors of one dtype (K): one launch per table.
template <typename K, typename L>
void launch_masks_where_one(L& launcher, const std::vector<TensorRef>& tensors) {
  launch_per_table(launcher, "ones_to_bits_kernel", ones_to_bits_kernel<K>, chunk_tables(tensors));
}

}  // namespace cuda
}  // namespace rgprune
