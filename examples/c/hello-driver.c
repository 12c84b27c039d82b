/* hello.sys: on IOCTL_HELLO_LOG, writes the caller's bytes to C:\hello.log, once with the exported
   NtWriteFile and once with ZwWriteFile, from the caller's thread. Guess which one works. */
#include <ntddk.h>

NTSYSAPI NTSTATUS NTAPI NtWriteFile(HANDLE, HANDLE, PIO_APC_ROUTINE, PVOID, PIO_STATUS_BLOCK, PVOID, ULONG,
                                    PLARGE_INTEGER, PULONG);

#define IOCTL_HELLO_LOG CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)

static NTSTATUS NTAPI Complete(PIRP irp, NTSTATUS status)
{
  irp->IoStatus.Status = status;
  irp->IoStatus.Information = 0;
  IoCompleteRequest(irp, IO_NO_INCREMENT);
  return status;
}

static NTSTATUS NTAPI CreateClose(PDEVICE_OBJECT device, PIRP irp)
{
  (void)device;
  return Complete(irp, STATUS_SUCCESS);
}

static NTSTATUS NTAPI DeviceControl(PDEVICE_OBJECT device, PIRP irp)
{
  UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\??\\C:\\hello.log");
  OBJECT_ATTRIBUTES oa;
  IO_STATUS_BLOCK iosb;
  HANDLE log;
  NTSTATUS nt, zw;
  ULONG length = IoGetCurrentIrpStackLocation(irp)->Parameters.DeviceIoControl.InputBufferLength;
  (void)device;
  InitializeObjectAttributes(&oa, &name, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
  zw = ZwCreateFile(&log, GENERIC_WRITE | SYNCHRONIZE, &oa, &iosb, NULL, 0, 0, FILE_OVERWRITE_IF,
                    FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0);
  if (!NT_SUCCESS(zw)) return Complete(irp, zw);
  nt = NtWriteFile(log, NULL, NULL, NULL, &iosb, irp->AssociatedIrp.SystemBuffer, length, NULL, NULL);
  zw = ZwWriteFile(log, NULL, NULL, NULL, &iosb, irp->AssociatedIrp.SystemBuffer, length, NULL, NULL);
  DbgPrint("hello: NtWriteFile %08lx, ZwWriteFile %08lx\n", nt, zw);
  ZwClose(log);
  return Complete(irp, zw);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING registryPath)
{
  UNICODE_STRING device = RTL_CONSTANT_STRING(L"\\Device\\Hello"), link = RTL_CONSTANT_STRING(L"\\??\\Hello");
  PDEVICE_OBJECT object;
  NTSTATUS status = IoCreateDevice(driver, 0, &device, FILE_DEVICE_UNKNOWN, 0, FALSE, &object);
  (void)registryPath;
  if (!NT_SUCCESS(status)) return status;
  IoCreateSymbolicLink(&link, &device);
  driver->MajorFunction[IRP_MJ_CREATE] = CreateClose;
  driver->MajorFunction[IRP_MJ_CLOSE] = CreateClose;
  driver->MajorFunction[IRP_MJ_DEVICE_CONTROL] = DeviceControl;
  return STATUS_SUCCESS;
}
