; rings.asm — a tiny multiboot kernel that walks IA-32 privilege transitions and prints, through
; port 0xE9 as text, everything a handler can observe at each one. It runs unchanged on
; qemu-system-i386 (the independent oracle) and on ntflow's machine; test/qemu-rings.test.ts
; compares the two outputs line by line.
;
; Every transition lands in one common handler (`handler_common`), which prints two lines per step:
;   <step>: eax=.. ecx=.. edx=.. ebx=.. esp=.. ebp=.. esi=.. edi=.. efl=.. cs=.. ss=.. ds=.. es=.. fs=.. gs=..
;   <step>: vec=.. [err=..] eip=.. cs=.. efl=.. [esp=.. ss=..] resume=..     (interrupts/exceptions)
;   <step>: sysenter sysexit-eip=.. sysexit-esp=..                            (sysenter)
; The first line is the register state at the handler's first instruction (EFLAGS and ESP as the
; CPU left them after delivering the event); the second is the frame the CPU pushed and where the
; handler resumes. A ring-3 step that faults names its continuation in `resume_eip` beforehand.
;
; The first steps run with paging off; then 4 MiB pages identity-map 0-4 MiB for both rings
; (ring 3 may write the kernel's variables cur_step, resume_eip directly), leave 4-8 MiB
; not present and make 8-12 MiB supervisor-only, for the page-fault steps. CR0.EM is set from the
; start, as an OS sets it on a CPU without an FPU: x87 instructions raise #NM. Selectors: 08 ring-0
; code, 10 ring-0 data, 1B ring-3 code, 23 ring-3 data, 28 TSS (the SYSENTER layout: CS, CS+8,
; CS+16|3, CS+24|3), 33 a not-present ring-3 data segment, 3B a DPL-3 call gate to ring-3 code,
; 43 a DPL-0 call gate, 4B a DPL-3 task gate to the (busy) TSS.
;
; A #DB handler entry prints DR6 and clears it; while `tf_left` counts down single-step traps it
; clears TF in the frame at the last one; it sets RF in the frame after an instruction breakpoint,
; so the instruction runs. #PF entries print CR2. Traps (#DB) resume where the CPU says.

BITS 32
ORG 0x100000

; ---- multiboot header (a.out kludge: flag bit 16, so qemu -kernel loads this flat binary) ----
MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00010000
mb_header:
  dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
  dd mb_header            ; header_addr
  dd mb_header            ; load_addr: the file is loaded from its first byte
  dd load_end             ; load_end_addr
  dd bss_end              ; bss_end_addr (zeroed by the loader)
  dd start                ; entry_addr

; ---- constants ----
KCODE equ 0x08
KDATA equ 0x10
UCODE equ 0x1B
UDATA equ 0x23
TSSSEL equ 0x28
NPSEL equ 0x33            ; ring-3 data, not present
UGATE equ 0x3B            ; DPL-3 call gate -> UCODE:callgate_target
KGATE equ 0x43            ; DPL-0 call gate -> UCODE:callgate_target
TGATE equ 0x4B            ; DPL-3 task gate -> TSS 28

K_ERR equ 0x100           ; kind bits pushed by the stubs: the CPU pushed an error code
K_SYSENTER equ 0x200      ; entered by SYSENTER (no frame; leave by SYSEXIT)

; EFLAGS bits used below
F_CF equ 0x001
F_PF equ 0x004
F_AF equ 0x010
F_ZF equ 0x040
F_SF equ 0x080
F_TF equ 0x100
F_IF equ 0x200
F_DF equ 0x400
F_OF equ 0x800
F_IOPL3 equ 0x3000
F_NT equ 0x4000
F_RF equ 0x10000
F_RSV equ 0x002           ; bit 1 always reads 1

; STEP "name", resume — names the step the next handler entry reports, and where a faulting
; step continues (0: resume at the EIP the CPU pushed). Plain stores: no register or flag changes.
%macro STEP 2
  jmp %%go
%%name: db %1, 0
%%go:
  mov dword [cur_step], %%name
  mov dword [resume_eip], %2
%endmacro

; SETREGS base — distinctive, non-zero values in every general register but ESP (mov: no flags).
%macro SETREGS 1
  mov eax, %1 + 0xA0
  mov ecx, %1 + 0xC0
  mov edx, %1 + 0xD0
  mov ebx, %1 + 0xB0
  mov ebp, %1 + 0xE0
  mov esi, %1 + 0x50
  mov edi, %1 + 0x70
%endmacro

; MIX op, a, b — leave the arithmetic flags of `a op b` in EFLAGS (clobbers EAX; use before SETREGS).
%macro MIX 3
  mov eax, %2
  %1 eax, %3
%endmacro

; ============================================================================================
; Ring 0 set-up
; ============================================================================================
start:
  cli
  ; Mask both PICs: ring 3 runs with IF=1, and no timer or device IRQ may interleave the steps.
  mov al, 0xFF
  out 0x21, al
  out 0xA1, al

  ; No FPU on ntflow's CPU: CR0.EM = 1 (x87 raises #NM), MP = 0 (FWAIT is a no-op).
  mov eax, cr0
  or eax, 4
  and eax, ~2
  mov cr0, eax

  lgdt [gdtr]
  jmp KCODE:.flush
.flush:
  mov ax, KDATA
  mov ds, ax
  mov es, ax
  mov fs, ax
  mov gs, ax
  mov ss, ax
  mov esp, kstack_top

  ; TSS: SS0:ESP0 is the stack for ring 3 -> ring 0 interrupts. The I/O map base lies past the
  ; limit, so every IN/OUT at CPL 3 with IOPL 0 raises #GP.
  mov dword [tss + 4], tss_stack_top
  mov dword [tss + 8], KDATA
  mov word [tss + 0x66], 104
  mov eax, tss                      ; patch the TSS base into its descriptor
  mov [gdt_tss + 2], ax
  shr eax, 16
  mov [gdt_tss + 4], al
  mov [gdt_tss + 7], ah
  mov ax, TSSSEL
  ltr ax
  mov eax, callgate_target          ; patch the call gates' target offset
  mov [gdt_ugate], ax
  mov [gdt_kgate], ax
  shr eax, 16
  mov [gdt_ugate + 6], ax
  mov [gdt_kgate + 6], ax

  ; IDT. Exceptions 0-31: 32-bit interrupt gates, DPL 0 (exceptions ignore the gate's DPL), except
  ; #BP (3) and #OF (4): DPL-3 trap gates, so `int3` / `into` work from ring 3.
  xor ecx, ecx
.exc:
  mov eax, [stub_table + ecx*4]
  mov bl, 0x8E
  cmp ecx, 3
  je .trap3
  cmp ecx, 4
  jne .set
.trap3:
  mov bl, 0xEF
.set:
  call set_gate
  inc ecx
  cmp ecx, 32
  jb .exc
  mov ecx, 0x2E                     ; INT 2Eh: DPL-3 interrupt gate (XP's system-service gate)
  mov eax, gate_2e
  mov bl, 0xEE
  call set_gate
  mov ecx, 0x2F                     ; DPL-3 trap gate: like 2Eh but IF stays set
  mov eax, gate_2f
  mov bl, 0xEF
  call set_gate
  mov ecx, 0x30                     ; DPL-3 gate: end of the run
  mov eax, gate_30
  mov bl, 0xEE
  call set_gate
  mov ecx, 0x31                     ; DPL-3 gate: wrmsr service (ECX, EDX:EAX) for ring 3
  mov eax, gate_31
  mov bl, 0xEE
  call set_gate
  mov ecx, 0x32                     ; DPL-3 gate, silent: return with TF set in the popped EFLAGS
  mov eax, gate_32
  mov bl, 0xEE
  call set_gate
  mov ecx, 0x33                     ; DPL-3 gate, silent: DR0 := EBX, DR1 := EDX, DR7 := EAX
  mov eax, gate_33
  mov bl, 0xEE
  call set_gate
  mov ecx, 0x41                     ; DPL-0 interrupt gate: allowed from ring 0, #GP from ring 3
  mov eax, gate_41
  mov bl, 0x8E
  call set_gate
  mov ecx, 0x43                     ; DPL-3 interrupt gate marked not present: #NP
  mov eax, gate_43
  mov bl, 0x6E
  call set_gate
  lidt [idtr]

  ; SYSENTER MSRs: CS = 08 (so SS = 10, SYSEXIT gives 1B / 23), its own ring-0 stack, entry.
  mov ecx, 0x174
  mov eax, KCODE
  xor edx, edx
  wrmsr
  mov ecx, 0x175
  mov eax, sysenter_stack_top
  wrmsr
  mov ecx, 0x176
  mov eax, sysenter_entry
  wrmsr

  ; --- Step: INT 41h at ring 0 through a DPL-0 gate: no privilege change, so no stack switch;
  ; the frame is EIP, CS, EFLAGS only. Arithmetic flags and DF set by popfd (IF stays 0).
  STEP "k-int41", 0
  push dword F_RSV | F_CF | F_PF | F_AF | F_ZF | F_SF | F_DF | F_OF
  popfd
  SETREGS 0x01000000
  int 0x41
  cld

  ; --- Paging on: PSE 4 MiB pages. 0-4 MiB identity, user and supervisor, read/write; 4-8 MiB
  ; not present; 8-12 MiB supervisor-only.
  mov dword [page_dir], 0x00000087
  mov dword [page_dir + 4], 0
  mov dword [page_dir + 8], 0x00800083
  mov eax, cr4
  or eax, 0x10                      ; CR4.PSE
  mov cr4, eax
  mov eax, page_dir
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax

  ; --- Step: a page fault at ring 0 (a read of a not-present page): same privilege, so the frame
  ; is error code, EIP, CS, EFLAGS with no SS:ESP; error code 0 (not present, read, supervisor);
  ; CR2 the address.
  STEP "pf-kernel-read", .kpf1
  push dword F_RSV | F_ZF | F_PF
  popfd
  SETREGS 0x01800000
  mov eax, [0x00400010]
.kpf1:
  ; --- Step: a write there: error code 2.
  STEP "pf-kernel-write", .kpf2
  push dword F_RSV | F_CF | F_SF
  popfd
  SETREGS 0x01900000
  mov [0x00400ffc], ecx
.kpf2:

  ; --- Step: IRETD from ring 0 to ring 3. The frame carries IF=1 and OF/SF/AF/CF. DS/ES hold
  ; the ring-3 data selector, but FS (ring-0 data) and GS (ring-0 code) are not usable at CPL 3,
  ; so IRETD must load them with null. The first ring-3 instruction is `int3`, which shows the
  ; state IRETD left.
  STEP "iretd-to-ring3", 0
  mov ax, UDATA
  mov ds, ax
  mov es, ax
  mov ax, KDATA
  mov fs, ax
  mov ax, KCODE
  mov gs, ax
  push dword UDATA                  ; SS
  push dword ustack_top             ; ESP
  push dword F_RSV | F_IF | F_OF | F_SF | F_AF | F_CF   ; EFLAGS
  push dword UCODE                  ; CS
  push dword user_start             ; EIP
  SETREGS 0x02000000
  iretd

; ============================================================================================
; Ring 3: one step after another. Each step sets flags (MIX) and registers (SETREGS) last, so
; the handler sees exactly those values.
; ============================================================================================
user_start:
  int3

  ; --- Step: XP-style SYSENTER. `call` the stub, which does `mov edx,esp; sysenter`, as
  ; ntdll -> SharedUserData!SystemCallStub does. Ring 0 is entered at MSR 0x176 on the MSR 0x175
  ; stack with CS=08, SS=10, IF cleared; DS..GS keep their ring-3 values.
  STEP "sysenter", sys_stub_ret     ; the kernel's SYSEXIT returns to the stub's `ret`
  MIX sub, 0x00000005, 0x00000009   ; CF SF AF (PF from 0xFC)
  SETREGS 0x03000000
  mov eax, 0xB7                     ; NtReadFile's service number, as in the seed
  call sys_stub
  ; --- Step: back in ring 3 after SYSEXIT (+ the stub's ret): CS=1B, SS=23, ESP=ECX, EIP=EDX,
  ; EFLAGS as the kernel left them (it did `sti` just before SYSEXIT).
  STEP "after-sysexit", 0
  int3

  ; --- Step: INT 2Eh through the DPL-3 interrupt gate: stack switch to TSS SS0:ESP0, frame
  ; EIP CS EFLAGS ESP SS, IF cleared on entry. DF set to check it survives the entry.
  STEP "int2e", 0
  MIX add, 0x7FFFFFFF, 1            ; OF SF AF PF
  std
  SETREGS 0x04000000
  lea edx, [esp + 4]                ; XP: EDX points at the service arguments
  int 0x2E
  ; --- Step: after the handler's IRETD back to ring 3: registers and flags (DF too) restored.
  STEP "after-iretd", 0
  int3
  cld

  ; --- Step: INT 2Fh through a DPL-3 trap gate: the same stack switch, but IF stays set.
  STEP "int2f-trap-gate", 0
  MIX add, 0xFFFFFFFF, 1            ; ZF CF AF PF
  SETREGS 0x05000000
  int 0x2F

  ; --- Step: INT 41h from ring 3: the gate's DPL is 0 < CPL 3, so #GP with error code
  ; 41h*8+2 (IDT bit set), delivered through the #GP gate on the TSS stack; EIP = the INT.
  STEP "int41-dpl0-gate", .c1
  MIX xor, 0x0F0F0F0F, 0x0F0F0F0E   ; PF only
  SETREGS 0x06000000
  int 0x41
.c1:
  ; --- Step: INT 0 from ring 3 (a DPL-0 gate too): #GP(0*8+2), not #DE.
  STEP "int0-dpl0-gate", .c2
  MIX sub, 0x80000000, 1            ; OF AF (PF from 0xFF)
  SETREGS 0x07000000
  int 0
.c2:
  ; --- Step: INT 43h: a DPL-3 gate that is not present: #NP with error code 43h*8+2.
  STEP "int43-not-present", .c3
  MIX add, 0x40000000, 0x40000000   ; OF SF
  SETREGS 0x08000000
  int 0x43
.c3:
  ; --- Step: a #DE from ring 3 goes through the DPL-0 gate 0 (exceptions ignore gate DPL).
  STEP "div0", .c4
  MIX sub, 3, 3                     ; ZF PF
  SETREGS 0x09000000
  xor ecx, ecx                      ; (flags: ZF PF, AF cleared)
  div ecx
.c4:
  ; --- Step: UD2 from ring 3: #UD (fault, EIP = the UD2).
  STEP "ud2", .c5
  MIX add, 0x0000000F, 1            ; AF
  SETREGS 0x0A000000
  ud2
.c5:
  ; --- Step: INTO with OF=1: #OF through the DPL-3 trap gate 4; a trap: EIP after INTO.
  STEP "into", 0
  MIX add, 0x7FFFFFF0, 0x7FFFFFF0   ; OF SF
  SETREGS 0x0B000000
  into

  ; --- Steps: privileged instructions at CPL 3 (IOPL 0): each raises #GP(0), EIP = the insn.
  STEP "cli-cpl3", .p1
  MIX sub, 0x10, 0x20               ; CF SF
  SETREGS 0x0C000000
  cli
.p1:
  STEP "sti-cpl3", .p2
  MIX add, 0x88888888, 0x88888888   ; CF OF AF PF
  SETREGS 0x0D000000
  sti
.p2:
  STEP "hlt-cpl3", .p3
  MIX sub, 0x12345678, 0x12345678   ; ZF PF
  SETREGS 0x0E000000
  hlt
.p3:
  STEP "mov-cr3-cpl3", .p4
  MIX add, 0xF0000000, 0x20000000   ; CF
  SETREGS 0x0F000000
  mov cr3, eax
.p4:
  STEP "mov-from-cr0-cpl3", .p5
  MIX sub, 0x7FFFFFFF, -1           ; OF SF CF AF PF
  SETREGS 0x10000000
  mov eax, cr0
.p5:
  STEP "rdmsr-cpl3", .p6
  MIX add, 1, 2                     ; PF
  SETREGS 0x11000000
  mov ecx, 0x176
  rdmsr
.p6:
  STEP "wrmsr-cpl3", .p7
  MIX sub, 0, 0x80                  ; CF SF
  SETREGS 0x12000000
  mov ecx, 0x176
  wrmsr
.p7:
  STEP "lidt-cpl3", .p8
  MIX add, 0x0FFFFFFF, 0x0FFFFFFF   ; AF
  SETREGS 0x13000000
  lidt [idtr]
.p8:
  STEP "clts-cpl3", .p9
  MIX sub, 0x100, 1                 ; AF PF
  SETREGS 0x14000000
  clts
.p9:
  ; OUT to the debug port itself: if it were allowed, a stray '!' would show in the output.
  STEP "out-cpl3", .p10
  MIX add, 0xC0000000, 0x40000000   ; CF ZF PF
  SETREGS 0x15000000
  mov dx, 0xE9
  mov al, '!'
  out dx, al
.p10:
  STEP "in-cpl3", .p11
  MIX sub, 0xFFFFFFFE, 0xFFFFFFFF   ; CF SF AF PF
  SETREGS 0x16000000
  mov dx, 0x80
  in al, dx
.p11:
  ; --- Step: SYSEXIT at CPL 3: #GP(0).
  STEP "sysexit-cpl3", .p12
  MIX add, 0x55555555, 0x2AAAAAAB   ; CF ZF AF PF
  SETREGS 0x17000000
  sysexit
.p12:
  ; --- Step: POPFD at CPL 3 (IOPL 0) may not change IF or IOPL; the attempt is silently
  ; ignored while the arithmetic flags and DF do load. int3 shows the result.
  STEP "popfd-cpl3", 0
  SETREGS 0x18000000
  push dword F_RSV | F_IOPL3 | F_OF | F_DF | F_ZF | F_CF   ; IF=0, IOPL=3 requested
  popfd
  int3
  cld

  ; --- Step: IRETD at CPL 3 to a ring-0 code selector: #GP(08); ESP is as before the IRETD.
  STEP "iretd-to-ring0-cpl3", .i1
  MIX sub, 0x0000FF00, 0x0000FF01   ; CF SF AF PF
  SETREGS 0x19000000
  push dword F_RSV | F_IF           ; EFLAGS
  push dword KCODE                  ; CS: RPL 0 < CPL 3
  push dword .i1                    ; EIP
  iretd
.i1:
  add esp, 12

  ; --- Step: SYSENTER with IA32_SYSENTER_CS = 0: #GP(0). Ring 3 asks the kernel (INT 31h, a
  ; printed step itself) to write the MSR, tries SYSENTER, then restores the MSR.
  STEP "wrmsr-service-cs0", 0
  SETREGS 0x1A000000
  mov ecx, 0x174
  xor eax, eax
  xor edx, edx
  int 0x31
  STEP "sysenter-cs0", .s1
  MIX add, 0x7FFFFFFF, 0x7FFFFFFF   ; OF SF AF
  SETREGS 0x1B000000
  mov edx, esp
  sysenter
.s1:
  STEP "wrmsr-service-cs8", 0
  SETREGS 0x1C000000
  mov ecx, 0x174
  mov eax, KCODE
  xor edx, edx
  int 0x31

  ; --- Step: a second SYSENTER round trip, with DF set and a lower user stack, to check that
  ; the MSR write took effect and the earlier faults left nothing behind.
  STEP "sysenter-2", sys_stub_ret
  sub esp, 0x14                     ; (before MIX: it changes flags)
  MIX sub, 0x40000000, 0xC0000000   ; CF OF SF
  std
  SETREGS 0x1D000000
  mov eax, 0x1000                   ; a win32k-range service number
  call sys_stub
  STEP "after-sysexit-2", 0
  int3
  add esp, 0x14
  cld

  ; ==========================================================================================
  ; Issue L: the instructions the CPU model forbids or lacks, debug registers and single-step.
  ; ==========================================================================================

  ; --- Steps: MOV to/from a debug register at CPL 3: #GP(0).
  STEP "mov-dr7-cpl3", .d1
  MIX add, 0x10, 0x20               ; (no flags but PF clear)
  SETREGS 0x30000000
  mov dr7, eax
.d1:
  STEP "mov-from-dr6-cpl3", .d2
  MIX sub, 1, 2                     ; CF SF AF PF
  SETREGS 0x31000000
  mov eax, dr6
.d2:
  ; --- Steps: string port I/O at CPL 3 with IOPL 0 and no I/O bitmap: #GP(0) before any access.
  STEP "outsb-cpl3", .o1
  MIX add, 0x7F, 1                  ; OF SF AF
  SETREGS 0x32000000
  mov dx, 0xE9
  mov esi, s_end                    ; if it went out, "E" would show in the text
  outsb
.o1:
  STEP "insb-cpl3", .o2
  MIX sub, 5, 5                     ; ZF PF
  SETREGS 0x33000000
  mov dx, 0x80
  mov edi, scratch
  insb
.o2:
  STEP "rep-outsd-cpl3", .o3
  MIX add, 0xFFFF, 1                ; AF PF
  SETREGS 0x34000000
  mov dx, 0xE9
  mov esi, s_end
  mov ecx, 2
  rep outsd
.o3:
  ; --- Steps: far JMP/CALL to system descriptors from ring 3.
  STEP "jmp-far-tss", .f1           ; the TSS (DPL 0, and busy): #GP(28)
  MIX sub, 0x20, 0x10               ; (none)
  SETREGS 0x35000000
  jmp TSSSEL:0
.f1:
  STEP "call-far-tss-mem", .f2      ; call far [m16:32] naming the TSS: #GP(28), nothing pushed
  MIX add, 0x80000000, 0x80000000   ; CF OF ZF PF
  SETREGS 0x36000000
  call far [farptr_tss]
.f2:
  STEP "jmp-far-task-gate", .f3     ; a DPL-3 task gate to the busy TSS: #GP(28)
  MIX sub, 0, 1                     ; CF SF AF PF
  SETREGS 0x37000000
  jmp TGATE:0
.f3:
  STEP "call-far-kernel-gate", .f4  ; a DPL-0 call gate: #GP(40)
  MIX add, 3, 4                     ; (none)
  SETREGS 0x38000000
  call KGATE:0
.f4:
  STEP "call-far-kcode", .f5        ; straight to ring-0 code: #GP(08)
  MIX sub, 9, 3                     ; PF
  SETREGS 0x39000000
  call KCODE:0
.f5:
  STEP "call-far-null", .f6         ; a null selector: #GP(0)
  MIX sub, 1, 1                     ; ZF PF
  SETREGS 0x3A000000
  jmp far [farptr_null]
.f6:
  ; --- Step: CALL through the DPL-3 call gate to ring-3 code: same privilege, CS:EIP pushed
  ; (the gate's code selector with RPL = CPL), EIP = the gate's offset. callgate_target shows
  ; the state (int3) and returns with RETF.
  STEP "call-gate-cpl3", 0
  MIX add, 0x40, 0x40               ; (none)
  SETREGS 0x3B000000
  call UGATE:0x12345678             ; the offset part is ignored for a gate
  ; --- Step: JMP through the same gate: nothing pushed.
  STEP "jmp-gate-cpl3", 0
  SETREGS 0x3C000000
  push dword UCODE
  push dword .g1
  jmp UGATE:0
.g1:
  ; --- Steps: LDS/LSS/LFS with the segment-load checks; LES that succeeds.
  STEP "lds-kdata-cpl3", .l1        ; DPL 0 data at CPL 3: #GP(10)
  MIX add, 1, 1                     ; (none)
  SETREGS 0x3D000000
  lds eax, [farptr_kdata]
.l1:
  STEP "lss-null", .l2              ; LSS with a null selector: #GP(0)
  MIX sub, 2, 1                     ; (none)
  SETREGS 0x3E000000
  lss esp, [farptr_null]
.l2:
  STEP "lfs-not-present", .l3       ; a not-present segment: #NP(30)
  MIX add, 0xFF, 1                  ; AF PF
  SETREGS 0x3F000000
  lfs ebx, [farptr_np]
.l3:
  STEP "les-udata", 0               ; LES loads ES:EBX; int3 shows them
  SETREGS 0x40000000
  les ebx, [farptr_udata]
  int3
  ; --- Steps: x87 with CR0.EM = 1: #NM. FSTCW is FWAIT + FNSTCW: the FWAIT runs (MP = 0), the
  ; FNSTCW faults one byte further. MMX and SSE: #UD (ntflow's CPU has neither; qemu's does but
  ; raises #UD for them under CR0.EM — except EMMS, which qemu runs, so it is not a step here).
  STEP "fld1-em", .x1
  MIX sub, 3, 5                     ; CF SF AF
  SETREGS 0x41000000
  fld1
.x1:
  STEP "fstcw-em", .x2
  MIX add, 1, 0                     ; (none)
  SETREGS 0x42000000
  fstcw [esp - 4]
.x2:
  STEP "paddb-em", .x3
  SETREGS 0x43000000
  paddb mm0, mm1
.x3:
  STEP "addps-em", .x4
  SETREGS 0x44000000
  addps xmm0, xmm1
.x4:
  ; --- Step: IRETD at CPL 3 with EFLAGS.NT = 1 is a task return; the TSS's back link is null:
  ; #TS(0). The continuation clears NT again.
  STEP "iretd-nt-cpl3", .n1
  SETREGS 0x45000000
  push dword F_RSV | F_IF | F_NT
  popfd
  push dword F_RSV | F_IF
  push dword UCODE
  push dword .n1
  iretd
.n1:
  add esp, 12
  push dword F_RSV | F_IF
  popfd
  ; --- Step: a user read of a supervisor page: #PF(5), CR2.
  STEP "pf-user-supervisor", .pf1
  MIX add, 1, 2                     ; PF
  SETREGS 0x46000000
  mov eax, [0x00800004]
.pf1:
  ; --- Step: a user write to a page that is not present: #PF(6).
  STEP "pf-user-not-present", .pf2
  SETREGS 0x47000000
  mov [0x004FFFFE], ax
.pf2:

  ; --- Step: single step at ring 3. POPFD sets TF (no trap after the POPFD itself); the next
  ; instruction retires, then #DB (a trap: EIP after it, DR6.BS, TF set in the pushed EFLAGS).
  STEP "tf-single-step", 0
  mov dword [tf_left], 1
  push dword F_RSV | F_IF | F_TF | F_CF | F_ZF
  SETREGS 0x48000000
  popfd
  nop
  ; --- Step: IRETD to ring 3 with TF set in the popped EFLAGS (INT 32h's kernel sets it): no
  ; trap after the IRETD; the first ring-3 instruction retires, then #DB.
  STEP "iretd-sets-tf", 0
  mov dword [tf_left], 1
  MIX add, 0x0FFFFFFF, 0x10000001   ; AF PF
  SETREGS 0x49000000
  int 0x32
  lea eax, [eax + 1]
  ; --- Steps: INT3 with TF set: no single-step trap for the INT3 (its handler runs with TF
  ; clear; the frame has TF set); its IRETD restores TF and the next instruction traps.
  STEP "int3-tf", 0
  mov dword [tf_left], 1
  push dword F_RSV | F_IF | F_TF | F_SF
  SETREGS 0x4A000000
  popfd
  int3
  nop
  ; --- Steps: a fault with TF set (UD2): no single-step trap; resumed with TF, the instruction at
  ; the continuation retires and traps.
  STEP "ud2-tf", .u1
  mov dword [tf_left], 1
  push dword F_RSV | F_IF | F_TF
  SETREGS 0x4B000000
  popfd
  ud2
.u1:
  nop
  ; --- Steps: POP SS and MOV SS with TF set: no trap after them; the next instruction traps.
  STEP "pop-ss-tf", 0
  mov dword [tf_left], 1
  push dword UDATA
  push dword F_RSV | F_IF | F_TF | F_OF
  SETREGS 0x4C000000
  popfd
  pop ss
  nop
  STEP "mov-ss-tf", 0
  mov dword [tf_left], 1
  push dword F_RSV | F_IF | F_TF | F_PF
  SETREGS 0x4D000000
  popfd
  mov ss, [udata_sel]
  nop
  ; --- Steps: REP STOSB with TF set and ECX = 2: a trap after each iteration; after the first
  ; EIP stays on the REP STOSB (ECX = 1), after the last it moves on (ECX = 0).
  STEP "tf-rep-stosb", 0
  mov dword [tf_left], 2
  push dword F_RSV | F_IF | F_TF
  SETREGS 0x4E000000
  mov edi, scratch
  mov ecx, 2
  popfd
  rep stosb
  ; --- Steps: SYSENTER with TF set. SYSENTER clears IF but not TF, so the single-step trap is
  ; taken at ring 0 before the first kernel instruction (EIP = the SYSENTER entry, CS 08, no
  ; stack switch: already on the MSR 0x175 stack). The handler clears TF; the kernel then runs
  ; its SYSENTER path as usual and returns to .sy1 with SYSEXIT.
  STEP "sysenter-tf", .sy1
  mov dword [tf_left], 1
  push dword F_RSV | F_IF | F_TF | F_CF
  SETREGS 0x4F000000
  mov eax, 0xB7
  lea edx, [esp + 4]                ; the user ESP once the POPFD has run
  popfd
  sysenter
.sy1:
  ; --- Step: an instruction breakpoint (DR0, DR7.L0, R/W0 = 00): #DB before the instruction
  ; runs, EIP = it, DR6.B0; RF clear in the frame. The handler sets RF and the instruction runs.
  STEP "bp-exec", 0
  mov ebx, bp_target
  xor edx, edx
  mov eax, 0x401                    ; L0, R/W0 = 00, LEN0 = 00
  int 0x33
  SETREGS 0x50000000
bp_target:
  nop
  ; --- Step: a data write breakpoint (DR1, DR7.L1, R/W1 = 01, LEN1 = 11: four bytes): a 2-byte
  ; write overlapping its last two bytes traps after the instruction, DR6.B1.
  STEP "bp-data-write", 0
  xor ebx, ebx
  mov edx, bp_data
  mov eax, 0x400 | 0x4 | (1 << 20) | (3 << 22)
  int 0x33
  SETREGS 0x51000000
  mov [bp_data + 2], ax
  ; --- Step: a read of the same dword does not trigger a write breakpoint; a read/write one
  ; (R/W1 = 11) does.
  STEP "bp-data-read", 0
  xor ebx, ebx
  mov edx, bp_data
  mov eax, 0x400 | 0x4 | (3 << 20) | (3 << 22)
  int 0x33
  SETREGS 0x52000000
  mov eax, [bp_data - 4]            ; outside: no trap
  mov eax, [bp_data]                ; inside: trap
  xor ebx, ebx
  xor edx, edx
  mov eax, 0x400                    ; every breakpoint off
  int 0x33

  ; --- The end: INT 30h asks the kernel to print END and leave through isa-debug-exit.
  STEP "end", 0
  int 0x30
  jmp $

; The call gates' target (ring 3): show the state, then return far (RETF pops EIP and CS).
callgate_target:
  int3
  retf

; SharedUserData!SystemCallStub's shape: mov edx,esp; sysenter; ret.
sys_stub:
  mov edx, esp
  sysenter
sys_stub_ret:
  ret

; ============================================================================================
; Ring 0: entry stubs and the common handler
; ============================================================================================

; Each stub saves what the handler must report before touching anything: EFLAGS first (pushfd
; changes no flag), then the general registers, then the data segment registers (which may be
; null after an IRETD to ring 3, so the handler reloads DS/ES only after saving them).
%macro STUB 2
  pushfd
  pushad
  push ds
  push es
  push fs
  push gs
  push dword %1 | %2
  jmp handler_common
%endmacro

%assign v 0
%rep 32
exc_ %+ v:
  %if v == 8 || v == 10 || v == 11 || v == 12 || v == 13 || v == 14 || v == 17
    STUB v, K_ERR
  %else
    STUB v, 0
  %endif
%assign v v + 1
%endrep
; INT 32h (silent): return to the caller with TF set in the EFLAGS the IRETD pops.
gate_32:
  or dword [esp + 8], F_TF
  iretd
; INT 33h (silent): the debug-register service ring 3 needs (MOV DRn is privileged).
gate_33:
  mov dr0, ebx
  mov dr1, edx
  mov dr7, eax
  iretd

gate_2e: STUB 0x2E, 0
gate_2f: STUB 0x2F, 0
gate_30: STUB 0x30, 0
gate_31: STUB 0x31, 0
gate_41: STUB 0x41, 0
gate_43: STUB 0x43, 0
sysenter_entry: STUB 0, K_SYSENTER

stub_table:
%assign v 0
%rep 32
  dd exc_ %+ v
%assign v v + 1
%endrep

; Stack layout in the handler (EBP = ESP after the stub):
;   +0 kind   +4 gs  +8 fs  +12 es  +16 ds
;   +20 edi  +24 esi  +28 ebp  +32 esp(+4 = entry ESP)  +36 ebx  +40 edx  +44 ecx  +48 eax
;   +52 eflags at entry   +56 the CPU's frame: [error code] eip cs eflags [esp ss]
handler_common:
  mov ebp, esp
  mov ax, KDATA
  mov ds, ax
  mov es, ax
  cld
  inc dword [entries]
  cmp dword [entries], 100          ; a fault loop must not spin forever
  ja runaway

  ; line 1: the state at the handler's first instruction
  call put_name
  mov esi, s_eax
  mov eax, [ebp + 48]
  call put_kv32
  mov esi, s_ecx
  mov eax, [ebp + 44]
  call put_kv32
  mov esi, s_edx
  mov eax, [ebp + 40]
  call put_kv32
  mov esi, s_ebx
  mov eax, [ebp + 36]
  call put_kv32
  mov esi, s_esp
  mov eax, [ebp + 32]
  add eax, 4                        ; pushad saw ESP after the pushfd
  call put_kv32
  mov esi, s_ebp
  mov eax, [ebp + 28]
  call put_kv32
  mov esi, s_esi
  mov eax, [ebp + 24]
  call put_kv32
  mov esi, s_edi
  mov eax, [ebp + 20]
  call put_kv32
  mov esi, s_efl
  mov eax, [ebp + 52]
  call put_kv32
  mov esi, s_cs
  mov eax, cs
  call put_kv16
  mov esi, s_ss
  mov eax, ss
  call put_kv16
  mov esi, s_ds
  mov eax, [ebp + 16]
  call put_kv16
  mov esi, s_es
  mov eax, [ebp + 12]
  call put_kv16
  mov esi, s_fs
  mov eax, [ebp + 8]
  call put_kv16
  mov esi, s_gs
  mov eax, [ebp + 4]
  call put_kv16
  call put_nl

  ; line 2: the frame, or the SYSEXIT target
  call put_name
  test dword [ebp], K_SYSENTER
  jnz sysenter_exit

  mov esi, s_vec
  movzx eax, byte [ebp]
  call put_kv8
  lea ebx, [ebp + 56]               ; EBX -> frame
  test dword [ebp], K_ERR
  jz .noerr
  mov esi, s_err
  mov eax, [ebx]
  call put_kv32
  add ebx, 4
.noerr:
  mov esi, s_eip
  mov eax, [ebx]
  call put_kv32
  mov esi, s_cs
  mov eax, [ebx + 4]
  call put_kv16
  mov esi, s_efl
  mov eax, [ebx + 8]
  call put_kv32
  test byte [ebx + 4], 3            ; from an outer ring: the CPU also pushed ESP and SS
  jz .samering
  mov esi, s_esp
  mov eax, [ebx + 12]
  call put_kv32
  mov esi, s_ss
  mov eax, [ebx + 16]
  call put_kv16
.samering:
  cmp byte [ebp], 0x0E              ; #PF: the faulting address
  jne .notpf
  mov esi, s_cr2
  mov eax, cr2
  call put_kv32
.notpf:
  cmp byte [ebp], 0x01              ; #DB: DR6 (then cleared), single-step countdown, RF
  jne .notdb
  mov esi, s_dr6
  mov eax, dr6
  call put_kv32
  mov eax, dr6
  test al, 0x0F                     ; an instruction breakpoint (or a data one): let the instruction run
  jz .nobp
  or dword [ebx + 8], F_RF
.nobp:
  xor eax, eax
  mov dr6, eax
  cmp dword [tf_left], 0
  je .keep                          ; a trap resumes where the CPU says: no continuation
  dec dword [tf_left]
  jnz .keep
  and dword [ebx + 8], ~F_TF        ; the last single step of this step
  jmp .keep
.notdb:
  mov eax, [resume_eip]             ; a faulting step names its continuation
  test eax, eax
  jz .keep
  mov [ebx], eax
  mov dword [resume_eip], 0
.keep:
  mov esi, s_resume
  mov eax, [ebx]
  call put_kv32
  call put_nl

  cmp dword [ebp], 0x30             ; INT 30h: end of the run
  je finish
  cmp dword [ebp], 0x31             ; INT 31h: wrmsr service for ring 3
  jne .leave
  mov ecx, [ebp + 44]
  mov eax, [ebp + 48]
  mov edx, [ebp + 40]
  wrmsr

.leave:
  ; Drop the error code (if any) by sliding the 14 saved dwords over it, then restore and IRETD.
  test dword [ebp], K_ERR
  jz .pop
  lea esi, [ebp + 52]
  mov ecx, 14
.slide:
  mov eax, [esi]
  mov [esi + 4], eax
  sub esi, 4
  loop .slide
  add esp, 4
.pop:
  add esp, 4                        ; kind
  pop gs
  pop fs
  pop es
  pop ds
  popad
  add esp, 4                        ; EFLAGS at entry (IRETD reloads EFLAGS from the frame)
  iretd

; SYSEXIT the XP way: ECX = the user ESP that came in EDX, EDX = the return EIP (the stub's
; `ret`); EAX carries a status. Other registers go back as they came. The tail is KiServiceExit's:
; the saved user EFLAGS and ESP on the stack, IF cleared in the image (`and byte [esp+1],0FDh`),
; `popfd`, `pop ecx`, then `sti` right before `sysexit` (its one-instruction interrupt shadow
; covers the SYSEXIT), so ring 3 resumes with IF set again.
sysenter_exit:
  mov esi, s_sysexit_eip
  mov eax, [resume_eip]
  mov dword [resume_eip], 0
  mov ecx, [ebp + 40]
  mov [ebp + 44], ecx               ; ECX := user ESP
  mov [ebp + 40], eax               ; EDX := return EIP
  mov dword [ebp + 48], 0xC0000008  ; EAX := a status (STATUS_INVALID_HANDLE)
  call put_kv32
  mov esi, s_sysexit_esp
  mov eax, [ebp + 44]
  call put_kv32
  call put_nl
  add esp, 4
  pop gs
  pop fs
  pop es
  pop ds
  popad
  add esp, 4                        ; back at the MSR 0x175 stack top
  push ecx                          ; the user ESP, as in the trap frame
  push dword F_RSV | F_IF | F_SF | F_ZF | F_AF | F_PF | F_CF   ; the user EFLAGS (IF set)
  and byte [esp + 1], 0FDh          ; IF cleared in the image: interrupts stay off until sti
  popfd
  pop ecx
  sti
  sysexit

finish:
  mov esi, s_end
  call put_str
  mov al, 0                         ; qemu exits with status (0 << 1) | 1
  out 0xF4, al
.halt:
  cli
  hlt
  jmp .halt

runaway:
  mov esi, s_runaway
  call put_str
  mov al, 0x7F
  out 0xF4, al
  jmp finish.halt

; ---- helpers (ring 0) ----
; set_gate: ECX = vector, EAX = handler, BL = type/attribute byte (P, DPL, gate type)
set_gate:
  mov [idt + ecx*8], ax
  mov word [idt + ecx*8 + 2], KCODE
  mov byte [idt + ecx*8 + 4], 0
  mov [idt + ecx*8 + 5], bl
  shr eax, 16
  mov [idt + ecx*8 + 6], ax
  ret

; put_name: the current step's name and ": "
put_name:
  mov esi, [cur_step]
  test esi, esi
  jnz .named
  mov esi, s_unnamed
.named:
  call put_str
  mov esi, s_colon
  jmp put_str

put_str:                            ; ESI = zero-terminated string
  push eax
.next:
  mov al, [esi]
  test al, al
  jz .done
  out 0xE9, al
  inc esi
  jmp .next
.done:
  pop eax
  ret

put_nl:
  push eax
  mov al, 10
  out 0xE9, al
  pop eax
  ret

; put_kvN: ESI = label (" eax="), EAX = value printed as N/4 hex digits
put_kv32:
  call put_str
  mov ecx, 8
  jmp put_hex
put_kv16:
  call put_str
  shl eax, 16
  mov ecx, 4
  jmp put_hex
put_kv8:
  call put_str
  shl eax, 24
  mov ecx, 2
put_hex:                            ; the top ECX nibbles of EAX
  rol eax, 4
  push eax
  and al, 0x0F
  add al, '0'
  cmp al, '9'
  jbe .digit
  add al, 'A' - '9' - 1
.digit:
  out 0xE9, al
  pop eax
  loop put_hex
  ret

; ---- data ----
cur_step:   dd 0
resume_eip: dd 0
entries:    dd 0
tf_left:    dd 0                    ; single-step traps still to take in this step
udata_sel:  dw UDATA
farptr_tss:   dd 0
              dw TSSSEL
farptr_null:  dd 0
              dw 0
farptr_kdata: dd 0x1234
              dw KDATA
farptr_np:    dd 0
              dw NPSEL
farptr_udata: dd 0x00C0FFEE
              dw UDATA
align 4
              dd 0
bp_data:      dd 0                  ; the data breakpoints' dword
              dd 0
scratch:      times 16 db 0

s_colon:   db ":", 0
s_unnamed: db "?", 0
s_eax: db " eax=", 0
s_ecx: db " ecx=", 0
s_edx: db " edx=", 0
s_ebx: db " ebx=", 0
s_esp: db " esp=", 0
s_ebp: db " ebp=", 0
s_esi: db " esi=", 0
s_edi: db " edi=", 0
s_efl: db " efl=", 0
s_cs:  db " cs=", 0
s_ss:  db " ss=", 0
s_ds:  db " ds=", 0
s_es:  db " es=", 0
s_fs:  db " fs=", 0
s_gs:  db " gs=", 0
s_vec: db " vec=", 0
s_err: db " err=", 0
s_eip: db " eip=", 0
s_resume: db " resume=", 0
s_sysexit_eip: db " sysenter sysexit-eip=", 0
s_sysexit_esp: db " sysexit-esp=", 0
s_cr2: db " cr2=", 0
s_dr6: db " dr6=", 0
s_end: db "END", 10, 0
s_runaway: db "RUNAWAY: too many handler entries", 10, 0

align 8
gdt:
  dq 0
  dq 0x00CF9B000000FFFF             ; 08 ring-0 code, flat
  dq 0x00CF93000000FFFF             ; 10 ring-0 data, flat
  dq 0x00CFFB000000FFFF             ; 18 ring-3 code, flat (selector 1B)
  dq 0x00CFF3000000FFFF             ; 20 ring-3 data, flat (selector 23)
gdt_tss:
  dw 103, 0                         ; 28 32-bit TSS, limit 103; base patched at start
  db 0, 0x89, 0, 0
  dq 0x00CF73000000FFFF             ; 30 ring-3 data, flat, NOT present (selector 33)
gdt_ugate:
  dw 0, UCODE, 0xEC00, 0            ; 38 32-bit call gate, DPL 3, no parameters; offset patched
gdt_kgate:
  dw 0, UCODE, 0x8C00, 0            ; 40 32-bit call gate, DPL 0
  dw 0, TSSSEL, 0xE500, 0           ; 48 task gate, DPL 3, to the TSS (selector 4B)
gdt_end:
gdtr:
  dw gdt_end - gdt - 1
  dd gdt
idtr:
  dw 256*8 - 1
  dd idt

load_end:

section .bss
alignb 4096
page_dir: resb 4096
alignb 16
tss:    resb 104
alignb 8
idt:    resb 256*8
alignb 16
        resb 4096
kstack_top:
        resb 4096
tss_stack_top:
        resb 4096
sysenter_stack_top:
        resb 4096
ustack_top:
bss_end:
