/* A program with a TLS directory (which ntflow refuses): a .tls variable and _tls_used, as
   MinGW's CRT defines it, built here without the CRT. */
#include <windows.h>

extern char __tls_start__, __tls_end__;
ULONG _tls_index;
__attribute__((section(".tls"))) int perThread = 3;
const IMAGE_TLS_DIRECTORY _tls_used = {(DWORD)&__tls_start__, (DWORD)&__tls_end__, (DWORD)&_tls_index, 0, 0, 0};

void __stdcall start(void) { ExitProcess((UINT)perThread); }
