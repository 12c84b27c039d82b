; ntflow: user
;
; handle-never-opened: a UserMode NtReadFile on a handle value nothing ever returned.
;
; The program opens nothing: its process handle table is empty. 0x1234 is a well-formed handle
; value (a multiple of 4), so ObReferenceObjectByHandle looks it up in the current process's table
; (EPROCESS.ObjectTable) — where ExMapHandleToPointer finds no entry (the value is past the
; table's one page of 512 entries) — and fails with STATUS_INVALID_HANDLE.
;
; Must fail: exactly NtReadFile, STATUS_INVALID_HANDLE (0xC0000008). Exit status: its status.

NEVER_OPENED                 equ 0x1234

start:
    ; NtReadFile(NEVER_OPENED, NULL, NULL, NULL, &IoStatusBlock, Buffer, 64, &ByteOffset, NULL)
    push 0
    push byteOffset
    push 64
    push buffer
    push iosb
    push 0
    push 0
    push 0
    push NEVER_OPENED                       ; the bad argument
    call ntdll!NtReadFile
    ret                                     ; exit status = NtReadFile's status

align 4
iosb:             dd 0, 0
byteOffset:       dd 0, 0
buffer:           times 64 db 0
