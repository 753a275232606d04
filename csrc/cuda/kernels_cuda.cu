// The CUDA ops' host side: argument checks, output tensors, and a Launcher (launch.cuh) that enqueues the
// kernels of kernels.cuh on the current stream with <<<>>>. Nothing here waits for the device or reads
// device memory, and no launch reads memory the host writes after enqueueing it (chunk tables travel as
// kernel parameters), so every op can be captured in a CUDA graph.

// c10's stream header rather than ATen/cuda/CUDAContext.h (the same current stream), which would also
// pull in the cuSPARSE/cuBLAS headers that a minimal CUDA toolkit lacks.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "../rgprune.h"
#include "launch.cuh"

namespace rgprune {
namespace cuda {
namespace {

// Blocks per wave of a kernel on a device: an occupancy query and an attribute query, made once per
// (device, kernel) rather than at every launch.
int cached_wave(const void* kernel, int threads) {
  static std::mutex mutex;
  static std::map<std::pair<int, const void*>, int> waves;
  const int device = c10::cuda::current_device();
  const std::lock_guard<std::mutex> lock(mutex);
  const auto found = waves.find({device, kernel});
  if (found != waves.end()) return found->second;
  int blocks_per_sm = 0, sms = 0;
  C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel, threads, 0));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return waves[{device, kernel}] = std::max(1, blocks_per_sm) * sms;
}

// Enqueues on the current stream; scratch buffers come from torch's caching allocator (stream-ordered, so
// they may be released as soon as the op returns).
class CudaLauncher {
 public:
  explicit CudaLauncher(const at::Tensor& like)
      : options_(like.options().dtype(at::kByte)), stream_(c10::cuda::getCurrentCUDAStream()) {}

  template <typename... Params, typename... Args>
  void launch(const char*, void (*kernel)(Params...), int grid, int threads, Args... args) {
    kernel<<<grid, threads, 0, stream_>>>(args...);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  template <typename... Params>
  int wave(void (*kernel)(Params...)) {
    return cached_wave(reinterpret_cast<const void*>(kernel), kThreads);
  }

  template <typename T>
  T* zeros(int64_t n) {
    return keep<T>(at::zeros({n * int64_t(sizeof(T))}, options_));
  }

  template <typename T>
  T* empty(int64_t n) {
    return keep<T>(at::empty({n * int64_t(sizeof(T))}, options_));
  }

 private:
  template <typename T = void>
  T* keep(at::Tensor t) {
    scratch_.push_back(std::move(t));
    return reinterpret_cast<T*>(scratch_.back().data_ptr());
  }

  at::TensorOptions options_;
  cudaStream_t stream_;
  std::vector<at::Tensor> scratch_;
};

std::vector<TensorRef> tensor_refs(const at::TensorList& tensors, const at::TensorList& masks) {
  std::vector<TensorRef> refs;
  for (size_t i = 0; i < tensors.size(); ++i)
    refs.push_back(TensorRef{tensors[i].data_ptr(), reinterpret_cast<uint32_t*>(masks[i].data_ptr()),
                             tensors[i].numel()});
  return refs;
}

unsigned long long* u64_ptr(const at::Tensor& t) {
  return reinterpret_cast<unsigned long long*>(t.data_ptr<int64_t>());
}

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

Stats magnitude_histogram_cuda(at::TensorList tensors, at::TensorList masks, int64_t bits) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  check_bits(bits, tensors[0].scalar_type());
  const c10::cuda::CUDAGuard guard(tensors[0].device());
  Stats stats = zero_stats(tensors, bits);
  CudaLauncher launcher(tensors[0]);
  const auto tables = chunk_tables(tensor_refs(tensors, masks));
  dispatch_keys(tensors[0].scalar_type(), [&](auto traits) {
    launch_magnitude_histogram<decltype(traits)>(launcher, tables, int(bits), stats_out(stats));
  });
  return stats;
}

at::Tensor radix_histogram_cuda(at::TensorList tensors, at::TensorList masks, int64_t prefix, int64_t prefix_bits,
                                int64_t bits) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  check_bits(bits, tensors[0].scalar_type());
  check_radix_prefix(prefix, prefix_bits, bits, tensors[0].scalar_type());
  const c10::cuda::CUDAGuard guard(tensors[0].device());
  const at::Tensor hist = at::zeros({int64_t(1) << bits}, tensors[0].options().dtype(at::kLong));
  CudaLauncher launcher(tensors[0]);
  const auto tables = chunk_tables(tensor_refs(tensors, masks));
  dispatch_keys(tensors[0].scalar_type(), [&](auto traits) {
    launch_radix_histogram<decltype(traits)>(launcher, tables, prefix, int(prefix_bits), int(bits), u64_ptr(hist));
  });
  return hist;
}

std::tuple<at::Tensor, at::Tensor> global_magnitude_threshold_cuda(at::TensorList tensors, at::TensorList masks,
                                                                   int64_t k) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  TORCH_CHECK(k >= 0, "rgprune: k must be >= 0, got ", k);
  const c10::cuda::CUDAGuard guard(tensors[0].device());
  const auto long_opts = tensors[0].options().dtype(at::kLong);
  const at::Tensor top = at::zeros({int64_t(1) << kRadixBits}, long_opts);
  const at::Tensor info = at::empty({kInfoLen}, long_opts);  // written by the first select kernel
  CudaLauncher launcher(tensors[0]);
  const auto refs = tensor_refs(tensors, masks);
  const auto tables = chunk_tables(refs);
  const int64_t key_capacity = default_key_capacity(refs, int(tensors[0].element_size()));
  dispatch_keys(tensors[0].scalar_type(), [&](auto traits) {
    launch_threshold<decltype(traits)>(launcher, tables, k, u64_ptr(top), info.data_ptr<int64_t>(), key_capacity);
  });
  return {info, top};
}

// apply_threshold_ (kWeights: weights, masks and the survivors' statistics into `out`) and threshold_masks_
// (masks only), one launch sequence.
template <bool kWeights>
void apply_threshold_on_device(at::TensorList tensors, at::TensorList masks, const at::Tensor& info, int64_t bits,
                               const StatsOut& out) {
  const c10::cuda::CUDAGuard guard(tensors[0].device());
  const at::Tensor plan_info = info.contiguous();
  CudaLauncher launcher(tensors[0]);
  const auto tables = chunk_tables(tensor_refs(tensors, masks));
  dispatch_keys(tensors[0].scalar_type(), [&](auto traits) {
    launch_apply_threshold<decltype(traits), kWeights>(launcher, tables, plan_info.data_ptr<int64_t>(), int(bits),
                                                       out);
  });
}

Stats apply_threshold_cuda(at::TensorList tensors, at::TensorList masks, const at::Tensor& info, int64_t bits) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  check_bits(bits, tensors[0].scalar_type());
  check_threshold_info(info, tensors[0]);
  Stats stats = zero_stats(tensors, bits);
  apply_threshold_on_device<true>(tensors, masks, info, bits, stats_out(stats));
  return stats;
}

void threshold_masks_cuda(at::TensorList tensors, at::TensorList masks, const at::Tensor& info) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/true);
  check_threshold_info(info, tensors[0]);
  apply_threshold_on_device<false>(tensors, masks, info, 1, StatsOut{nullptr, nullptr, nullptr, nullptr, nullptr});
}

void apply_masks_cuda(at::TensorList tensors, at::TensorList masks) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/false);
  const c10::cuda::CUDAGuard guard(tensors[0].device());
  std::vector<int> element_sizes;
  for (const auto& t : tensors) element_sizes.push_back(int(t.element_size()));
  CudaLauncher launcher(tensors[0]);
  launch_apply_masks(launcher, tensor_refs(tensors, masks), element_sizes);
}

// One launch sequence per dtype present: the bit pattern of 1.0 is the dtype's.
void masks_where_one_cuda(at::TensorList tensors, at::TensorList masks) {
  check_tensor_lists(tensors, masks, /*same_dtype=*/false);
  const c10::cuda::CUDAGuard guard(tensors[0].device());
  CudaLauncher launcher(tensors[0]);
  for (const auto dtype : {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble}) {
    std::vector<at::Tensor> group_tensors, group_masks;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (tensors[i].scalar_type() != dtype) continue;
      group_tensors.push_back(tensors[i]);
      group_masks.push_back(masks[i]);
    }
    if (group_tensors.empty()) continue;
    dispatch_keys(dtype, [&](auto traits) {
      launch_masks_where_one<decltype(traits)>(launcher, tensor_refs(group_tensors, group_masks));
    });
  }
}

}  // namespace
}  // namespace cuda
}  // namespace rgprune

TORCH_LIBRARY_IMPL(rgprune, CUDA, m) {
  m.impl("magnitude_histogram", &rgprune::cuda::magnitude_histogram_cuda);
  m.impl("global_magnitude_threshold", &rgprune::cuda::global_magnitude_threshold_cuda);
  m.impl("radix_histogram", &rgprune::cuda::radix_histogram_cuda);
  m.impl("apply_threshold_", &rgprune::cuda::apply_threshold_cuda);
  m.impl("apply_masks_", &rgprune::cuda::apply_masks_cuda);
  m.impl("masks_where_one_", &rgprune::cuda::masks_where_one_cuda);
  m.impl("threshold_masks_", &rgprune::cuda::threshold_masks_cuda);
}
