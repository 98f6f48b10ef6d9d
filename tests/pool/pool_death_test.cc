// slabby::Pool failures that end the process: each asserts the exact signal
// and message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <string>

#include "slabby/pool.hpp"

namespace slabby {
namespace {

// Through a volatile pointer, so the compiler cannot drop the bad write.
void WriteAt(std::byte* p) {
  volatile std::byte* v = p;
  *v = std::byte{1};
}

TEST(PoolDeathTest, GuardPageFaultsOnAOneByteOverflow) {
  Options o;
  o.guard_pages = true;
  auto p = Pool::Create(1000, 4, o);
  ASSERT_TRUE(p.ok());
  SlabRef r = (*p)->MustAllocate();
  std::byte* end = r.bytes().data() + r.bytes().size();
  WriteAt(end - 1);  // the last byte is fine
  // Which slot the thread got depends on its CPU's shard.
  std::string slot = std::to_string(r.id() & 0xffffffff);
  EXPECT_EXIT(WriteAt(end), ::testing::KilledBySignal(SIGSEGV),
              "slabby: guard page violation at 0x[0-9a-f]+: 1 bytes past the end of slab " + slot +
                  "[,\n]");
}

// A slab sits at the end of its guarded pages: an underflow faults only when the slab is whole
// pages (4 KiB slabs on 4 KiB pages; with 64 KiB pages, slabs of 64 KiB).
size_t Page() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

TEST(PoolDeathTest, GuardPageFaultsOnAnUnderflowOfTheFirstSlab) {
  Options o;
  o.guard_pages = true;
  o.cache_line = 4096;
  o.shards = 1;  // slot 0 comes first
  auto p = Pool::Create(Page(), 2, o);
  ASSERT_TRUE(p.ok());
  SlabRef r = (*p)->MustAllocate();
  EXPECT_EXIT(WriteAt(r.bytes().data() - 1), ::testing::KilledBySignal(SIGSEGV),
              "slabby: guard page violation at 0x[0-9a-f]+: 1 bytes before slab 0\n");
}

TEST(PoolDeathTest, GuardPageReportNamesTheSlabWhoseEndWasOverrun) {
  Options o;
  o.guard_pages = true;
  o.shards = 1;  // refs[i] is slot i
  auto p = Pool::Create(Page(), 3, o);
  ASSERT_TRUE(p.ok());
  BatchAllocation all = (*p)->BatchAllocate(3);
  ASSERT_TRUE(all.status.ok());
  std::byte* end2 = all.refs[2].bytes().data() + Page();
  EXPECT_EXIT(WriteAt(end2 + 99), ::testing::KilledBySignal(SIGSEGV),
              "100 bytes past the end of slab 2\n");
  // Between two slabs: both are named.
  std::byte* start1 = all.refs[1].bytes().data();
  EXPECT_EXIT(WriteAt(start1 - 1), ::testing::KilledBySignal(SIGSEGV),
              std::to_string(Page()) + " bytes past the end of slab 0, 1 bytes before slab 1\n");
}

TEST(PoolDeathTest, MustAllocateAbortsWithTheErrorWhenExhausted) {
  auto p = Pool::Create(64, 1);
  ASSERT_TRUE(p.ok());
  SlabRef held = (*p)->MustAllocate();
  EXPECT_EXIT((*p)->MustAllocate(), ::testing::KilledBySignal(SIGABRT),
              "slabby: MustAllocate failed: RESOURCE_EXHAUSTED: slabby: out of memory");
}

TEST(PoolDeathTest, ClosedPoolUnmapsTheSlabs) {
  auto p = Pool::Create(4096, 4);
  ASSERT_TRUE(p.ok());
  auto f = (*p)->AllocateFast();
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*p)->Close().ok());
  // Memory really went back: a raw pointer kept past Close faults (a plain
  // fault: the region is no longer a pool's, so no guard-page line; an
  // emulator may say something of its own).
  EXPECT_EXIT(WriteAt(f->bytes.data()), ::testing::KilledBySignal(SIGSEGV),
              ::testing::Not(::testing::HasSubstr("slabby")));
}

}  // namespace
}  // namespace slabby
