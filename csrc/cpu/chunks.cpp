#include "chunks.h"

namespace rgprune {
namespace cpu {

std::vector<Chunk> make_chunks(const at::TensorList& tensors) {
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int64_t n = tensors[i].numel();
    for (int64_t b = 0; b < n; b += kChunk) chunks.push_back({int64_t(i), b, std::min(n, b + kChunk)});
  }
  return chunks;
}

at::Tensor to_tensor(const std::vector<int64_t>& v) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::TensorOptions().dtype(at::kLong));
}

Stats make_stats(const at::TensorList& tensors, const std::vector<Chunk>& chunks,
                 const std::vector<ChunkStats>& chunk_stats, const std::vector<int64_t>& hist) {
  const int64_t n = tensors.size();
  auto counts = at::zeros({n}, at::kLong), nans = at::zeros({n}, at::kLong);
  auto abs_sums = at::zeros({n}, at::kDouble), sq_sums = at::zeros({n}, at::kDouble);
  auto pc = counts.data_ptr<int64_t>(), pn = nans.data_ptr<int64_t>();
  auto pa = abs_sums.data_ptr<double>(), ps = sq_sums.data_ptr<double>();
  for (size_t c = 0; c < chunks.size(); ++c) {
    const auto t = chunks[c].tensor;
    pc[t] += chunk_stats[c].count;
    pn[t] += chunk_stats[c].nans;
    pa[t] += chunk_stats[c].abs_sum;
    ps[t] += chunk_stats[c].sq_sum;
  }
  return {to_tensor(hist), counts, abs_sums, sq_sums, nans};
}

}  // namespace cpu
}  // namespace rgprune
