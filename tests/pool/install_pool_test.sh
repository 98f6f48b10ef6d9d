#!/usr/bin/env bash
# Installs slabby into a temporary prefix and builds the quick-start example
# against the installed package: find_package(slabby) + slabby::pool.
set -euo pipefail
build_dir=$1
src_dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build_dir" --prefix "$tmp/prefix" >/dev/null
mkdir -p "$tmp/app"
cp "$src_dir/examples/quick_start.cc" "$tmp/app/"
cat > "$tmp/app/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(app CXX)
find_package(slabby REQUIRED)
add_executable(app quick_start.cc)
target_link_libraries(app PRIVATE slabby::pool)
CM
cmake -S "$tmp/app" -B "$tmp/app/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/app/build" >/dev/null
"$tmp/app/build/app" | grep -q "Allocated 4096 bytes: Hello, Slabby!"
echo "pool install test passed"
