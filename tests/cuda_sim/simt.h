// The SIMT simulator's prelude: force-included (g++ -include tests/cuda_sim/simt.h) before CUDA device
// code, so that the code compiles unchanged as host C++17 and runs on the CPU under the runtime in
// simt.cpp (one fiber per CUDA thread, the blocks of a grid one after another, on one OS thread).
//
// It defines the CUDA qualifiers, built-in variables, warp intrinsics, bit and conversion intrinsics,
// atomics and a cub::BlockScan stand-in that device code in csrc/cuda uses, plus simt::launch. Every
// __syncthreads() and warp intrinsic is a scheduling point where the runtime checks the CUDA rules
// (same barrier for the whole block; masks naming exactly the lanes that call) and may switch threads;
// violations abandon the launch and throw simt::Error in the caller of simt::launch.
//
// Schedules (which runnable fiber runs next at a scheduling point): SIMT_SCHEDULE in the environment,
// read at each launch, or simt::set_schedule / simt_set_schedule (which win until reset with ""):
//   in-order       the next runnable thread in increasing index, wrapping (the default)
//   reversed       the same in decreasing order
//   random[:SEED]  a uniformly random runnable thread from a generator seeded at each launch (seed 0)
//   warp-greedy    the lowest runnable lane of the current warp, else the next warp that has one
// Build: tests/cuda_sim/build.py (g++ -std=c++17 -include simt.h, linked with simt.cpp).
#pragma once

// The runtime switches fibers with _setjmp/_longjmp between stacks, which glibc's fortified longjmp
// (__longjmp_chk) rejects; this file is included before any libc header, so undefining it here covers
// every translation unit.
#undef _FORTIFY_SOURCE

#define RGPRUNE_SIMT 1

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

// ------------------------------------------------------------------------------------------------------
// Qualifiers
// ------------------------------------------------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
// __restrict__ is a g++ keyword already.

// Shared memory is a function-local static. A static has one instance per function (per template
// instantiation) that every call sees, so all fibers of the running block share it, as CUDA threads
// share a block's __shared__ variable. Blocks run one after another on one OS thread, so one instance
// serves every block; like real shared memory it is not re-initialized between blocks (it holds the
// previous block's values). Limits: an initializer (which CUDA forbids) would run once, not per block;
// two OS threads must not run launches at once (simt::launch serializes them).
#define __shared__ static

// ------------------------------------------------------------------------------------------------------
// Vector types and built-in variables
// ------------------------------------------------------------------------------------------------------

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

constexpr int warpSize = 32;

namespace simt {

// A CUDA rule broken by the kernel, or a launch the simulator cannot run.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

struct Site {
  const char* file;
  int line;
};

// The running fiber's coordinates (set by the scheduler before it resumes a fiber).
extern const uint3* g_thread_idx;
extern uint3 g_block_idx;
extern dim3 g_block_dim;
extern dim3 g_grid_dim;
extern unsigned char* g_dynamic_shared;

}  // namespace detail
}  // namespace simt

#define SIMT_SITE (::simt::detail::Site{__FILE__, __LINE__})
#define threadIdx (*::simt::detail::g_thread_idx)
#define blockIdx (static_cast<const uint3&>(::simt::detail::g_block_idx))
#define blockDim (static_cast<const dim3&>(::simt::detail::g_block_dim))
#define gridDim (static_cast<const dim3&>(::simt::detail::g_grid_dim))

// ------------------------------------------------------------------------------------------------------
// Runtime entry points (simt.cpp)
// ------------------------------------------------------------------------------------------------------

namespace simt {
namespace detail {

enum class WarpOp : unsigned char { kShfl, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kMatchAny, kSyncWarp };

// One lane's call of a warp intrinsic: `value` holds the operand's bytes (zero-extended), `arg` the
// source lane, delta or lane mask of a shuffle.
struct WarpCall {
  WarpOp op;
  unsigned mask;
  uint64_t value;
  int arg;
  int width;
  int bytes;
  Site site;
};

void syncthreads(Site site);
uint64_t warp_collective(const WarpCall& call);
unsigned active_mask();
[[noreturn]] void misaligned(const volatile void* ptr, size_t bytes, const char* expr, Site site);
// Reports a broken rule detected by device-side code of the prelude (e.g. cub::BlockScan).
[[noreturn]] void device_error(const char* what, Site site);

struct LaunchConfig {
  const char* kernel_name;
  dim3 grid, block;
  size_t dynamic_shared_bytes;
};
using ThreadBody = void (*)(void* closure);
// Runs body(closure) once per CUDA thread of the grid; throws Error when the launch fails.
void run_launch(const LaunchConfig& config, ThreadBody body, void* closure);

}  // namespace detail

// Schedule of the next launches: "in-order", "reversed", "random[:SEED]" or "warp-greedy"; nullptr or
// "" returns to the SIMT_SCHEDULE environment variable (read at each launch; default in-order). An
// explicit schedule wins over the environment. Throws Error on an invalid spec.
void set_schedule(const char* spec);
// The message of the last launch's error ("" when it succeeded), or of the last invalid set_schedule.
std::string last_error();
// Stack switches so far (a fiber resumed and yielding back counts two).
unsigned long long context_switches();

// The launch's dynamic shared memory (size given at launch, 16-byte aligned; nullptr when 0). Blocks
// run one after another, so one buffer serves them all; it is filled with 0xff bytes before each block,
// so a block never sees another block's data and reads before writes show up.
template <typename T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(detail::g_dynamic_shared);
}

// Runs kernel<<<grid, block, dynamic_shared_bytes>>>(args...) to completion: blocks one after another,
// each block's threads as fibers. Each thread gets its own copy of the arguments, converted to the
// kernel's parameter types, as CUDA threads get kernel parameters. Only x-dimension grids and blocks
// (block.x <= 1024). Throws Error (in this, the caller's, context) when the kernel breaks a rule.
template <typename... Params, typename... Args>
void launch(const char* kernel_name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t dynamic_shared_bytes,
            Args... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "simt::launch: wrong number of kernel arguments");
  using Tuple = std::tuple<std::decay_t<Params>...>;
  struct Closure {
    void (*kernel)(Params...);
    Tuple params;
  };
  Closure closure{kernel, Tuple(args...)};
  const detail::ThreadBody body = [](void* p) {
    const Closure& c = *static_cast<const Closure*>(p);
    std::apply(c.kernel, c.params);  // the by-value parameters are this thread's copies, on its stack
  };
  detail::run_launch(detail::LaunchConfig{kernel_name, grid, block, dynamic_shared_bytes}, body, &closure);
}

}  // namespace simt

// The same for ctypes. simt_set_schedule returns 0, or -1 for an invalid spec (simt_last_error says why).
extern "C" {
int simt_set_schedule(const char* spec);
const char* simt_last_error(void);
unsigned long long simt_context_switches(void);
}

// ------------------------------------------------------------------------------------------------------
// Block barrier and warp intrinsics
// ------------------------------------------------------------------------------------------------------

#define __syncthreads() ::simt::detail::syncthreads(SIMT_SITE)
#define __shfl_sync(...) ::simt::detail::shfl_sync(SIMT_SITE, __VA_ARGS__)
#define __shfl_up_sync(...) ::simt::detail::shfl_up_sync(SIMT_SITE, __VA_ARGS__)
#define __shfl_down_sync(...) ::simt::detail::shfl_down_sync(SIMT_SITE, __VA_ARGS__)
#define __shfl_xor_sync(...) ::simt::detail::shfl_xor_sync(SIMT_SITE, __VA_ARGS__)
#define __ballot_sync(...) ::simt::detail::ballot_sync(SIMT_SITE, __VA_ARGS__)
#define __any_sync(...) ::simt::detail::any_sync(SIMT_SITE, __VA_ARGS__)
#define __all_sync(...) ::simt::detail::all_sync(SIMT_SITE, __VA_ARGS__)
#define __match_any_sync(...) ::simt::detail::match_any_sync(SIMT_SITE, __VA_ARGS__)
#define __syncwarp(...) ::simt::detail::syncwarp(SIMT_SITE __VA_OPT__(, ) __VA_ARGS__)
// The lanes of the caller's warp that have not exited (on hardware: the lanes currently converged with
// it, which the simulator does not model). Not a scheduling point.
#define __activemask() ::simt::detail::active_mask()

namespace simt {
namespace detail {

// Shuffles and match move 4- or 8-byte values as raw bytes (the types CUDA overloads them for).
template <typename T>
uint64_t to_bits(T v) {
  static_assert(std::is_arithmetic<T>::value && (sizeof(T) == 4 || sizeof(T) == 8),
                "warp intrinsics take int, unsigned, (unsigned) long (long), float or double");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}

template <typename T>
T from_bits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

template <typename T>
T shuffle(WarpOp op, Site site, unsigned mask, T var, int arg, int width) {
  return from_bits<T>(warp_collective(WarpCall{op, mask, to_bits(var), arg, width, int(sizeof(T)), site}));
}

template <typename T>
T shfl_sync(Site site, unsigned mask, T var, int src_lane, int width = warpSize) {
  return shuffle(WarpOp::kShfl, site, mask, var, src_lane, width);
}

template <typename T>
T shfl_up_sync(Site site, unsigned mask, T var, unsigned delta, int width = warpSize) {
  return shuffle(WarpOp::kShflUp, site, mask, var, int(delta), width);
}

template <typename T>
T shfl_down_sync(Site site, unsigned mask, T var, unsigned delta, int width = warpSize) {
  return shuffle(WarpOp::kShflDown, site, mask, var, int(delta), width);
}

template <typename T>
T shfl_xor_sync(Site site, unsigned mask, T var, int lane_mask, int width = warpSize) {
  return shuffle(WarpOp::kShflXor, site, mask, var, lane_mask, width);
}

inline unsigned ballot_sync(Site site, unsigned mask, int predicate) {
  return unsigned(warp_collective(WarpCall{WarpOp::kBallot, mask, uint64_t(predicate != 0), 0, warpSize, 4, site}));
}

inline int any_sync(Site site, unsigned mask, int predicate) {
  return int(warp_collective(WarpCall{WarpOp::kAny, mask, uint64_t(predicate != 0), 0, warpSize, 4, site}));
}

inline int all_sync(Site site, unsigned mask, int predicate) {
  return int(warp_collective(WarpCall{WarpOp::kAll, mask, uint64_t(predicate != 0), 0, warpSize, 4, site}));
}

template <typename T>
unsigned match_any_sync(Site site, unsigned mask, T value) {
  const WarpCall call{WarpOp::kMatchAny, mask, to_bits(value), 0, warpSize, int(sizeof(T)), site};
  return unsigned(warp_collective(call));
}

inline void syncwarp(Site site, unsigned mask = 0xffffffffu) {
  warp_collective(WarpCall{WarpOp::kSyncWarp, mask, 0, 0, warpSize, 4, site});
}

}  // namespace detail
}  // namespace simt

// ------------------------------------------------------------------------------------------------------
// Bit, min/max and reinterpreting intrinsics
// ------------------------------------------------------------------------------------------------------

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }

// CUDA's unqualified min/max for the types device code calls them with (same-type pairs; int64_t is
// `long` here, distinct from long long).
#define SIMT_MIN_MAX(T)                            \
  inline T min(T a, T b) { return b < a ? b : a; } \
  inline T max(T a, T b) { return a < b ? b : a; }
SIMT_MIN_MAX(int)
SIMT_MIN_MAX(unsigned)
SIMT_MIN_MAX(long)
SIMT_MIN_MAX(unsigned long)
SIMT_MIN_MAX(long long)
SIMT_MIN_MAX(unsigned long long)
SIMT_MIN_MAX(float)
SIMT_MIN_MAX(double)
#undef SIMT_MIN_MAX

namespace simt {
namespace detail {
template <typename To, typename From>
To bit_cast(From from) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast between types of different sizes");
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
}
}  // namespace detail
}  // namespace simt

inline float __uint_as_float(unsigned x) { return simt::detail::bit_cast<float>(x); }
inline unsigned __float_as_uint(float x) { return simt::detail::bit_cast<unsigned>(x); }
inline float __int_as_float(int x) { return simt::detail::bit_cast<float>(x); }
inline int __float_as_int(float x) { return simt::detail::bit_cast<int>(x); }
inline double __longlong_as_double(long long x) { return simt::detail::bit_cast<double>(x); }
inline long long __double_as_longlong(double x) { return simt::detail::bit_cast<long long>(x); }

// IEEE binary16 as its bit pattern; only the conversions device code uses.
struct __half {
  unsigned short __x;
};

inline __half __ushort_as_half(unsigned short x) { return __half{x}; }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }

// Exact: every binary16 value is a binary32 value. NaNs keep sign and payload (as numpy converts them;
// hardware may return a canonical NaN instead).
inline float __half2float(__half h) {
  const unsigned sign = unsigned(h.__x & 0x8000u) << 16;
  const unsigned exponent = (h.__x >> 10) & 0x1fu, mantissa = h.__x & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in binary32
    const float magnitude = float(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  const unsigned biased = exponent == 31 ? 255u : exponent + (127u - 15u);  // Inf/NaN keep the top exponent
  return __uint_as_float(sign | (biased << 23) | (mantissa << 13));
}

// ------------------------------------------------------------------------------------------------------
// Atomics: fibers of one OS thread never run at the same time, so a plain read-modify-write is atomic.
// Each returns the old value. Not scheduling points.
// ------------------------------------------------------------------------------------------------------

namespace simt {
namespace detail {
template <typename T, typename F>
T atomic_update(T* address, F f) {
  const T old = *address;
  *address = f(old);
  return old;
}
}  // namespace detail
}  // namespace simt

#define SIMT_ATOMIC(name, T, expr)                                           \
  inline T name(T* address, T val) {                                         \
    return ::simt::detail::atomic_update(address, [&](T old) -> T {          \
      (void)old;                                                             \
      return static_cast<T>(expr);                                           \
    });                                                                      \
  }
// Signed adds wrap like the hardware (through unsigned arithmetic, without undefined behaviour).
SIMT_ATOMIC(atomicAdd, int, unsigned(old) + unsigned(val))
SIMT_ATOMIC(atomicAdd, unsigned, old + val)
SIMT_ATOMIC(atomicAdd, unsigned long long, old + val)
SIMT_ATOMIC(atomicAdd, float, old + val)
SIMT_ATOMIC(atomicAdd, double, old + val)
SIMT_ATOMIC(atomicSub, int, unsigned(old) - unsigned(val))
SIMT_ATOMIC(atomicSub, unsigned, old - val)
SIMT_ATOMIC(atomicMax, int, old < val ? val : old)
SIMT_ATOMIC(atomicMax, unsigned, old < val ? val : old)
SIMT_ATOMIC(atomicMax, unsigned long long, old < val ? val : old)
SIMT_ATOMIC(atomicMax, long long, old < val ? val : old)
SIMT_ATOMIC(atomicMin, int, val < old ? val : old)
SIMT_ATOMIC(atomicMin, unsigned, val < old ? val : old)
SIMT_ATOMIC(atomicMin, unsigned long long, val < old ? val : old)
SIMT_ATOMIC(atomicMin, long long, val < old ? val : old)
SIMT_ATOMIC(atomicExch, int, val)
SIMT_ATOMIC(atomicExch, unsigned, val)
SIMT_ATOMIC(atomicExch, unsigned long long, val)
SIMT_ATOMIC(atomicExch, float, val)
SIMT_ATOMIC(atomicOr, int, old | val)
SIMT_ATOMIC(atomicOr, unsigned, old | val)
SIMT_ATOMIC(atomicOr, unsigned long long, old | val)
SIMT_ATOMIC(atomicAnd, int, old & val)
SIMT_ATOMIC(atomicAnd, unsigned, old & val)
SIMT_ATOMIC(atomicAnd, unsigned long long, old & val)
SIMT_ATOMIC(atomicXor, int, old ^ val)
SIMT_ATOMIC(atomicXor, unsigned, old ^ val)
SIMT_ATOMIC(atomicXor, unsigned long long, old ^ val)
#undef SIMT_ATOMIC

#define SIMT_ATOMIC_CAS(T)                                                                                    \
  inline T atomicCAS(T* address, T compare, T val) {                                                          \
    return ::simt::detail::atomic_update(address, [&](T old) { return old == compare ? val : old; });        \
  }
SIMT_ATOMIC_CAS(int)
SIMT_ATOMIC_CAS(unsigned)
SIMT_ATOMIC_CAS(unsigned long long)
SIMT_ATOMIC_CAS(unsigned short)
#undef SIMT_ATOMIC_CAS

// Memory fences order nothing here: fibers switch only at scheduling points and share one coherent view.
inline void __threadfence() {}
inline void __threadfence_block() {}

// ------------------------------------------------------------------------------------------------------
// Vector-access alignment check (device code defines it empty under nvcc)
// ------------------------------------------------------------------------------------------------------

namespace simt {
namespace detail {
inline void check_aligned(const volatile void* ptr, size_t bytes, const char* expr, Site site) {
  if (reinterpret_cast<uintptr_t>(ptr) % bytes != 0) misaligned(ptr, bytes, expr, site);
}
}  // namespace detail
}  // namespace simt

#ifndef RGP_CHECK_ALIGNED
#define RGP_CHECK_ALIGNED(ptr, bytes) \
  ::simt::detail::check_aligned(static_cast<const volatile void*>(ptr), (bytes), #ptr, SIMT_SITE)
#endif

// ------------------------------------------------------------------------------------------------------
// cub::BlockScan stand-in
// ------------------------------------------------------------------------------------------------------

namespace cub {

// Block-wide prefix sums over a 1-D block of exactly BLOCK_DIM_X threads. Like cub's warp-scans
// algorithm: each warp scans with shuffles, its last lane writes the warp's total INTO TempStorage, one
// __syncthreads, then every thread reads the totals back OUT of it. There is no trailing barrier, as in
// cub: a kernel that reuses the TempStorage (e.g. in a loop) must __syncthreads() between uses, or a
// fast warp overwrites totals that slower threads have not read yet (warp-greedy shows it).
template <typename T, int BLOCK_DIM_X>
class BlockScan {
  static_assert(BLOCK_DIM_X % 32 == 0 && BLOCK_DIM_X > 0 && BLOCK_DIM_X <= 1024,
                "the stand-in supports whole warps, up to 1024 threads");
  static constexpr int kWarps = BLOCK_DIM_X / 32;

 public:
  struct TempStorage {
    T warp_totals[kWarps];
  };

  explicit BlockScan(TempStorage& storage) : storage_(storage) {}

  void ExclusiveSum(T input, T& output) {
    T aggregate;
    ExclusiveSum(input, output, aggregate);
  }
  void ExclusiveSum(T input, T& output, T& block_aggregate) {
    const Partial p = scan(input, block_aggregate);
    output = p.warp_prefix + p.exclusive;
  }
  void InclusiveSum(T input, T& output) {
    T aggregate;
    InclusiveSum(input, output, aggregate);
  }
  void InclusiveSum(T input, T& output, T& block_aggregate) {
    const Partial p = scan(input, block_aggregate);
    output = p.warp_prefix + p.inclusive;
  }

  // N consecutive items per thread (thread t holds items t*N .. t*N+N-1); output may alias input.
  template <int N>
  void ExclusiveSum(T (&input)[N], T (&output)[N]) {
    T aggregate;
    ExclusiveSum(input, output, aggregate);
  }
  template <int N>
  void ExclusiveSum(T (&input)[N], T (&output)[N], T& block_aggregate) {
    T prefix;
    ExclusiveSum(thread_total(input), prefix, block_aggregate);
    for (int i = 0; i < N; ++i) {
      const T x = input[i];
      output[i] = prefix;
      prefix += x;
    }
  }
  template <int N>
  void InclusiveSum(T (&input)[N], T (&output)[N]) {
    T aggregate;
    InclusiveSum(input, output, aggregate);
  }
  template <int N>
  void InclusiveSum(T (&input)[N], T (&output)[N], T& block_aggregate) {
    T prefix;
    ExclusiveSum(thread_total(input), prefix, block_aggregate);
    for (int i = 0; i < N; ++i) {
      prefix += input[i];
      output[i] = prefix;
    }
  }

 private:
  struct Partial {
    T inclusive, exclusive;  // within the warp
    T warp_prefix;           // totals of the earlier warps
  };

  template <int N>
  static T thread_total(const T (&input)[N]) {
    T total = T();
    for (int i = 0; i < N; ++i) total += input[i];
    return total;
  }

  static void check_block_size() {
    if (blockDim.x == unsigned(BLOCK_DIM_X)) return;
    char what[96];  // on the stack: the failing launch abandons this frame without unwinding it
    std::snprintf(what, sizeof(what), "cub::BlockScan<T, %d> used in a block of %u threads", BLOCK_DIM_X,
                  blockDim.x);
    ::simt::detail::device_error(what, SIMT_SITE);
  }

  Partial scan(T input, T& block_aggregate) {
    check_block_size();
    const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32);
    Partial p{input, T(), T()};
    for (int offset = 1; offset < 32; offset *= 2) {
      const T up = __shfl_up_sync(0xffffffffu, p.inclusive, offset);
      if (lane >= offset) p.inclusive += up;
    }
    p.exclusive = __shfl_up_sync(0xffffffffu, p.inclusive, 1);
    if (lane == 0) p.exclusive = T();
    if (lane == 31) storage_.warp_totals[warp] = p.inclusive;
    __syncthreads();
    block_aggregate = T();
    for (int w = 0; w < kWarps; ++w) {
      if (w < warp) p.warp_prefix += storage_.warp_totals[w];
      block_aggregate += storage_.warp_totals[w];
    }
    return p;  // no trailing barrier (see the class comment)
  }

  TempStorage& storage_;
};

}  // namespace cub
