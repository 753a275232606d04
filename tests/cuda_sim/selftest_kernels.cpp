// Kernels that test the SIMT simulator itself (tests/test_cuda_simt_runtime.py drives them through
// ctypes). Written in CUDA style; compiled as host C++ with the simt.h prelude. Every st_* entry point
// returns 0, or 1 when the launch failed (simt_last_error() says why).
#include <cstdint>
#include <cstring>

namespace {

constexpr unsigned kFull = 0xffffffffu;

template <typename F>
int guarded(F&& launch) {
  try {
    launch();
    return 0;
  } catch (const simt::Error&) {
    return 1;
  }
}

// ------------------------------------------------------------------------------------------------------
// Intrinsics
// ------------------------------------------------------------------------------------------------------

// op 0..3: __shfl_sync, __shfl_up_sync, __shfl_down_sync, __shfl_xor_sync; in/out: raw bytes of T.
template <typename T>
__global__ void shuffle_kernel(int op, const uint64_t* in, const int* args, int width, uint64_t* out) {
  const int t = threadIdx.x;
  T v;
  std::memcpy(&v, &in[t], sizeof(T));
  T r = v;
  if (op == 0) r = __shfl_sync(kFull, v, args[t], width);
  if (op == 1) r = __shfl_up_sync(kFull, v, unsigned(args[t]), width);
  if (op == 2) r = __shfl_down_sync(kFull, v, unsigned(args[t]), width);
  if (op == 3) r = __shfl_xor_sync(kFull, v, args[t], width);
  out[t] = 0;
  std::memcpy(&out[t], &r, sizeof(T));
}

template <typename T>
void launch_shuffle(int op, const uint64_t* in, const int* args, int width, uint64_t* out) {
  simt::launch("shuffle_kernel", shuffle_kernel<T>, 1, 32, 0, op, in, args, width, out);
}

// Lanes outside `mask` return at once; the others vote with their predicate.
__global__ void vote_kernel(unsigned mask, const int* preds, unsigned* ballot, int* any, int* all) {
  const int lane = threadIdx.x % 32;
  if (!((mask >> lane) & 1u)) return;
  ballot[lane] = __ballot_sync(mask, preds[lane]);
  any[lane] = __any_sync(mask, preds[lane]);
  all[lane] = __all_sync(mask, preds[lane]);
}

template <typename T>
__global__ void match_kernel(unsigned mask, const uint64_t* values, unsigned* out) {
  const int lane = threadIdx.x % 32;
  if (!((mask >> lane) & 1u)) return;
  T v;
  std::memcpy(&v, &values[lane], sizeof(T));
  out[lane] = __match_any_sync(mask, v);
}

// Per item: __popc, __popcll, __ffs, __ffsll, __clz, __clzll of its low 32 / all 64 bits.
__global__ void bits_kernel(const uint64_t* in, int n, int* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const uint64_t x = in[i];
  const unsigned lo = unsigned(x);
  int* o = out + 6 * i;
  o[0] = __popc(lo);
  o[1] = __popcll(x);
  o[2] = __ffs(int(lo));
  o[3] = __ffsll((long long)x);
  o[4] = __clz(int(lo));
  o[5] = __clzll((long long)x);
}

// Thread i converts the binary16 pattern i.
__global__ void half_kernel(float* out) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = __half2float(__ushort_as_half((unsigned short)i));
  if (__half_as_ushort(__ushort_as_half((unsigned short)i)) != i) out[i] = 12345.0f;  // round trip
}

// The reinterpreting casts, both ways.
__global__ void cast_kernel(const uint64_t* in, int n, float* as_float, double* as_double, uint64_t* back) {
  const int i = threadIdx.x;
  if (i >= n) return;
  as_float[i] = __uint_as_float(unsigned(in[i]));
  as_double[i] = __longlong_as_double((long long)in[i]);
  back[3 * i] = __float_as_uint(as_float[i]);
  back[3 * i + 1] = (uint64_t)__double_as_longlong(as_double[i]);
  back[3 * i + 2] = unsigned(__float_as_int(__int_as_float(int(in[i]))));
}

// Every thread of the grid hits the same counters; `olds` gets what its atomicAdd returned.
__global__ void atomics_kernel(int* i32, unsigned* u32, unsigned long long* u64, long long* s64, float* f32,
                               double* f64, int* olds) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  olds[t] = atomicAdd(&i32[0], 1);
  atomicAdd(&u32[0], 2u);
  atomicAdd(&u64[0], 1ull << 33);
  atomicAdd(&f32[0], 0.5f);
  atomicAdd(&f64[0], 0.25);
  atomicSub(&i32[1], 3);
  atomicSub(&u32[1], 1u);
  atomicMax(&i32[2], t - 100);
  atomicMin(&i32[3], t - 100);
  atomicMax(&u32[2], unsigned(t));
  atomicMin(&u32[3], unsigned(t) + 5u);
  atomicMax(&u64[1], 3ull * t);
  atomicMin(&u64[2], 3ull * t + 7);
  atomicMax(&s64[0], -(long long)t);
  atomicMin(&s64[1], -(long long)t);
  int old = i32[4], assumed;
  do {  // the classic CAS loop: +2 per thread
    assumed = old;
    old = atomicCAS(&i32[4], assumed, assumed + 2);
  } while (old != assumed);
  atomicOr(&u32[4], 1u << (t % 32));
  atomicAnd(&u32[5], ~(1u << (t % 32)));
  atomicOr(&u64[3], 1ull << (t % 64));
  atomicAnd(&u64[4], ~(1ull << (t % 64)));
  atomicExch(&u32[6], unsigned(t));
}

// One thread: every atomic's return value (the old value) and the value it leaves, in a fixed order.
__global__ void atomic_returns_kernel(long long* out) {
  int i = 5;
  unsigned u = 7;
  unsigned long long ull = 9;
  long long ll = -4;
  float f = 1.5f;
  double d = 2.5;
  int k = 0;
  out[k++] = atomicAdd(&i, 3), out[k++] = i;             // 5, 8
  out[k++] = atomicSub(&i, 10), out[k++] = i;            // 8, -2
  out[k++] = atomicMax(&i, 4), out[k++] = i;             // -2, 4
  out[k++] = atomicMin(&i, -9), out[k++] = i;            // 4, -9
  out[k++] = atomicExch(&i, 11), out[k++] = i;           // -9, 11
  out[k++] = atomicCAS(&i, 11, 12), out[k++] = i;        // 11, 12
  out[k++] = atomicCAS(&i, 99, 13), out[k++] = i;        // 12, 12
  out[k++] = atomicOr(&u, 8u), out[k++] = u;             // 7, 15
  out[k++] = atomicAnd(&u, 6u), out[k++] = u;            // 15, 6
  out[k++] = atomicSub(&u, 7u), out[k++] = u;            // 6, 0xffffffff
  out[k++] = (long long)atomicAdd(&ull, 1ull << 40), out[k++] = (long long)ull;  // 9, 2^40 + 9
  out[k++] = (long long)atomicCAS(&ull, 9ull, 1ull), out[k++] = (long long)ull;  // 2^40 + 9, unchanged
  out[k++] = atomicMax(&ll, -5ll), out[k++] = ll;        // -4, -4
  out[k++] = atomicMin(&ll, -5ll), out[k++] = ll;        // -4, -5
  out[k++] = (long long)atomicAdd(&f, 0.25f), out[k++] = (long long)(f * 4);   // 1, 7
  out[k++] = (long long)atomicAdd(&d, 0.5), out[k++] = (long long)(d * 4);     // 2, 12
}

// ------------------------------------------------------------------------------------------------------
// cub::BlockScan stand-in
// ------------------------------------------------------------------------------------------------------

// Block b scans items [b * kThreads * kItems, (b + 1) * kThreads * kItems); `aggregates` gets each
// thread's block aggregate (0 in the variants without one).
template <int kThreads, int kItems, bool kInclusive, bool kAggregate>
__global__ void scan_kernel(const long long* in, long long* out, long long* aggregates) {
  using Scan = cub::BlockScan<long long, kThreads>;
  __shared__ typename Scan::TempStorage storage;
  const int64_t thread = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  long long items[kItems];
  for (int j = 0; j < kItems; ++j) items[j] = in[thread * kItems + j];
  long long aggregate = 0;
  if constexpr (kItems == 1) {
    long long y;
    if constexpr (kInclusive && kAggregate) Scan(storage).InclusiveSum(items[0], y, aggregate);
    if constexpr (kInclusive && !kAggregate) Scan(storage).InclusiveSum(items[0], y);
    if constexpr (!kInclusive && kAggregate) Scan(storage).ExclusiveSum(items[0], y, aggregate);
    if constexpr (!kInclusive && !kAggregate) Scan(storage).ExclusiveSum(items[0], y);
    items[0] = y;
  } else {  // output aliases input, as scan_tie_counts_kernel does
    if constexpr (kInclusive && kAggregate) Scan(storage).InclusiveSum(items, items, aggregate);
    if constexpr (kInclusive && !kAggregate) Scan(storage).InclusiveSum(items, items);
    if constexpr (!kInclusive && kAggregate) Scan(storage).ExclusiveSum(items, items, aggregate);
    if constexpr (!kInclusive && !kAggregate) Scan(storage).ExclusiveSum(items, items);
  }
  for (int j = 0; j < kItems; ++j) out[thread * kItems + j] = items[j];
  aggregates[thread] = aggregate;
}

template <int kThreads, int kItems>
void launch_scan(bool inclusive, bool aggregate, int blocks, const long long* in, long long* out, long long* agg) {
  if (inclusive && aggregate)
    simt::launch("scan_kernel", scan_kernel<kThreads, kItems, true, true>, blocks, kThreads, 0, in, out, agg);
  if (inclusive && !aggregate)
    simt::launch("scan_kernel", scan_kernel<kThreads, kItems, true, false>, blocks, kThreads, 0, in, out, agg);
  if (!inclusive && aggregate)
    simt::launch("scan_kernel", scan_kernel<kThreads, kItems, false, true>, blocks, kThreads, 0, in, out, agg);
  if (!inclusive && !aggregate)
    simt::launch("scan_kernel", scan_kernel<kThreads, kItems, false, false>, blocks, kThreads, 0, in, out, agg);
}

// Iteration `it` scans in[it * 256 ...]; the TempStorage is reused every iteration, with a barrier
// between uses (kBarrier) or without (the bug).
template <bool kBarrier>
__global__ void scan_loop_kernel(int iterations, const long long* in, long long* out, long long* aggregates) {
  using Scan = cub::BlockScan<long long, 256>;
  __shared__ typename Scan::TempStorage storage;
  for (int it = 0; it < iterations; ++it) {
    const int i = it * 256 + int(threadIdx.x);
    Scan(storage).ExclusiveSum(in[i], out[i], aggregates[i]);
    if (kBarrier) __syncthreads();  // storage is reused by the next iteration
  }
}

// A per-warp shared array rewritten every iteration: lane 0 of each warp writes its warp's count of
// flags, a barrier, every thread sums all warps' counts; then (kBarrier) a barrier before the rewrite.
template <bool kBarrier>
__global__ void warp_totals_kernel(int iterations, const int* flags, int* out) {
  __shared__ int warp_totals[8];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int it = 0; it < iterations; ++it) {
    const unsigned votes = __ballot_sync(kFull, flags[it * 256 + threadIdx.x]);
    if (lane == 0) warp_totals[warp] = __popc(votes);
    __syncthreads();
    int total = 0;
    for (int w = 0; w < 8; ++w) total += warp_totals[w];
    out[it * 256 + threadIdx.x] = total;
    if (kBarrier) __syncthreads();  // warp_totals is rewritten by the next iteration
  }
}

// ------------------------------------------------------------------------------------------------------
// Broken kernels (each breaks one CUDA rule) and the disjoint-mask kernel that breaks none. All take
// (out, arg); `arg` is a lane number where a kernel needs one.
// ------------------------------------------------------------------------------------------------------

__global__ void barrier_in_branch_kernel(int* out, int) {
  if (threadIdx.x < 32) __syncthreads();
  __syncthreads();
  out[threadIdx.x] = 1;
}

// Both branches have a barrier, so the count matches: only the call sites differ.
__global__ void barrier_in_both_branches_kernel(int* out, int) {
  if (threadIdx.x < 32) __syncthreads();
  else __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void barrier_after_return_kernel(int* out, int) {
  if (threadIdx.x >= 32) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void half_warp_shuffle_kernel(int* out, int) {
  int v = int(threadIdx.x);
  if (threadIdx.x % 32 < 16) v = __shfl_sync(kFull, v, 0);
  out[threadIdx.x] = v;
}

__global__ void mask_excludes_lane_kernel(int* out, int) {
  const int lane = threadIdx.x % 32;
  out[threadIdx.x] = int(__ballot_sync(1u << ((lane + 1) % 32), 1));
}

// Half the warp shuffles, the other half votes, both with the full mask.
__global__ void mixed_kinds_kernel(int* out, int) {
  const int lane = threadIdx.x % 32;
  if (lane < 16) out[threadIdx.x] = __shfl_sync(kFull, lane, 0);
  else out[threadIdx.x] = int(__ballot_sync(kFull, 1));
}

__global__ void mixed_widths_kernel(int* out, int) {
  const int lane = threadIdx.x % 32;
  out[threadIdx.x] = __shfl_sync(kFull, lane, 0, lane < 16 ? 16 : 32);
}

// Lanes 0-7 name half the warp, the rest the full warp: overlapping, different masks.
__global__ void mixed_masks_kernel(int* out, int) {
  const int lane = threadIdx.x % 32;
  out[threadIdx.x] = __shfl_sync(lane < 8 ? 0x0000ffffu : kFull, lane, 0);
}

// Lanes 16-31 also name lane 0, which shuffles with lanes 0-15 (0x0000ffff): the masks overlap at lane 0
// without either naming the other's callers.
__global__ void overlapping_masks_kernel(int* out, int) {
  const int lane = threadIdx.x % 32;
  out[threadIdx.x] = __shfl_sync(lane < 16 ? 0x0000ffffu : 0xffff0001u, lane, 0);
}

// Lane `arg` waits at the block barrier while the other lanes' __syncwarp names it.
__global__ void collective_vs_barrier_kernel(int* out, int arg) {
  if (int(threadIdx.x % 32) == arg) __syncthreads();
  else __syncwarp();
  out[threadIdx.x] = 1;
}

// Legal: the two half-warps shuffle independently with disjoint masks.
__global__ void disjoint_masks_kernel(int* out, int) {
  const int lane = threadIdx.x % 32;
  const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  out[threadIdx.x] = __shfl_sync(mask, lane * 10, lane < 16 ? 3 : 20);
}

// A shuffle that reads a lane outside its mask (lanes 8-15 read lanes 16-23).
__global__ void shuffle_outside_mask_kernel(int* out, int) {
  const int lane = threadIdx.x % 32;
  if (lane < 16) out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, lane, 8);
}

using RuleKernel = void (*)(int*, int);
struct NamedRuleKernel {
  const char* name;
  RuleKernel kernel;
};
#define SIMT_RULE_KERNEL(k) NamedRuleKernel{#k, k}
// The order of RULE_KERNELS in tests/test_cuda_simt_runtime.py.
const NamedRuleKernel kRuleKernels[] = {
    SIMT_RULE_KERNEL(barrier_in_branch_kernel),     SIMT_RULE_KERNEL(barrier_in_both_branches_kernel),
    SIMT_RULE_KERNEL(barrier_after_return_kernel),  SIMT_RULE_KERNEL(half_warp_shuffle_kernel),
    SIMT_RULE_KERNEL(mask_excludes_lane_kernel),    SIMT_RULE_KERNEL(mixed_kinds_kernel),
    SIMT_RULE_KERNEL(mixed_widths_kernel),          SIMT_RULE_KERNEL(mixed_masks_kernel),
    SIMT_RULE_KERNEL(overlapping_masks_kernel),     SIMT_RULE_KERNEL(collective_vs_barrier_kernel),
    SIMT_RULE_KERNEL(disjoint_masks_kernel),        SIMT_RULE_KERNEL(shuffle_outside_mask_kernel),
};
#undef SIMT_RULE_KERNEL

__global__ void misaligned_kernel(const unsigned char* data, int offset) {
  const uint4* p = reinterpret_cast<const uint4*>(data + offset);
  RGP_CHECK_ALIGNED(p, 16);
}

// For a block of 40 threads: lanes 20-31 of warp 0 exit; warp 1 has lanes 0-7 only.
__global__ void activemask_kernel(unsigned* out) {
  if (threadIdx.x % 32 >= 20) return;
  __syncwarp(threadIdx.x < 32 ? 0x000fffffu : 0x000000ffu);  // under in-order, lanes 20-31 exit meanwhile
  out[threadIdx.x] = __activemask();
}

// ------------------------------------------------------------------------------------------------------
// Launch mechanics
// ------------------------------------------------------------------------------------------------------

// seen[b * n + t]: what thread t of block b found in its slot before writing (the poison, never another
// block's data); out[b * n + t]: its neighbour's value after a barrier; aligned: the buffer's alignment.
__global__ void dynamic_shared_kernel(int* seen, int* out, int* aligned) {
  int* s = simt::dynamic_shared<int>();
  const int n = int(blockDim.x), t = int(threadIdx.x), slot = int(blockIdx.x) * n + t;
  seen[slot] = s[t];
  __syncthreads();
  s[t] = int(blockIdx.x) * 1000 + t;
  __syncthreads();
  out[slot] = s[(t + 1) % n];
  if (t == 0) aligned[blockIdx.x] = int(reinterpret_cast<uintptr_t>(s) % 16);
}

// Each thread adds its index to its copy of `base`: a thread must not see another thread's change.
__global__ void parameter_copy_kernel(int base, int* out) {
  base += int(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = base;
}

// order[p * n + t]: the rank at which thread t passed point p (0: start, 1: after __syncwarp, 2: after
// __syncthreads), counted over the block.
__global__ void trace_kernel(int* order, int* counter) {
  const int n = int(blockDim.x), t = int(threadIdx.x);
  order[t] = atomicAdd(counter, 1);
  __syncwarp();
  order[n + t] = atomicAdd(counter, 1);
  __syncthreads();
  order[2 * n + t] = atomicAdd(counter, 1);
}

__global__ void switch_bench_kernel(int iterations) {
  for (int i = 0; i < iterations; ++i) __syncwarp();
}

}  // namespace

// ------------------------------------------------------------------------------------------------------
// C entry points
// ------------------------------------------------------------------------------------------------------

extern "C" {

// type: 0 int, 1 unsigned, 2 long long, 3 unsigned long long, 4 float, 5 double, 6 long.
int st_shuffle(int type, int op, const uint64_t* in, const int* args, int width, uint64_t* out) {
  return guarded([&] {
    switch (type) {
      case 0: return launch_shuffle<int>(op, in, args, width, out);
      case 1: return launch_shuffle<unsigned>(op, in, args, width, out);
      case 2: return launch_shuffle<long long>(op, in, args, width, out);
      case 3: return launch_shuffle<unsigned long long>(op, in, args, width, out);
      case 4: return launch_shuffle<float>(op, in, args, width, out);
      case 5: return launch_shuffle<double>(op, in, args, width, out);
      default: return launch_shuffle<long>(op, in, args, width, out);
    }
  });
}

int st_vote(unsigned mask, const int* preds, unsigned* ballot, int* any, int* all) {
  return guarded([&] { simt::launch("vote_kernel", vote_kernel, 1, 32, 0, mask, preds, ballot, any, all); });
}

int st_match(int bytes, unsigned mask, const uint64_t* values, unsigned* out) {
  return guarded([&] {
    if (bytes == 4) simt::launch("match_kernel", match_kernel<unsigned>, 1, 32, 0, mask, values, out);
    else simt::launch("match_kernel", match_kernel<unsigned long long>, 1, 32, 0, mask, values, out);
  });
}

int st_bits(const uint64_t* in, int n, int* out) {
  return guarded([&] { simt::launch("bits_kernel", bits_kernel, (n + 255) / 256, 256, 0, in, n, out); });
}

int st_half(float* out) {
  return guarded([&] { simt::launch("half_kernel", half_kernel, 256, 256, 0, out); });
}

int st_cast(const uint64_t* in, int n, float* as_float, double* as_double, uint64_t* back) {
  return guarded([&] { simt::launch("cast_kernel", cast_kernel, 1, 1024, 0, in, n, as_float, as_double, back); });
}

int st_atomics(int blocks, int threads, int* i32, unsigned* u32, unsigned long long* u64, long long* s64,
               float* f32, double* f64, int* olds) {
  return guarded([&] {
    simt::launch("atomics_kernel", atomics_kernel, blocks, threads, 0, i32, u32, u64, s64, f32, f64, olds);
  });
}

int st_atomic_returns(long long* out) {
  return guarded([&] { simt::launch("atomic_returns_kernel", atomic_returns_kernel, 1, 1, 0, out); });
}

// threads: 256 or 512; items: 1 or 4.
int st_block_scan(int threads, int items, int inclusive, int aggregate, int blocks, const long long* in,
                  long long* out, long long* agg) {
  return guarded([&] {
    if (threads == 256 && items == 1) launch_scan<256, 1>(inclusive, aggregate, blocks, in, out, agg);
    if (threads == 256 && items == 4) launch_scan<256, 4>(inclusive, aggregate, blocks, in, out, agg);
    if (threads == 512 && items == 1) launch_scan<512, 1>(inclusive, aggregate, blocks, in, out, agg);
    if (threads == 512 && items == 4) launch_scan<512, 4>(inclusive, aggregate, blocks, in, out, agg);
  });
}

// A BlockScan<long long, 256> launched with `threads` threads (a wrong block size is an error).
int st_block_scan_wrong_size(int threads, const long long* in, long long* out, long long* agg) {
  return guarded([&] {
    simt::launch("scan_kernel", scan_kernel<256, 1, false, true>, 1, threads, 0, in, out, agg);
  });
}

int st_scan_loop(int with_barrier, int iterations, const long long* in, long long* out, long long* agg) {
  return guarded([&] {
    if (with_barrier) simt::launch("scan_loop_kernel", scan_loop_kernel<true>, 1, 256, 0, iterations, in, out, agg);
    else simt::launch("scan_loop_kernel", scan_loop_kernel<false>, 1, 256, 0, iterations, in, out, agg);
  });
}

int st_warp_totals(int with_barrier, int iterations, const int* flags, int* out) {
  return guarded([&] {
    if (with_barrier)
      simt::launch("warp_totals_kernel", warp_totals_kernel<true>, 1, 256, 0, iterations, flags, out);
    else simt::launch("warp_totals_kernel", warp_totals_kernel<false>, 1, 256, 0, iterations, flags, out);
  });
}

// which: index into kRuleKernels; `out` holds `threads` ints.
int st_rule_kernel(int which, int threads, int arg, int* out) {
  const NamedRuleKernel& k = kRuleKernels[which];
  return guarded([&] { simt::launch(k.name, k.kernel, 1, threads, 0, out, arg); });
}

int st_misaligned(const unsigned char* data, int offset) {
  return guarded([&] { simt::launch("misaligned_kernel", misaligned_kernel, 1, 32, 0, data, offset); });
}

int st_activemask(int threads, unsigned* out) {
  return guarded([&] { simt::launch("activemask_kernel", activemask_kernel, 1, threads, 0, out); });
}

int st_dynamic_shared(int blocks, int threads, int* seen, int* out, int* aligned) {
  return guarded([&] {
    simt::launch("dynamic_shared_kernel", dynamic_shared_kernel, blocks, threads, threads * sizeof(int), seen, out,
                 aligned);
  });
}

int st_parameter_copy(int base, int threads, int* out) {
  return guarded([&] { simt::launch("parameter_copy_kernel", parameter_copy_kernel, 1, threads, 0, base, out); });
}

int st_trace(int threads, int* order) {
  int counter = 0;
  return guarded([&] { simt::launch("trace_kernel", trace_kernel, 1, threads, 0, order, &counter); });
}

// Launches with an unsupported shape: a 2-D block, 1025 threads, an empty grid.
int st_bad_config(int which) {
  const dim3 blocks[] = {dim3(32, 2), dim3(1025), dim3(32)};
  const dim3 grids[] = {dim3(1), dim3(1), dim3(0)};
  return guarded([&] { simt::launch("switch_bench_kernel", switch_bench_kernel, grids[which], blocks[which], 0, 1); });
}

int st_switch_bench(int blocks, int threads, int iterations) {
  return guarded([&] {
    simt::launch("switch_bench_kernel", switch_bench_kernel, blocks, threads, 0, iterations);
  });
}

}  // extern "C"
