/* A driver for ntflow's PE tests: DriverEntry creates a device and sets dispatch routines and an
   unload routine (code addresses stored in data: HIGHLOW fixups); imports from ntoskrnl.exe and
   HAL.dll, DbgPrint through an import thunk, a .bss variable. */
#include <ntddk.h>

static PDEVICE_OBJECT device;
static UNICODE_STRING deviceName = RTL_CONSTANT_STRING(L"\\Device\\NtflowSample");

static VOID NTAPI Unload(PDRIVER_OBJECT driver) {
  UNREFERENCED_PARAMETER(driver);
  IoDeleteDevice(device);
}

static NTSTATUS NTAPI Dispatch(PDEVICE_OBJECT dev, PIRP irp) {
  UNREFERENCED_PARAMETER(dev);
  irp->IoStatus.Status = STATUS_SUCCESS;
  irp->IoStatus.Information = 0;
  IofCompleteRequest(irp, IO_NO_INCREMENT);
  return STATUS_SUCCESS;
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING registryPath) {
  UNREFERENCED_PARAMETER(registryPath);
  NTSTATUS status = IoCreateDevice(driver, 0, &deviceName, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
  if (!NT_SUCCESS(status)) return status;
  driver->MajorFunction[IRP_MJ_CREATE] = Dispatch;
  driver->MajorFunction[IRP_MJ_CLOSE] = Dispatch;
  driver->DriverUnload = Unload;
  DbgPrint("ntflow sample loaded at IRQL %u\n", (unsigned)KeGetCurrentIrql());
  return STATUS_SUCCESS;
}
