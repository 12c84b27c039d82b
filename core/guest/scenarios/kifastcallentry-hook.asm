; ntflow: driver
;
; kifastcallentry-hook: a driver patches the system-call dispatcher itself, between
; `mov ebx,[edi+eax*4]` (the SSDT lookup) and `call ebx` — the spot security software chose,
; because there EAX = service index, EDI = the table, EBX = the routine about to run and ECX =
; the argument bytes, for every service at once. (On XP SP1 KiFastCallEntry jumps into
; KiSystemService for this part; the driver finds the spot by its bytes, as such drivers did.)
;
; The five bytes after `mov ebx,[edi+eax*4]` (8B 1C 87) — `sub esp,ecx; shr ecx,2` — become a
; `jmp KiFastCallEntryFilter`. The filter counts NtReadFile calls (index 0B7h of table 0), runs
; the two instructions it displaced, and jumps back. NtReadFile itself still works.

CR0_WP equ 0x00010000

DriverEntry:
    push esi
    push edi
    ; Find `mov ebx,[edi+eax*4]` in the dispatcher, starting from KiFastCallEntry.
    mov esi, nt!KiFastCallEntry
    mov ecx, 0x200
.scan:
    cmp byte [esi], 0x8B
    jne .next
    cmp byte [esi+1], 0x1C
    jne .next
    cmp byte [esi+2], 0x87
    je .found
.next:
    inc esi
    loop .scan
    mov eax, 0xC0000001                     ; STATUS_UNSUCCESSFUL: not the code we know
    jmp .done
.found:
    lea edi, [esi+3]                        ; the five bytes to replace
    mov [returnAddress], edi
    add dword [returnAddress], 5
    ; The displaced bytes must be `sub esp,ecx; shr ecx,2` — the filter re-executes exactly those.
    cmp dword [edi], 0xE9C1CC29
    jne .mismatch
    cmp byte [edi+4], 0x02
    jne .mismatch
    ; jmp rel32 to the filter
    mov eax, KiFastCallEntryFilter
    sub eax, edi
    sub eax, 5
    cli
    mov edx, cr0
    push edx
    and edx, ~CR0_WP
    mov cr0, edx
    mov byte [edi], 0xE9
    mov [edi+1], eax
    pop edx
    mov cr0, edx
    sti
    xor eax, eax
    jmp .done
.mismatch:
    mov eax, 0xC0000001
.done:
    pop edi
    pop esi
    ret 8

; In: EAX = service index, EDI = the service table's base, EBX = the routine, ECX = argument bytes.
KiFastCallEntryFilter:
    cmp eax, 0xB7                           ; NtReadFile …
    jne .run
    cmp edi, [nt!KeServiceDescriptorTable]  ; … of ntoskrnl's table
    jne .run
    inc dword [filteredReads]
.run:
    sub esp, ecx                            ; the displaced instructions
    shr ecx, 2
    jmp dword [returnAddress]

align 4
returnAddress: dd 0
filteredReads: dd 0
