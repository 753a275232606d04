// The apply pass (apply_threshold_: prune below the threshold, count the survivors), the same decisions on the
// masks alone (threshold_masks_) and apply_masks_.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "ops_cpu.h"
#include "survivors.h"

namespace rgprune {
namespace cpu {
namespace {

// What an apply pass prunes, from the threshold's info. Survivors with key < cut are pruned. Ties (keys
// equal to the threshold) are pruned in model order: with some but not all of them pruned (partial_ties),
// the pass keeps every survivor whose key is `thr` without counting it and counts them per chunk; they are
// decided after the pass (settle_partial_ties), once the number of ties in the chunks before each chunk is
// known.
struct Cut {
  bool any;  // a threshold was found (k > 0)
  uint64_t thr;
  int64_t n_ties;
  bool partial_ties;
  uint64_t cut;  // 0 when !any: nothing is pruned

  explicit Cut(const int64_t* info)
      : any(info[kInfoKey] >= 0), thr(any ? uint64_t(info[kInfoKey]) : 0), n_ties(info[kInfoTies]),
        partial_ties(any && n_ties > 0 && n_ties < info[kInfoEqual]) {
    const bool all_ties = any && n_ties > 0 && n_ties == info[kInfoEqual];
    cut = any ? (all_ties ? thr + 1 : thr) : 0;
  }
};

// A whole word without deferred ties, branch-free: every element is decided and rewritten (a cache line of
// 16 weights almost always holds a pruned one, so rewriting costs no extra memory traffic). Words pruned
// before are partly dead after round 1, so this is the common path in every round. Returns the new word.
template <typename scalar_t, typename Visitor>
uint32_t apply_whole_word(typename Visitor::B* w, uint32_t word, uint64_t cut, Visitor& survivors) {
  using K = typename KeysFor<scalar_t>::type;
  using B = typename K::bits_t;
  uint32_t keep = 0;
  for (int j = 0; j < 32; ++j) {
    const B raw = w[j];
    const bool k = ((word >> j) & 1u) & (uint64_t(K::key(raw)) >= cut);
    const B kept = raw & static_cast<B>(B(0) - B(k));
    keep |= uint32_t(k) << j;
    survivors.template visit_if<scalar_t>(kept, k);
    w[j] = kept;
  }
  return keep;
}

// A tail word, or any word with deferred ties: set-bit iteration over the survivors. Returns the new word.
template <typename scalar_t, typename Visitor>
uint32_t apply_word_by_bits(typename Visitor::B* w, const scalar_t* vals, uint32_t word, uint32_t valid_bits,
                            const Cut& cut, Visitor& survivors, int64_t& ties) {
  using K = typename KeysFor<scalar_t>::type;
  uint32_t keep = 0;
  for (uint32_t alive = word; alive; alive &= alive - 1) {
    const int j = __builtin_ctz(alive);
    const uint64_t key = K::key(w[j]);
    if (cut.partial_ties && key == cut.thr) {  // kept for now, decided after the pass
      keep |= uint32_t(1) << j;
      ++ties;
      continue;
    }
    if (cut.any && key < cut.cut) continue;
    keep |= uint32_t(1) << j;
    survivors.visit(w[j], vals[j], j & 1);
  }
  // Every weight whose bit is now 0 is stored as +0.0 (also weights pruned before).
  for (uint32_t dead = ~keep & valid_bits; dead; dead &= dead - 1) {
    const int j = __builtin_ctz(dead);
    if (w[j] != 0) w[j] = 0;
  }
  return keep;
}

// The float32 SIMD routine over the chunk's whole words (AVX2 where the CPU has it, else SSE2); returns
// where it stopped.
int64_t apply_words(uint32_t* w, uint32_t* mask, const Chunk& ch, const Cut& cut, int shift, int64_t nbins,
                    int64_t* hist, ChunkStats& st, int64_t& ties) {
  const WordCut word_cut{uint32_t(cut.cut), cut.partial_ties ? uint32_t(cut.thr) : ~0u, shift, nbins};
#if defined(RGPRUNE_AVX2_PATHS)
  if (cpu_has_avx2()) {
    return cut.partial_ties
               ? apply_words_f32<Avx2Lanes, true, true, true>(w, mask, ch.begin, ch.end, word_cut, hist, st, ties)
               : apply_words_f32<Avx2Lanes, false, true, true>(w, mask, ch.begin, ch.end, word_cut, hist, st, ties);
  }
#endif
#if defined(__SSE2__)
  return cut.partial_ties
             ? apply_words_f32<Sse2Lanes, true, true, true>(w, mask, ch.begin, ch.end, word_cut, hist, st, ties)
             : apply_words_f32<Sse2Lanes, false, true, true>(w, mask, ch.begin, ch.end, word_cut, hist, st, ties);
#else
  return ch.begin;
#endif
}

// Applies the cut to one chunk: the SIMD routine over whole words of float32, scalar words otherwise and
// on the tail. Counts the chunk's deferred ties into `ties`.
template <typename scalar_t>
ChunkStats apply_chunk(const Chunk& ch, const at::TensorList& tensors, const at::TensorList& masks, const Cut& cut,
                       const RadixPass& stats_pass, int64_t* hist, int64_t& ties) {
  using K = typename KeysFor<scalar_t>::type;
  using B = typename K::bits_t;
  B* w = reinterpret_cast<B*>(tensors[ch.tensor].data_ptr());
  const scalar_t* vals = tensors[ch.tensor].data_ptr<scalar_t>();
  uint32_t* mask = reinterpret_cast<uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
  ChunkStats words{};
  int64_t start = ch.begin;
  if constexpr (std::is_same<scalar_t, float>::value) {
    start = apply_words(w, mask, ch, cut, stats_pass.shift, int64_t(1) << stats_pass.bits, hist, words, ties);
  }
  HistogramVisitor<K, false, true> survivors(stats_pass, hist);
  for (int64_t base = start; base < ch.end; base += 32) {
    const int valid = int(std::min<int64_t>(32, ch.end - base));
    const uint32_t valid_bits = valid == 32 ? ~0u : (uint32_t(1) << valid) - 1u;
    const uint32_t word = mask[base / 32] & valid_bits;
    const uint32_t keep =
        valid == 32 && !cut.partial_ties
            ? apply_whole_word<scalar_t>(w + base, word, cut.any ? cut.cut : 0, survivors)
            : apply_word_by_bits<scalar_t>(w + base, vals + base, word, valid_bits, cut, survivors, ties);
    if (mask[base / 32] != keep) mask[base / 32] = keep;
  }
  ChunkStats st = survivors.result();
  st += words;
  return st;
}

// How many deferred ties each chunk prunes: the first n_ties in model order (chunk order) go.
std::vector<int64_t> ties_to_prune(const std::vector<int64_t>& chunk_ties, int64_t n_ties) {
  std::vector<int64_t> prune_in(chunk_ties.size(), 0);
  int64_t before = 0;
  for (size_t c = 0; c < chunk_ties.size(); ++c) {
    prune_in[c] = std::min(chunk_ties[c], std::max<int64_t>(0, n_ties - before));
    before += chunk_ties[c];
  }
  return prune_in;
}

// Clears the bits of the first prune_in[c] surviving ties of each chunk c, in element order, and with
// kWeights stores those weights as +0.0.
template <typename scalar_t, bool kWeights>
void prune_first_ties(const at::TensorList& tensors, const at::TensorList& masks, const std::vector<Chunk>& chunks,
                      uint64_t thr, const std::vector<int64_t>& prune_in) {
  using K = typename KeysFor<scalar_t>::type;
  using B = typename K::bits_t;
  at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      int64_t p = prune_in[c];
      if (p == 0) continue;
      const Chunk& ch = chunks[c];
      B* w = reinterpret_cast<B*>(tensors[ch.tensor].data_ptr());
      uint32_t* mask = reinterpret_cast<uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
      for (int64_t base = ch.begin; base < ch.end && p > 0; base += 32) {
        uint32_t word = mask[base / 32];
        for (uint32_t alive = word; alive && p > 0; alive &= alive - 1) {
          const int j = __builtin_ctz(alive);
          if (uint64_t(K::key(w[base + j])) == thr) {
            if constexpr (kWeights) w[base + j] = 0;
            word &= ~(uint32_t(1) << j);
            --p;
          }
        }
        mask[base / 32] = word;
      }
    }
  });
}

// Decides the deferred ties: the first n_ties in model order go; the others are counted as survivors now.
// All ties have the same magnitude, so a chunk's kept ties add kept * |w| and kept * w^2 to its sums.
template <typename scalar_t>
void settle_partial_ties(const at::TensorList& tensors, const at::TensorList& masks, const std::vector<Chunk>& chunks,
                         const Cut& cut, int shift, size_t nbins, const std::vector<int64_t>& chunk_ties,
                         std::vector<ChunkStats>& chunk_stats, std::vector<int64_t>& hist) {
  using K = typename KeysFor<scalar_t>::type;
  using B = typename K::bits_t;
  const B thr_bits = static_cast<B>(cut.thr);
  scalar_t thr_val;
  std::memcpy(&thr_val, &thr_bits, sizeof(thr_val));
  const double v = static_cast<double>(thr_val);
  const size_t thr_bin = size_t(cut.thr >> shift) & (nbins - 1);
  const std::vector<int64_t> prune_in = ties_to_prune(chunk_ties, cut.n_ties);
  for (size_t c = 0; c < chunks.size(); ++c) {
    const int64_t kept = chunk_ties[c] - prune_in[c];
    if (kept > 0) {
      chunk_stats[c].count += kept;
      chunk_stats[c].abs_sum += double(kept) * v;
      chunk_stats[c].sq_sum += double(kept) * (v * v);
      hist[thr_bin] += kept;
    }
  }
  prune_first_ties<scalar_t, true>(tensors, masks, chunks, cut.thr, prune_in);
}

// threshold_masks_ on one word: the surviving bits of the 32 (or `valid`) elements at x whose key is at
// least the cut; `ties` gets the survivors whose key is the threshold. Keys, cut and threshold compare in the
// element's own width (the cut is at most the +Inf key + 1). Branch-free; float32 whole words by SSE2.
template <typename K>
uint32_t kept_bits(const typename K::bits_t* x, int valid, uint32_t alive, const Cut& cut, uint32_t& ties) {
  using B = typename K::bits_t;
  const B cut_key = static_cast<B>(cut.cut), thr = static_cast<B>(cut.thr);
  uint32_t keep = 0, at_thr = 0;
#if defined(__SSE2__)
  if constexpr (sizeof(B) == 4) {
    if (valid == 32) {  // keys < 2^31 and cut <= 2^31 - 1: the signed compares are the unsigned ones
      const __m128i key_mask = _mm_set1_epi32(int32_t(K::key_mask));
      const __m128i below = _mm_set1_epi32(int32_t(cut_key)), tie = _mm_set1_epi32(int32_t(thr));
      for (int j = 0; j < 32; j += 16) {
        __m128i low[4], eq[4];
        for (int q = 0; q < 4; ++q) {
          const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + j + 4 * q));
          const __m128i key = _mm_and_si128(raw, key_mask);
          low[q] = _mm_cmpgt_epi32(below, key);
          eq[q] = _mm_cmpeq_epi32(key, tie);
        }
        keep |= (~bits_of_16_lanes(low) & 0xFFFFu) << j;
        at_thr |= bits_of_16_lanes(eq) << j;
      }
      ties = cut.partial_ties ? at_thr & alive : 0;
      return keep & alive;
    }
  }
#endif
  for (int j = 0; j < valid; ++j) {
    const B key = K::key(x[j]);
    keep |= uint32_t(key >= cut_key) << j;
    at_thr |= uint32_t(key == thr) << j;
  }
  ties = cut.partial_ties ? at_thr & alive : 0;
  return keep & alive;
}

// The apply pass's decisions written to the mask words only (the tensors are read, never written): what
// prune_by_scores_ needs to rank scores without copying them. Nothing when the info counts NaN survivors.
template <typename scalar_t>
void threshold_masks_impl(const at::TensorList& tensors, const at::TensorList& masks, const int64_t* info) {
  using K = typename KeysFor<scalar_t>::type;
  using B = typename K::bits_t;
  if (info[kInfoNan] > 0) return;
  const auto chunks = make_chunks(tensors);
  const Cut cut(info);
  std::vector<int64_t> chunk_ties(chunks.size(), 0);
  parallel_chunks(chunks, [&](int64_t c, const Chunk& ch) {
    const B* w = reinterpret_cast<const B*>(tensors[ch.tensor].data_ptr());
    uint32_t* mask = reinterpret_cast<uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
    for (int64_t base = ch.begin; base < ch.end; base += 32) {
      const int valid = int(std::min<int64_t>(32, ch.end - base));
      const uint32_t word = valid_word(mask, base, ch.end);
      if (word == 0) {  // nothing survives here: nothing to read
        if (mask[base / 32] != 0) mask[base / 32] = 0;
        continue;
      }
      uint32_t ties = 0;
      const uint32_t keep = kept_bits<K>(w + base, valid, word, cut, ties);
      chunk_ties[c] += __builtin_popcount(ties);
      if (mask[base / 32] != keep) mask[base / 32] = keep;
    }
  });
  if (cut.partial_ties) prune_first_ties<scalar_t, false>(tensors, masks, chunks, cut.thr, ties_to_prune(chunk_ties, cut.n_ties));
}

template <typename scalar_t>
Stats apply_threshold_impl(const at::TensorList& tensors, const at::TensorList& masks, const int64_t* info,
                           int64_t bits) {
  using K = typename KeysFor<scalar_t>::type;
  const auto chunks = make_chunks(tensors);
  const Cut cut(info);
  const size_t nbins = size_t(1) << bits;
  const int shift = K::key_bits - int(bits);
  const RadixPass stats_pass{false, 0, 0, shift, int(bits)};
  std::vector<std::vector<int64_t>> local(at::get_num_threads());
  std::vector<ChunkStats> chunk_stats(chunks.size());
  std::vector<int64_t> chunk_ties(chunks.size(), 0);
  at::parallel_for(0, int64_t(chunks.size()), 1, [&](int64_t lo, int64_t hi) {
    auto& h = local[at::get_thread_num()];
    if (h.empty()) h.assign(local_hist_size(nbins), 0);
    for (int64_t c = lo; c < hi; ++c) {
      chunk_stats[c] = apply_chunk<scalar_t>(chunks[c], tensors, masks, cut, stats_pass, h.data(), chunk_ties[c]);
    }
  });
  std::vector<int64_t> hist(nbins, 0);
  for (const auto& h : local) merge_local(hist, h, nbins);
  if (cut.partial_ties) {
    settle_partial_ties<scalar_t>(tensors, masks, chunks, cut, shift, nbins, chunk_ties, chunk_stats, hist);
  }
  return make_stats(tensors, chunks, chunk_stats, hist);
}

// Zeroes weights whose mask bit is 0. Works on raw element bits, so tensors may have different dtypes.
// A whole word with any 0 bit is rewritten in full by a branch-free select (one streaming pass whatever
// the density, where a loop over the dead bits costs a branch per pruned element); fully surviving words
// are skipped.
template <typename E>
void zero_pruned(E* w, const uint32_t* mask, int64_t begin, int64_t end) {
  int64_t base = begin;
#if defined(__SSE2__)
  for (; base + 32 <= end; base += 32) {
    const uint32_t word = mask[base / 32];
    if (word != ~0u) select_word(w + base, word);
  }
#endif
  for (; base < end; base += 32) {
    const int valid = int(std::min<int64_t>(32, end - base));
    const uint32_t valid_bits = valid == 32 ? ~0u : (uint32_t(1) << valid) - 1u;
    for (uint32_t dead = ~mask[base / 32] & valid_bits; dead; dead &= dead - 1) w[base + __builtin_ctz(dead)] = 0;
  }
}

}  // namespace

Stats apply_threshold_cpu(at::TensorList tensors, at::TensorList masks, const at::Tensor& info, int64_t bits) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  check_bits(bits, tensors[0].scalar_type());
  check_threshold_info(info, tensors[0]);
  const auto host_info = info.to(at::kCPU).contiguous();
  const int64_t* pinfo = host_info.data_ptr<int64_t>();
  // A threshold computed over NaN survivors ranks nothing: prune nothing, write nothing (not even the
  // weights outside the masks), and return the survivors' statistics as they are.
  if (pinfo[kInfoNan] > 0) return magnitude_histogram_cpu(tensors, masks, bits);
  return AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, tensors[0].scalar_type(), "apply_threshold_",
                                         [&] { return apply_threshold_impl<scalar_t>(tensors, masks, pinfo, bits); });
}

void threshold_masks_cpu(at::TensorList tensors, at::TensorList masks, const at::Tensor& info) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  check_threshold_info(info, tensors[0]);
  const auto host_info = info.to(at::kCPU).contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, tensors[0].scalar_type(), "threshold_masks_",
                                  [&] { threshold_masks_impl<scalar_t>(tensors, masks, host_info.data_ptr<int64_t>()); });
}

void apply_masks_cpu(at::TensorList tensors, at::TensorList masks) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/false);
  parallel_chunks(make_chunks(tensors), [&](int64_t, const Chunk& ch) {
    const auto& t = tensors[ch.tensor];
    const uint32_t* mask = reinterpret_cast<const uint32_t*>(masks[ch.tensor].data_ptr<int32_t>());
    switch (t.element_size()) {
      case 2: zero_pruned(reinterpret_cast<uint16_t*>(t.data_ptr()), mask, ch.begin, ch.end); break;
      case 4: zero_pruned(reinterpret_cast<uint32_t*>(t.data_ptr()), mask, ch.begin, ch.end); break;
      case 8: zero_pruned(reinterpret_cast<uint64_t*>(t.data_ptr()), mask, ch.begin, ch.end); break;
      default: TORCH_CHECK(false, "rgprune: unsupported element size");
    }
  });
}

}  // namespace cpu
}  // namespace rgprune
