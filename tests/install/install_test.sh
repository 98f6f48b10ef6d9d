#!/usr/bin/env bash
# Installs slabby into a temporary prefix and builds three programs against
# it: with find_package(slabby), with pkg-config, and statically; each must
# run on slabby (slabby_is_active() and a counted allocation).
set -euo pipefail
build_dir=$1
src_dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build_dir" --prefix "$tmp/prefix" >/dev/null

cat > "$tmp/app.c" <<'C'
#include <slabby/slabby.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  slabby_stats before, after;
  if (slabby_get_stats(&before, sizeof before) != 0) return 3;
  void* volatile p = malloc(100);
  if (slabby_get_stats(&after, sizeof after) != 0) return 4;
  free(p);
  if (!slabby_is_active()) return 5;
  if (after.total_allocations <= before.total_allocations) return 6;
  printf("ok %s\n", slabby_version());
  return 0;
}
C
mkdir -p "$tmp/cmake-app"
cp "$tmp/app.c" "$tmp/cmake-app/app.c"
cat > "$tmp/cmake-app/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(app C)
find_package(slabby REQUIRED)
add_executable(app app.c)
target_link_libraries(app PRIVATE slabby::slabby_malloc)
add_executable(app_static app.c)
target_link_libraries(app_static PRIVATE slabby::slabby_malloc_static)
CM
cmake -S "$tmp/cmake-app" -B "$tmp/cmake-app/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cmake-app/build" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/cmake-app/build/app"
"$tmp/cmake-app/build/app_static"

export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
cc "$tmp/app.c" -o "$tmp/app_pc" $(pkg-config --cflags --libs slabby_malloc)
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/app_pc"
# The shared library is linked, not just present.
# (Captured first: "ldd | grep -q" under pipefail fails whenever grep exits
# before ldd has written everything.)
deps=$(LD_LIBRARY_PATH="$tmp/prefix/lib" ldd "$tmp/app_pc")
grep -q libslabby_malloc <<<"$deps"
cc "$tmp/app.c" -o "$tmp/app_pc_static" -static-libgcc $(pkg-config --cflags slabby_malloc) \
  "$tmp/prefix/lib/libslabby_malloc.a" $(pkg-config --libs-only-other --static slabby_malloc) \
  -lpthread -lstdc++
"$tmp/app_pc_static"
# The hardened library is installed beside it and runs a program (its
# report names it).
report=$(SLABBY_STATS=1 LD_PRELOAD="$tmp/prefix/lib/libslabby_malloc_hardened.so" ls "$tmp" 2>&1 >/dev/null)
grep -q 'hardened library' <<<"$report"
echo "install test passed"
