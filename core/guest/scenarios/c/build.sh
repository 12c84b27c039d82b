#!/bin/sh
# Rebuilds the C scenarios' binaries byte for byte with Debian's MinGW-w64 (gcc-mingw-w64-i686):
# no C runtime, no timestamps, COFF symbols kept (function names in traces). Run from this folder.
set -eu
CC=${CC:-i686-w64-mingw32-gcc}
DDK=/usr/share/mingw-w64/include/ddk
CFLAGS="-O1 -fno-ident -fno-asynchronous-unwind-tables -Wall"
# The user program: a `void __stdcall start(void)` entry (a `main` would make GCC call __main).
$CC $CFLAGS -nostdlib -Wl,--no-insert-timestamp -e _start@0 -o osrlog-client.exe osrlog-client.c -lkernel32
# The driver, twice: without and with OBJ_KERNEL_HANDLE on its log file. Both are osrlog.sys (the
# module's name in traces is the file's: osrlog!DispatchRead), in a folder each.
mkdir -p user-handle kernel-handle
$CC $CFLAGS -I$DDK -nostdlib -Wl,--subsystem,native -Wl,--no-insert-timestamp -e _DriverEntry@8 \
    -o user-handle/osrlog.sys osrlog.c -lntoskrnl -lhal
$CC $CFLAGS -I$DDK -DLOG_KERNEL_HANDLE -nostdlib -Wl,--subsystem,native -Wl,--no-insert-timestamp -e _DriverEntry@8 \
    -o kernel-handle/osrlog.sys osrlog.c -lntoskrnl -lhal
