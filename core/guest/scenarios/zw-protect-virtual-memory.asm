; ntflow: user
;
; zw-protect-virtual-memory: ZwProtectVirtualMemory (service 0x89, 5 arguments) changes a page's
; protection for real, in the page tables. The program allocates a read/write page, writes it,
; makes it read-only with ntdll!ZwProtectVirtualMemory — SYSENTER → KiSystemService →
; KiServiceTable[0x89] → nt!NtProtectVirtualMemory — and writes it again. The second write
; faults (#PF, a user write to a read-only page), so the program's thread dies of
; STATUS_ACCESS_VIOLATION: the session's outcome is that exception.

MEM_COMMIT      equ 0x1000
MEM_RESERVE     equ 0x2000
PAGE_READWRITE  equ 0x04
PAGE_READONLY   equ 0x02

start:
    ; NtAllocateVirtualMemory(ProcessHandle, &BaseAddress, ZeroBits, &RegionSize, AllocationType, Protect)
    push PAGE_READWRITE
    push MEM_COMMIT | MEM_RESERVE
    push regionSize
    push 0
    push baseAddress
    push -1                                 ; NtCurrentProcess()
    call ntdll!NtAllocateVirtualMemory
    test eax, eax
    jnz .done

    mov ebx, [baseAddress]
    mov dword [ebx], 0x600DF00D             ; writable: this works

    ; ZwProtectVirtualMemory(ProcessHandle, &BaseAddress, &RegionSize, NewProtect, &OldProtect)
    push oldProtect
    push PAGE_READONLY
    push regionSize
    push baseAddress
    push -1
    call ntdll!ZwProtectVirtualMemory
    test eax, eax
    jnz .done

    mov dword [ebx], 0xBAADF00D             ; read-only now: #PF, the thread dies here
    xor eax, eax
.done:
    ret

align 4
baseAddress: dd 0
regionSize:  dd 0x1000
oldProtect:  dd 0
