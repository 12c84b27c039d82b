; ntflow: user
;
; nested-call: the program's call fails because a call the driver makes while serving it fails.
; Run with --driver nested-call-driver.asm.
;
; The program opens the driver's device (\??\FindingsNested) and asks it, with
; NtDeviceIoControlFile(IOCTL_FINDINGS_READ, METHOD_BUFFERED, a 16-byte output buffer), for data.
; Every argument of the program's call is good: the handle, the probes, the IOCTL. The driver's
; dispatch routine, in this thread, reads its backing file with ZwReadFile through a handle it
; never opened (NULL): that nested call — entry zw-kernel, PreviousMode KernelMode, its parent the
; program's NtDeviceIoControlFile — fails with STATUS_INVALID_HANDLE, and the driver completes the
; program's IRP with that status and returns it. The program's NtDeviceIoControlFile therefore
; returns STATUS_INVALID_HANDLE, while its own handle lookup succeeded.
;
; Must fail, exactly these two:
;   NtDeviceIoControlFile (sysenter, UserMode) — STATUS_INVALID_HANDLE (0xC0000008): nested-call;
;   its child NtReadFile (zw-kernel, KernelMode, the driver's ZwReadFile on handle 0) —
;     STATUS_INVALID_HANDLE (0xC0000008): a handle-never-opened failure of its own.
; NtCreateFile and NtClose succeed. Exit status: NtDeviceIoControlFile's status.

GENERIC_READ                 equ 0x80000000
GENERIC_WRITE                equ 0x40000000
SYNCHRONIZE                  equ 0x00100000
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040
IOCTL_FINDINGS_READ          equ 0x00222000

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

    ; NtDeviceIoControlFile(DeviceHandle, NULL, NULL, NULL, &IoStatusBlock, IOCTL_FINDINGS_READ,
    ;                       NULL, 0, Buffer, 16)
    push 16
    push buffer
    push 0
    push 0
    push IOCTL_FINDINGS_READ
    push iosb
    push 0
    push 0
    push 0
    push dword [deviceHandle]
    call ntdll!NtDeviceIoControlFile
    mov ebx, eax

    push dword [deviceHandle]
    call ntdll!NtClose
    mov eax, ebx
.done:
    ret

align 4
deviceHandle:     dd 0
iosb:             dd 0, 0
objectAttributes: dd 24, 0, deviceName, OBJ_CASE_INSENSITIVE, 0, 0
deviceName:       dw deviceNameEnd - deviceNameText, deviceNameEnd - deviceNameText
                  dd deviceNameText
deviceNameText:   dw '\', '?', '?', '\', 'F', 'i', 'n', 'd', 'i', 'n', 'g', 's', 'N', 'e', 's', 't', 'e', 'd'
deviceNameEnd:
buffer:           times 16 db 0
