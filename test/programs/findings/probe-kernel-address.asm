; ntflow: user
; ntflow-file: \??\C:\findings.txt = "A file for the failure-cause programs to read.\r\n"
;
; probe-kernel-address: a UserMode NtReadFile whose Buffer is a kernel address.
;
; The program opens C:\findings.txt (succeeds) and reads 64 bytes of it into 0x80500000, an address
; inside ntoskrnl's image, far above MmUserProbeAddress (0x7FFF0000). nt!NtReadFile references the
; handle first (it is a good one: the lookup succeeds), then, because PreviousMode is UserMode,
; probes the caller's buffers: the IO_STATUS_BLOCK passes, ProbeForWrite(0x80500000, 64, 1) does
; not — Buffer + Length - 1 >= MmUserProbeAddress — so the call returns STATUS_ACCESS_VIOLATION
; without touching the buffer (the probe is a range check here, no memory access).
;
; Must fail: exactly NtReadFile, STATUS_ACCESS_VIOLATION (0xC0000005). Everything else succeeds.
; Exit status: NtReadFile's status.

GENERIC_READ                 equ 0x80000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 0x00000001
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040
KERNEL_BUFFER                equ 0x80500000      ; in ntoskrnl's image: not the caller's to give

start:
    ; NtCreateFile(&FileHandle, GENERIC_READ | SYNCHRONIZE, &ObjectAttributes, &IoStatusBlock,
    ;              NULL, 0, FILE_SHARE_READ, FILE_OPEN, FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0)
    push 0
    push 0
    push FILE_SYNCHRONOUS_IO_NONALERT
    push FILE_OPEN
    push FILE_SHARE_READ
    push 0
    push 0
    push iosb
    push objectAttributes
    push GENERIC_READ | SYNCHRONIZE
    push fileHandle
    call ntdll!NtCreateFile
    test eax, eax
    jnz .done

    ; NtReadFile(FileHandle, NULL, NULL, NULL, &IoStatusBlock, KERNEL_BUFFER, 64, &ByteOffset, NULL)
    push 0
    push byteOffset
    push 64
    push KERNEL_BUFFER                      ; the bad argument
    push iosb
    push 0
    push 0
    push 0
    push dword [fileHandle]
    call ntdll!NtReadFile
    mov ebx, eax

    push dword [fileHandle]
    call ntdll!NtClose
    mov eax, ebx
.done:
    ret

align 4
fileHandle:       dd 0
iosb:             dd 0, 0
byteOffset:       dd 0, 0
objectAttributes: dd 24, 0, fileName, OBJ_CASE_INSENSITIVE, 0, 0
fileName:         dw fileNameEnd - fileNameText, fileNameEnd - fileNameText
                  dd fileNameText
fileNameText:     dw '\', '?', '?', '\', 'C', ':', '\', 'f', 'i', 'n', 'd', 'i', 'n', 'g', 's', '.', 't', 'x', 't'
fileNameEnd:
