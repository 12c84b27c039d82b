/*
 * A driver for ntflow's tests that calls, from C, every kernel routine issue F lists for a driver
 * of the OSR kind, and keeps what each returned in `results` (the test reads it from guest
 * memory by its symbol, kapi!results). Nothing here decides an outcome: each value is what the
 * guest kernel returned. DriverEntry runs in the System process (PreviousMode KernelMode); the
 * dispatch routines run in the client program's thread (PreviousMode UserMode).
 */
#include <ntifs.h>

NTSYSAPI NTSTATUS NTAPI NtCreateFile(PHANDLE FileHandle, ACCESS_MASK DesiredAccess, POBJECT_ATTRIBUTES ObjectAttributes,
                                     PIO_STATUS_BLOCK IoStatusBlock, PLARGE_INTEGER AllocationSize, ULONG FileAttributes,
                                     ULONG ShareAccess, ULONG CreateDisposition, ULONG CreateOptions, PVOID EaBuffer,
                                     ULONG EaLength);
NTSYSAPI NTSTATUS NTAPI NtReadFile(HANDLE FileHandle, HANDLE Event, PIO_APC_ROUTINE ApcRoutine, PVOID ApcContext,
                                   PIO_STATUS_BLOCK IoStatusBlock, PVOID Buffer, ULONG Length, PLARGE_INTEGER ByteOffset,
                                   PULONG Key);
NTSYSAPI NTSTATUS NTAPI NtClose(HANDLE Handle);

#define IOCTL_KAPI_PING CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_KAPI_PROBE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x802, METHOD_NEITHER, FILE_ANY_ACCESS)

/* The slots of results[], in the order the test reads them. */
enum {
  R_POOL,          /* ExAllocatePoolWithTag + memset/memcpy/strlen + ExFreePoolWithTag: 1 when all held */
  R_POOL2,         /* ExAllocatePoolWithTag + ExFreePool: 1 */
  R_STRINGS,       /* RtlInitUnicodeString, RtlCopyUnicodeString, _wcsicmp: 1 */
  R_IRQL_BEFORE,   /* KeGetCurrentIrql in DriverEntry: PASSIVE_LEVEL 0 */
  R_IRQL_OLD,      /* KfRaiseIrql(DISPATCH_LEVEL)'s old IRQL: 0 */
  R_IRQL_RAISED,   /* KeGetCurrentIrql then: DISPATCH_LEVEL 2 */
  R_IRQL_AFTER,    /* after KfLowerIrql: 0 */
  R_ENTRY_PID,     /* PsGetCurrentProcessId in DriverEntry: the System process, 4 */
  R_ZW_CREATE,     /* ZwCreateFile \??\C:\kapi.txt: STATUS_SUCCESS */
  R_ZW_WRITE,      /* ZwWriteFile: STATUS_SUCCESS */
  R_ZW_READ,       /* ZwReadFile from offset 0: STATUS_SUCCESS */
  R_ZW_READ_BYTES, /* bytes read: 5 */
  R_OB_REF,        /* ObReferenceObjectByHandle(kernel handle, IoFileObjectType, KernelMode): STATUS_SUCCESS */
  R_OB_TYPE_OK,    /* the object is a FILE_OBJECT (Type 5): 1 */
  R_ZW_CLOSE,      /* ZwClose: STATUS_SUCCESS */
  R_NT_CREATE_SYS, /* NtCreateFile from DriverEntry (PreviousMode KernelMode): STATUS_SUCCESS */
  R_NT_READ_SYS,   /* NtReadFile there: STATUS_SUCCESS */
  R_NT_CLOSE_SYS,  /* NtClose there: STATUS_SUCCESS */
  R_DEL_LINK,      /* IoDeleteSymbolicLink of a second device's link: STATUS_SUCCESS */
  R_OPEN_DELETED,  /* ZwCreateFile on that link afterwards: STATUS_OBJECT_NAME_NOT_FOUND */
  R_DELAY,         /* KeDelayExecutionThread(KernelMode, FALSE, 1 ms): STATUS_SUCCESS */
  R_READ_PID,      /* PsGetCurrentProcessId in the read dispatch routine: the program's process */
  R_READ_TID,      /* PsGetCurrentThreadId there: the program's thread */
  R_NT_CREATE_USR, /* NtCreateFile from the read dispatch routine, kernel buffers, PreviousMode UserMode: STATUS_ACCESS_VIOLATION */
  R_NT_CLOSE_USR,  /* NtClose of DriverEntry's kernel handle from there: STATUS_INVALID_HANDLE */
  R_ZW_IOCTL,      /* ZwDeviceIoControlFile(IOCTL_KAPI_PING) to its own device from there: STATUS_SUCCESS */
  R_PINGS,         /* IOCTL_KAPI_PING seen by the device-control routine: 1 */
  R_PROBE,         /* ProbeForRead + ProbeForWrite of the caller's METHOD_NEITHER buffers, then a copy: 1 */
  R_ATTACHED,      /* inside KeStackAttachProcess(System): PsGetCurrentProcess() is System: 1 */
  R_ATTACHED_PID,  /* and PsGetCurrentProcessId, the thread's own process: the program's */
  R_DETACHED,      /* after KeUnstackDetachProcess, PsGetCurrentProcess() is the program's again: 1 */
  R_WRITE_LENGTH,  /* IRP_MJ_WRITE: the length the client wrote: 6 */
  R_WRITE_BYTE,    /* and its first byte, from the caller's buffer: 'w' */
  R_COUNT
};
ULONG results[R_COUNT];

static PDEVICE_OBJECT device;
static HANDLE keptHandle; /* a kernel handle DriverEntry keeps open, for NtClose from the program's thread */
static PEPROCESS systemProcess;
static UNICODE_STRING kapiFile = RTL_CONSTANT_STRING(L"\\??\\C:\\kapi.txt");

static NTSTATUS CompleteIrp(PIRP irp, NTSTATUS status, ULONG_PTR information)
{
  irp->IoStatus.Status = status;
  irp->IoStatus.Information = information;
  IoCompleteRequest(irp, IO_NO_INCREMENT);
  return status;
}

static NTSTATUS NTAPI DispatchCreateClose(PDEVICE_OBJECT dev, PIRP irp)
{
  (void)dev;
  return CompleteIrp(irp, STATUS_SUCCESS, 0);
}

static NTSTATUS NTAPI DispatchDeviceControl(PDEVICE_OBJECT dev, PIRP irp)
{
  PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(irp);
  (void)dev;
  switch (stack->Parameters.DeviceIoControl.IoControlCode) {
  case IOCTL_KAPI_PING:
    results[R_PINGS]++;
    return CompleteIrp(irp, STATUS_SUCCESS, 0);
  case IOCTL_KAPI_PROBE: {
    /* METHOD_NEITHER: the caller's own user-mode pointers, probed before use (there is no __try in
       GCC's 32-bit C: the buffers the client passes are valid). */
    char *in = stack->Parameters.DeviceIoControl.Type3InputBuffer;
    char *out = irp->UserBuffer;
    ULONG inLength = stack->Parameters.DeviceIoControl.InputBufferLength;
    ULONG outLength = stack->Parameters.DeviceIoControl.OutputBufferLength;
    ProbeForRead(in, inLength, 1);
    ProbeForWrite(out, outLength, 1);
    memcpy(out, in, inLength < outLength ? inLength : outLength);
    results[R_PROBE] = 1;
    return CompleteIrp(irp, STATUS_SUCCESS, inLength < outLength ? inLength : outLength);
  }
  }
  return CompleteIrp(irp, STATUS_INVALID_DEVICE_REQUEST, 0);
}

static NTSTATUS NTAPI DispatchRead(PDEVICE_OBJECT dev, PIRP irp)
{
  OBJECT_ATTRIBUTES oa;
  IO_STATUS_BLOCK iosb;
  HANDLE h = NULL, self = NULL;
  UNICODE_STRING selfName = RTL_CONSTANT_STRING(L"\\Device\\KApi");
  KAPC_STATE apc;
  (void)dev;
  results[R_READ_PID] = (ULONG)(ULONG_PTR)PsGetCurrentProcessId();
  results[R_READ_TID] = (ULONG)(ULONG_PTR)PsGetCurrentThreadId();
  /* The seeds' bug: the exported Nt routine in the program's thread, with kernel buffers. */
  InitializeObjectAttributes(&oa, &kapiFile, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
  results[R_NT_CREATE_USR] = NtCreateFile(&h, GENERIC_READ | SYNCHRONIZE, &oa, &iosb, NULL, 0, FILE_SHARE_READ, FILE_OPEN,
                                          FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0);
  results[R_NT_CLOSE_USR] = NtClose(keptHandle);
  /* The Zw stub: PreviousMode KernelMode, the device's own IOCTL. */
  InitializeObjectAttributes(&oa, &selfName, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
  if (NT_SUCCESS(ZwCreateFile(&self, GENERIC_READ | SYNCHRONIZE, &oa, &iosb, NULL, 0, 0, FILE_OPEN, FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0))) {
    results[R_ZW_IOCTL] = ZwDeviceIoControlFile(self, NULL, NULL, NULL, &iosb, IOCTL_KAPI_PING, NULL, 0, NULL, 0);
    ZwClose(self);
  } else {
    results[R_ZW_IOCTL] = 0xDEAD;
  }
  {
    PEPROCESS program = PsGetCurrentProcess();
    KeStackAttachProcess((PKPROCESS)systemProcess, &apc);
    results[R_ATTACHED] = PsGetCurrentProcess() == systemProcess;
    results[R_ATTACHED_PID] = (ULONG)(ULONG_PTR)PsGetCurrentProcessId();
    KeUnstackDetachProcess(&apc);
    results[R_DETACHED] = PsGetCurrentProcess() == program && program != systemProcess;
  }
  DbgPrint("kapi: read dispatch in process %lu\n", results[R_READ_PID]);
  return CompleteIrp(irp, STATUS_SUCCESS, 0);
}

#define TAG 0x6970614B /* 'Kapi' */

/* IRP_MJ_WRITE: neither buffered nor direct I/O, so UserBuffer is the caller's buffer (probed by
   the I/O manager for a UserMode caller). */
static NTSTATUS NTAPI DispatchWrite(PDEVICE_OBJECT dev, PIRP irp)
{
  ULONG length = IoGetCurrentIrpStackLocation(irp)->Parameters.Write.Length;
  (void)dev;
  results[R_WRITE_LENGTH] = length;
  results[R_WRITE_BYTE] = length ? ((UCHAR *)irp->UserBuffer)[0] : 0;
  return CompleteIrp(irp, STATUS_SUCCESS, length);
}

static void Pool(void)
{
  volatile ULONG fill = 63; /* not a constant: memset is called, not inlined */
  char *p = ExAllocatePoolWithTag(NonPagedPool, 64, TAG);
  char *q = ExAllocatePoolWithTag(NonPagedPool, 16, TAG);
  if (p && q) {
    memset(p, 'x', fill);
    p[63] = 0;
    memcpy(p, "kapi", 4);
    results[R_POOL] = strlen(p) == 63 && p[0] == 'k' && p[4] == 'x';
    ExFreePoolWithTag(p, TAG);
    results[R_POOL2] = 1;
    ExFreePool(q);
  }
}

static void Strings(void)
{
  UNICODE_STRING a, b;
  WCHAR buffer[32];
  RtlInitUnicodeString(&a, L"\\Device\\KApi");
  b.Buffer = buffer;
  b.Length = 0;
  b.MaximumLength = sizeof buffer;
  RtlCopyUnicodeString(&b, &a);
  buffer[b.Length / sizeof(WCHAR)] = 0;
  results[R_STRINGS] = b.Length == a.Length && _wcsicmp(buffer, L"\\device\\kapi") == 0 && _wcsicmp(buffer, L"\\Device\\Other") != 0;
}

static void Irql(void)
{
  KIRQL old;
  results[R_IRQL_BEFORE] = KeGetCurrentIrql();
  old = KfRaiseIrql(DISPATCH_LEVEL);
  results[R_IRQL_OLD] = old;
  results[R_IRQL_RAISED] = KeGetCurrentIrql();
  KfLowerIrql(old);
  results[R_IRQL_AFTER] = KeGetCurrentIrql();
}

static void Files(void)
{
  OBJECT_ATTRIBUTES oa;
  IO_STATUS_BLOCK iosb;
  HANDLE h;
  LARGE_INTEGER zero = {{0, 0}};
  char text[8];
  PFILE_OBJECT file;
  InitializeObjectAttributes(&oa, &kapiFile, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
  results[R_ZW_CREATE] = ZwCreateFile(&h, GENERIC_READ | GENERIC_WRITE | SYNCHRONIZE, &oa, &iosb, NULL, 0, FILE_SHARE_READ,
                                      FILE_OVERWRITE_IF, FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0);
  if (!NT_SUCCESS(results[R_ZW_CREATE])) return;
  results[R_ZW_WRITE] = ZwWriteFile(h, NULL, NULL, NULL, &iosb, "hello", 5, &zero, NULL);
  results[R_ZW_READ] = ZwReadFile(h, NULL, NULL, NULL, &iosb, text, sizeof text, &zero, NULL);
  results[R_ZW_READ_BYTES] = (ULONG)iosb.Information;
  results[R_OB_REF] = ObReferenceObjectByHandle(h, FILE_READ_DATA, *IoFileObjectType, KernelMode, (PVOID *)&file, NULL);
  if (NT_SUCCESS(results[R_OB_REF])) {
    results[R_OB_TYPE_OK] = file->Type == IO_TYPE_FILE;
    ObDereferenceObject(file);
  }
  results[R_ZW_CLOSE] = ZwClose(h);
  /* The exported Nt routines from the System thread: PreviousMode is KernelMode here, so they work. */
  results[R_NT_CREATE_SYS] = NtCreateFile(&keptHandle, GENERIC_READ | SYNCHRONIZE, &oa, &iosb, NULL, 0, FILE_SHARE_READ, FILE_OPEN,
                                          FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0);
  results[R_NT_READ_SYS] = NtReadFile(keptHandle, NULL, NULL, NULL, &iosb, text, sizeof text, &zero, NULL);
  /* keptHandle stays open: the read dispatch routine tries NtClose on it from the program's thread. */
  {
    HANDLE other;
    results[R_NT_CLOSE_SYS] = NT_SUCCESS(NtCreateFile(&other, GENERIC_READ | SYNCHRONIZE, &oa, &iosb, NULL, 0, FILE_SHARE_READ, FILE_OPEN,
                                                      FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0))
                                  ? NtClose(other)
                                  : 0xDEAD;
  }
}

/* A second device and link, deleted again: the link's name no longer opens. */
static void DeleteAgain(PDRIVER_OBJECT driver)
{
  UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\KApiTemp"), link = RTL_CONSTANT_STRING(L"\\??\\KApiTemp");
  PDEVICE_OBJECT temp;
  OBJECT_ATTRIBUTES oa;
  IO_STATUS_BLOCK iosb;
  HANDLE h;
  if (!NT_SUCCESS(IoCreateDevice(driver, 0, &name, FILE_DEVICE_UNKNOWN, 0, FALSE, &temp))) return;
  IoCreateSymbolicLink(&link, &name);
  results[R_DEL_LINK] = IoDeleteSymbolicLink(&link);
  IoDeleteDevice(temp);
  InitializeObjectAttributes(&oa, &link, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
  results[R_OPEN_DELETED] = ZwCreateFile(&h, GENERIC_READ, &oa, &iosb, NULL, 0, 0, FILE_OPEN, 0, NULL, 0);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING registryPath)
{
  UNICODE_STRING deviceName = RTL_CONSTANT_STRING(L"\\Device\\KApi"), linkName = RTL_CONSTANT_STRING(L"\\??\\KApi");
  LARGE_INTEGER oneMs;
  NTSTATUS status;
  DbgPrint("kapi: DriverEntry, registry path %wZ\n", registryPath);
  systemProcess = PsGetCurrentProcess();
  results[R_ENTRY_PID] = (ULONG)(ULONG_PTR)PsGetCurrentProcessId();
  Pool();
  Strings();
  Irql();
  Files();
  DeleteAgain(driver);
  oneMs.QuadPart = -10000;
  results[R_DELAY] = KeDelayExecutionThread(KernelMode, FALSE, &oneMs);
  status = IoCreateDevice(driver, 0, &deviceName, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
  if (!NT_SUCCESS(status)) return status;
  IoCreateSymbolicLink(&linkName, &deviceName);
  driver->MajorFunction[IRP_MJ_CREATE] = DispatchCreateClose;
  driver->MajorFunction[IRP_MJ_CLOSE] = DispatchCreateClose;
  driver->MajorFunction[IRP_MJ_READ] = DispatchRead;
  driver->MajorFunction[IRP_MJ_WRITE] = DispatchWrite;
  driver->MajorFunction[IRP_MJ_DEVICE_CONTROL] = DispatchDeviceControl;
  return STATUS_SUCCESS;
}
