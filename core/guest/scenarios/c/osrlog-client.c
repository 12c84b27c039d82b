/*
 * The OSR log driver's client, in C, for MinGW-w64 (no C runtime: `start` is the entry point).
 * Opens \\.\OsrLog, asks the driver to open its log (the IOCTL), reads from the device once — the
 * read dispatch routine writes to the log and queues a work item — then sleeps, which lets the
 * System worker thread run the work item, and closes the device. Every call goes
 * kernel32 → ntdll → SharedUserData!SystemCallStub → SYSENTER → … as on XP.
 * Exit status: 0, or the Win32 error of the call that failed.
 */
#include <windows.h>

#define IOCTL_OSRLOG_OPEN CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)

void __stdcall start(void)
{
    char buffer[16];
    DWORD n;
    HANDLE device = CreateFileA("\\\\.\\OsrLog", GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (device == INVALID_HANDLE_VALUE) ExitProcess(GetLastError());
    if (!DeviceIoControl(device, IOCTL_OSRLOG_OPEN, NULL, 0, NULL, 0, &n, NULL)) ExitProcess(GetLastError());
    if (!ReadFile(device, buffer, sizeof buffer, &n, NULL)) ExitProcess(GetLastError());
    Sleep(10); /* the work item's turn */
    CloseHandle(device);
    ExitProcess(0);
}
