; ntflow: driver
;
; msr-hook: a driver moves the SYSENTER entry point — the hook that needs no patch in the kernel
; at all. IA32_SYSENTER_EIP (MSR 176h) holds the address SYSENTER jumps to: nt!KiFastCallEntry,
; written there by the kernel at boot. The driver reads it with RDMSR, keeps it, and writes the
; address of its own KiFastCallEntryHook with WRMSR. From then on every SYSENTER, from every
; process, enters ring 0 in the driver (the msr-read events SYSENTER itself makes show the new
; value); the hook counts NtReadFile calls and jumps to the saved KiFastCallEntry, so every system
; call still works. The kernel's image and its service tables are untouched: an SSDT check finds
; nothing, which is why anti-rootkits compared MSR 176h with the kernel's address range.
;
; At the hook's first instruction SYSENTER has loaded CS = 8, SS = 10h, ESP = MSR 175h (the DPC
; stack) and cleared IF; EAX is the service number, EDX the user ESP, DS/ES/FS are still the
; user's (flat ring-3 data, usable from ring 0). KiFastCallEntry builds everything from there, so
; the hook keeps every register and the flags (KiFastCallEntry saves the user EFLAGS with pushfd).
;
; Drivers of the era checked that the CPU has SYSENTER at all (CPUID 1, EDX bit 11, as XP itself
; does at boot) and, on a multiprocessor, wrote the MSR on each CPU (KeSetAffinityThread); this
; machine has one CPU. On a CPU without SYSENTER (cpu int2e) DriverEntry installs nothing and
; fails with STATUS_NOT_SUPPORTED: ntdll uses INT 2Eh there, which this hook could not see.

IA32_SYSENTER_EIP    equ 0x176
CPUID_SEP            equ 1 << 11            ; CPUID leaf 1, EDX: SYSENTER/SYSEXIT present
STATUS_NOT_SUPPORTED equ 0xC00000BB

DriverEntry:
    push ebx
    mov eax, 1
    cpuid
    test edx, CPUID_SEP
    jz .noSysenter
    mov ecx, IA32_SYSENTER_EIP
    rdmsr                                   ; EDX:EAX = nt!KiFastCallEntry
    mov [originalKiFastCallEntry], eax
    cli                                     ; no system call between the read and the write
    mov eax, KiFastCallEntryHook
    xor edx, edx
    mov ecx, IA32_SYSENTER_EIP
    wrmsr                                   ; SYSENTER now lands in the driver
    sti
    xor eax, eax                            ; STATUS_SUCCESS
    pop ebx
    ret 8
.noSysenter:
    mov eax, STATUS_NOT_SUPPORTED
    pop ebx
    ret 8

; Where SYSENTER lands now. In: EAX = service number, EDX = user ESP, ESP = the DPC stack.
KiFastCallEntryHook:
    pushfd                                  ; the user's flags, for KiFastCallEntry's pushfd
    cmp eax, 0xB7                           ; NtReadFile?
    jne .pass
    inc dword [hookedReads]
.pass:
    popfd
    jmp dword [originalKiFastCallEntry]     ; on into nt!KiFastCallEntry, registers as SYSENTER left them

align 4
originalKiFastCallEntry: dd 0
hookedReads:             dd 0
