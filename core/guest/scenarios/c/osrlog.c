/*
 * The OSR log driver ("Nt vs. Zw - Clearing Confusion on the Native API"), in C, as the article
 * shows it, for MinGW-w64 and its DDK headers. Built twice:
 *   user-handle/osrlog.sys     the log file opened WITHOUT OBJ_KERNEL_HANDLE
 *   kernel-handle/osrlog.sys   with -DLOG_KERNEL_HANDLE: opened WITH OBJ_KERNEL_HANDLE
 * (build.sh has the commands; they rebuild these files byte for byte).
 *
 * IOCTL_OSRLOG_OPEN arrives in the client program's thread and opens (creates) C:\osrlog.txt with
 * ZwCreateFile. The read dispatch routine, also in the program's thread, writes a line with
 * NtWriteFile and one with ZwWriteFile, and queues a work item, which writes both again from a
 * System worker thread. What each write returns is the article's matrix: it comes from executing
 * the guest kernel (PreviousMode, probes, which handle table), not from this file.
 */
#include <ntddk.h>

/* The exported Nt routine the article calls directly (declared in ntifs.h, not ntddk.h). */
NTSYSAPI NTSTATUS NTAPI NtWriteFile(HANDLE FileHandle, HANDLE Event, PIO_APC_ROUTINE ApcRoutine, PVOID ApcContext,
                                    PIO_STATUS_BLOCK IoStatusBlock, PVOID Buffer, ULONG Length, PLARGE_INTEGER ByteOffset,
                                    PULONG Key);

#define IOCTL_OSRLOG_OPEN CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)

#ifdef LOG_KERNEL_HANDLE
#define LOG_ATTRIBUTES (OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE)
#else
#define LOG_ATTRIBUTES OBJ_CASE_INSENSITIVE
#endif

static PDEVICE_OBJECT deviceObject;
static HANDLE logHandle;
static PIO_WORKITEM workItem;
static IO_STATUS_BLOCK iosb;
static LARGE_INTEGER endOfFile = {{0xFFFFFFFF, -1}}; /* FILE_WRITE_TO_END_OF_FILE */
/* What NtWriteFile and ZwWriteFile returned: from the dispatch routine, and from the work item. */
NTSTATUS dispatchStatus[2];
NTSTATUS workItemStatus[2];

static char lineDispatchNt[] = "dispatch routine: NtWriteFile\r\n";
static char lineDispatchZw[] = "dispatch routine: ZwWriteFile\r\n";
static char lineWorkItemNt[] = "work item: NtWriteFile\r\n";
static char lineWorkItemZw[] = "work item: ZwWriteFile\r\n";

static NTSTATUS CompleteIrp(PIRP Irp, NTSTATUS status)
{
    Irp->IoStatus.Status = status;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static NTSTATUS NTAPI DispatchCreateClose(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    (void)DeviceObject;
    return CompleteIrp(Irp, STATUS_SUCCESS);
}

/* IOCTL_OSRLOG_OPEN: open the log file, in the caller's (the program's) thread. */
static NTSTATUS NTAPI DispatchDeviceControl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    UNICODE_STRING logName;
    OBJECT_ATTRIBUTES objectAttributes;
    NTSTATUS status = STATUS_INVALID_DEVICE_REQUEST;
    (void)DeviceObject;
    if (IoGetCurrentIrpStackLocation(Irp)->Parameters.DeviceIoControl.IoControlCode == IOCTL_OSRLOG_OPEN) {
        RtlInitUnicodeString(&logName, L"\\??\\C:\\osrlog.txt");
        InitializeObjectAttributes(&objectAttributes, &logName, LOG_ATTRIBUTES, NULL, NULL);
        status = ZwCreateFile(&logHandle, GENERIC_WRITE | SYNCHRONIZE, &objectAttributes, &iosb, NULL, 0, FILE_SHARE_READ,
                              FILE_OVERWRITE_IF, FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0);
    }
    return CompleteIrp(Irp, status);
}

/* One line with NtWriteFile (called directly), one with ZwWriteFile (through KiSystemService). */
static void WriteBoth(char *nt, ULONG ntLength, char *zw, ULONG zwLength, NTSTATUS *status)
{
    status[0] = NtWriteFile(logHandle, NULL, NULL, NULL, &iosb, nt, ntLength, &endOfFile, NULL);
    status[1] = ZwWriteFile(logHandle, NULL, NULL, NULL, &iosb, zw, zwLength, &endOfFile, NULL);
}

/* The work item: on a System worker thread (the System process, PreviousMode KernelMode). */
static VOID NTAPI WorkItemRoutine(PDEVICE_OBJECT DeviceObject, PVOID Context)
{
    (void)DeviceObject;
    (void)Context;
    WriteBoth(lineWorkItemNt, sizeof lineWorkItemNt - 1, lineWorkItemZw, sizeof lineWorkItemZw - 1, workItemStatus);
    IoFreeWorkItem(workItem);
}

/* The read dispatch routine: log from here (the program's thread), and from a work item. */
static NTSTATUS NTAPI DispatchRead(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    WriteBoth(lineDispatchNt, sizeof lineDispatchNt - 1, lineDispatchZw, sizeof lineDispatchZw - 1, dispatchStatus);
    workItem = IoAllocateWorkItem(DeviceObject);
    IoQueueWorkItem(workItem, WorkItemRoutine, DelayedWorkQueue, NULL);
    return CompleteIrp(Irp, STATUS_SUCCESS);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING deviceName, linkName;
    NTSTATUS status;
    (void)RegistryPath;
    RtlInitUnicodeString(&deviceName, L"\\Device\\OsrLog");
    RtlInitUnicodeString(&linkName, L"\\??\\OsrLog");
    status = IoCreateDevice(DriverObject, 0, &deviceName, FILE_DEVICE_UNKNOWN, 0, FALSE, &deviceObject);
    if (!NT_SUCCESS(status)) return status;
    IoCreateSymbolicLink(&linkName, &deviceName);
    DriverObject->MajorFunction[IRP_MJ_CREATE] = DispatchCreateClose;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = DispatchCreateClose;
    DriverObject->MajorFunction[IRP_MJ_READ] = DispatchRead;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = DispatchDeviceControl;
    return STATUS_SUCCESS;
}
