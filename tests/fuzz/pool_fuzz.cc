// Fuzz target: slabby::Pool (include/slabby/pool.hpp) against a model.
//
// Each input creates a pool with fuzzed options (slab size, capacity, cache
// line, shards, per-CPU, secure, bit guard, guard pages, heap fallback,
// breaker, health checks, finalizers with a logger) and runs a sequence of
// Allocate / AllocateFast / AllocateWithTimeout / BatchAllocate / Release /
// Deallocate / DeallocateFast / BatchDeallocate / Reset / Stats /
// HealthCheck / Close calls, plus DeallocateFast of stale ids (released,
// reset) and of forged ids (any 64-bit value, the heap-fallback index, every
// generation of a slot). The model knows which slabs are owned and checks:
// - each call's status (OK, ResourceExhausted when and only when every slab
//   is in use, InvalidArgument for a batch above the capacity,
//   FailedPrecondition for stale, double, forged ids and after Close,
//   Unavailable only with a breaker);
// - a stale or forged id never frees a slab somebody owns (unless it is
//   exactly that owner's id), and a stale reference reads nothing (bytes()
//   empty, valid() false);
// - bytes() is exactly slab_size() = the size rounded up to the cache line,
//   aligned to it; owned slabs never overlap and keep their bytes (a pattern
//   per owner, verified before each release); with `secure` every slab and
//   heap fallback handed out is zero;
// - Stats(): used_slabs, available_slabs, current allocations and the
//   counters of fast and batch calls match the model.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "slabby/pool.hpp"

using fuzzcheck::fail;
using slabby::Pool;
using slabby::SlabRef;

namespace {

constexpr const char* kTarget = "pool_fuzz";
constexpr uint32_t kHeapIndex = 0xffffffff;

struct Owned {
  bool fast = false;            // an AllocateFast id (else a SlabRef)
  std::unique_ptr<SlabRef> ref;  // !fast
  uint64_t id = 0;
  std::byte* data = nullptr;
  uint8_t tag = 0;
  bool heap() const { return static_cast<uint32_t>(id) == kHeapIndex; }
};

std::string code(const absl::Status& s) { return std::string(absl::StatusCodeToString(s.code())) + " " + std::string(s.message()); }

struct Model {
  std::unique_ptr<Pool> pool;
  size_t capacity = 0, slab = 0, align = 0;
  bool secure = false, fallback = false, breaker = false, closed = false;
  std::vector<Owned> owned;
  std::vector<uint64_t> stale;  // ids released or reset (never reissued unless the slot's gen wraps)
  std::vector<std::unique_ptr<SlabRef>> stale_refs;
  uint64_t fast_allocs = 0, fast_frees = 0, batch_allocs = 0, batch_frees = 0;
  uint8_t next_tag = 1;

  size_t used_slots() const {
    size_t n = 0;
    for (auto& o : owned) n += !o.heap();
    return n;
  }
};

void fill(Model& m, Owned& o) {
  o.tag = m.next_tag++;
  for (size_t k = 0; k < m.slab; ++k) o.data[k] = static_cast<std::byte>(o.tag + k * 13);
}

void verify(const Model& m, const Owned& o, const char* when) {
  for (size_t k = 0; k < m.slab; ++k)
    if (o.data[k] != static_cast<std::byte>(o.tag + k * 13))
      fail(kTarget, "byte " + std::to_string(k) + " of slab id " + std::to_string(o.id) + " changed " + when);
}

// A slab just handed out: size, alignment, zeroes under `secure`, no overlap.
void received(Model& m, Owned& o, std::span<std::byte> bytes) {
  if (bytes.size() != m.slab)
    fail(kTarget, "bytes() is " + std::to_string(bytes.size()) + " bytes, slab_size " + std::to_string(m.slab));
  o.data = bytes.data();
  if (reinterpret_cast<uintptr_t>(o.data) % m.align != 0) fail(kTarget, "slab not aligned to the cache line");
  if (m.secure)
    for (size_t k = 0; k < m.slab; ++k)
      if (o.data[k] != std::byte{0})
        fail(kTarget, std::string("secure pool handed out a ") + (o.heap() ? "heap fallback" : "slab") +
                          " that is not zero (byte " + std::to_string(k) + ")");
  for (auto& other : m.owned) {
    uintptr_t a = reinterpret_cast<uintptr_t>(o.data), b = reinterpret_cast<uintptr_t>(other.data);
    if (a < b + m.slab && b < a + m.slab) fail(kTarget, "two owned slabs overlap");
  }
  fill(m, o);
}

void expect(const absl::Status& s, absl::StatusCode want, const std::string& what) {
  if (s.code() != want)
    fail(kTarget, what + ": got " + code(s) + ", expected " + absl::StatusCodeToString(want));
}

// Outcome of an allocation call, given the model's state.
void allocated(Model& m, absl::StatusOr<SlabRef> r, bool allow_fallback, const char* call) {
  if (m.closed) return expect(r.status(), absl::StatusCode::kFailedPrecondition, std::string(call) + " after Close");
  bool full = m.used_slots() == m.capacity;
  if (!r.ok()) {
    if (m.breaker && absl::IsUnavailable(r.status())) return;
    if (full && !(allow_fallback && m.fallback)) {
      bool timeout = std::string(call) == "AllocateWithTimeout";
      return expect(r.status(), timeout ? absl::StatusCode::kDeadlineExceeded : absl::StatusCode::kResourceExhausted, call);
    }
    fail(kTarget, std::string(call) + " failed with a free slab: " + code(r.status()));
  }
  if (full && !(allow_fallback && m.fallback)) fail(kTarget, std::string(call) + " succeeded with every slab in use");
  Owned o;
  o.ref = std::make_unique<SlabRef>(*std::move(r));
  o.id = o.ref->id();
  if (full != o.heap()) fail(kTarget, std::string(call) + ": heap fallback " + (full ? "expected" : "while slabs were free"));
  if (!o.ref->valid()) fail(kTarget, "a new reference is not valid");
  received(m, o, o.ref->bytes());
  m.owned.push_back(std::move(o));
}

void released(Model& m, size_t i) {
  Owned& o = m.owned[i];
  if (!o.heap()) m.stale.push_back(o.id);
  m.owned.erase(m.owned.begin() + static_cast<long>(i));
}

// DeallocateFast of an id nobody (or somebody) owns.
void dealloc_id(Model& m, uint64_t id, const char* what) {
  absl::Status s = m.pool->DeallocateFast(id);
  if (m.closed) return expect(s, absl::StatusCode::kFailedPrecondition, std::string(what) + " after Close");
  for (size_t i = 0; i < m.owned.size(); ++i) {
    if (m.owned[i].id != id || m.owned[i].heap()) continue;
    // Exactly an owner's id: it frees that slab (an id carries no more).
    expect(s, absl::StatusCode::kOk, std::string(what) + " equal to a live id");
    ++m.fast_frees;
    if (!m.owned[i].fast) m.stale_refs.push_back(std::move(m.owned[i].ref));
    released(m, i);
    return;
  }
  expect(s, absl::StatusCode::kFailedPrecondition, std::string(what) + " " + std::to_string(id));
}

void check_stats(Model& m) {
  slabby::PoolStats s = m.pool->Stats();
  size_t used = m.used_slots(), heap = m.owned.size() - used;
  if (s.total_slabs != m.capacity || s.slab_size != m.slab) fail(kTarget, "Stats: size or capacity");
  if (s.used_slabs != used || s.available_slabs != m.capacity - used)
    fail(kTarget, "Stats: used_slabs " + std::to_string(s.used_slabs) + ", the model has " + std::to_string(used));
  if (s.current_allocations != used + heap) fail(kTarget, "Stats: current_allocations");
  if (s.fast_allocations != m.fast_allocs || s.fast_deallocations != m.fast_frees)
    fail(kTarget, "Stats: fast counters " + std::to_string(s.fast_allocations) + "/" +
                      std::to_string(s.fast_deallocations) + ", the model has " + std::to_string(m.fast_allocs) +
                      "/" + std::to_string(m.fast_frees));
  if (s.batch_allocations != m.batch_allocs || s.batch_deallocations != m.batch_frees)
    fail(kTarget, "Stats: batch counters");
  if (s.corruptions_detected != 0) fail(kTarget, "Stats: a corruption was detected");
  if (!(s.memory_utilization >= 0 && s.memory_utilization <= 1)) fail(kTarget, "Stats: utilization out of 0..1");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  Model m;
  slabby::Options o;
  size_t want = in.ConsumeBool() ? in.ConsumeIntegralInRange<size_t>(1, 512)
                                 : in.ConsumeIntegralInRange<size_t>(1, 20000);
  m.capacity = in.ConsumeIntegralInRange<size_t>(1, 40);
  o.cache_line = uint32_t{1} << in.ConsumeIntegralInRange<int>(4, 12);
  if (in.ConsumeIntegralInRange<int>(0, 15) == 0) o.cache_line = in.ConsumeIntegral<uint32_t>();
  o.shards = in.ConsumeIntegralInRange<uint32_t>(0, 8);
  o.per_cpu_cache = in.ConsumeBool();
  o.secure = in.ConsumeBool();
  o.bit_guard = in.ConsumeBool();
  o.guard_pages = in.ConsumeIntegralInRange<int>(0, 3) == 0;
  o.heap_fallback = in.ConsumeBool();
  o.health_checks = in.ConsumeBool();
  o.finalizers = in.ConsumeBool();
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0) {
    o.breaker_threshold = in.ConsumeIntegralInRange<int>(1, 3);
    o.breaker_timeout = absl::Microseconds(in.ConsumeIntegralInRange<int>(1, 500));
  }
  std::vector<std::string> log;
  o.logger = [&log](slabby::LogLevel, std::string_view s) {
    if (log.size() < 100) log.emplace_back(s);
  };
  auto created = Pool::Create(want, m.capacity, o);
  bool line_ok = o.cache_line >= 16 && o.cache_line <= 4096 && (o.cache_line & (o.cache_line - 1)) == 0;
  if (!line_ok) {
    expect(created.status(), absl::StatusCode::kInvalidArgument, "Create with a bad cache line");
    return 0;
  }
  if (!created.ok()) fail(kTarget, "Create failed: " + code(created.status()));
  m.pool = *std::move(created);
  m.align = o.cache_line;
  m.slab = (want + o.cache_line - 1) / o.cache_line * o.cache_line;
  m.secure = o.secure, m.fallback = o.heap_fallback, m.breaker = o.breaker_threshold > 0;
  if (m.pool->slab_size() != m.slab || m.pool->capacity() != m.capacity) fail(kTarget, "slab_size() or capacity()");

  while (in.remaining_bytes() > 0) {
    size_t pick = m.owned.empty() ? 0 : in.ConsumeIntegralInRange<size_t>(0, m.owned.size() - 1);
    switch (in.ConsumeIntegralInRange<int>(0, 15)) {
      case 0:
      case 1: allocated(m, m.pool->Allocate(), true, "Allocate"); break;
      case 2: {
        auto r = m.pool->AllocateFast();
        if (m.closed) { expect(r.status(), absl::StatusCode::kFailedPrecondition, "AllocateFast after Close"); break; }
        bool full = m.used_slots() == m.capacity;
        if (!r.ok()) {
          if (m.breaker && absl::IsUnavailable(r.status())) break;
          if (!full) fail(kTarget, "AllocateFast failed with a free slab: " + code(r.status()));
          expect(r.status(), absl::StatusCode::kResourceExhausted, "AllocateFast when full");
          break;
        }
        if (full) fail(kTarget, "AllocateFast succeeded with every slab in use");
        Owned w;
        w.fast = true, w.id = r->id;
        if (w.heap()) fail(kTarget, "AllocateFast fell back to the heap");
        received(m, w, r->bytes);
        m.owned.push_back(std::move(w));
        ++m.fast_allocs;
        break;
      }
      case 3:
        allocated(m, m.pool->AllocateWithTimeout(absl::Microseconds(in.ConsumeIntegralInRange<int>(0, 200))),
                  false, "AllocateWithTimeout");
        break;
      case 4: {  // release one owned slab, by the way it was taken
        if (m.owned.empty()) break;
        Owned& w = m.owned[pick];
        if (!m.closed) verify(m, w, "while owned");
        absl::Status s;
        if (w.fast) {
          s = m.pool->DeallocateFast(w.id);
          if (!m.closed) ++m.fast_frees;
        } else if (in.ConsumeBool()) {
          s = w.ref->Release();
          if (w.ref->valid() || !w.ref->bytes().empty()) fail(kTarget, "a released reference still owns its slab");
        } else {
          s = m.pool->Deallocate(std::move(*w.ref));
        }
        // After Close only heap fallbacks can still be released (freed).
        expect(s, m.closed && !w.heap() ? absl::StatusCode::kFailedPrecondition : absl::StatusCode::kOk,
               "release of an owned slab");
        released(m, pick);
        break;
      }
      case 5: {  // a stale id: released or reset
        if (m.stale.empty()) break;
        dealloc_id(m, m.stale[in.ConsumeIntegralInRange<size_t>(0, m.stale.size() - 1)], "DeallocateFast of a stale id");
        break;
      }
      case 6: {  // a forged id
        uint64_t id;
        switch (in.ConsumeIntegralInRange<int>(0, 3)) {
          case 0: id = in.ConsumeIntegral<uint64_t>(); break;
          case 1: id = uint64_t{in.ConsumeIntegral<uint32_t>()} << 32 | kHeapIndex; break;
          case 2: id = uint64_t{in.ConsumeIntegralInRange<uint32_t>(0, 9)} << 32 |
                       in.ConsumeIntegralInRange<uint32_t>(0, static_cast<uint32_t>(m.capacity) + 2); break;
          default: id = uint64_t{in.ConsumeIntegral<uint32_t>()} << 32 | static_cast<uint32_t>(m.capacity); break;
        }
        dealloc_id(m, id, "DeallocateFast of a forged id");
        break;
      }
      case 7: {  // BatchAllocate
        size_t n = in.ConsumeIntegralInRange<size_t>(0, m.capacity + 2);
        size_t free_slots = m.capacity - m.used_slots();
        slabby::BatchAllocation b = m.pool->BatchAllocate(n);
        if (n > m.capacity) {
          expect(b.status, absl::StatusCode::kInvalidArgument, "BatchAllocate above the capacity");
          if (!b.refs.empty()) fail(kTarget, "BatchAllocate above the capacity returned slabs");
          break;
        }
        if (m.closed) {
          expect(b.status, n == 0 ? absl::StatusCode::kOk : absl::StatusCode::kFailedPrecondition,
                 "BatchAllocate after Close");
          break;
        }
        if (!(m.breaker && absl::IsUnavailable(b.status))) {
          size_t expect_n = m.fallback ? n : std::min(n, free_slots);
          if (b.refs.size() != expect_n)
            fail(kTarget, "BatchAllocate(" + std::to_string(n) + ") gave " + std::to_string(b.refs.size()) +
                              " with " + std::to_string(free_slots) + " free: " + code(b.status));
          if ((b.refs.size() == n) != b.status.ok()) fail(kTarget, "BatchAllocate status " + code(b.status));
        }
        ++m.batch_allocs;
        for (SlabRef& r : b.refs) {
          Owned w;
          w.ref = std::make_unique<SlabRef>(std::move(r));
          w.id = w.ref->id();
          received(m, w, w.ref->bytes());
          m.owned.push_back(std::move(w));
        }
        break;
      }
      case 8: {  // BatchDeallocate of the references
        std::vector<SlabRef> refs;
        std::vector<size_t> idx;
        for (size_t i = 0; i < m.owned.size(); ++i)
          if (!m.owned[i].fast && in.ConsumeBool()) idx.push_back(i);
        for (size_t i : idx) {
          if (!m.closed) verify(m, m.owned[i], "while owned");
          refs.push_back(std::move(*m.owned[i].ref));
        }
        bool all_heap = true;
        for (size_t i : idx) all_heap &= m.owned[i].heap();
        absl::Status s = m.pool->BatchDeallocate(std::span<SlabRef>(refs));
        if (m.closed) {
          expect(s, all_heap ? absl::StatusCode::kOk : absl::StatusCode::kFailedPrecondition,
                 "BatchDeallocate after Close");
          for (size_t k = idx.size(); k-- > 0;) released(m, idx[k]);
          break;
        }
        expect(s, absl::StatusCode::kOk, "BatchDeallocate of owned slabs");
        ++m.batch_frees;
        for (size_t k = idx.size(); k-- > 0;) released(m, idx[k]);
        break;
      }
      case 9: {  // Reset: every slab back, every reference and id stale
        m.pool->Reset();
        if (m.closed) break;
        std::vector<Owned> keep;
        for (auto& w : m.owned) {
          if (w.heap()) {
            keep.push_back(std::move(w));  // heap fallbacks are not slabs
            continue;
          }
          m.stale.push_back(w.id);
          if (!w.fast) {
            if (w.ref->valid() || !w.ref->bytes().empty()) fail(kTarget, "a reference still owns its slab after Reset");
            m.stale_refs.push_back(std::move(w.ref));
          }
        }
        m.owned = std::move(keep);
        break;
      }
      case 10: if (!m.closed) check_stats(m); break;
      case 11: {
        slabby::HealthMetrics h = m.pool->HealthCheck();
        for (double v : {h.fragmentation_score, h.memory_pressure, h.error_rate, h.cache_efficiency, h.health_score})
          if (!(v >= 0 && v <= 1)) fail(kTarget, "HealthCheck: a ratio out of 0..1");
        break;
      }
      case 12: {  // a stale reference: releasing it fails and frees nothing
        if (m.stale_refs.empty()) break;
        SlabRef& r = *m.stale_refs[in.ConsumeIntegralInRange<size_t>(0, m.stale_refs.size() - 1)];
        if (r.valid() || !r.bytes().empty()) fail(kTarget, "a stale reference reads its old slab");
        absl::Status s = r.Release();
        if (s.ok()) fail(kTarget, "a stale reference released a slab");
        break;
      }
      case 13: {  // move a reference over another: the target's slab is released
        if (m.owned.size() < 2 || m.closed) break;
        size_t to = in.ConsumeIntegralInRange<size_t>(0, m.owned.size() - 1);
        if (to == pick || m.owned[pick].fast || m.owned[to].fast) break;
        verify(m, m.owned[to], "while owned");
        *m.owned[to].ref = std::move(*m.owned[pick].ref);
        if (m.owned[pick].ref->valid()) fail(kTarget, "a moved-from reference is still valid");
        Owned moved = std::move(m.owned[pick]);
        moved.ref = std::move(m.owned[to].ref);
        size_t lo = std::min(pick, to), hi = std::max(pick, to);
        Owned dropped = std::move(m.owned[to]);
        if (!dropped.heap()) m.stale.push_back(dropped.id);
        m.owned.erase(m.owned.begin() + static_cast<long>(hi));
        m.owned.erase(m.owned.begin() + static_cast<long>(lo));
        m.owned.push_back(std::move(moved));
        break;
      }
      case 14: {  // Close: every later call fails, references become harmless
        if (in.ConsumeIntegralInRange<int>(0, 3) != 0) break;
        absl::Status s = m.pool->Close();
        expect(s, m.closed ? absl::StatusCode::kFailedPrecondition : absl::StatusCode::kOk, "Close");
        m.closed = true;
        for (auto& w : m.owned)
          if (!w.fast && !w.heap() && (w.ref->valid() || !w.ref->bytes().empty()))
            fail(kTarget, "a reference reads its slab after Close");
        break;
      }
      default:
        if (!m.owned.empty() && !m.closed) verify(m, m.owned[pick], "while owned");
        break;
    }
  }
  if (!m.closed) {
    check_stats(m);
    for (auto& w : m.owned) verify(m, w, "while owned");
  }
  // References go before their pool.
  m.owned.clear();
  m.stale_refs.clear();
  m.pool.reset();
  return 0;
}
