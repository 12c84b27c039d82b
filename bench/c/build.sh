#!/bin/sh
# Rebuilds the benchmark's C program byte for byte with Debian's MinGW-w64 (gcc-mingw-w64-i686).
set -eu
cd "$(dirname "$0")"
${CC:-i686-w64-mingw32-gcc} -O1 -fno-ident -fno-asynchronous-unwind-tables -Wall -nostdlib -Wl,--no-insert-timestamp \
    -e _start@0 -o readloop.exe readloop.c -lkernel32
