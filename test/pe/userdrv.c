/* A "driver" that imports kernel32 (a user-mode DLL): ntflow refuses it as a driver. */
#include <ntddk.h>

__declspec(dllimport) unsigned long __stdcall GetTickCount(void);

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING registryPath) {
  UNREFERENCED_PARAMETER(driver);
  UNREFERENCED_PARAMETER(registryPath);
  return GetTickCount() ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
}
