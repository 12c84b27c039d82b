; ntflow: driver
;
; idt-hook: a driver hooks INT 2Eh — the system-call gate of every CPU before SYSENTER, and the
; path ntdll takes on XP when the CPU has no SYSENTER (SharedUserData!KiIntSystemCall). The
; driver finds the Interrupt Descriptor Table with SIDT (the IDTR's base; SIDT works at any
; privilege level), reads gate 2Eh — a 32-bit interrupt gate whose handler offset is split into
; its low word (gate +0) and high word (gate +6) around the selector and the type/DPL bits — keeps
; the old offset (nt!KiSystemService) and writes the offset of its own KiSystemServiceHook into
; both halves. The next INT 2Eh from ring 3 enters ring 0 in the driver (the ring transition's
; target says so); the hook counts NtReadFile calls and jumps to the saved KiSystemService, so
; every system call still works. The kernel's code and service tables are untouched.
;
; XP keeps the IDT in writable memory (here: the GDT/IDT page, mapped read/write), so unlike the
; SSDT hooks no CR0.WP trick is needed: the driver only disables interrupts while the gate is
; half-written (an interrupt through a gate with a new low word and an old high word would
; land nowhere). Drivers of the era did this on each processor (each has its own IDT, found by
; running SIDT there); this machine has one CPU. The kernel's own Zw stubs call KiSystemService
; directly, not through the gate, so only calls from user mode pass the hook.
;
; At the hook's first instruction the CPU has pushed the interrupt frame (EIP, CS, EFLAGS, ESP,
; SS of ring 3) on the thread's kernel stack and cleared IF; EAX is the service number and EDX
; the arguments. KiSystemService builds the trap frame from there, so the hook keeps every
; register and the flags, and leaves the stack as it found it.

IDT_GATE_2E equ 0x2E * 8                    ; each gate is 8 bytes

DriverEntry:
    push ebx
    sidt [idtr]                             ; limit (word), base (dword)
    mov ebx, [idtr+2]
    add ebx, IDT_GATE_2E                    ; the gate of INT 2Eh
    movzx eax, word [ebx+6]                 ; offset 31..16
    shl eax, 16
    mov ax, [ebx]                           ; offset 15..0
    mov [originalKiSystemService], eax      ; nt!KiSystemService
    mov eax, KiSystemServiceHook
    cli                                     ; no interrupt through a half-written gate
    mov [ebx], ax                           ; offset 15..0
    shr eax, 16
    mov [ebx+6], ax                         ; offset 31..16
    sti
    xor eax, eax                            ; STATUS_SUCCESS
    pop ebx
    ret 8

; Where INT 2Eh lands now. In: EAX = service number, EDX = arguments, the interrupt frame at ESP.
KiSystemServiceHook:
    pushfd
    cmp eax, 0xB7                           ; NtReadFile?
    jne .pass
    inc dword [hookedReads]
.pass:
    popfd
    jmp dword [originalKiSystemService]     ; on into nt!KiSystemService, the frame untouched

align 4
idtr:                    dw 0               ; SIDT stores the limit …
                         dd 0               ; … and the base
align 4
originalKiSystemService: dd 0
hookedReads:             dd 0
