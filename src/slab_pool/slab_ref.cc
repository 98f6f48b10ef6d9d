// SlabRef: every access checks the slot's generation (slot_table.h), so a
// reference whose slab was released (by it, by DeallocateFast of its id, by
// Reset or Close) reads nothing and frees nothing.
#include "slab_pool/pool_impl.h"

namespace slabby {

using slab_pool::kHeapIndex;

SlabRef& SlabRef::operator=(SlabRef&& o) noexcept {
  if (this != &o) {
    if (pool_ != nullptr) Release().IgnoreError();
    steal(o);
  }
  return *this;
}

SlabRef::~SlabRef() {
  if (pool_ == nullptr) return;
  PoolImpl* pool = PoolImpl::of(pool_);
  absl::Status s = pool->release_ref(*this);
  // Stale or after Close is the expected end of a reference whose slab was
  // taken back; only real trouble is worth a log line.
  if (absl::IsDataLoss(s))
    pool->log(LogLevel::kError, "slabby: SlabRef destructor: %s", std::string(s.message()).c_str());
}

std::span<std::byte> SlabRef::bytes() const {
  if (pool_ == nullptr) return {};
  const PoolImpl* pool = PoolImpl::of(pool_);
  if (index_ == kHeapIndex) return {data_, pool->slab_size_};
  if (pool->closed() || !pool->owns(index_, gen_)) return {};
  return {data_, pool->slab_size_};
}

size_t SlabRef::size() const { return pool_ == nullptr ? 0 : PoolImpl::of(pool_)->slab_size_; }

bool SlabRef::valid() const {
  if (pool_ == nullptr) return false;
  const PoolImpl* pool = PoolImpl::of(pool_);
  return index_ == kHeapIndex || (!pool->closed() && pool->owns(index_, gen_));
}

absl::Status SlabRef::Release() {
  if (pool_ == nullptr) return absl::FailedPreconditionError("slabby: invalid reference (empty)");
  return PoolImpl::of(pool_)->release_ref(*this);
}

std::string SlabRef::allocation_stack() const {
  if (pool_ == nullptr || index_ == kHeapIndex) return {};
  return PoolImpl::of(pool_)->stack_of(index_, gen_);
}

}  // namespace slabby
