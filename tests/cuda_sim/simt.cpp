// The SIMT runtime behind simt.h: runs a CUDA grid on one OS thread, the blocks one after another and
// each block's threads as fibers (one per CUDA thread). A fiber runs until it reaches a scheduling point
// (__syncthreads or a warp intrinsic) or exits; there the runtime checks the CUDA rules, and the
// scheduler picks the next runnable fiber by the launch's schedule. A broken rule is recorded on the
// fiber's stack side, control goes back to the scheduler, and simt::launch throws in its caller.
//
// Fibers start with makecontext/setcontext and from then on switch with _setjmp/_longjmp (no signal-mask
// syscall per switch, unlike swapcontext). A fiber, once started, loops: park, run one CUDA thread, park;
// so its stack (mmap'd, committed lazily, reused by every later launch) is set up once, and only a fiber
// abandoned by a failed launch is started afresh.
#include <setjmp.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "simt.h"

#if defined(_FORTIFY_SOURCE) && _FORTIFY_SOURCE > 0
#error "build the SIMT runtime without _FORTIFY_SOURCE: its longjmp check rejects jumps between fiber stacks"
#endif

namespace simt {
namespace detail {

namespace {
const uint3 kNoThread{0, 0, 0};
}  // namespace

const uint3* g_thread_idx = &kNoThread;
uint3 g_block_idx{0, 0, 0};
dim3 g_block_dim;
dim3 g_grid_dim;
unsigned char* g_dynamic_shared = nullptr;

namespace {

constexpr int kMaxThreads = 1024;
constexpr int kMaxWarps = kMaxThreads / 32;
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kGuardBytes = 4096;  // PROT_NONE below each stack: an overflow faults, never corrupts
constexpr unsigned char kSharedPoison = 0xff;

// ------------------------------------------------------------------------------------------------------
// A set of thread indices (< kMaxThreads) with the searches the schedules need
// ------------------------------------------------------------------------------------------------------

class ThreadSet {
 public:
  void clear() { words_.fill(0); }
  void insert(int t) { words_[t >> 6] |= uint64_t(1) << (t & 63); }
  void erase(int t) { words_[t >> 6] &= ~(uint64_t(1) << (t & 63)); }
  int size() const {
    int n = 0;
    for (uint64_t w : words_) n += __builtin_popcountll(w);
    return n;
  }
  // The lanes of warp `warp` in the set, as a 32-bit lane mask.
  unsigned warp_lanes(int warp) const { return unsigned(words_[warp >> 1] >> ((warp & 1) * 32)); }

  // The first member at or after `start`, wrapping around to 0; -1 when empty.
  int next_from(int start) const {
    const int t = first_at_or_after(start);
    return t >= 0 ? t : first_at_or_after(0);
  }
  // The last member at or before `start`, wrapping around to the top; -1 when empty.
  int prev_from(int start) const {
    const int t = last_at_or_before(start);
    return t >= 0 ? t : last_at_or_before(kMaxThreads - 1);
  }
  // The k-th smallest member (0-based); k < size().
  int nth(int k) const {
    for (int w = 0; w < kWords; ++w) {
      uint64_t bits = words_[w];
      const int n = __builtin_popcountll(bits);
      if (k >= n) {
        k -= n;
        continue;
      }
      for (; k > 0; --k) bits &= bits - 1;  // drop the k lowest members
      return w * 64 + __builtin_ctzll(bits);
    }
    return -1;
  }

 private:
  static constexpr int kWords = kMaxThreads / 64;

  int first_at_or_after(int start) const {
    if (start < 0 || start >= kMaxThreads) start = 0;
    for (int w = start >> 6; w < kWords; ++w) {
      uint64_t bits = words_[w];
      if (w == start >> 6) bits &= ~uint64_t(0) << (start & 63);
      if (bits) return w * 64 + __builtin_ctzll(bits);
    }
    return -1;
  }
  int last_at_or_before(int start) const {
    if (start < 0 || start >= kMaxThreads) start = kMaxThreads - 1;
    for (int w = start >> 6; w >= 0; --w) {
      uint64_t bits = words_[w];
      if (w == start >> 6 && (start & 63) != 63) bits &= (uint64_t(2) << (start & 63)) - 1;
      if (bits) return w * 64 + 63 - __builtin_clzll(bits);
    }
    return -1;
  }

  std::array<uint64_t, kWords> words_{};
};

// ------------------------------------------------------------------------------------------------------
// Schedules
// ------------------------------------------------------------------------------------------------------

enum class Policy { kInOrder, kReversed, kRandom, kWarpGreedy };

struct Schedule {
  Policy policy = Policy::kInOrder;
  uint64_t seed = 0;
};

const char kValidSchedules[] = "in-order, reversed, random[:SEED] (SEED a decimal integer), warp-greedy";

bool parse_seed(const char* digits, uint64_t& seed) {
  if (*digits < '0' || *digits > '9') return false;
  char* end = nullptr;
  errno = 0;
  seed = std::strtoull(digits, &end, 10);
  return errno == 0 && *end == '\0';
}

bool parse_schedule(const std::string& spec, Schedule& out) {
  if (spec == "in-order") out = Schedule{Policy::kInOrder, 0};
  else if (spec == "reversed") out = Schedule{Policy::kReversed, 0};
  else if (spec == "warp-greedy") out = Schedule{Policy::kWarpGreedy, 0};
  else if (spec == "random") out = Schedule{Policy::kRandom, 0};
  else if (spec.rfind("random:", 0) == 0) {
    out = Schedule{Policy::kRandom, 0};
    return parse_seed(spec.c_str() + 7, out.seed);
  } else return false;
  return true;
}

std::string schedule_name(const Schedule& s) {
  switch (s.policy) {
    case Policy::kInOrder: return "in-order";
    case Policy::kReversed: return "reversed";
    case Policy::kWarpGreedy: return "warp-greedy";
    case Policy::kRandom: return "random:" + std::to_string(s.seed);
  }
  return "?";
}

std::string invalid_schedule(const char* source, const std::string& spec) {
  return std::string("simt: invalid schedule '") + spec + "' (" + source + "); valid schedules: " + kValidSchedules;
}

// splitmix64: small, fast and the same everywhere, so a seed names one schedule on every machine.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) without modulo bias (multiply-shift with rejection).
  int below(int n) {
    const uint64_t range = uint64_t(n), threshold = (0 - range) % range;
    for (;;) {
      const unsigned __int128 m = (unsigned __int128)next() * range;
      if (uint64_t(m) >= threshold) return int(m >> 64);
    }
  }

 private:
  uint64_t state_;
};

// ------------------------------------------------------------------------------------------------------
// Runtime state
// ------------------------------------------------------------------------------------------------------

enum class State : unsigned char { kRunnable, kAtBarrier, kAtWarp, kDone };

struct Fiber {
  jmp_buf context;     // where the fiber continues: its park point, or the scheduling point it waits at
  ucontext_t entry;    // starts fiber_main on the stack
  char* stack = nullptr;
  bool parked = false;  // `context` is the park point: the fiber can run a new CUDA thread
  int tid = 0;
  uint3 idx{0, 0, 0};
  State state = State::kDone;
  Site site{nullptr, 0};  // where it waits
  uint64_t value = 0;     // its operand in the warp collective it waits in
  int arg = 0;
  uint64_t result = 0;  // that collective's result for it
};

// An open warp collective: lanes of `mask` that called it so far are in `arrived`.
struct Group {
  WarpOp op;
  int bytes;
  unsigned mask;
  int width;
  Site site;
  unsigned arrived;
};

struct Warp {
  std::array<Group, 32> groups;  // open collectives; their masks are disjoint, so at most 32
  unsigned used = 0;             // bit g: groups[g] is open
  unsigned named = 0;            // union of the open collectives' masks
  unsigned at_barrier = 0;       // lanes waiting at __syncthreads
  unsigned exited = 0;           // lanes that finished, or do not exist (a partial last warp)
};

struct Barrier {
  Site site{nullptr, 0};
  int waiting = 0;
};

struct Runtime {
  std::mutex launch_mutex;
  std::vector<std::unique_ptr<Fiber>> fibers;
  jmp_buf scheduler;
  Fiber* current = nullptr;  // the running fiber; nullptr in the scheduler and outside launches

  // The launch.
  const LaunchConfig* config = nullptr;
  ThreadBody body = nullptr;
  void* closure = nullptr;
  Schedule schedule;
  Rng rng;
  int n_threads = 0;
  int n_warps = 0;
  std::vector<uint4> shared;  // dynamic shared memory (uint4: 16-byte aligned)

  // The block.
  ThreadSet runnable;
  int finished = 0;
  Barrier barrier;
  std::array<Warp, kMaxWarps> warps;

  bool failed = false;
  std::string error;       // the failing launch's message, until the launch throws it
  std::string last_error;  // what simt_last_error() returns
  bool explicit_schedule = false;
  Schedule chosen;  // set by set_schedule
  unsigned long long switches = 0;
};

Runtime g_rt;

Fiber& fiber(int tid) { return *g_rt.fibers[tid]; }
Warp& warp_of(const Fiber& f) { return g_rt.warps[f.tid / 32]; }
unsigned lane_bit(const Fiber& f) { return 1u << (f.tid % 32); }

// ------------------------------------------------------------------------------------------------------
// Messages
// ------------------------------------------------------------------------------------------------------

std::string where(Site s) { return std::string(s.file ? s.file : "?") + ":" + std::to_string(s.line); }

bool same_site(Site a, Site b) { return a.line == b.line && std::strcmp(a.file, b.file) == 0; }

std::string hex_mask(unsigned mask) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", mask);
  return buf;
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::kShfl: return "__shfl_sync";
    case WarpOp::kShflUp: return "__shfl_up_sync";
    case WarpOp::kShflDown: return "__shfl_down_sync";
    case WarpOp::kShflXor: return "__shfl_xor_sync";
    case WarpOp::kBallot: return "__ballot_sync";
    case WarpOp::kAny: return "__any_sync";
    case WarpOp::kAll: return "__all_sync";
    case WarpOp::kMatchAny: return "__match_any_sync";
    case WarpOp::kSyncWarp: return "__syncwarp";
  }
  return "?";
}

bool is_shuffle(WarpOp op) {
  return op == WarpOp::kShfl || op == WarpOp::kShflUp || op == WarpOp::kShflDown || op == WarpOp::kShflXor;
}

// "thread 5", "threads 0-31, 64"
std::string thread_list(const std::vector<int>& tids) {
  std::string out = tids.size() == 1 ? "thread " : "threads ";
  for (size_t i = 0; i < tids.size();) {
    size_t j = i;
    while (j + 1 < tids.size() && tids[j + 1] == tids[j] + 1) ++j;
    if (i > 0) out += ", ";
    out += std::to_string(tids[i]);
    if (j > i) out += "-" + std::to_string(tids[j]);
    i = j + 1;
  }
  return out;
}

std::string lane_threads(int warp, unsigned lanes) {
  std::vector<int> tids;
  for (int l = 0; l < 32; ++l)
    if ((lanes >> l) & 1u) tids.push_back(warp * 32 + l);
  return thread_list(tids);
}

std::string thread_name(const Fiber& f) { return thread_list({f.tid}); }

std::string call_text(WarpOp op, unsigned mask, int width, int bytes, Site site) {
  std::string s = std::string(op_name(op)) + "(mask " + hex_mask(mask);
  if (is_shuffle(op) || op == WarpOp::kMatchAny) s += ", " + std::to_string(bytes) + "-byte value";
  if (is_shuffle(op)) s += ", width " + std::to_string(width);
  return s + ") at " + where(site);
}

std::string call_text(const WarpCall& c) { return call_text(c.op, c.mask, c.width, c.bytes, c.site); }
std::string call_text(const Group& g) { return call_text(g.op, g.mask, g.width, g.bytes, g.site); }

std::string prefix() {
  const LaunchConfig& c = *g_rt.config;
  return "simt: kernel '" + std::string(c.kernel_name) + "' (block " + std::to_string(g_block_idx.x) + " of " +
         std::to_string(c.grid.x) + ", " + std::to_string(c.block.x) + " threads per block, schedule " +
         schedule_name(g_rt.schedule) + "): ";
}

// ------------------------------------------------------------------------------------------------------
// Fibers
// ------------------------------------------------------------------------------------------------------

char* allocate_stack() {
  void* p = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) throw Error("simt: cannot map a fiber stack");
  mprotect(p, kGuardBytes, PROT_NONE);
  return static_cast<char*>(p) + kGuardBytes;
}

// Fiber -> scheduler; returns when the scheduler resumes this fiber.
void yield_to_scheduler(Fiber& f) {
  if (_setjmp(f.context) == 0) _longjmp(g_rt.scheduler, 1);
}

// Fiber -> scheduler for good: records the broken rule; the launch is abandoned and throws it.
// describe() builds the message, so that its temporaries are destroyed before the jump: nothing with a
// destructor is left alive on the abandoned stack (it is never unwound).
template <typename Describe>
[[noreturn]] void fail(Describe&& describe) {
  g_rt.error = describe();
  g_rt.failed = true;
  _longjmp(g_rt.scheduler, 1);
}

// The running fiber; outside a launch (host code) there is none, and throwing is safe there.
Fiber& current_fiber(const char* what) {
  if (g_rt.current == nullptr) throw Error(std::string("simt: ") + what + " called outside a kernel launch");
  return *g_rt.current;
}

void block_fiber(Fiber& f, State state, Site site) {
  f.state = state;
  f.site = site;
  g_rt.runnable.erase(f.tid);
}

void make_runnable(Fiber& f) {
  f.state = State::kRunnable;
  g_rt.runnable.insert(f.tid);
}

void exit_thread(Fiber& f);

// One CUDA thread on this fiber. A C++ exception is turned into a launch error here, after its catch
// block has ended (leaving the fiber from inside a handler would strand the exception's bookkeeping).
void run_thread(Fiber& f) {
  std::string message;
  try {
    g_rt.body(g_rt.closure);
  } catch (const std::exception& e) {
    message = prefix() + thread_name(f) + " threw a C++ exception: " + e.what();
  } catch (...) {
    message = prefix() + thread_name(f) + " threw a C++ exception";
  }
  if (!message.empty()) fail([&] { return std::move(message); });
  exit_thread(f);
}

void park(Fiber& f) {
  f.parked = true;
  yield_to_scheduler(f);
  f.parked = false;
}

void fiber_main() {
  Fiber& self = *g_rt.current;
  for (;;) {
    park(self);
    run_thread(self);
  }
}

// (Re)starts f on its stack and returns once it has parked.
void start_fiber(Fiber& f) {
  if (f.stack == nullptr) f.stack = allocate_stack();
  getcontext(&f.entry);
  f.entry.uc_stack.ss_sp = f.stack;
  f.entry.uc_stack.ss_size = kStackBytes;
  f.entry.uc_link = nullptr;  // fiber_main never returns
  makecontext(&f.entry, fiber_main, 0);
  g_rt.current = &f;
  if (_setjmp(g_rt.scheduler) == 0) setcontext(&f.entry);
  g_rt.current = nullptr;
}

// Scheduler -> fiber; returns when the fiber yields, exits (parks) or fails.
void resume(Fiber& f) {
  g_rt.current = &f;
  g_thread_idx = &f.idx;
  g_rt.switches += 2;
  if (_setjmp(g_rt.scheduler) == 0) _longjmp(f.context, 1);
  g_rt.current = nullptr;
}

// ------------------------------------------------------------------------------------------------------
// Block barrier
// ------------------------------------------------------------------------------------------------------

std::string waiting_group_text(int warp, const Group& g) {
  return lane_threads(warp, g.arrived) + " wait at " + call_text(g);
}

// The open collective of warp w whose mask names the lanes `lanes`.
const Group* group_naming(const Warp& w, unsigned lanes) {
  for (unsigned open = w.used; open != 0; open &= open - 1) {
    const Group& g = w.groups[__builtin_ctz(open)];
    if (g.mask & lanes) return &g;
  }
  return nullptr;
}

// f exited (site.file == nullptr) or reached the barrier at `site` while an open collective names it.
[[noreturn]] void fail_named_elsewhere(const Fiber& f, Site site) {
  fail([&] {
    const std::string doing = site.file ? "reached __syncthreads at " + where(site) : std::string("exited");
    return prefix() + thread_name(f) + " " + doing + ", but it is named in the mask of a warp collective: " +
           waiting_group_text(f.tid / 32, *group_naming(warp_of(f), lane_bit(f))) +
           " for it (every lane named in a mask must call that intrinsic)";
  });
}

void release_barrier() {
  for (int t = 0; t < g_rt.n_threads; ++t) make_runnable(fiber(t));
  for (int w = 0; w < g_rt.n_warps; ++w) g_rt.warps[w].at_barrier = 0;
  g_rt.barrier.waiting = 0;
}

std::vector<int> threads_in(State state) {
  std::vector<int> tids;
  for (int t = 0; t < g_rt.n_threads; ++t)
    if (fiber(t).state == state) tids.push_back(t);
  return tids;
}

std::string barrier_waiters_text() {
  return thread_list(threads_in(State::kAtBarrier)) + " wait at __syncthreads at " + where(g_rt.barrier.site);
}

// Threads that already exited never reach the barrier; that is left to the deadlock report, which
// names them (more threads may still be running and exit, which fails at once in exit_thread).
void syncthreads_at(Fiber& f, Site site) {
  if (warp_of(f).named & lane_bit(f)) fail_named_elsewhere(f, site);
  Barrier& b = g_rt.barrier;
  if (b.waiting > 0 && !same_site(b.site, site))
    fail([&] {
      return prefix() + "divergent __syncthreads: " + thread_name(f) + " reached __syncthreads at " + where(site) +
             " while " + barrier_waiters_text() + " (all threads of a block must reach the same barrier)";
    });
  if (b.waiting == 0) b.site = site;
  ++b.waiting;
  warp_of(f).at_barrier |= lane_bit(f);
  block_fiber(f, State::kAtBarrier, site);
  if (b.waiting == g_rt.n_threads) release_barrier();
  yield_to_scheduler(f);
}

void exit_thread(Fiber& f) {
  Warp& w = warp_of(f);
  if (w.named & lane_bit(f)) fail_named_elsewhere(f, Site{nullptr, 0});
  if (g_rt.barrier.waiting > 0)
    fail([&] {
      return prefix() + "divergent __syncthreads: " + thread_name(f) + " exited while " + barrier_waiters_text() +
             " (all threads of a block must reach the same barrier)";
    });
  w.exited |= lane_bit(f);
  f.state = State::kDone;
  g_rt.runnable.erase(f.tid);
  ++g_rt.finished;
}

// ------------------------------------------------------------------------------------------------------
// Warp collectives
// ------------------------------------------------------------------------------------------------------

bool valid_width(int width) { return width >= 1 && width <= 32 && (width & (width - 1)) == 0; }

// The lane a shuffle reads, as PTX shfl.sync defines it: segments of `width` lanes; up/down/xor that
// would leave the segment upward (down, xor) or below its start (up) read the lane's own value.
int source_lane(WarpOp op, int lane, int arg, int width) {
  const int segment_bits = 32 - width;           // high lane bits naming the segment
  const int b = arg & 31;                        // PTX uses the low 5 bits of the operand
  const int first = lane & segment_bits;         // the segment's first lane
  const int last = first | (31 & ~segment_bits);  // and its last
  switch (op) {
    case WarpOp::kShfl: return first | (b & ~segment_bits);
    case WarpOp::kShflUp: return lane - b >= first ? lane - b : lane;
    case WarpOp::kShflDown: return lane + b <= last ? lane + b : lane;
    case WarpOp::kShflXor: return (lane ^ b) <= last ? (lane ^ b) : lane;
    default: return lane;
  }
}

void shuffle_results(int warp, const Group& g) {
  for (int lane = 0; lane < 32; ++lane) {
    if (!((g.mask >> lane) & 1u)) continue;
    Fiber& f = fiber(warp * 32 + lane);
    const int src = source_lane(g.op, lane, f.arg, g.width);
    if (!((g.mask >> src) & 1u))
      fail([&] {
        return prefix() + thread_name(f) + " reads lane " + std::to_string(src) + " in " + call_text(g) +
               ", which is not in the mask (the value is undefined)";
      });
    f.result = fiber(warp * 32 + src).value;
  }
}

void vote_results(int warp, const Group& g) {
  unsigned ballot = 0;
  for (int lane = 0; lane < 32; ++lane)
    if (((g.mask >> lane) & 1u) && fiber(warp * 32 + lane).value != 0) ballot |= 1u << lane;
  uint64_t result = ballot;
  if (g.op == WarpOp::kAny) result = ballot != 0;
  if (g.op == WarpOp::kAll) result = ballot == g.mask;
  for (int lane = 0; lane < 32; ++lane)
    if ((g.mask >> lane) & 1u) fiber(warp * 32 + lane).result = result;
}

void match_results(int warp, const Group& g) {
  for (int lane = 0; lane < 32; ++lane) {
    if (!((g.mask >> lane) & 1u)) continue;
    Fiber& f = fiber(warp * 32 + lane);
    unsigned peers = 0;
    for (int other = 0; other < 32; ++other)
      if (((g.mask >> other) & 1u) && fiber(warp * 32 + other).value == f.value) peers |= 1u << other;
    f.result = peers;
  }
}

// Every lane of the group has arrived: compute each lane's result and let them all run on.
void complete_group(int warp, int index) {
  Warp& w = g_rt.warps[warp];
  const Group g = w.groups[index];
  if (is_shuffle(g.op)) shuffle_results(warp, g);
  else if (g.op == WarpOp::kMatchAny) match_results(warp, g);
  else if (g.op != WarpOp::kSyncWarp) vote_results(warp, g);
  w.used &= ~(1u << index);
  w.named &= ~g.mask;
  for (int lane = 0; lane < 32; ++lane)
    if ((g.mask >> lane) & 1u) make_runnable(fiber(warp * 32 + lane));
}

[[noreturn]] void fail_mismatch(const Fiber& f, const WarpCall& call, int warp, const Group& g) {
  fail([&] {
    return prefix() + "warp " + std::to_string(warp) + " diverged at a warp collective: " + thread_name(f) +
           " calls " + call_text(call) + " while " + waiting_group_text(warp, g) +
           " (every lane named in a mask must call the same intrinsic with the same mask and width)";
  });
}

// A new collective: every lane its mask names must still be able to call it.
int open_group(Warp& w, const Fiber& f, const WarpCall& call) {
  const int warp = f.tid / 32;
  const auto caller = [&] { return prefix() + thread_name(f) + " calls " + call_text(call) + ", whose mask names "; };
  if (call.mask & w.exited)
    fail([&] { return caller() + lane_threads(warp, call.mask & w.exited) + ", which have exited or do not exist"; });
  if (call.mask & w.at_barrier)
    fail([&] {
      return caller() + lane_threads(warp, call.mask & w.at_barrier) + ", which wait at __syncthreads at " +
             where(g_rt.barrier.site);
    });
  if (const Group* other = group_naming(w, call.mask)) fail_mismatch(f, call, warp, *other);
  const int index = __builtin_ctz(~w.used);  // disjoint non-empty masks: never more than 32 open
  w.used |= 1u << index;
  w.named |= call.mask;
  w.groups[index] = Group{call.op, call.bytes, call.mask, call.width, call.site, 0};
  return index;
}

int group_index(const Warp& w, const Group* g) { return int(g - w.groups.data()); }

uint64_t collective_at(Fiber& f, const WarpCall& call) {
  const int warp = f.tid / 32;
  Warp& w = g_rt.warps[warp];
  if (!(call.mask & lane_bit(f)))
    fail([&] {
      return prefix() + thread_name(f) + " calls " + call_text(call) + ", whose mask excludes the calling lane " +
             std::to_string(f.tid % 32);
    });
  if (!valid_width(call.width))
    fail([&] {
      return prefix() + thread_name(f) + " calls " + call_text(call) + ": width must be a power of 2 in [1, 32]";
    });
  int index;
  if (const Group* g = group_naming(w, lane_bit(f))) {
    if (g->op != call.op || g->bytes != call.bytes || g->mask != call.mask || g->width != call.width)
      fail_mismatch(f, call, warp, *g);
    index = group_index(w, g);
  } else {
    index = open_group(w, f, call);
  }
  Group& g = w.groups[index];
  g.arrived |= lane_bit(f);
  f.value = call.value;
  f.arg = call.arg;
  block_fiber(f, State::kAtWarp, call.site);
  if (g.arrived == g.mask) complete_group(warp, index);
  yield_to_scheduler(f);
  return f.result;
}

// ------------------------------------------------------------------------------------------------------
// Scheduler
// ------------------------------------------------------------------------------------------------------

// The next fiber to run after `last` (-1: the block has just started).
int pick_next(int last) {
  const ThreadSet& r = g_rt.runnable;
  switch (g_rt.schedule.policy) {
    case Policy::kInOrder: return r.next_from(last + 1);
    case Policy::kReversed: return r.prev_from(last < 0 ? g_rt.n_threads - 1 : last - 1);
    case Policy::kRandom: {
      const int n = r.size();
      return n == 0 ? -1 : r.nth(g_rt.rng.below(n));
    }
    case Policy::kWarpGreedy: {
      const int warp = last < 0 ? 0 : last / 32;
      const unsigned lanes = r.warp_lanes(warp);
      return lanes ? warp * 32 + __builtin_ctz(lanes) : r.next_from((warp + 1) * 32);
    }
  }
  return -1;
}

void report_deadlock() {
  std::string text = prefix() + "deadlock: no thread can run";
  const std::vector<int> at_barrier = threads_in(State::kAtBarrier), exited = threads_in(State::kDone);
  if (!at_barrier.empty()) text += "; " + barrier_waiters_text();
  for (int warp = 0; warp < g_rt.n_warps; ++warp) {
    const Warp& w = g_rt.warps[warp];
    for (int g = 0; g < 32; ++g)
      if ((w.used >> g) & 1u)
        text += "; " + waiting_group_text(warp, w.groups[g]) + " for " +
                lane_threads(warp, w.groups[g].mask & ~w.groups[g].arrived);
  }
  if (!exited.empty()) text += "; " + thread_list(exited) + " have exited";
  if (!at_barrier.empty() && !exited.empty())
    text += " (divergent __syncthreads: threads that exited can never reach the barrier)";
  g_rt.error = std::move(text);
  g_rt.failed = true;
}

void start_block(unsigned block) {
  g_block_idx = uint3{block, 0, 0};
  g_rt.finished = 0;
  g_rt.barrier = Barrier{};
  g_rt.runnable.clear();
  for (int w = 0; w < g_rt.n_warps; ++w) {
    const int lanes = std::min(32, g_rt.n_threads - 32 * w);
    g_rt.warps[w].used = g_rt.warps[w].named = g_rt.warps[w].at_barrier = 0;
    g_rt.warps[w].exited = lanes == 32 ? 0u : ~((1u << lanes) - 1u);  // lanes past the block's end
  }
  for (int t = 0; t < g_rt.n_threads; ++t) make_runnable(fiber(t));
  if (!g_rt.shared.empty()) std::memset(g_rt.shared.data(), kSharedPoison, g_rt.shared.size() * sizeof(uint4));
}

void run_block(unsigned block) {
  start_block(block);
  int last = -1;
  while (!g_rt.failed) {
    const int next = pick_next(last);
    if (next < 0) {
      if (g_rt.finished < g_rt.n_threads) report_deadlock();
      return;
    }
    resume(fiber(next));
    last = next;
  }
}

// ------------------------------------------------------------------------------------------------------
// Launches
// ------------------------------------------------------------------------------------------------------

void validate(const LaunchConfig& c) {
  const std::string name = c.kernel_name ? c.kernel_name : "?";
  if (c.block.x < 1 || c.block.x > unsigned(kMaxThreads) || c.block.y != 1 || c.block.z != 1)
    throw Error("simt: kernel '" + name + "': the simulator runs 1-D blocks of 1 to 1024 threads, got (" +
                std::to_string(c.block.x) + ", " + std::to_string(c.block.y) + ", " + std::to_string(c.block.z) +
                ")");
  if (c.grid.x < 1 || c.grid.y != 1 || c.grid.z != 1)
    throw Error("simt: kernel '" + name + "': the simulator runs 1-D grids of at least one block, got (" +
                std::to_string(c.grid.x) + ", " + std::to_string(c.grid.y) + ", " + std::to_string(c.grid.z) +
                ")");
}

Schedule schedule_for_launch() {
  if (g_rt.explicit_schedule) return g_rt.chosen;
  const char* env = std::getenv("SIMT_SCHEDULE");
  Schedule s;
  if (env != nullptr && *env != '\0' && !parse_schedule(env, s))
    throw Error(invalid_schedule("environment variable SIMT_SCHEDULE", env));
  return s;
}

// Fibers for n threads, each parked and ready to run a thread (those a failed launch abandoned restart).
void prepare_fibers(int n) {
  while (int(g_rt.fibers.size()) < n) g_rt.fibers.push_back(std::make_unique<Fiber>());
  for (int t = 0; t < n; ++t) {
    Fiber& f = fiber(t);
    if (!f.parked) start_fiber(f);
    f.tid = t;
    f.idx = uint3{unsigned(t), 0, 0};
  }
}

void begin_launch(const LaunchConfig& config, ThreadBody body, void* closure) {
  validate(config);
  g_rt.schedule = schedule_for_launch();
  g_rt.rng = Rng(g_rt.schedule.seed);
  g_rt.config = &config;
  g_rt.body = body;
  g_rt.closure = closure;
  g_rt.n_threads = int(config.block.x);
  g_rt.n_warps = (g_rt.n_threads + 31) / 32;
  g_block_dim = config.block;
  g_grid_dim = config.grid;
  prepare_fibers(g_rt.n_threads);
  g_rt.shared.assign((config.dynamic_shared_bytes + sizeof(uint4) - 1) / sizeof(uint4), uint4{0, 0, 0, 0});
  g_dynamic_shared = g_rt.shared.empty() ? nullptr : reinterpret_cast<unsigned char*>(g_rt.shared.data());
}

// Leaves no trace of the launch but the fibers' parked state; throws the launch's error, if any.
void end_launch() {
  g_rt.current = nullptr;
  g_rt.config = nullptr;
  g_thread_idx = &kNoThread;
  g_dynamic_shared = nullptr;
  if (!g_rt.failed) return;
  g_rt.failed = false;
  g_rt.last_error = std::move(g_rt.error);
  g_rt.error.clear();
  throw Error(g_rt.last_error);
}

}  // namespace

// ------------------------------------------------------------------------------------------------------
// Entry points used by simt.h
// ------------------------------------------------------------------------------------------------------

void syncthreads(Site site) { syncthreads_at(current_fiber("__syncthreads"), site); }

uint64_t warp_collective(const WarpCall& call) {
  if (g_rt.current == nullptr) current_fiber(op_name(call.op));  // throws; the name only on this path
  return collective_at(*g_rt.current, call);
}

unsigned active_mask() { return ~warp_of(current_fiber("__activemask")).exited; }

void misaligned(const volatile void* ptr, size_t bytes, const char* expr, Site site) {
  const auto what = [&] {
    char address[32];
    std::snprintf(address, sizeof(address), "%p", const_cast<const void*>(ptr));
    return "misaligned vector access at " + where(site) + ": `" + expr + "` = " + address + " is not " +
           std::to_string(bytes) + "-byte aligned";
  };
  if (g_rt.current == nullptr) throw Error("simt: " + what());
  fail([&] { return prefix() + thread_name(*g_rt.current) + ": " + what(); });
}

void device_error(const char* what, Site site) {
  if (g_rt.current == nullptr) throw Error(std::string("simt: ") + what + " at " + where(site));
  fail([&] { return prefix() + thread_name(*g_rt.current) + ": " + what + " at " + where(site); });
}

void run_launch(const LaunchConfig& config, ThreadBody body, void* closure) {
  if (g_rt.current != nullptr) device_error("simt::launch called from device code", Site{__FILE__, __LINE__});
  const std::lock_guard<std::mutex> lock(g_rt.launch_mutex);
  g_rt.last_error.clear();
  try {
    begin_launch(config, body, closure);
  } catch (const Error& e) {
    g_rt.last_error = e.what();
    end_launch();
    throw;
  }
  for (unsigned b = 0; b < config.grid.x && !g_rt.failed; ++b) run_block(b);
  end_launch();
}

}  // namespace detail

void set_schedule(const char* spec) {
  using detail::g_rt;
  const std::lock_guard<std::mutex> lock(g_rt.launch_mutex);
  if (spec == nullptr || *spec == '\0') {
    g_rt.explicit_schedule = false;
    return;
  }
  detail::Schedule s;
  if (!detail::parse_schedule(spec, s)) {
    g_rt.last_error = detail::invalid_schedule("simt::set_schedule", spec);
    throw Error(g_rt.last_error);
  }
  g_rt.explicit_schedule = true;
  g_rt.chosen = s;
}

std::string last_error() { return detail::g_rt.last_error; }

unsigned long long context_switches() { return detail::g_rt.switches; }

}  // namespace simt

// ------------------------------------------------------------------------------------------------------
// C API (for ctypes)
// ------------------------------------------------------------------------------------------------------

extern "C" {

// 0 on success; -1 for an invalid spec (simt_last_error() says why). NULL or "": follow SIMT_SCHEDULE.
int simt_set_schedule(const char* spec) {
  try {
    simt::set_schedule(spec);
    return 0;
  } catch (const simt::Error&) {
    return -1;
  }
}

// The last launch's error message ("" when it succeeded), or the last invalid simt_set_schedule's.
const char* simt_last_error(void) { return simt::detail::g_rt.last_error.c_str(); }

unsigned long long simt_context_switches(void) { return simt::context_switches(); }

}  // extern "C"
