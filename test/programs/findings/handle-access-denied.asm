; ntflow: user
; ntflow-file: \??\C:\findings.txt = "A file for the failure-cause programs to read.\r\n"
;
; handle-access-denied: a UserMode NtReadFile on a handle opened for writing only.
;
; The program opens C:\findings.txt with GENERIC_WRITE | SYNCHRONIZE (mapped to FILE_GENERIC_WRITE:
; FILE_WRITE_DATA, FILE_APPEND_DATA, attributes and EA writes, READ_CONTROL, SYNCHRONIZE — no
; FILE_READ_DATA), then reads through that handle. nt!NtReadFile calls
; ObReferenceObjectByHandle(handle, FILE_READ_DATA, IoFileObjectType, UserMode): the handle is
; found, the object is a File, but the access granted to this handle lacks FILE_READ_DATA, and a
; UserMode caller is checked — STATUS_ACCESS_DENIED.
;
; (The other way round — a read-only handle given to NtWriteFile — also fails with
; STATUS_ACCESS_DENIED, but there the lookup asks for no access and succeeds; NtWriteFile checks
; the granted access itself afterwards, which no event shows. The read direction is chosen so the
; lookup itself is the evidence.)
;
; Must fail: exactly NtReadFile, STATUS_ACCESS_DENIED (0xC0000022). NtCreateFile and NtClose
; succeed. Exit status: NtReadFile's status.

GENERIC_WRITE                equ 0x40000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 0x00000001
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040

start:
    ; NtCreateFile(&FileHandle, GENERIC_WRITE | SYNCHRONIZE, &ObjectAttributes, &IoStatusBlock,
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
    push GENERIC_WRITE | SYNCHRONIZE        ; no read access
    push fileHandle
    call ntdll!NtCreateFile
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
buffer:           times 64 db 0
