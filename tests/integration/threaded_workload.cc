// Threaded allocation workload for slabby's integration tests.
//
// Deliberately NOT linked to slabby: run_program.py runs it once on glibc and
// once under LD_PRELOAD=libslabby_malloc.so and compares stdout byte for byte.
//
// 8 threads, each with its own seeded PRNG, churn std::map / std::string /
// std::vector / std::unordered_map, and hand std::shared_ptr payloads to the
// next thread in a ring (so blocks are freed on a thread other than the one
// that allocated them). Every thread also inserts into one mutex-guarded map.
// All printed figures are order-independent (sums, xors, final sorted maps),
// so the output does not depend on scheduling.
//
// Usage: threaded_workload [ROUNDS] [placement]   (default 60)
//
// "placement" also prints to stderr, per thread, how many 4 KiB and 2 MiB
// pages hold its std::map's nodes at the end and how long 20 walks of that
// map take (the walk is most of the program's time, and how densely the
// allocator packed one thread's nodes decides it: docs/benchmarks.md).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

constexpr int kThreads = 8;
bool g_placement = false;

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }
};

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string make_word(Rng& r) {
  static const char kLetters[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  // Mostly small strings (SSO and tiny heap blocks), sometimes larger ones.
  size_t len = r.below(10) == 0 ? 16 + r.below(600) : 1 + r.below(24);
  std::string w;
  w.reserve(len);
  for (size_t i = 0; i < len; ++i) w.push_back(kLetters[r.below(36)]);
  return w;
}

struct Payload {
  uint32_t producer;
  uint32_t seq;
  std::vector<std::string> words;
  std::map<std::string, uint32_t> index;
  uint64_t hash() const {
    uint64_t h = producer * 1000003ull + seq;
    for (const auto& w : words) h = fnv1a(w, h);
    for (const auto& [k, v] : index) h = fnv1a(k, h) + v;
    return h;
  }
};

// Bounded single-producer single-consumer mailbox (mutex + condvars).
class Mailbox {
 public:
  void push(std::shared_ptr<const Payload> p) {
    std::unique_lock<std::mutex> lk(mu_);
    not_full_.wait(lk, [&] { return q_.size() < 64; });
    q_.push_back(std::move(p));
    not_empty_.notify_one();
  }
  std::shared_ptr<const Payload> pop() {  // nullptr marks end of stream
    std::unique_lock<std::mutex> lk(mu_);
    not_empty_.wait(lk, [&] { return !q_.empty(); });
    auto p = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return p;
  }

 private:
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<std::shared_ptr<const Payload>> q_;
};

Mailbox g_mail[kThreads];
std::mutex g_shared_mu;
std::map<std::string, uint64_t> g_shared;  // key -> sum of contributions

struct Result {
  uint64_t local = 0;     // local churn checksum
  uint64_t received = 0;  // sum of hashes of payloads received
  uint64_t sent = 0;      // sum of hashes of payloads sent
  uint64_t n_received = 0;
};
Result g_results[kThreads];

// Pages holding the map's nodes (each element sits in its node) and the
// time of 20 in-order walks that hash every key, to stderr.
void report_placement(int id, const std::map<std::string, std::string>& m) {
  std::vector<uintptr_t> small, huge;
  for (const auto& kv : m) {
    small.push_back(reinterpret_cast<uintptr_t>(&kv) >> 12);
    huge.push_back(reinterpret_cast<uintptr_t>(&kv) >> 21);
  }
  std::sort(small.begin(), small.end());
  std::sort(huge.begin(), huge.end());
  size_t pages = std::unique(small.begin(), small.end()) - small.begin();
  size_t huge_pages = std::unique(huge.begin(), huge.end()) - huge.begin();
  auto t0 = std::chrono::steady_clock::now();
  uint64_t h = 0;
  for (int rep = 0; rep < 20; ++rep)
    for (const auto& kv : m) h = fnv1a(kv.first, h);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "placement thread %d nodes %zu pages %zu huge_pages %zu walk_ms %.1f (%llx)\n",
               id, m.size(), pages, huge_pages, ms, static_cast<unsigned long long>(h & 0xff));
}

void worker(int id, int rounds) {
  Rng r(0xC0FFEEull * (id + 1));
  Result& res = g_results[id];
  Mailbox& out = g_mail[(id + 1) % kThreads];
  Mailbox& in = g_mail[id];

  std::map<std::string, std::string> m;
  std::unordered_map<uint64_t, std::string> um;
  std::vector<std::string> vec;
  std::vector<std::shared_ptr<const Payload>> kept;  // held a while, then dropped

  // Pops exactly one payload per payload produced (same count on every
  // thread, so the ring never deadlocks: each mailbox holds at most one).
  auto drain = [&] {
    auto p = in.pop();
    res.received += p->hash();
    res.n_received++;
    if (p->seq % 3 == 0) kept.push_back(std::move(p));  // freed later, elsewhere
    if (kept.size() > 32) kept.erase(kept.begin(), kept.begin() + 16);
  };

  for (int round = 0; round < rounds; ++round) {
    // Local churn: map and unordered_map of strings, vector growth.
    for (int i = 0; i < 2000; ++i) {
      std::string k = make_word(r);
      std::string v = make_word(r) + std::to_string(i);
      m[k] = v;
      um[r.below(5000)] = std::move(v);
      vec.push_back(std::move(k));
    }
    // Erase about half of everything, deterministically.
    for (auto it = m.begin(); it != m.end();) {
      if (fnv1a(it->first) & 1) {
        it = m.erase(it);
      } else {
        ++it;
      }
    }
    for (uint64_t k = round % 2; k < 5000; k += 2) um.erase(k);
    if (vec.size() > 20000) {
      std::vector<std::string> keep(vec.begin() + vec.size() / 2, vec.end());
      vec.swap(keep);
    }
    vec.shrink_to_fit();

    // Shared map: a few inserts per round under the lock.
    for (int i = 0; i < 50; ++i) {
      std::string k = "s" + std::to_string(r.below(4000));
      uint64_t c = r.next() & 0xFFFF;
      std::lock_guard<std::mutex> lk(g_shared_mu);
      g_shared[k] += c;
    }

    // Produce payloads for the next thread, consume ours.
    for (int j = 0; j < 8; ++j) {
      auto p = std::make_shared<Payload>();
      p->producer = id;
      p->seq = static_cast<uint32_t>(round * 8 + j);
      size_t n = 20 + r.below(200);
      for (size_t i = 0; i < n; ++i) {
        p->words.push_back(make_word(r));
        p->index.emplace(p->words.back(), static_cast<uint32_t>(i));
      }
      res.sent += p->hash();
      out.push(std::move(p));
      drain();
    }
  }

  if (g_placement) report_placement(id, m);
  uint64_t h = 0;
  for (const auto& [k, v] : m) h = fnv1a(v, fnv1a(k, h));
  std::map<uint64_t, std::string> sorted_um(um.begin(), um.end());
  for (const auto& [k, v] : sorted_um) h = fnv1a(v, h + k);
  for (const auto& s : vec) h = fnv1a(s, h);
  res.local = h ^ (m.size() << 32) ^ um.size() ^ (vec.size() << 16);
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = argc > 1 ? std::atoi(argv[1]) : 60;
  g_placement = argc > 2 && std::string(argv[2]) == "placement";
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i, rounds);
  for (auto& t : threads) t.join();

  uint64_t total = 0;
  int bad = 0;
  for (int i = 0; i < kThreads; ++i) {
    const Result& r = g_results[i];
    const Result& prev = g_results[(i + kThreads - 1) % kThreads];
    if (r.received != prev.sent) ++bad;  // ring hand-off must be lossless
    std::printf("thread %d local %016llx received %llu payload_sum %016llx\n", i,
                static_cast<unsigned long long>(r.local),
                static_cast<unsigned long long>(r.n_received),
                static_cast<unsigned long long>(r.received));
    total = total * 31 + r.local + r.received;
  }
  uint64_t sh = 0;
  for (const auto& [k, v] : g_shared) sh = fnv1a(k, sh) + v;
  std::printf("shared entries %zu checksum %016llx\n", g_shared.size(),
              static_cast<unsigned long long>(sh));
  std::printf("total %016llx\n", static_cast<unsigned long long>(total ^ sh));
  if (bad) {
    std::fprintf(stderr, "ring hand-off mismatch on %d threads\n", bad);
    return 1;
  }
  return 0;
}
