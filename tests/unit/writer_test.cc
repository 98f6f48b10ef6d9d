#include "common/writer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

namespace slabby {
namespace {

std::string capture(void (*fill)(Writer&)) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  {
    Writer w(fds[1]);
    fill(w);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  return out;
}

TEST(Writer, FormatsNumbersAndPadding) {
  EXPECT_EQ(capture([](Writer& w) { w.u64(0).ch(' ').u64(18446744073709551615ull); }),
            "0 18446744073709551615");
  EXPECT_EQ(capture([](Writer& w) { w.i64(-42).ch(' ').hex(0xdeadbeef); }), "-42 0xdeadbeef");
  EXPECT_EQ(capture([](Writer& w) { w.u64_pad(7, 4).str_pad("ab", 4).ch('|'); }), "   7ab  |");
  EXPECT_EQ(capture([](Writer& w) { w.bytes(512).ch(' ').bytes(1536).ch(' ').bytes(64ull << 30); }),
            "512 B 1.5 KiB 64.0 GiB");
}

TEST(Writer, LongOutputIsWrittenWhole) {
  std::string out = capture([](Writer& w) {
    for (int i = 0; i < 1000; ++i) w.str("0123456789");
  });
  EXPECT_EQ(out.size(), 10000u);
}

}  // namespace
}  // namespace slabby
