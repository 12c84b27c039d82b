; ntflow: user
;
; handle-kernel-from-user: a UserMode NtReadFile on a handle value with bit 31 set.
;
; 0x80000004 has the form of a kernel handle (KERNEL_HANDLE_FLAG | 4: slot 1 of
; ObpKernelHandleTable). ObReferenceObjectByHandle treats a bit-31 value as a kernel handle only
; when the AccessMode is KernelMode; NtReadFile passes PreviousMode, which is UserMode here, so the
; lookup fails with STATUS_INVALID_HANDLE at once — no handle table is searched (the lookup's
; table is 'none'). NtReadFile references the handle before it probes anything, so nothing else
; about the call matters.
;
; Must fail: exactly NtReadFile, STATUS_INVALID_HANDLE (0xC0000008). Exit status: its status.

KERNEL_HANDLE                equ 0x80000004

start:
    ; NtReadFile(KERNEL_HANDLE, NULL, NULL, NULL, &IoStatusBlock, Buffer, 64, &ByteOffset, NULL)
    push 0
    push byteOffset
    push 64
    push buffer
    push iosb
    push 0
    push 0
    push 0
    push KERNEL_HANDLE                      ; the bad argument
    call ntdll!NtReadFile
    ret                                     ; exit status = NtReadFile's status

align 4
iosb:             dd 0, 0
byteOffset:       dd 0, 0
buffer:           times 64 db 0
