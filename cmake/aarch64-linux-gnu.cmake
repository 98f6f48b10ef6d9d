# Cross build for aarch64 Linux with Debian's cross toolchain
# (g++-aarch64-linux-gnu), run under qemu's user-mode emulation (qemu-user):
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   cmake --build build-aarch64 && (cd build-aarch64 && ctest)
#
# GoogleTest, GoogleMock and Abseil come from Debian's arm64 packages
# (dpkg --add-architecture arm64; libgtest-dev:arm64 libgmock-dev:arm64
# libabsl-dev:arm64: scripts/setup-debian --aarch64 installs them), found
# in /usr/lib/aarch64-linux-gnu through CMAKE_LIBRARY_ARCHITECTURE. ctest
# runs every test program through scripts/qemu-aarch64 (the emulator below):
# QEMU_PAGESIZE=65536 in its environment gives the programs 64 KiB pages
# (qemu-aarch64 -p).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR ${CMAKE_CURRENT_LIST_DIR}/../scripts/qemu-aarch64)
# Libraries and headers of the target only; programs (python3, git) of the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
