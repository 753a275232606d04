// The histogram pass over all survivors, and the magnitude_histogram op built on it.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <memory>

#include "ops_cpu.h"
#include "survivors.h"

namespace rgprune {
namespace cpu {
namespace {

#if defined(__SSE2__)
// The unfiltered float32 pass over one chunk: the SIMD word routines over whole words (AVX2, or SSE2 with
// nothing stored), scalar on the tail. `win`: the threshold's key window (AVX2 only). kOutside: also counts
// the entries outside the masks (every path: whole words in the SIMD routines, the tail here).
template <bool kSums, bool kOutside>
ChunkStats unfiltered_f32_chunk(const Chunk& ch, const at::TensorList& tensors, const at::TensorList& masks,
                                const RadixPass& pass, int64_t nbins, int64_t* hist, WindowCollector* win) {
  uint32_t* w = reinterpret_cast<uint32_t*>(tensors[ch.tensor].data_ptr());
  uint32_t* mask = reinterpret_cast<uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
  int64_t base = ch.begin;
  ChunkStats words{};
#if defined(RGPRUNE_AVX2_PATHS)
  if (cpu_has_avx2()) {
    base = win ? hist_words_f32_avx2<kSums, true, kOutside>(w, mask, base, ch.end, pass.shift, nbins, hist, words,
                                                            win)
               : hist_words_f32_avx2<kSums, false, kOutside>(w, mask, base, ch.end, pass.shift, nbins, hist, words,
                                                             nullptr);
  }
#endif
  TORCH_INTERNAL_ASSERT(!win || base + 32 > ch.end, "rgprune: the key window needs the AVX2 pass");
  int64_t no_ties = 0;
  base = apply_words_f32<Sse2Lanes, false, false, kSums, kOutside>(
      w, mask, base, ch.end, WordCut{0, ~0u, pass.shift, nbins}, hist, words, no_ties);
  HistogramVisitor<F32Keys, false, kSums> v(pass, hist);
  if (base < ch.end) {
    const float* vals = tensors[ch.tensor].data_ptr<float>();
    const uint32_t tail = valid_word(mask, base, ch.end);
    for (uint32_t word = tail; word; word &= word - 1) {
      const int j = __builtin_ctz(word);
      v.visit(w[base + j], vals[base + j], j & 1);
      const uint32_t key = w[base + j] & 0x7FFFFFFFu;
      if (win && key <= 0x7F800000u) win->visit(key);
    }
    const uint32_t valid = (uint32_t(1) << (ch.end - base)) - 1u;  // the tail has fewer than 32 elements
    if (kOutside) words.outside += count_outside_bits<F32Keys>(w + base, ~tail & valid);
  }
  ChunkStats st = v.result();
  st += words;
  return st;
}
#endif  // __SSE2__

}  // namespace

template <typename scalar_t, bool kSums, bool kOutside>
void histogram_pass(const at::TensorList& tensors, const at::TensorList& masks, const std::vector<Chunk>& chunks,
                    const RadixPass& pass, std::vector<int64_t>& hist, std::vector<ChunkStats>& chunk_stats,
                    KeyWindow* window) {
  using K = typename KeysFor<scalar_t>::type;
  TORCH_INTERNAL_ASSERT(!(kOutside && pass.has_prefix), "rgprune: only an unfiltered pass sees every entry");
  const size_t nbins = size_t(1) << pass.bits;
  std::vector<std::vector<int64_t>> local(at::get_num_threads());
  chunk_stats.assign(chunks.size(), ChunkStats{});
  at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t lo, int64_t hi) {
    auto& h = local[at::get_thread_num()];
    if (h.empty()) h.assign(local_hist_size(nbins), 0);
    std::unique_ptr<WindowCollector> win(window ? new WindowCollector(*window) : nullptr);
    for (int64_t c = lo; c < hi; ++c) {
#if defined(__SSE2__)
      if constexpr (std::is_same<scalar_t, float>::value) {
        if (!pass.has_prefix) {
          chunk_stats[c] = unfiltered_f32_chunk<kSums, kOutside>(chunks[c], tensors, masks, pass, int64_t(nbins),
                                                                 h.data(), win.get());
          continue;
        }
      }
#endif
      if (!kOutside && pass.has_prefix) {
        HistogramVisitor<K, true, kSums> v(pass, h.data());
        filtered_chunk<scalar_t>(chunks[c], tensors, masks, pass, v);
        chunk_stats[c] = v.result();
      } else {
        HistogramVisitor<K, false, kSums, kOutside> v(pass, h.data());
        for_each_survivor<scalar_t>(chunks[c], tensors, masks, v);
        chunk_stats[c] = v.result();
      }
    }
    if (win) win->finish();
  });
  hist.assign(nbins, 0);
  for (const auto& h : local) merge_local(hist, h, nbins);
}

// <T, true, false>: magnitude_histogram; <T, false, false>: refinement passes and radix_histogram;
// <T, false, true>: the threshold's first pass.
#define RGPRUNE_HISTOGRAM_PASS(T, SUMS, OUTSIDE)                                                                  \
  template void histogram_pass<T, SUMS, OUTSIDE>(const at::TensorList&, const at::TensorList&,                  \
                                                 const std::vector<Chunk>&, const RadixPass&,                   \
                                                 std::vector<int64_t>&, std::vector<ChunkStats>&, KeyWindow*);
#define RGPRUNE_HISTOGRAM_PASSES(T)      \
  RGPRUNE_HISTOGRAM_PASS(T, true, false) \
  RGPRUNE_HISTOGRAM_PASS(T, false, false) \
  RGPRUNE_HISTOGRAM_PASS(T, false, true)
RGPRUNE_HISTOGRAM_PASSES(float)
RGPRUNE_HISTOGRAM_PASSES(double)
RGPRUNE_HISTOGRAM_PASSES(c10::Half)
RGPRUNE_HISTOGRAM_PASSES(c10::BFloat16)
#undef RGPRUNE_HISTOGRAM_PASSES
#undef RGPRUNE_HISTOGRAM_PASS

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

}  // namespace cpu
}  // namespace rgprune
