; ntflow: user
;
; A program that opens a driver's device (\\.\Name is \??\Name in the NT namespace) and reads
; from it once. The read becomes an IRP_MJ_READ that the I/O manager sends to the driver's read
; dispatch routine — in this thread, with the IRP's RequestorMode = UserMode, because the
; program called NtReadFile from user mode. The exit status is NtReadFile's status, which is the
; status the driver completed the IRP with.

GENERIC_READ                 equ 0x80000000
SYNCHRONIZE                  equ 0x00100000
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040

start:
    push 0                                  ; EaLength
    push 0                                  ; EaBuffer
    push FILE_SYNCHRONOUS_IO_NONALERT
    push FILE_OPEN
    push 0                                  ; ShareAccess
    push 0                                  ; FileAttributes
    push 0                                  ; AllocationSize
    push iosb
    push objectAttributes
    push GENERIC_READ | SYNCHRONIZE
    push deviceHandle
    call ntdll!NtCreateFile
    test eax, eax
    jnz .done

    push 0                                  ; Key
    push 0                                  ; ByteOffset: the device keeps no position
    push 16                                 ; Length
    push buffer
    push iosb
    push 0
    push 0
    push 0
    push dword [deviceHandle]
    call ntdll!NtReadFile
    mov ebx, eax

    push dword [deviceHandle]
    call ntdll!NtClose
    mov eax, ebx
.done:
    ret

align 4
deviceHandle: dd 0
iosb:         dd 0, 0
objectAttributes:
    dd 24, 0, deviceName, OBJ_CASE_INSENSITIVE, 0, 0
deviceName:
    dw deviceNameEnd - deviceNameText, deviceNameEnd - deviceNameText
    dd deviceNameText
deviceNameText:
    dw '\', '?', '?', '\', 'N', 't', 'f', 'l', 'o', 'w', 'R', 'e', 'a', 'd', 'e', 'r'
deviceNameEnd:
buffer: times 16 db 0
