/*
 * A Win32 program whose calls fail on purpose, printing each GetLastError() to the console with
 * WriteConsoleA: the Win32 errors kernel32 derives from the kernel's NTSTATUS through
 * ntdll!RtlNtStatusToDosError. No C runtime: the numbers are formatted by hand.
 */
#include <windows.h>

static HANDLE out;

static void Print(const char *text)
{
  DWORD n, length = 0;
  while (text[length]) length++;
  WriteConsoleA(out, text, length, &n, NULL);
}

static void PrintError(const char *what)
{
  char digits[12];
  int i = sizeof digits - 1;
  DWORD e = GetLastError();
  digits[i] = 0;
  do {
    digits[--i] = (char)('0' + e % 10);
    e /= 10;
  } while (e && i > 0);
  Print(what);
  Print(" ");
  Print(digits + i);
  Print("\r\n");
}

void __stdcall start(void)
{
  char buffer[16];
  DWORD n;
  out = GetStdHandle(STD_OUTPUT_HANDLE);
  CloseHandle((HANDLE)0x1234);                                     /* STATUS_INVALID_HANDLE → 6 */
  PrintError("CloseHandle(0x1234)");
  HANDLE f = CreateFileA("C:\\no-such-file.txt", GENERIC_READ, 0, NULL, OPEN_EXISTING, 0, NULL);
  if (f == INVALID_HANDLE_VALUE) PrintError("CreateFileA(missing)"); /* STATUS_OBJECT_NAME_NOT_FOUND → 2 */
  f = CreateFileA("C:\\notes.txt", GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
  WriteFile(f, "notes", 5, &n, NULL);
  CloseHandle(f);
  f = CreateFileA("C:\\notes.txt", GENERIC_READ, 0, NULL, OPEN_EXISTING, 0, NULL);
  if (!ReadFile(f, (void *)0x80000000, sizeof buffer, &n, NULL))  /* STATUS_ACCESS_VIOLATION → 998 */
    PrintError("ReadFile(kernel buffer)");
  if (!VirtualFree((void *)0x00500000, 0, MEM_RELEASE))            /* no VAD there → 487 */
    PrintError("VirtualFree(nothing)");
  SetLastError(0);
  if (ReadFile(f, buffer, sizeof buffer, &n, NULL) && n == 5) PrintError("ReadFile(notes)"); /* success: 0 */
  CloseHandle(f);
  OutputDebugStringA("errors.c: done\n");
  ExitProcess(0);
}
