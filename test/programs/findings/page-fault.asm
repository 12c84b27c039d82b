; ntflow: user
; ntflow-file: \??\C:\findings.txt = "A file for the failure-cause programs to read.\r\n"
;
; page-fault: a UserMode NtWriteFile whose buffer runs off the end of its page into nothing; the
; probe passes and the service's own copy faults.
;
; The program allocates exactly one page (NtAllocateVirtualMemory: a 64 KiB-aligned region of one
; page; the page after it is in no region, not committed), opens C:\findings.txt for writing and
; writes 0x200 bytes starting 0x100 bytes before the end of that page: the buffer's first 0x100
; bytes are mapped, the rest is not. nt!NtWriteFile references the handle (good), checks the handle
; grants write access (it does), probes the IO_STATUS_BLOCK (good) and the data buffer with
; ProbeForRead(buffer, 0x200, 1) — a range check only: ProbeForRead does not touch the pages, and
; the buffer is below MmUserProbeAddress, so it passes. The file system then copies the caller's
; bytes, and the copy page-faults at the start of the next page (a kernel-mode read of a
; not-present user page). MmAccessFault says STATUS_ACCESS_VIOLATION, and the service's exception
; handler (its __try around the caller's buffer) returns that as the status: an exception-dispatch
; event with handler 'service'. Nothing is written to the file (the copy comes before the write).
;
; Must fail: exactly NtWriteFile, STATUS_ACCESS_VIOLATION (0xC0000005). NtAllocateVirtualMemory,
; NtCreateFile and NtClose succeed. Exit status: NtWriteFile's status.

GENERIC_WRITE                equ 0x40000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 0x00000001
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040
MEM_COMMIT                   equ 0x1000
MEM_RESERVE                  equ 0x2000
PAGE_READWRITE               equ 0x04
TAIL                         equ 0x100        ; bytes of the buffer inside the page
LENGTH                       equ 0x200        ; bytes written: 0x100 of them past the page

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
    push GENERIC_WRITE | SYNCHRONIZE
    push fileHandle
    call ntdll!NtCreateFile
    test eax, eax
    jnz .done

    ; NtWriteFile(FileHandle, NULL, NULL, NULL, &IoStatusBlock, BaseAddress + 0x1000 - TAIL, LENGTH, &ByteOffset, NULL)
    mov eax, [baseAddress]
    add eax, 0x1000 - TAIL
    push 0
    push byteOffset
    push LENGTH
    push eax                                ; the bad argument: runs off the page
    push iosb
    push 0
    push 0
    push 0
    push dword [fileHandle]
    call ntdll!NtWriteFile
    mov ebx, eax

    push dword [fileHandle]
    call ntdll!NtClose
    mov eax, ebx
.done:
    ret

align 4
baseAddress:      dd 0
regionSize:       dd 0x1000
fileHandle:       dd 0
iosb:             dd 0, 0
byteOffset:       dd 0, 0
objectAttributes: dd 24, 0, fileName, OBJ_CASE_INSENSITIVE, 0, 0
fileName:         dw fileNameEnd - fileNameText, fileNameEnd - fileNameText
                  dd fileNameText
fileNameText:     dw '\', '?', '?', '\', 'C', ':', '\', 'f', 'i', 'n', 'd', 'i', 'n', 'g', 's', '.', 't', 'x', 't'
fileNameEnd:
