; ntflow: driver
;
; shadow-ssdt-hook: a driver hooks the win32k service table — the "shadow SSDT" keyloggers and
; screen-grabbers hooked (NtUserGetAsyncKeyState, NtGdiBitBlt, …) and personal firewalls hooked
; to guard windows. GUI threads dispatch through KeServiceDescriptorTableShadow: its descriptor 0
; is ntoskrnl's table again, descriptor 1 is win32k's W32pServiceTable (service numbers 1000h +
; index). The driver replaces W32pServiceTable[0], NtGdiAbortDoc (service 1000h), with
; HookNtGdiAbortDoc, which counts the call and jumps to the original; the program's win32k call
; then runs through the hook (the ssdt-lookup event for table 1 targets the driver).
;
; Finding the table: ntoskrnl exports KeServiceDescriptorTable but not the shadow table. Drivers
; found it by its contents: the shadow's descriptor 0 is a copy of KeServiceDescriptorTable's
; (KiServiceTable, its counters, limit and argument table), and its descriptor 1 is win32k's. Some
; hard-coded where it lies for one build (on XP SP1–SP3, 40h bytes below KeServiceDescriptorTable);
; others scanned for those contents — near KeServiceDescriptorTable, or in the code of
; KeAddSystemServiceTable, which names both tables. This driver scans the 100h bytes on either side
; of KeServiceDescriptorTable for 16 bytes equal to its descriptor 0, other than
; KeServiceDescriptorTable itself, followed by a descriptor with a table in it. That finds the
; table whichever side it is on: in this miniature it follows KeServiceDescriptorTable (40h above
; it, as on later Windows), and ntflow's kernel has no KeAddSystemServiceTable to scan.
;
; On XP, win32k.sys lives in session space, mapped only into processes of a session (csrss.exe
; and the GUI programs), not into the System process DriverEntry runs in: real drivers attached
; to csrss.exe (KeAttachProcess) before touching W32pServiceTable. This miniature maps win32k into
; every address space, so no attach is needed. win32k's image is read-only (CR0.WP set), so the
; driver lifts WP around the write, as the SSDT hookers did.

CR0_WP              equ 0x00010000
DESCRIPTOR          equ 0x10                ; sizeof(KSERVICE_TABLE_DESCRIPTOR): Base, Count, Limit, Number
SCAN_BYTES          equ 0x100
STATUS_NOT_FOUND    equ 0xC0000225

DriverEntry:
    push ebx
    push esi
    push edi
    ; ---- find KeServiceDescriptorTableShadow ----
    cld
    mov ebx, nt!KeServiceDescriptorTable
    lea edx, [ebx-SCAN_BYTES]               ; candidate
.scan:
    cmp edx, ebx
    je .next                                ; KeServiceDescriptorTable itself
    mov esi, ebx
    mov edi, edx
    mov ecx, DESCRIPTOR / 4
    repe cmpsd                              ; memcmp(candidate, KeServiceDescriptorTable, 16)
    jne .next
    cmp dword [edx+DESCRIPTOR], 0           ; descriptor 1 has a table: win32k's
    jne .found
.next:
    add edx, 4
    cmp edx, nt!KeServiceDescriptorTable + SCAN_BYTES
    jbe .scan
    mov eax, STATUS_NOT_FOUND
    jmp .done
.found:
    mov [shadowTable], edx
    ; ---- hook W32pServiceTable[0] (NtGdiAbortDoc, service 1000h) ----
    mov edx, [edx+DESCRIPTOR]               ; descriptor 1's Base: win32k!W32pServiceTable
    mov ecx, [edx]
    mov [originalNtGdiAbortDoc], ecx
    cli                                     ; no interruption while the image is writable
    mov eax, cr0
    and eax, ~CR0_WP
    mov cr0, eax
    mov dword [edx], HookNtGdiAbortDoc      ; the hook
    mov eax, cr0
    or eax, CR0_WP
    mov cr0, eax
    sti
    xor eax, eax                            ; STATUS_SUCCESS
.done:
    pop edi
    pop esi
    pop ebx
    ret 8

; BOOL NtGdiAbortDoc(HDC hdc): the dispatcher copied its one argument; count, then the original.
HookNtGdiAbortDoc:
    inc dword [hookCalls]
    jmp dword [originalNtGdiAbortDoc]

align 4
shadowTable:           dd 0
originalNtGdiAbortDoc: dd 0
hookCalls:             dd 0
