; ntflow: driver
;
; ssdt-hook: a driver replaces KiServiceTable[0B7h] — nt!NtReadFile's entry in the System Service
; Descriptor Table — with its own routine, the way 2000s rootkits and security products did.
; nt!KeServiceDescriptorTable is exported; its first dword is KiServiceTable's address. The
; kernel's image is read-only (CR0.WP is set), so the driver lifts WP around the write.
; From then on the dispatcher's `mov ebx,[edi+eax*4]` loads HookNtReadFile for service 0B7h (the
; ssdt-lookup event's target says so); the hook counts the call and jumps to the original
; nt!NtReadFile, which still works.

CR0_WP equ 0x00010000

DriverEntry:
    mov eax, [nt!KeServiceDescriptorTable]  ; KiServiceTable (descriptor 0's Base)
    lea edx, [eax+0xB7*4]                   ; &KiServiceTable[NtReadFile]
    mov ecx, [edx]
    mov [originalNtReadFile], ecx
    cli                                     ; no interruption while the kernel is writable
    mov eax, cr0
    and eax, ~CR0_WP
    mov cr0, eax
    mov dword [edx], HookNtReadFile         ; the hook
    mov eax, cr0
    or eax, CR0_WP
    mov cr0, eax
    sti
    xor eax, eax
    ret 8

; Same arguments as NtReadFile (the dispatcher copied them): count, then continue in the original.
HookNtReadFile:
    inc dword [hookCalls]
    jmp dword [originalNtReadFile]

align 4
originalNtReadFile: dd 0
hookCalls:          dd 0
