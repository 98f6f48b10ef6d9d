// Input for the `gxx` integration scenario: g++ compiles this file (and links
// it) once on glibc and once under LD_PRELOAD=libslabby_malloc.so; the
// compiler's outputs and the built program's stdout must be identical.
// Template-heavy on purpose (regex, maps, variants, tuples, recursion), so
// cc1plus allocates a lot. Not built by CMake.

#include <algorithm>
#include <array>
#include <functional>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace gx {

template <typename T, typename... Rest>
struct TypeList {
  static constexpr std::size_t size = 1 + sizeof...(Rest);
};

template <std::size_t N>
struct Fib {
  static constexpr unsigned long long value = Fib<N - 1>::value + Fib<N - 2>::value;
};
template <>
struct Fib<0> {
  static constexpr unsigned long long value = 0;
};
template <>
struct Fib<1> {
  static constexpr unsigned long long value = 1;
};

template <typename Tuple, std::size_t... I>
auto tuple_sum_impl(const Tuple& t, std::index_sequence<I...>) {
  return (static_cast<long long>(std::get<I>(t)) + ... + 0LL);
}
template <typename... Ts>
long long tuple_sum(const std::tuple<Ts...>& t) {
  return tuple_sum_impl(t, std::index_sequence_for<Ts...>{});
}

using Value = std::variant<int, long, double, std::string, std::vector<int>>;

struct Describe {
  std::string operator()(int v) const { return "int:" + std::to_string(v); }
  std::string operator()(long v) const { return "long:" + std::to_string(v); }
  std::string operator()(double v) const {
    std::ostringstream os;
    os.precision(6);
    os << "double:" << v;
    return os.str();
  }
  std::string operator()(const std::string& v) const { return "str:" + v; }
  std::string operator()(const std::vector<int>& v) const {
    return "vec:" + std::to_string(std::accumulate(v.begin(), v.end(), 0));
  }
};

template <typename K, typename V, template <typename...> class Map>
std::vector<std::pair<K, V>> sorted_items(const Map<K, V>& m) {
  std::vector<std::pair<K, V>> out(m.begin(), m.end());
  std::sort(out.begin(), out.end());
  return out;
}

template <typename Container, typename Fn>
auto map_all(const Container& c, Fn fn) {
  std::vector<decltype(fn(*c.begin()))> out;
  for (const auto& x : c) out.push_back(fn(x));
  return out;
}

class Registry {
 public:
  void add(const std::string& key, Value v) { items_.emplace(key, std::move(v)); }
  std::optional<std::string> describe(const std::string& key) const {
    auto it = items_.find(key);
    if (it == items_.end()) return std::nullopt;
    return std::visit(Describe{}, it->second);
  }
  std::size_t size() const { return items_.size(); }

 private:
  std::map<std::string, Value> items_;
};

}  // namespace gx

int main() {
  using namespace gx;
  std::cout << "fib40=" << Fib<40>::value << " types=" << TypeList<int, char, double>::size << "\n";
  std::cout << "tuple_sum=" << tuple_sum(std::make_tuple(1, 2L, 3u, short(4), 'a')) << "\n";

  const std::string text =
      "alpha=1; beta=22; gamma=333; delta=4444; key_5=55555; "
      "date 2024-06-11, date 1999-12-31, mail someone@example.org, other x@y.z";
  std::regex kv(R"((\w+)=(\d+))");
  std::map<std::string, int> parsed;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kv); it != std::sregex_iterator(); ++it) {
    parsed[(*it)[1]] = std::stoi((*it)[2]);
  }
  for (const auto& [k, v] : parsed) std::cout << "kv " << k << " " << v << "\n";

  std::regex date(R"((\d{4})-(\d{2})-(\d{2}))");
  std::cout << "dates: " << std::regex_replace(text, date, "$3/$2/$1") << "\n";
  std::smatch m;
  std::regex mail(R"(([a-z]+)@([a-z]+)\.([a-z]+))", std::regex::icase);
  std::string rest = text;
  while (std::regex_search(rest, m, mail)) {
    std::cout << "mail user=" << m[1] << " domain=" << m[2] << " tld=" << m[3] << "\n";
    rest = m.suffix();
  }

  Registry reg;
  reg.add("i", 42);
  reg.add("l", 1234567890123L);
  reg.add("d", 3.25);
  reg.add("s", std::string("hello"));
  reg.add("v", std::vector<int>{1, 2, 3, 4});
  for (const char* k : {"d", "i", "l", "missing", "s", "v"}) {
    std::cout << k << " -> " << reg.describe(k).value_or("<none>") << "\n";
  }

  std::unordered_map<std::string, int> counts;
  std::istringstream words("the quick brown fox jumps over the lazy dog the end fox");
  for (std::string w; words >> w;) counts[w]++;
  for (const auto& [w, c] : sorted_items(counts)) std::cout << "count " << w << " " << c << "\n";

  std::set<int> squares;
  for (int i = 0; i < 20; ++i) squares.insert((i * i) % 17);
  auto doubled = map_all(squares, [](int x) { return x * 2; });
  std::cout << "squares mod 17:";
  for (int x : doubled) std::cout << " " << x;
  std::cout << "\n";

  std::function<long long(int)> fact = [&](int n) -> long long { return n <= 1 ? 1 : n * fact(n - 1); };
  std::array<long long, 5> facts{};
  for (int i = 0; i < 5; ++i) facts[i] = fact(i + 10);
  std::cout << "facts " << facts[0] << " " << facts[4] << " registry " << reg.size() << "\n";
  return 0;
}
