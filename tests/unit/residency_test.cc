// Which pages hold data (os/residency.cc): the zeroing and zero checks of
// freed blocks ask /proc/self/pagemap, else mincore. Each source zeroes what
// is present and faults nothing in; the pagemap file is never trusted in a
// forked child or after the program closed its descriptor.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <string>

#include "os/os.h"

namespace slabby {
namespace {

constexpr int kAuto = -1;

struct Mapping {
  explicit Mapping(size_t pages) : bytes(pages * os::mincore_page_size()) {
    p = static_cast<char*>(os::map_rw(bytes));
    os::mark_huge(p, bytes, false);  // small pages whatever the system's THP setting
  }
  ~Mapping() { os::release(p, bytes); }
  char* page(size_t i) const { return p + i * os::mincore_page_size(); }
  size_t bytes;
  char* p;
};

class ResidencySource : public testing::TestWithParam<int> {
 protected:
  void SetUp() override { os::force_residency_for_tests(GetParam()); }
  void TearDown() override { os::force_residency_for_tests(kAuto); }
};

// Every source, swap or not: the pages present are written, nothing else is
// faulted in (with swap configured, mincore's pages not resident may be
// swapped out: they are discarded, and a zero check does not read them; it
// read every one, which mapped the zero page under each, and the next
// zeroing wrote them all).
TEST_P(ResidencySource, ZeroesWhatIsPresentAndFaultsNothingIn) {
  const size_t unit = os::mincore_page_size();
  Mapping m(64);
  size_t written = 0;
  for (size_t i = 1; i < 64; i += 3) {
    memset(m.page(i), 0x5a, unit);
    written += unit;
  }
  ASSERT_EQ(os::resident_bytes(m.p, m.bytes), written);
  EXPECT_EQ(os::find_nonzero(m.p, m.bytes), unit);
  EXPECT_EQ(os::find_nonzero(m.page(2), m.bytes - 2 * unit), 2 * unit);  // page 4
  EXPECT_EQ(os::resident_bytes(m.p, m.bytes), written) << "a zero check faulted pages in";
  EXPECT_EQ(os::zero_pages(m.p, m.bytes), written);
  EXPECT_EQ(os::resident_bytes(m.p, m.bytes), written) << "zeroing faulted pages in";
  EXPECT_EQ(os::find_nonzero(m.p, m.bytes), SIZE_MAX);
  for (size_t i = 0; i < m.bytes; i += 64) ASSERT_EQ(m.p[i], 0) << i;
}

INSTANTIATE_TEST_SUITE_P(Os, ResidencySource,
                         testing::Values(kAuto, static_cast<int>(os::Residency::kMincore),
                                         static_cast<int>(os::Residency::kMincoreSwap)),
                         [](const testing::TestParamInfo<int>& info) -> std::string {
                           switch (info.param) {
                             case kAuto:
                               return "Automatic";
                             case static_cast<int>(os::Residency::kMincore):
                               return "Mincore";
                             default:
                               return "MincoreWithSwap";
                           }
                         });

#if defined(__x86_64__)  // natively (the aarch64 runs are emulated)
TEST(Residency, ALinuxWithProcAnswersFromPagemap) {
  if (access("/proc/self/pagemap", R_OK) != 0) GTEST_SKIP() << "no /proc/self/pagemap";
  EXPECT_EQ(os::residency_source(), os::Residency::kPagemap);
}
#endif

// The descriptor of the open pagemap file, or -1.
int pagemap_descriptor() {
  int found = -1;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) {
    char path[64], target[PATH_MAX];
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = 0;
    if (strstr(target, "/pagemap") != nullptr) found = atoi(e->d_name);
  }
  closedir(d);
  return found;
}

// A child holds its parent's file, which describes the parent's pages: a
// page only the child wrote reads as never touched there, and would be left
// as it was.
TEST(Residency, AForkedChildAsksAboutItsOwnPages) {
  if (os::residency_source() != os::Residency::kPagemap) GTEST_SKIP() << "mincore answers here";
  const size_t unit = os::mincore_page_size();
  Mapping m(4);
  ASSERT_GE(pagemap_descriptor(), 100) << "the file is open, above the low numbers";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    memset(m.page(1), 7, unit);
    int code = 0;
    if (os::zero_pages(m.p, m.bytes) != unit) code |= 1;
    if (m.page(1)[100] != 0) code |= 2;
    m.page(2)[5] = 1;
    if (os::find_nonzero(m.p, m.bytes) != 2 * unit + 5) code |= 4;
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: zeroed the wrong pages, 2: left data, 4: missed a write";
}

// A program may close descriptors it did not open (daemons close them all),
// and the number may then name another file: /dev/zero there would answer
// "nothing present" for every page. slabby opens its own file again and
// leaves the program's descriptor alone.
TEST(Residency, ADescriptorTheProgramReusedIsNotTrusted) {
  if (os::residency_source() != os::Residency::kPagemap) GTEST_SKIP() << "mincore answers here";
  const size_t unit = os::mincore_page_size();
  int fd = pagemap_descriptor();
  ASSERT_GE(fd, 0);
  int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(zero, 0);
  ASSERT_EQ(dup2(zero, fd), fd);  // closes slabby's file
  close(zero);
  Mapping m(8);
  memset(m.page(3), 9, unit);
  EXPECT_EQ(os::find_nonzero(m.p, m.bytes), 3 * unit);
  EXPECT_EQ(os::zero_pages(m.p, m.bytes), unit);
  EXPECT_EQ(m.page(3)[17], 0);
  char target[PATH_MAX];
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
  ASSERT_GT(n, 0) << "the program's descriptor was closed";
  target[n] = 0;
  EXPECT_STREQ(target, "/dev/zero");
  close(fd);
  EXPECT_EQ(os::residency_source(), os::Residency::kPagemap);
  EXPECT_GE(pagemap_descriptor(), 0);
}

}  // namespace
}  // namespace slabby
