/*
 * The benchmark's C program: ReadFile in a loop, 4,000 times, each call the whole path
 * kernel32!ReadFile → ntdll!NtReadFile → SharedUserData!SystemCallStub → SYSENTER → … → SYSEXIT.
 * Rebuilt byte for byte by build.sh (shipped, so `npm run bench` needs no compiler).
 */
#include <windows.h>

#define READS 4000

void __stdcall start(void)
{
  char buffer[16];
  DWORD n;
  OVERLAPPED at = {0}; /* every read at offset 0 */
  HANDLE f = CreateFileA("C:\\loop.txt", GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
  if (f == INVALID_HANDLE_VALUE) ExitProcess(GetLastError());
  WriteFile(f, "0123456789abcdef", 16, &n, NULL);
  for (int i = 0; i < READS; i++) {
    if (!ReadFile(f, buffer, sizeof buffer, &n, &at) || n != sizeof buffer) ExitProcess(GetLastError() | 0x10000);
  }
  CloseHandle(f);
  ExitProcess(0);
}
