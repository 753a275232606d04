// The global magnitude threshold (radix select by histogram refinement) and the radix_histogram op, one of
// its refinement passes on its own.
//
// The radix select: the top kRadixBits bits of the survivors' keys, then the next bits restricted to the
// bin holding the k-th survivor, until the whole key is resolved. The first pass reads every entry, pruned
// ones included, and also counts those outside the masks (info[kInfoOutside]) for every k. Two shortcuts
// skip passes over the weights, each by gathering keys into one bounded buffer (1/256 of the weights' bytes,
// at least 1024 keys, so rgprune's extra memory stays well under 1%; pages never written are never resident)
// and selecting in memory when the k-th survivor is known to be among them; when it is not, the ordinary
// passes run, so the result is the same either way:
// - float32 on AVX2 (key_window.h): the first pass gathers the keys of a window chosen from a sample;
// - keys of more than 2 * kRadixBits bits (float32, float64): the second pass gathers the keys of the
//   boundary bin's sub-bins near the one expected to hold the k-th survivor (select_in_gathered_subbin).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "key_window.h"
#include "ops_cpu.h"
#include "survivors.h"

namespace rgprune {
namespace cpu {
namespace {

// The weights a threshold selects among, and the capacity of its key buffer (in keys).
struct SelectInput {
  const at::TensorList& tensors;
  const at::TensorList& masks;
  const std::vector<Chunk> chunks;
  const int64_t key_cap;
};

// What the first pass counted over all tensors: survivors (not NaN), NaN survivors, and the entries whose
// mask bit is 0 but whose key is not 0.
struct SurvivorTotals {
  int64_t survivors, nans, outside;
};

// The int64 info vector (layout: InfoSlot in csrc/format.h).
std::vector<int64_t> make_info(int64_t key, int64_t below, int64_t ties, int64_t equal, SurvivorTotals totals) {
  std::vector<int64_t> info(kInfoLen, 0);
  info[kInfoKey] = key;
  info[kInfoBelow] = below;
  info[kInfoTies] = ties;
  info[kInfoEqual] = equal;
  info[kInfoSurvivors] = totals.survivors;
  info[kInfoNan] = totals.nans;
  info[kInfoOutside] = totals.outside;
  return info;
}

// The threshold's info once the k-th survivor is known to be the rank-th smallest (1-based) of keys[0, m),
// which holds every survivor key equal to it, after nth_element put it at keys[rank - 1]; `offset`
// survivors are below keys[0, m).
template <typename B>
std::vector<int64_t> select_info(const B* keys, int64_t m, int64_t rank, int64_t offset, SurvivorTotals totals) {
  const B v = keys[rank - 1];
  int64_t less = 0, equal = 0;
  for (int64_t i = 0; i < m; ++i) {
    less += keys[i] < v;
    equal += keys[i] == v;
  }
  return make_info(int64_t(v), offset + less, rank - less, equal, totals);
}

// A refinement pass's visitor that also gathers the keys whose bin lies in the gather's range.
template <typename K>
struct GatherVisitor : HistogramVisitor<K, true, false> {
  using Base = HistogramVisitor<K, true, false>;
  using B = typename K::bits_t;
  KeyAppender<B> keys;
  const uint32_t lo, width;

  GatherVisitor(const RadixPass& pass, int64_t* h, KeyGather<B>& gather)
      : Base(pass, h), keys(gather), lo(uint32_t(gather.lo)), width(uint32_t(gather.width)) {}

  template <typename scalar_t>
  inline void visit(B raw, const scalar_t&, bool) {
    const B key = K::key(raw);
    if ((uint64_t(key) >> this->prefix_shift) != this->prefix) return;
    if (K::is_nan(key)) {
      ++this->nans;
      return;
    }
    const uint32_t bin = uint32_t((key >> this->shift) & this->bin_mask);
    ++this->hist[bin];
    if (bin - lo <= width) keys.push(key);
  }
};

// A refinement pass (prefix filter, histogram of the next bits into `hist`) that also gathers keys.
template <typename scalar_t>
void gather_pass(const SelectInput& in, const RadixPass& pass, std::vector<int64_t>& hist,
                 KeyGather<typename KeysFor<scalar_t>::type::bits_t>& gather) {
  using K = typename KeysFor<scalar_t>::type;
  const size_t nbins = size_t(1) << pass.bits;
  std::vector<std::vector<int64_t>> local(at::get_num_threads());
  at::parallel_for(0, int64_t(in.chunks.size()), 1, [&](int64_t lo, int64_t hi) {
    auto& h = local[at::get_thread_num()];
    if (h.empty()) h.assign(nbins, 0);
    GatherVisitor<K> v(pass, h.data(), gather);
    for (int64_t c = lo; c < hi; ++c) filtered_chunk<scalar_t>(in.chunks[c], in.tensors, in.masks, pass, v);
  });
  hist.assign(nbins, 0);
  for (const auto& h : local) merge_local(hist, h, nbins);
}

// The sub-bins [lo, hi] of the boundary bin whose keys the second pass gathers: all of them when the bin
// fits the buffer; otherwise as many as a flat density would put in an eighth of it, centred on the sub-bin
// of the k-th survivor guessed by linear interpolation of its rank within the bin (keys are linear in the
// value inside one binade).
std::pair<uint32_t, uint32_t> subbins_to_gather(int64_t in_bin, int64_t rank, int64_t nsub, int64_t cap) {
  if (in_bin <= cap) return {0u, uint32_t(nsub - 1)};
  const int64_t width = std::max<int64_t>(1, (cap * nsub) / (8 * in_bin));
  const int64_t guess = std::min<int64_t>(nsub - 1, int64_t((double(rank) - 0.5) / double(in_bin) * double(nsub)));
  const int64_t l = std::max<int64_t>(0, std::min<int64_t>(guess - width / 2, nsub - width));
  return {uint32_t(l), uint32_t(std::min<int64_t>(nsub - 1, l + width - 1))};
}

// The second pass of a key wider than 2 * kRadixBits bits (float32, float64), at the select's state
// (`remaining`-th of the `in_bin` survivors of the boundary bin, `n_below` survivors below it). Like any
// refinement pass it leaves the boundary bin's sub-bin histogram in `hist`; it also gathers the keys of
// subbins_to_gather. When the k-th survivor's sub-bin is among them and nothing overflowed, the rest of the
// key is selected in memory instead of by 1 (float32) or 4 (float64) more passes, and the threshold's info
// is returned; otherwise nothing.
template <typename scalar_t>
std::optional<std::vector<int64_t>> select_in_gathered_subbin(const SelectInput& in, const RadixPass& pass,
                                                              int64_t in_bin, int64_t remaining, int64_t n_below,
                                                              std::vector<int64_t>& hist, SurvivorTotals totals) {
  using B = typename KeysFor<scalar_t>::type::bits_t;
  const int64_t nsub = int64_t(1) << pass.bits;
  const auto [lo, hi] = subbins_to_gather(in_bin, remaining, nsub, in.key_cap);
  const int64_t cap = std::min(in.key_cap, in_bin);
  std::unique_ptr<B[]> buf(new B[size_t(cap)]);  // not initialized: untouched pages stay free
  KeyGather<B> gather(buf.get(), cap, lo, hi);
  gather_pass<scalar_t>(in, pass, hist, gather);
  const RankedBin sub = bin_of_rank(hist, remaining);
  const int64_t used = gather.used.load();
  if (gather.overflow.load() || sub.bin < lo || sub.bin > hi || used > gather.cap) return std::nullopt;
  // Keep the keys of the k-th survivor's sub-bin (there must be exactly hist[sub.bin] of them), then select.
  B* keys = buf.get();
  const B sub_mask = static_cast<B>(nsub - 1);
  int64_t m = 0;
  for (int64_t i = 0; i < used; ++i)
    if (size_t((keys[i] >> pass.shift) & sub_mask) == sub.bin) keys[m++] = keys[i];
  if (m != hist[sub.bin]) return std::nullopt;
  const int64_t rank = remaining - sub.below;  // 1-based within the sub-bin
  std::nth_element(keys, keys + (rank - 1), keys + m);
  return select_info(keys, m, rank, n_below + sub.below, totals);
}

// The radix select from the first pass's histogram `hist` (of the top kRadixBits bits), for 1 <= k <=
// survivors.
template <typename scalar_t>
std::vector<int64_t> radix_select(const SelectInput& in, std::vector<int64_t>& hist, int64_t k,
                                  SurvivorTotals totals) {
  constexpr int kb = KeysFor<scalar_t>::type::key_bits;
  RadixPass pass{false, 0, 0, kb - kRadixBits, kRadixBits};
  std::vector<ChunkStats> chunk_stats;
  int64_t remaining = k, n_below = 0;  // the k-th survivor is the remaining-th of those with key prefix `prefix`
  uint64_t prefix = 0;
  int consumed = 0;
  while (true) {
    const RankedBin at = bin_of_rank(hist, remaining);
    n_below += at.below;
    remaining -= at.below;
    prefix = (prefix << pass.bits) | at.bin;
    consumed += pass.bits;
    if (consumed == kb) return make_info(int64_t(prefix), n_below, remaining, hist[at.bin], totals);
    const int bits = std::min(kRadixBits, kb - consumed);
    pass = RadixPass{true, kb - consumed, prefix, kb - consumed - bits, bits};
    if (consumed == kRadixBits && kb - consumed > kRadixBits) {
      auto info = select_in_gathered_subbin<scalar_t>(in, pass, hist[at.bin], remaining, n_below, hist, totals);
      if (info) return *info;
      continue;  // the histogram of this pass is in `hist`: resolve its bits as usual
    }
    histogram_pass<scalar_t, false>(in.tensors, in.masks, in.chunks, pass, hist, chunk_stats);
  }
}

// The k-th survivor when the first pass's window holds it: the survivors below the window and in it
// bracket k.
std::optional<std::vector<int64_t>> select_in_window(KeyWindow& window, int64_t k, SurvivorTotals totals) {
  if (k <= 0 || k > totals.survivors || window.gather.overflow.load()) return std::nullopt;
  const int64_t below = window.below.load(), used = window.gather.used.load();
  if (!(below < k && k <= below + used)) return std::nullopt;
  uint32_t* keys = window.gather.buf;
  std::nth_element(keys, keys + (k - below - 1), keys + used);
  return select_info(keys, used, k - below, below, totals);
}

// The key buffer's bound: 1/256 of the weights' bytes, at least 1024 keys.
int64_t key_buffer_cap(const at::TensorList& tensors, int64_t key_bytes) {
  int64_t weight_bytes = 0;
  for (const auto& t : tensors) weight_bytes += t.numel() * int64_t(t.element_size());
  return std::max<int64_t>(1024, weight_bytes / 256 / key_bytes);
}

template <typename scalar_t>
std::tuple<at::Tensor, at::Tensor> threshold_impl(const at::TensorList& tensors, const at::TensorList& masks,
                                                  int64_t k) {
  constexpr int kb = KeysFor<scalar_t>::type::key_bits;
  using B = typename KeysFor<scalar_t>::type::bits_t;
  const SelectInput in{tensors, masks, make_chunks(tensors), key_buffer_cap(tensors, int64_t(sizeof(B)))};
  std::unique_ptr<uint32_t[]> window_buf;
  std::unique_ptr<KeyWindow> window;
#if defined(RGPRUNE_AVX2_PATHS)
  if (std::is_same<scalar_t, float>::value && cpu_has_avx2()) {
    int64_t n_weights = 0;
    for (const auto& t : tensors) n_weights += t.numel();
    if (const auto range = choose_window(tensors, masks, in.chunks, n_weights, k, in.key_cap)) {
      window_buf.reset(new uint32_t[size_t(in.key_cap)]);  // not initialized: untouched pages stay free
      window.reset(new KeyWindow(window_buf.get(), in.key_cap, range->lo, range->hi));
    }
  }
#endif
  std::vector<int64_t> hist;
  std::vector<ChunkStats> chunk_stats;
  histogram_pass<scalar_t, /*kSums=*/false, /*kOutside=*/true>(
      tensors, masks, in.chunks, RadixPass{false, 0, 0, kb - kRadixBits, kRadixBits}, hist, chunk_stats, window.get());
  const at::Tensor top = to_tensor(hist);
  SurvivorTotals totals{0, 0, 0};
  for (auto h : hist) totals.survivors += h;
  for (const auto& s : chunk_stats) {
    totals.nans += s.nans;
    totals.outside += s.outside;
  }
  if (window) {
    const auto info = select_in_window(*window, k, totals);
    count_window_use(info.has_value());
    if (info) return {to_tensor(*info), top};
  }
  window.reset();
  window_buf.reset();
  if (k <= 0 || k > totals.survivors) return {to_tensor(make_info(-1, 0, 0, 0, totals)), top};
  return {to_tensor(radix_select<scalar_t>(in, hist, k, totals)), top};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> global_magnitude_threshold_cpu(at::TensorList tensors, at::TensorList masks,
                                                                  int64_t k) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  TORCH_CHECK(k >= 0, "rgprune: k must be >= 0, got ", k);
  window_mode();  // a bad RGPRUNE_THRESHOLD_WINDOW fails for every dtype and CPU, not only where it is used
  return AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, tensors[0].scalar_type(),
                                         "global_magnitude_threshold",
                                         [&] { return threshold_impl<scalar_t>(tensors, masks, k); });
}

// Survivors whose key's top prefix_bits bits equal prefix, binned by the next bits bits (rgprune.distributed
// sums each pass over ranks).
at::Tensor radix_histogram_cpu(at::TensorList tensors, at::TensorList masks, int64_t prefix, int64_t prefix_bits,
                               int64_t bits) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  check_bits(bits, tensors[0].scalar_type());
  check_radix_prefix(prefix, prefix_bits, bits, tensors[0].scalar_type());
  const int kb = key_bits_of(tensors[0].scalar_type());
  const auto chunks = make_chunks(tensors);
  std::vector<int64_t> hist;
  std::vector<ChunkStats> chunk_stats;
  const RadixPass pass{prefix_bits > 0, kb - int(prefix_bits), uint64_t(prefix), kb - int(prefix_bits + bits),
                       int(bits)};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, tensors[0].scalar_type(), "radix_histogram", [&] {
    histogram_pass<scalar_t, false>(tensors, masks, chunks, pass, hist, chunk_stats);
  });
  return to_tensor(hist);
}

}  // namespace cpu
}  // namespace rgprune
