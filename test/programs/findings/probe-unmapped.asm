; ntflow: user
; ntflow-file: \??\C:\findings.txt = "A file for the failure-cause programs to read.\r\n"
;
; probe-unmapped: a UserMode NtReadFile whose Buffer is a user-space address (below
; MmUserProbeAddress) where nothing is mapped.
;
; 0x10000000 is in no region of the program's process: no VAD, no page table entry (the image is
; at 0x00400000, the stack below 0x00130000, ntdll at 0x77F50000, the PEB/TEB near 0x7FFDF000).
; nt!NtReadFile references the handle (good), probes the IO_STATUS_BLOCK (good), then
; ProbeForWrite(0x10000000, 64, 1): the range check passes — the buffer is below 0x7FFF0000 — and
; the probe then touches the buffer, reading one byte of each page and writing it back. The read
; of 0x10000000 page-faults (not present), and the probe's own handler turns that into
; STATUS_ACCESS_VIOLATION.
;
; Must fail: exactly NtReadFile, STATUS_ACCESS_VIOLATION (0xC0000005). Everything else succeeds.
; Exit status: NtReadFile's status.

GENERIC_READ                 equ 0x80000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 0x00000001
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040
UNMAPPED_BUFFER              equ 0x10000000      ; user space, but no page there

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

    ; NtReadFile(FileHandle, NULL, NULL, NULL, &IoStatusBlock, UNMAPPED_BUFFER, 64, &ByteOffset, NULL)
    push 0
    push byteOffset
    push 64
    push UNMAPPED_BUFFER                    ; the bad argument
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
