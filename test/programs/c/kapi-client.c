/*
 * The client of kapi.sys: opens \\.\KApi through kernel32, reads once (the read dispatch routine
 * makes its calls in this thread), sends a METHOD_NEITHER IOCTL whose buffers the driver probes
 * and copies, and writes 6 bytes. Exit status: 0, or the Win32 error of the call that failed, or
 * 0x100 + the bytes the IOCTL returned when the copy was wrong, or 0x200 + the bytes written.
 */
#include <windows.h>

#define IOCTL_KAPI_PROBE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x802, METHOD_NEITHER, FILE_ANY_ACCESS)

void __stdcall start(void)
{
  char buffer[4], in[8] = "probe!!", out[8] = {0};
  DWORD n = 0;
  HANDLE device = CreateFileA("\\\\.\\KApi", GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
  if (device == INVALID_HANDLE_VALUE) ExitProcess(GetLastError());
  if (!ReadFile(device, buffer, sizeof buffer, &n, NULL)) ExitProcess(GetLastError());
  if (!DeviceIoControl(device, IOCTL_KAPI_PROBE, in, sizeof in, out, sizeof out, &n, NULL)) ExitProcess(GetLastError());
  DWORD written = 0;
  if (!WriteFile(device, "write!", 6, &written, NULL) || written != 6) ExitProcess(0x200 + written);
  CloseHandle(device);
  ExitProcess(n == sizeof in && out[0] == 'p' && out[6] == '!' ? 0 : 0x100 + n);
}
