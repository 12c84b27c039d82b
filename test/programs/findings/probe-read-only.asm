; ntflow: user
; ntflow-file: \??\C:\findings.txt = "A file for the failure-cause programs to read.\r\n"
;
; probe-read-only: a UserMode NtReadFile into a buffer the program made read-only.
;
; The program allocates one page (NtAllocateVirtualMemory, MEM_COMMIT | MEM_RESERVE,
; PAGE_READWRITE), makes it PAGE_READONLY with NtProtectVirtualMemory (the PTE loses its R/W bit),
; opens C:\findings.txt and reads 64 bytes of it into that page. nt!NtReadFile references the
; handle (good), probes the IO_STATUS_BLOCK (good), then ProbeForWrite(page, 64, 1): the range
; check passes, and the probe touches the buffer — reads a byte (fine: the page is present and
; readable) and writes it back, which faults (a supervisor write to a read-only user page with
; CR0.WP set). The probe's handler turns that into STATUS_ACCESS_VIOLATION; the file is not read.
;
; Must fail: exactly NtReadFile, STATUS_ACCESS_VIOLATION (0xC0000005). NtAllocateVirtualMemory,
; NtProtectVirtualMemory, NtCreateFile and NtClose succeed. Exit status: NtReadFile's status.

GENERIC_READ                 equ 0x80000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 0x00000001
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040
MEM_COMMIT                   equ 0x1000
MEM_RESERVE                  equ 0x2000
PAGE_READONLY                equ 0x02
PAGE_READWRITE               equ 0x04

start:
    ; NtAllocateVirtualMemory(NtCurrentProcess(), &BaseAddress, 0, &RegionSize, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE)
    push PAGE_READWRITE
    push MEM_COMMIT | MEM_RESERVE
    push regionSize
    push 0
    push baseAddress
    push -1
    call ntdll!NtAllocateVirtualMemory
    test eax, eax
    jnz .done

    ; NtProtectVirtualMemory(NtCurrentProcess(), &ProtectBase, &ProtectSize, PAGE_READONLY, &OldProtect)
    mov eax, [baseAddress]
    mov [protectBase], eax
    push oldProtect
    push PAGE_READONLY
    push protectSize
    push protectBase
    push -1
    call ntdll!NtProtectVirtualMemory
    test eax, eax
    jnz .done

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

    ; NtReadFile(FileHandle, NULL, NULL, NULL, &IoStatusBlock, BaseAddress (read-only), 64, &ByteOffset, NULL)
    push 0
    push byteOffset
    push 64
    push dword [baseAddress]                ; the bad argument: a read-only page
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
baseAddress:      dd 0
regionSize:       dd 0x1000
protectBase:      dd 0
protectSize:      dd 0x1000
oldProtect:       dd 0
fileHandle:       dd 0
iosb:             dd 0, 0
byteOffset:       dd 0, 0
objectAttributes: dd 24, 0, fileName, OBJ_CASE_INSENSITIVE, 0, 0
fileName:         dw fileNameEnd - fileNameText, fileNameEnd - fileNameText
                  dd fileNameText
fileNameText:     dw '\', '?', '?', '\', 'C', ':', '\', 'f', 'i', 'n', 'd', 'i', 'n', 'g', 's', '.', 't', 'x', 't'
fileNameEnd:
