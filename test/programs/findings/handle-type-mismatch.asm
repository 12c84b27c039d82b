; ntflow: user
; ntflow-file: \??\C:\findings.txt = "A file for the failure-cause programs to read.\r\n"
;
; handle-type-mismatch: a valid file handle passed where a process handle is wanted.
;
; The program opens C:\findings.txt (a File object, handle 4 in its own table) and passes that
; handle as NtAllocateVirtualMemory's ProcessHandle. The service checks its flags and protection,
; probes BaseAddress and RegionSize (both fine), then calls ObReferenceObjectByHandle(handle,
; PROCESS_VM_OPERATION, PsProcessType, UserMode): the handle is found in the process's table, but
; its object is a File, not a Process — STATUS_OBJECT_TYPE_MISMATCH. No memory is allocated.
;
; Must fail: exactly NtAllocateVirtualMemory, STATUS_OBJECT_TYPE_MISMATCH (0xC0000024).
; NtCreateFile and NtClose succeed. Exit status: NtAllocateVirtualMemory's status.

GENERIC_READ                 equ 0x80000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 0x00000001
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040
MEM_COMMIT                   equ 0x1000
MEM_RESERVE                  equ 0x2000
PAGE_READWRITE               equ 0x04

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

    ; NtAllocateVirtualMemory(FileHandle (!), &BaseAddress, 0, &RegionSize, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE)
    push PAGE_READWRITE
    push MEM_COMMIT | MEM_RESERVE
    push regionSize
    push 0
    push baseAddress
    push dword [fileHandle]                 ; the bad argument: a File where a Process is wanted
    call ntdll!NtAllocateVirtualMemory
    mov ebx, eax

    push dword [fileHandle]
    call ntdll!NtClose
    mov eax, ebx
.done:
    ret

align 4
fileHandle:       dd 0
iosb:             dd 0, 0
baseAddress:      dd 0
regionSize:       dd 0x1000
objectAttributes: dd 24, 0, fileName, OBJ_CASE_INSENSITIVE, 0, 0
fileName:         dw fileNameEnd - fileNameText, fileNameEnd - fileNameText
                  dd fileNameText
fileNameText:     dw '\', '?', '?', '\', 'C', ':', '\', 'f', 'i', 'n', 'd', 'i', 'n', 'g', 's', '.', 't', 'x', 't'
fileNameEnd:
