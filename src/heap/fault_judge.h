// slabby: whether huge pages pay on this machine, judged from the first
// touches the page heap times (SLABBY_THP=dense: the slabs' chunks are
// timed, huge_slabs.cc; large spans follow the verdict, huge_marks.cc).
//
// A huge page replaces 512 faults of 4 KiB by one that zeroes 2 MiB, and
// what that one costs depends on where the kernel finds the 2 MiB. Measured
// on this project's current VM (2026-12-07, `page_costs faults`): 512
// small faults take 0.65-0.9 ms whatever the memory's history; a huge page
// 83 us when it comes from memory the guest freed moments ago, 4-5 ms when
// the guest had reported it free to its host (virtio_balloon free page
// reporting works in 2 MiB blocks, exactly what a huge page fault needs, so
// the host faults its memory back in). Direct compaction under THP's
// `defrag` setting makes huge faults slow the same way on a fragmented host.
// A program growing 350 MiB of slabs took 0.77 s of system time where 4 KiB
// pages take 0.16 (bench fragmentation).
//
// So the page heap times each new chunk's first touch, and some clean
// slabs' first (a 4 KiB fault each), and asks chunk_pays before it makes a
// chunk. The judge keeps a moving average of the chunks' fault times and
// lets chunks be made while it stays at most the cost of the small faults
// they replace (the median small fault times pages per huge page). A host
// where small faults are dear (6 us each on this project's earlier Intel
// host) keeps its huge pages even if they fault slowly. Once chunks stop,
// every kFirstProbe bytes of slabs after that (doubling to kMaxProbe while
// probes stay slow) one chunk is made again as a probe, and its time alone
// decides: the memory's history changes as the program and its neighbours
// run.
//
// Not thread-safe: the page heap calls it under its lock (on() excepted).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

namespace slabby {

class FaultJudge {
 public:
  static constexpr uint32_t kSmallSamples = 32;
  // The limit before any small fault has been timed: 512 faults of 2 us.
  static constexpr uint64_t kDefaultLimitNs = 1000000;
  static constexpr uint64_t kFirstProbe = uint64_t{32} << 20;
  static constexpr uint64_t kMaxProbe = uint64_t{1} << 30;

  // pages_per_huge: small pages a huge page replaces (512 with 4 KiB pages).
  void init(uint64_t pages_per_huge) { pages_per_huge_ = pages_per_huge; }
  // Off: every chunk pays, and nothing is timed (SLABBY_THP_TIMED=0).
  void set_enabled(bool on) {
    enabled_ = on;
    set_on(true);
    probing_ = false;
  }
  bool enabled() const { return enabled_; }

  bool wants_small_sample() const { return enabled_ && small_n_ < kSmallSamples; }
  // A small page's first touch took ns.
  void note_small(uint64_t ns) {
    if (small_n_ >= kSmallSamples) return;
    uint32_t v = ns > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(ns);
    uint32_t i = small_n_++;  // kept sorted: the median is the middle one
    for (; i > 0 && small_[i - 1] > v; i--) small_[i] = small_[i - 1];
    small_[i] = v;
  }

  // A chunk's first touch (a huge page's fault) took ns.
  void note_huge(uint64_t ns) {
    timed_++;
    const bool probe = probing_;
    probing_ = false;
    if (probe || average_ns_ == 0)
      average_ns_ = ns;
    else
      average_ns_ = average_ns_ - average_ns_ / 4 + ns / 4;
    if (average_ns_ <= limit_ns()) {
      set_on(true);
      probe_after_ = kFirstProbe;
    } else if (on()) {
      set_on(false);
      declined_bytes_ = 0;
    } else if (probe) {
      probe_after_ = probe_after_ * 2 > kMaxProbe ? kMaxProbe : probe_after_ * 2;
    }
  }

  // A slab of `bytes` could take a new chunk: whether it does. Declined, the
  // bytes count towards the next probe.
  bool chunk_pays(uint64_t bytes) {
    if (on() || probing_) return true;
    declined_bytes_ += bytes;
    declined_++;
    if (declined_bytes_ < probe_after_) return false;
    declined_bytes_ = 0;
    probing_ = true;
    return true;
  }

  // What a huge page's fault may cost and still pay.
  uint64_t limit_ns() const {
    if (small_n_ == 0) return kDefaultLimitNs;
    return uint64_t{small_[small_n_ / 2]} * pages_per_huge_;
  }
  uint64_t average_ns() const { return average_ns_; }
  uint64_t small_ns() const { return small_n_ == 0 ? 0 : small_[small_n_ / 2]; }
  uint64_t chunks_timed() const { return timed_; }
  uint64_t chunks_declined() const { return declined_; }
  // Whether huge pages pay now; read without the lock too (large spans are
  // marked only while they do: huge_marks.cc).
  bool on() const { return on_.load(std::memory_order_relaxed); }

 private:
  bool enabled_ = true;
  uint64_t pages_per_huge_ = 512;
  uint32_t small_[kSmallSamples] = {};
  uint32_t small_n_ = 0;
  uint64_t average_ns_ = 0;  // 0: no chunk timed yet
  void set_on(bool v) { on_.store(v, std::memory_order_relaxed); }
  std::atomic<bool> on_{true};
  bool probing_ = false;  // the next chunk timed is a probe
  uint64_t declined_bytes_ = 0;
  uint64_t probe_after_ = kFirstProbe;
  uint64_t timed_ = 0;
  uint64_t declined_ = 0;
};

}  // namespace slabby
