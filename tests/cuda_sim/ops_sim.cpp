// rgprune's CUDA ops under the SIMT simulator: the launch sequences of csrc/cuda/launch.cuh, with a Launcher
// that runs each kernel's blocks on fibers (simt.h) and keeps device buffers in host memory. The device code
// and the launch sequences are csrc/cuda's own; what this file adds is what kernels_cuda.cu does with ATen
// (output buffers, dtype dispatch), plus checks a GPU would not make: scratch buffers are poisoned before
// use and guarded by canaries, and the info vector starts poisoned so that every slot must be written.
// Exposed as a C API for the tests (tests/cuda_sim/ops.py, through ctypes).
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/launch.cuh"  // from the source root's csrc/ (-I): the repository's, or a copy with a planted bug

namespace {

using namespace rgprune;
using namespace rgprune::cuda;

constexpr unsigned char kPoison = 0xA5;   // scratch that a kernel reads before writing shows up as garbage
constexpr unsigned char kCanary = 0x5A;   // written past every scratch buffer, checked after the op
constexpr size_t kCanaryBytes = 256;

struct SimConfig {
  int wave = 4;               // blocks of a "full wave" of every kernel (the grid cap of the tests)
  int64_t key_capacity = 0;   // the threshold's key buffer in keys; 0: the default rule of launch.cuh
};
SimConfig config;
std::string last_error;

class SimLauncher {
 public:
  template <typename... Params, typename... Args>
  void launch(const char* name, void (*kernel)(Params...), int grid, int threads, Args... args) {
    if (grid < 1 || threads < 1 || threads > 1024)
      throw std::runtime_error(std::string("invalid launch configuration of ") + name);
    simt::launch(name, kernel, dim3(unsigned(grid)), dim3(unsigned(threads)), 0, args...);
  }

  template <typename... Params>
  int wave(void (*)(Params...)) {
    return config.wave;
  }

  template <typename T>
  T* zeros(int64_t n) {
    return static_cast<T*>(allocate(size_t(n) * sizeof(T), 0));
  }

  template <typename T>
  T* empty(int64_t n) {
    return static_cast<T*>(allocate(size_t(n) * sizeof(T), kPoison));
  }

  // Throws when a kernel wrote past the end of a scratch buffer.
  void check_canaries() const {
    for (const Buffer& b : buffers_)
      for (size_t i = 0; i < kCanaryBytes; ++i)
        if (b.memory.get()[b.bytes + i] != kCanary)
          throw std::runtime_error("a kernel wrote past the end of a scratch buffer of " + std::to_string(b.bytes) +
                                   " bytes");
  }

 private:
  struct Buffer {
    std::unique_ptr<unsigned char[]> memory;
    size_t bytes;
  };

  void* allocate(size_t bytes, unsigned char fill) {
    // new[] of unsigned char is aligned for any fundamental type (16 bytes here): enough for every kernel load
    buffers_.push_back(Buffer{std::unique_ptr<unsigned char[]>(new unsigned char[bytes + kCanaryBytes]), bytes});
    unsigned char* memory = buffers_.back().memory.get();
    std::memset(memory, fill, bytes);
    std::memset(memory + bytes, kCanary, kCanaryBytes);
    return memory;
  }

  std::vector<Buffer> buffers_;
};

// Calls f(Traits{}) for the dtype code of tests/cuda_sim/ops.py (0 float32, 1 float16, 2 bfloat16, 3 float64).
template <typename F>
void with_keys(int dtype, F&& f) {
  switch (dtype) {
    case 0: return f(F32Keys{});
    case 1: return f(F16Keys{});
    case 2: return f(BF16Keys{});
    case 3: return f(F64Keys{});
    default: throw std::runtime_error("unknown dtype code " + std::to_string(dtype));
  }
}

std::vector<TensorRef> refs(int n, void** data, uint32_t** masks, const int64_t* numels) {
  std::vector<TensorRef> out;
  for (int i = 0; i < n; ++i) out.push_back(TensorRef{data[i], masks[i], numels[i]});
  return out;
}

// Zeroed like the at::zeros outputs of kernels_cuda.cu.
StatsOut zeroed_stats(int n, int bits, int64_t* hist, int64_t* counts, double* abs_sums, double* sq_sums,
                      int64_t* nans) {
  std::memset(hist, 0, sizeof(int64_t) << bits);
  std::memset(counts, 0, sizeof(int64_t) * n);
  std::memset(abs_sums, 0, sizeof(double) * n);
  std::memset(sq_sums, 0, sizeof(double) * n);
  std::memset(nans, 0, sizeof(int64_t) * n);
  return StatsOut{reinterpret_cast<unsigned long long*>(hist), reinterpret_cast<unsigned long long*>(counts),
                  abs_sums, sq_sums, reinterpret_cast<unsigned long long*>(nans)};
}

// Runs an op: 0 on success; 1 with the error (a simulator check, a failed launch) in last_error.
template <typename F>
int guarded(F&& f) {
  last_error.clear();
  try {
    SimLauncher launcher;
    f(launcher);
    launcher.check_canaries();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
    return 1;
  }
}

}  // namespace

extern "C" {

void rgp_sim_configure(int wave, int64_t key_capacity) {
  config.wave = wave;
  config.key_capacity = key_capacity;
}

const char* rgp_sim_last_error() { return last_error.c_str(); }

// "in-order", "reversed", "random[:SEED]", "warp-greedy"; "" follows SIMT_SCHEDULE. 0 on success.
int rgp_sim_set_schedule(const char* spec) {
  return guarded([&](SimLauncher&) { simt::set_schedule(spec); });
}

unsigned long long rgp_sim_context_switches() { return simt::context_switches(); }

// The select state's layout, for reading what the last threshold did: words, and the index of from_keys and
// gathered.
int rgp_sim_select_state_words() { return int(kStateWords); }
int rgp_sim_select_state_from_keys() { return int(offsetof(SelectState, from_keys) / sizeof(int64_t)); }
int rgp_sim_select_state_gathered() { return int(offsetof(SelectState, gathered) / sizeof(int64_t)); }

int rgp_sim_magnitude_histogram(int dtype, int n, void** data, uint32_t** masks, const int64_t* numels, int bits,
                                int64_t* hist, int64_t* counts, double* abs_sums, double* sq_sums, int64_t* nans) {
  return guarded([&](SimLauncher& launcher) {
    const StatsOut out = zeroed_stats(n, bits, hist, counts, abs_sums, sq_sums, nans);
    const auto tables = chunk_tables(refs(n, data, masks, numels));
    with_keys(dtype, [&](auto traits) { launch_magnitude_histogram<decltype(traits)>(launcher, tables, bits, out); });
  });
}

int rgp_sim_radix_histogram(int dtype, int n, void** data, uint32_t** masks, const int64_t* numels, int64_t prefix,
                            int prefix_bits, int bits, int64_t* hist) {
  return guarded([&](SimLauncher& launcher) {
    std::memset(hist, 0, sizeof(int64_t) << bits);
    const auto tables = chunk_tables(refs(n, data, masks, numels));
    with_keys(dtype, [&](auto traits) {
      launch_radix_histogram<decltype(traits)>(launcher, tables, prefix, prefix_bits, bits,
                                               reinterpret_cast<unsigned long long*>(hist));
    });
  });
}

// state: kStateWords int64 words, the select's final SelectState (which passes read the key buffer).
int rgp_sim_global_magnitude_threshold(int dtype, int n, void** data, uint32_t** masks, const int64_t* numels,
                                       int element_size, int64_t k, int64_t* info, int64_t* top, int64_t* state) {
  return guarded([&](SimLauncher& launcher) {
    std::memset(info, kPoison, sizeof(int64_t) * kInfoLen);  // at::empty in kernels_cuda.cu
    std::memset(top, 0, sizeof(int64_t) << kRadixBits);
    std::memset(state, 0, sizeof(int64_t) * kStateWords);
    const auto tensors = refs(n, data, masks, numels);
    const int64_t capacity = config.key_capacity > 0 ? config.key_capacity
                                                     : default_key_capacity(tensors, element_size);
    const auto tables = chunk_tables(tensors);
    with_keys(dtype, [&](auto traits) {
      launch_threshold<decltype(traits)>(launcher, tables, k, reinterpret_cast<unsigned long long*>(top), info,
                                         capacity, reinterpret_cast<SelectState*>(state));
    });
  });
}

int rgp_sim_apply_threshold(int dtype, int n, void** data, uint32_t** masks, const int64_t* numels,
                            const int64_t* info, int bits, int64_t* hist, int64_t* counts, double* abs_sums,
                            double* sq_sums, int64_t* nans) {
  return guarded([&](SimLauncher& launcher) {
    const StatsOut out = zeroed_stats(n, bits, hist, counts, abs_sums, sq_sums, nans);
    const auto tables = chunk_tables(refs(n, data, masks, numels));
    with_keys(dtype, [&](auto traits) { launch_apply_threshold<decltype(traits)>(launcher, tables, info, bits, out); });
  });
}

int rgp_sim_threshold_masks(int dtype, int n, void** data, uint32_t** masks, const int64_t* numels,
                            const int64_t* info) {
  return guarded([&](SimLauncher& launcher) {
    const StatsOut unused{nullptr, nullptr, nullptr, nullptr, nullptr};
    const auto tables = chunk_tables(refs(n, data, masks, numels));
    with_keys(dtype, [&](auto traits) {
      launch_apply_threshold<decltype(traits), false>(launcher, tables, info, 1, unused);
    });
  });
}

// element_sizes[i]: bytes per element of tensor i (2, 4 or 8).
int rgp_sim_apply_masks(int n, void** data, uint32_t** masks, const int64_t* numels, const int* element_sizes) {
  return guarded([&](SimLauncher& launcher) {
    launch_apply_masks(launcher, refs(n, data, masks, numels), std::vector<int>(element_sizes, element_sizes + n));
  });
}

// Every tensor of dtype code `dtype`.
int rgp_sim_masks_where_one(int dtype, int n, void** data, uint32_t** masks, const int64_t* numels) {
  return guarded([&](SimLauncher& launcher) {
    with_keys(dtype, [&](auto traits) { launch_masks_where_one<decltype(traits)>(launcher, refs(n, data, masks, numels)); });
  });
}

}  // extern "C"
