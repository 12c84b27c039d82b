; ntflow: user
; ntflow-file: \??\C:\findings.txt = "A file for the failure-cause programs to read.\r\n"
;
; probe-misaligned: a UserMode NtCreateFile whose OBJECT_ATTRIBUTES sit at an address that is not
; a multiple of 4.
;
; The object manager captures a UserMode caller's OBJECT_ATTRIBUTES with
; ProbeForRead(ObjectAttributes, sizeof(OBJECT_ATTRIBUTES) = 0x18, sizeof(ULONG) = 4) — one of the
; few probes of the I/O path that checks alignment (NT-FACTS §4e; the IO_STATUS_BLOCK, the data
; buffers, ByteOffset and the FileHandle out-parameter are probed without it). The structure here
; is at a 4-byte boundary + 2, so (Address & 3) != 0 and the probe raises
; STATUS_DATATYPE_MISALIGNMENT before anything is read: no handle is created.
; (The FileHandle and IO_STATUS_BLOCK probes before it pass.)
;
; Must fail: exactly NtCreateFile, STATUS_DATATYPE_MISALIGNMENT (0x80000002 — a warning-class
; status: not NT_SUCCESS, but below 0xC0000000, so `--named failures` does not list it).
; Exit status: NtCreateFile's status.

GENERIC_READ                 equ 0x80000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 0x00000001
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040

start:
    ; NtCreateFile(&FileHandle, GENERIC_READ | SYNCHRONIZE, &ObjectAttributes (misaligned),
    ;              &IoStatusBlock, NULL, 0, FILE_SHARE_READ, FILE_OPEN, FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0)
    push 0
    push 0
    push FILE_SYNCHRONOUS_IO_NONALERT
    push FILE_OPEN
    push FILE_SHARE_READ
    push 0
    push 0
    push iosb
    push objectAttributes                   ; the bad argument: 4n + 2
    push GENERIC_READ | SYNCHRONIZE
    push fileHandle
    call ntdll!NtCreateFile
    ret                                     ; exit status = NtCreateFile's status

align 4
fileHandle:       dd 0
iosb:             dd 0, 0
fileName:         dw fileNameEnd - fileNameText, fileNameEnd - fileNameText
                  dd fileNameText
fileNameText:     dw '\', '?', '?', '\', 'C', ':', '\', 'f', 'i', 'n', 'd', 'i', 'n', 'g', 's', '.', 't', 'x', 't'
fileNameEnd:
align 4
                  dw 0                      ; two bytes of padding: what follows is at 4n + 2
objectAttributes: dd 24, 0, fileName, OBJ_CASE_INSENSITIVE, 0, 0
