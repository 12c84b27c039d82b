; ntflow: user
;
; handle-system-thread: a driver's handle, created in the program's process table, used from a
; System worker thread. Run with --driver handle-system-thread-driver.asm.
;
; 1. NtCreateFile(\??\FindingsWorker): opens the driver's device.
; 2. NtDeviceIoControlFile(IOCTL_FINDINGS_OPEN): the driver, in this thread, opens
;    C:\findings-log.txt with ZwCreateFile WITHOUT OBJ_KERNEL_HANDLE — the handle goes into THIS
;    process's table — writes a line through it with ZwWriteFile (succeeds) and queues a work item.
; 3. NtDelayExecution: the thread waits, so the System worker thread runs the work item, whose
;    ZwWriteFile passes the same handle value in the System process: KernelMode, no bit 31, so it
;    is looked up in the System process's table — the kernel handle table — where it names nothing:
;    STATUS_INVALID_HANDLE.
; 4. NtDeviceIoControlFile(IOCTL_FINDINGS_STATUS): fetches that status from the driver.
; 5. NtClose of the device: the driver's IRP_MJ_CLEANUP closes the log handle (in this thread: it
;    succeeds).
;
; Must fail: exactly the work item's ZwWriteFile — syscalls name NtWriteFile, entry zw-kernel,
; PreviousMode KernelMode, process System — STATUS_INVALID_HANDLE (0xC0000008). Every call of the
; program, and the driver's ZwCreateFile, first ZwWriteFile and ZwClose, succeed.
; Exit status: the work item's ZwWriteFile status, as the driver reports it.

GENERIC_READ                 equ 0x80000000
GENERIC_WRITE                equ 0x40000000
SYNCHRONIZE                  equ 0x00100000
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040
IOCTL_FINDINGS_OPEN          equ 0x00222000
IOCTL_FINDINGS_STATUS        equ 0x00222004

start:
    ; NtCreateFile(&DeviceHandle, GENERIC_READ | GENERIC_WRITE | SYNCHRONIZE, &ObjectAttributes,
    ;              &IoStatusBlock, NULL, 0, 0, FILE_OPEN, FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0)
    push 0
    push 0
    push FILE_SYNCHRONOUS_IO_NONALERT
    push FILE_OPEN
    push 0
    push 0
    push 0
    push iosb
    push objectAttributes
    push GENERIC_READ | GENERIC_WRITE | SYNCHRONIZE
    push deviceHandle
    call ntdll!NtCreateFile
    test eax, eax
    jnz .done

    ; NtDeviceIoControlFile(DeviceHandle, NULL, NULL, NULL, &IoStatusBlock, IOCTL_FINDINGS_OPEN, NULL, 0, NULL, 0)
    push 0
    push 0
    push 0
    push 0
    push IOCTL_FINDINGS_OPEN
    push iosb
    push 0
    push 0
    push 0
    push dword [deviceHandle]
    call ntdll!NtDeviceIoControlFile
    test eax, eax
    jnz .done

    ; NtDelayExecution(FALSE, &Interval): the work item runs while this thread waits
    push interval
    push 0
    call ntdll!NtDelayExecution
    test eax, eax
    jnz .done

    ; NtDeviceIoControlFile(DeviceHandle, NULL, NULL, NULL, &IoStatusBlock, IOCTL_FINDINGS_STATUS, NULL, 0, &WorkItemStatus, 4)
    push 4
    push workItemStatus
    push 0
    push 0
    push IOCTL_FINDINGS_STATUS
    push iosb
    push 0
    push 0
    push 0
    push dword [deviceHandle]
    call ntdll!NtDeviceIoControlFile
    test eax, eax
    jnz .done

    push dword [deviceHandle]
    call ntdll!NtClose
    test eax, eax
    jnz .done
    mov eax, [workItemStatus]
.done:
    ret

align 4
deviceHandle:     dd 0
iosb:             dd 0, 0
interval:         dd -100000, -1            ; 10 ms, relative
workItemStatus:   dd 0
objectAttributes: dd 24, 0, deviceName, OBJ_CASE_INSENSITIVE, 0, 0
deviceName:       dw deviceNameEnd - deviceNameText, deviceNameEnd - deviceNameText
                  dd deviceNameText
deviceNameText:   dw '\', '?', '?', '\', 'F', 'i', 'n', 'd', 'i', 'n', 'g', 's', 'W', 'o', 'r', 'k', 'e', 'r'
deviceNameEnd:
