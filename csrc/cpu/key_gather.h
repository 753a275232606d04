// The threshold's bounded key buffer: passes that also gather some survivors' keys, so that the rest of the
// key can be selected in memory instead of by more passes over the weights.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

namespace rgprune {
namespace cpu {

// Keys gathered by a threshold pass into one bounded buffer: survivors whose value (a bin of the second
// pass, or a key of the first pass's window) lies in [lo, lo + width]. A thread collects keys in a small
// local array (KeyAppender) and reserves room in the shared buffer with one atomic add per flush; when the
// buffer would overflow, `overflow` is set and the caller falls back to the next radix pass.
template <typename B>
struct KeyGather {
  B* const buf;
  const int64_t cap;
  const B lo, width;
  std::atomic<int64_t> used{0};
  std::atomic<bool> overflow{false};
  KeyGather(B* b, int64_t c, B l, B h) : buf(b), cap(c), lo(l), width(B(h - l)) {}
};

template <typename B>
struct KeyAppender {
  static constexpr int kLocal = 256;
  KeyGather<B>& g;
  int n = 0;
  B local[kLocal];

  explicit KeyAppender(KeyGather<B>& gather) : g(gather) {}
  ~KeyAppender() { flush(); }
  inline void push(B key) {
    local[n++] = key;
    if (n == kLocal) flush();
  }
  void flush() {
    if (n == 0) return;
    const int64_t at = g.used.fetch_add(n, std::memory_order_relaxed);
    if (at + n <= g.cap) {
      std::memcpy(g.buf + at, local, sizeof(B) * size_t(n));
    } else {
      g.overflow.store(true, std::memory_order_relaxed);
    }
    n = 0;
  }
};

// The first threshold pass's key window (float32 on AVX2, key_window.h): survivors with lo <= key <= hi are
// gathered, those below lo counted.
struct KeyWindow {
  KeyGather<uint32_t> gather;
  std::atomic<int64_t> below{0};
  KeyWindow(uint32_t* buf, int64_t cap, uint32_t lo, uint32_t hi) : gather(buf, cap, lo, hi) {}
};

// One thread's share of a KeyWindow; finish() publishes it.
struct WindowCollector {
  KeyWindow& win;
  const uint32_t lo, hi;
  int64_t below = 0;
  KeyAppender<uint32_t> keys;
  explicit WindowCollector(KeyWindow& w)
      : win(w), lo(w.gather.lo), hi(w.gather.lo + w.gather.width), keys(w.gather) {}
  // key: a survivor's key that is not NaN
  inline void visit(uint32_t key) {
    if (key < lo) {
      ++below;
    } else if (key <= hi) {
      keys.push(key);
    }
  }
  void finish() {
    keys.flush();
    win.below.fetch_add(below, std::memory_order_relaxed);
    below = 0;
  }
};

}  // namespace cpu
}  // namespace rgprune
