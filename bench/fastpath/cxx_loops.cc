// slabby: C++ allocation loops, timed whole-process by the caller (scripts/
// bench-ab, bench-compare): operator new and the sized operator delete, as
// compilers emit them for `new T` / `delete p` (C++14 sized deallocation).
// Run as: cxx_loops MODE N
//   pair     N x { p = new Node16; delete p; }
//   burst    N/100 x { 100 x new Node16; then delete all 100 }
//   map      N/10 steps of a std::map<long, std::string> of up to 10,000
//            keys: a pseudo-random key is erased when present, else
//            inserted with a 24..63-byte string (nodes and string buffers).
// Built -O2 -fsized-deallocation; `sink` keeps the compiler from removing
// the pairs (it may elide new/delete pairs whose pointer never escapes).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace {
struct Node16 {
  long a, b;
};
Node16* volatile sink;
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s pair|burst|map N\n", argv[0]);
    return 2;
  }
  const char* mode = argv[1];
  long n = std::atol(argv[2]);
  if (std::strcmp(mode, "pair") == 0) {
    for (long i = 0; i < n; i++) {
      Node16* p = new Node16;
      sink = p;
      delete p;
    }
  } else if (std::strcmp(mode, "burst") == 0) {
    Node16* v[100];
    for (long i = 0; i < n / 100; i++) {
      for (int j = 0; j < 100; j++) v[j] = new Node16;
      sink = v[7];
      for (int j = 0; j < 100; j++) delete v[j];
    }
  } else if (std::strcmp(mode, "map") == 0) {
    std::map<long, std::string> m;
    unsigned x = 1;
    for (long i = 0; i < n / 10; i++) {
      x = x * 1103515245u + 12345u;
      long k = (x >> 8) % 10000;
      auto it = m.find(k);
      if (it != m.end())
        m.erase(it);
      else
        m.emplace(k, std::string(static_cast<size_t>(24 + k % 40), 'x'));
    }
    std::printf("%zu keys\n", m.size());
  } else {
    std::fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  return 0;
}
