/* hello.exe: opens the driver's device, asks it to log a line, prints what happened. */
#include <windows.h>

#define IOCTL_HELLO_LOG CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)

void __stdcall start(void)
{
  DWORD n;
  HANDLE out = GetStdHandle(STD_OUTPUT_HANDLE);
  HANDLE device = CreateFileA("\\\\.\\Hello", GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
  if (device == INVALID_HANDLE_VALUE) ExitProcess(GetLastError());
  if (DeviceIoControl(device, IOCTL_HELLO_LOG, "hi", 2, NULL, 0, &n, NULL))
    WriteConsoleA(out, "logged\r\n", 8, &n, NULL);
  else
    WriteConsoleA(out, "not logged\r\n", 12, &n, NULL);
  CloseHandle(device);
  ExitProcess(0);
}
