; ntflow: user
; ntflow-file: \??\C:\findings.txt = "A file for the failure-cause programs to read.\r\n"
;
; handle-closed: a UserMode NtReadFile on a handle the program has already closed.
;
; The program opens C:\findings.txt (handle 4, the first free slot of its table), closes it with
; NtClose (the entry is cleared and pushed back on the table's free list), then reads through the
; same value. ObReferenceObjectByHandle looks 4 up in the process's table, finds the entry free,
; and fails with STATUS_INVALID_HANDLE. Nothing is opened in between, so the value is not reused.
;
; Must fail: exactly NtReadFile, STATUS_INVALID_HANDLE (0xC0000008). NtCreateFile and NtClose
; succeed. Exit status: NtReadFile's status.

GENERIC_READ                 equ 0x80000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 0x00000001
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040

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

    push dword [fileHandle]
    call ntdll!NtClose                      ; the handle is gone …
    test eax, eax
    jnz .done

    ; NtReadFile(FileHandle, NULL, NULL, NULL, &IoStatusBlock, Buffer, 64, &ByteOffset, NULL)
    push 0
    push byteOffset
    push 64
    push buffer
    push iosb
    push 0
    push 0
    push 0
    push dword [fileHandle]                 ; … and used again
    call ntdll!NtReadFile
.done:
    ret                                     ; exit status = NtReadFile's status

align 4
fileHandle:       dd 0
iosb:             dd 0, 0
byteOffset:       dd 0, 0
objectAttributes: dd 24, 0, fileName, OBJ_CASE_INSENSITIVE, 0, 0
fileName:         dw fileNameEnd - fileNameText, fileNameEnd - fileNameText
                  dd fileNameText
fileNameText:     dw '\', '?', '?', '\', 'C', ':', '\', 'f', 'i', 'n', 'd', 'i', 'n', 'g', 's', '.', 't', 'x', 't'
fileNameEnd:
buffer:           times 64 db 0
