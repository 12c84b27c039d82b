; ntoskrnl: the system-call path. KiFastCallEntry (SYSENTER), KiSystemService (INT 2Eh and the
; kernel-mode Zw stubs), the shared dispatch through the service descriptor tables, KiServiceExit
; with its user-APC check and XP's exit sequence, KiServiceExit2 (an edited frame), and the common
; exits of trap handlers, laid out at the addresses of XP SP1's ntoskrnl.
;
; Structure offsets (KTHREAD_*, KTRAP_FRAME_*, …) and the PCR_* absolute addresses come from one
; TypeScript description (core/guest/structs.ts); `; @at ADDRESS` lines place the code that
; follows at that exact address (the builder pads with int3 up to it).
;
; What the seed listings show is reproduced as they show it: KiFastCallEntry's size (0x89 bytes
; up to its `jmp KiSystemService+0x5c`), KiSystemService's 0x5C bytes of frame building, the
; dispatch from `mov edi,eax` to `call ebx`, the access-violation chunk's target `mov esp,ebp`,
; KeReturnFromSystemCall and KiServiceExit up to +0x65. The rest is RECONSTRUCTED from public
; descriptions of XP's code (ReactOS's trap macros and entry points for the shape, the symbol
; names of XP's public PDBs — KiFastCallEntry2, KiSystemCallExitBranch, KiSystemCallExit,
; KiSystemCallExit2 — and the instructions the project's issue quotes from XP's listing); each
; reconstructed part says so. See SOURCES.md.
;
; The trap frame (KTRAP_FRAME, 0x8C bytes) both entries build, from ESP upwards:
;   +00 DbgEbp DbgEip DbgArgMark DbgArgPointer TempSegCs TempEsp Dr0..Dr3 Dr6 Dr7
;   +30 SegGs SegEs SegDs Edx Ecx Eax PreviousPreviousMode ExceptionList SegFs
;   +54 Edi Esi Ebx Ebp ErrCode  +68 Eip SegCs EFlags [HardwareEsp HardwareSegSs]
; A SYSENTER or INT 2Eh from ring 3 has the last two; a Zw call from ring 0 stops at EFlags.

; @at 0x8053A260
; --------------------------------------------------------------------------------------------
; Three doors in the 16 bytes before KiFastCallEntry, whose short branches reach back only 128
; bytes (RECONSTRUCTED placement: on XP SP1 KiFastCallEntry2 sits here and the branches go into
; it). The bodies follow the exit code below.
; --------------------------------------------------------------------------------------------
KiFastCallEntry2:                   ; a SYSENTER that was being single-stepped (see KiTrap01)
    jmp near KiFastCallEntry2.body
KiFastCallBadStack:                 ; the frame is not where InitialStack says it must be
    jmp near KiFastCallBadStack.body
Dr_FastCallDrSave:                  ; the thread has debug registers armed
    jmp near Dr_FastCallDrSave.body

; @at 0x8053A270
; --------------------------------------------------------------------------------------------
; KiFastCallEntry — where SYSENTER lands (MSR 0x176). The CPU has loaded CS = 8, SS = 0x10,
; ESP = MSR 0x175 (the DPC stack) and cleared IF; it saved neither the user EIP nor ESP. ntdll's
; SystemCallStub left EAX = service number and EDX = user ESP (the arguments are at EDX+8).
; Because this routine ends by jumping into the middle of KiSystemService (+0x5C), it must do
; itself everything KiSystemService's first 0x5C bytes do for INT 2Eh — in 0x89 bytes. Unlike
; KiSystemService it does not chain the old Thread->TrapFrame (a call from ring 3 has none to
; come back to) and records PreviousPreviousMode as UserMode outright.
; --------------------------------------------------------------------------------------------
KiFastCallEntry:
    ; Kernel segments: FS = the processor's PCR, DS = ES = flat ring-3 data (as XP keeps them).
    mov ecx, KGDT_R3_DATA | 3
    push KGDT_R0_PCR
    pop fs
    mov ds, ecx
    mov es, ecx
    ; The real kernel stack: TSS.Esp0, which lies 0x220 below InitialStack (the FPU save area
    ; and the four unused V86 segment slots sit above the trap frame).
    mov ecx, [fs:KPCR_TSS]
    mov esp, [ecx+KTSS_Esp0]
    ; Build the hardware part of the frame by hand: SS, ESP = user EDX, EFLAGS, CS, EIP.
    push KGDT_R3_DATA | 3
    push edx
    pushfd
KiFastCallEntry.cleanFlags:
    push 2                          ; a clean EFLAGS for the kernel (IF still clear)
    add edx, 8                      ; EDX = the caller's arguments (above two return addresses)
    popfd
    or byte [esp+1], EFLAGS_IF >> 8 ; the saved user EFLAGS has IF set, as it was in ring 3
    push KGDT_R3_CODE | 3
    push SYSTEM_CALL_RET            ; EIP = SharedUserData!SystemCallStub's ret (SP1: a constant)
    ; The rest of the frame, as KiSystemService builds it.
    push 0                          ; ErrCode
    push ebp
    push ebx
    push esi
    push edi
    mov ebx, [PCR_SelfPcr]
    push KGDT_R3_TEB | 3            ; SegFs: the user FS, restored on the way out
    mov esi, [ebx+KPCR_PrcbData_CurrentThread]
    push dword [ebx+KPCR_NtTib_ExceptionList]     ; save the exception list …
    mov dword [ebx+KPCR_NtTib_ExceptionList], -1  ; … and start an empty one
    mov ebp, [esi+KTHREAD_InitialStack]
    push USER_MODE                  ; PreviousPreviousMode: a SYSENTER only comes from ring 3
    sub esp, KTRAP_FRAME_PreviousPreviousMode     ; the rest of the frame (Dbg*, Dr*, segments, volatiles)
    sub ebp, 0x210 + KTRAP_FRAME_LENGTH           ; where this thread's frame must be
    mov byte [esi+KTHREAD_PreviousMode], USER_MODE
    cmp ebp, esp
    jnz short KiFastCallBadStack
    and dword [ebp+KTRAP_FRAME_Dr7], 0
    test byte [esi+KTHREAD_DebugActive], 0xFF
    mov [esi+KTHREAD_TrapFrame], ebp
    jnz short Dr_FastCallDrSave
KiFastCallEntry.debugSaved:
    ; Debugger bookkeeping in the frame: the caller's EBP and EIP, and where its arguments are.
    mov ebx, [ebp+KTRAP_FRAME_Ebp]
    mov edi, [ebp+KTRAP_FRAME_Eip]
    mov [ebp+KTRAP_FRAME_DbgArgPointer], edx
    mov dword [ebp+KTRAP_FRAME_DbgArgMark], 0xBADB0D00
    mov [ebp+KTRAP_FRAME_DbgEbp], ebx
    mov [ebp+KTRAP_FRAME_DbgEip], edi
    ; The frame is complete: interrupts may come in again.
    sti
    jmp short KiSystemService + 0x5C

; --------------------------------------------------------------------------------------------
; KiSystemService — the INT 2Eh handler (a DPL-3 interrupt gate) and the target of the kernel's
; Zw stubs (`pushfd; push 8; call KiSystemService` fakes the interrupt frame with CS = 8).
; Exactly 0x5C bytes of frame building; the shared dispatch follows at +0x5C.
; --------------------------------------------------------------------------------------------
KiSystemService:
    push 0                          ; ErrCode
    push ebp
    push ebx
    push esi
    push edi
    push fs                         ; SegFs: the caller's FS (0x3B from ring 3, 0x30 from ring 0)
    mov ebx, KGDT_R0_PCR
    mov fs, bx
    push dword [PCR_ExceptionList]  ; ExceptionList
    mov dword [PCR_ExceptionList], -1
    mov esi, [PCR_CurrentThread]
    push dword [esi+KTHREAD_PreviousMode]  ; PreviousPreviousMode
    sub esp, KTRAP_FRAME_PreviousPreviousMode
    ; PreviousMode = the caller's CS & 1: UserMode from ring 3, KernelMode from a Zw stub (CS = 8).
    mov ebx, [esp+KTRAP_FRAME_SegCs]
    and ebx, 1
    mov [esi+KTHREAD_PreviousMode], bl
    {load} mov ebp, esp
    ; Chain the frame through its Edx slot: a Zw call made while serving another call returns
    ; to that call's frame.
    mov ebx, [esi+KTHREAD_TrapFrame]
    mov [ebp+KTRAP_FRAME_Edx], ebx
    mov [esi+KTHREAD_TrapFrame], ebp
    cld
    and dword [ebp+KTRAP_FRAME_Dr7], 0
    test byte [esi+KTHREAD_DebugActive], 0xFF
    jnz near KiSystemServiceDebugActive
KiSystemService.enableInterrupts:
    sti

; --------------------------------------------------------------------------------------------
; KiSystemService.repeat (KiSystemService+0x5C): the dispatch both entries share.
; In: EAX = service number, EDX = arguments, ESI = current thread, EBP = trap frame.
; --------------------------------------------------------------------------------------------
KiSystemService.repeat:
    ; Decode the service number: bits 12-13 pick one of four descriptors (0 = ntoskrnl,
    ; 1 = win32k), bits 0-11 the index within it.
    mov edi, eax
    shr edi, 8
    and edi, 0x30
    {load} mov ecx, edi
    add edi, [esi+KTHREAD_ServiceTable]
    {load} mov ebx, eax
    and eax, 0xFFF
    ; The limit check (probe: ssdt-lookup for a number past the table).
KiSystemService.limitCheck:
    cmp eax, [edi+KSERVICE_TABLE_DESCRIPTOR_Limit]
    jnb near KiBBTUnexpectedRange
    ; A win32k call flushes the thread's batched GDI work first.
    cmp ecx, 0x10
    jnz short KiSystemService.notWin32k
    mov ecx, [PCR_Teb]
    xor ebx, ebx
    or ebx, [ecx+TEB_GdiBatchCount]
    jz short KiSystemService.notWin32k
    push edx
    push eax
    call KeGdiFlushUserBatch
    pop eax
    pop edx
KiSystemService.notWin32k:
    inc dword [PCR_KeSystemCalls]
    ; How many argument bytes, and which routine: the SSDT lookup (probe: ssdt-lookup).
    {load} mov esi, edx
    mov ebx, [edi+KSERVICE_TABLE_DESCRIPTOR_Number]
    xor ecx, ecx
    mov cl, [eax+ebx]
    mov edi, [edi+KSERVICE_TABLE_DESCRIPTOR_Base]
KiSystemService.serviceTableLookup:
    mov ebx, [edi+eax*4]
    ; Copy the arguments to the kernel stack. From user mode the argument pointer must lie below
    ; MmUserProbeAddress (the check is made here and excused for kernel callers below).
    sub esp, ecx
    shr ecx, 2
    {load} mov edi, esp
    cmp esi, [MmUserProbeAddress]
    jnb near KiSystemServiceAccessViolation
KiSystemService.copyArguments:
    ; A page fault here (the arguments run into unmapped or no-access user memory) does not stop
    ; the system: KiTrap0E sees this address and resumes at KiSystemService.callReturn with
    ; STATUS_ACCESS_VIOLATION, as XP's trap handler does for this `rep movsd`.
    rep movsd
KiSystemService.call:
    call ebx
KiSystemService.callReturn:
    ; Back to the trap frame (the target of the access-violation chunk and of KiTrap0E too).
    {load} mov esp, ebp

; --------------------------------------------------------------------------------------------
; KeReturnFromSystemCall / KiServiceExit: unchain the trap frame, deliver user APCs when
; returning to user mode, restore PreviousMode and the exception list, and leave.
; In: EAX = NTSTATUS, EBP = ESP = trap frame.
; --------------------------------------------------------------------------------------------
KeReturnFromSystemCall:
    mov ecx, [PCR_CurrentThread]
    mov edx, [ebp+KTRAP_FRAME_Edx]
    mov [ecx+KTHREAD_TrapFrame], edx
KiServiceExit:
    cli
    test dword [ebp+KTRAP_FRAME_EFlags], EFLAGS_VM
    jnz short KiServiceExit.checkApc
    test byte [ebp+KTRAP_FRAME_SegCs], 1
    jz short KiServiceExit.restore           ; back to kernel mode: user APCs are not delivered
KiServiceExit.checkApc:
    ; The APC loop: each pass clears Alerted[KernelMode] and looks at UserApcPending.
    mov ebx, [PCR_CurrentThread]
    mov byte [ebx+KTHREAD_Alerted], 0
KiServiceExit.apcCheck:
    cmp byte [ebx+KTHREAD_ApcState_UserApcPending], 0
    jz short KiServiceExit.restore
    ; A user APC is pending: deliver it at APC_LEVEL. KiDeliverApc edits the trap frame so the
    ; return to user mode lands in ntdll!KiUserApcDispatcher.
    {load} mov ebx, ebp
    mov [ebx+KTRAP_FRAME_Eax], eax          ; keep the service's status across the delivery
    mov dword [ebx+KTRAP_FRAME_SegFs], KGDT_R3_TEB | 3
    mov dword [ebx+KTRAP_FRAME_SegDs], KGDT_R3_DATA | 3
    mov dword [ebx+KTRAP_FRAME_SegEs], KGDT_R3_DATA | 3
    mov dword [ebx+KTRAP_FRAME_SegGs], 0
    mov ecx, APC_LEVEL
    call [__imp_KfRaiseIrql]
    push eax                                ; the old IRQL
    sti
    push ebx                                ; TrapFrame
    push 0                                  ; Reserved
    push USER_MODE                          ; DeliveryMode
    call KiDeliverApc
    pop ecx
    call [__imp_KfLowerIrql]
    mov eax, [ebx+KTRAP_FRAME_Eax]
    cli
    jmp short KiServiceExit.checkApc
    times 0x67 - ($ - KiServiceExit) db 0xCC   ; XP's `align 4`: the tail starts at KiServiceExit+0x67
KiServiceExit.restore:
    ; RECONSTRUCTED from here to KiSystemCallExit2 (see the file's head).
    ; Restore the processor's exception list and the PreviousMode saved on entry.
    mov edx, [esp+KTRAP_FRAME_ExceptionList]
    mov [PCR_ExceptionList], edx
    mov ecx, [esp+KTRAP_FRAME_PreviousPreviousMode]
    mov esi, [PCR_CurrentThread]
    mov [esi+KTHREAD_PreviousMode], cl
    ; Debug registers armed in the frame (a user thread with DebugActive): put them back.
    test dword [ebp+KTRAP_FRAME_Dr7], DR7_ACTIVE_MASK
    jz short KiServiceExit.debugRestored
    call KiRestoreDebugRegisters
KiServiceExit.debugRestored:
    ; A virtual-8086 frame needs the V86 exit, which this machine never takes (no V86 mode).
    test dword [esp+KTRAP_FRAME_EFlags], EFLAGS_VM
    jnz near KiV86TrapReturn
    ; An edited frame (a kernel-mode ESP moved by NtContinue or an exception handler) has lost the
    ; selector bits of SegCs: the full exit rebuilds the IRETD frame at TempEsp.
    test word [esp+KTRAP_FRAME_SegCs], FRAME_EDITED
    jz near KiEditedTrapReturn
    ; The system-call exit proper: FS and the non-volatile registers from the frame, EAX (the
    ; status) as it is, ECX and EDX as the way out needs them.
    lea esp, [ebp+KTRAP_FRAME_SegFs]
    pop fs
    lea esp, [ebp+KTRAP_FRAME_Edi]
    pop edi
    pop esi
    pop ebx
    pop ebp
    add esp, 4                              ; ErrCode
    test dword [esp+4], 1                   ; the saved CS: back to user mode?
KiSystemCallExitBranch:
    ; As built, a return to user mode goes by IRETD; at boot, on a CPU with SYSENTER, the
    ; kernel adds KiSystemCallExit2 - KiSystemCallExit to this branch's displacement byte
    ; (KiSystemCallExitAdjust), so it goes by SYSEXIT instead — whatever the way in was.
    jnz short KiSystemCallExit
    ; Back to a kernel-mode Zw caller: EIP into EDX, CS into ECX, EFLAGS restored, and a jump to
    ; the return address its `call KiSystemService` pushed; the stub's `ret N` follows.
    pop edx
    pop ecx
    popfd
    jmp edx
KiSystemCallExit:
    iretd
KiSystemCallExit2:
    ; SYSEXIT cannot set TF where it belongs: a single-stepped thread leaves by IRETD.
    test byte [esp+9], EFLAGS_TF >> 8
    jnz short KiSystemCallExit
    pop edx                                 ; EDX = EIP for SYSEXIT
    add esp, 4                              ; CS
    and byte [esp+1], ~(EFLAGS_IF >> 8)     ; popfd restores the user EFLAGS with IF clear …
    popfd
    pop ecx                                 ; ECX = ESP for SYSEXIT
    ; … and STI sets it: STI takes effect only after the next instruction, so no interrupt can
    ; arrive between here and ring 3, yet ring 3 starts with interrupts enabled.
    sti
    sysexit

; --------------------------------------------------------------------------------------------
; KiServiceExit2: the exit of a service that rewrote its caller's whole trap frame (NtContinue,
; NtRaiseException): every register comes from the frame, and the way out is always IRETD.
; In: EBP = ESP = the trap frame (already unchained from the thread).
; --------------------------------------------------------------------------------------------
KiServiceExit2:
    cli
    call KiDispatchUserApcs
    mov edx, [esp+KTRAP_FRAME_ExceptionList]
    mov [PCR_ExceptionList], edx
    mov ecx, [esp+KTRAP_FRAME_PreviousPreviousMode]
    mov esi, [PCR_CurrentThread]
    mov [esi+KTHREAD_PreviousMode], cl
    jmp short KiTrapExitCommon

; --------------------------------------------------------------------------------------------
; KiExceptionExit: the way out of a trap handler (an exception dispatched, a page fault
; resolved). Like KiServiceExit it delivers pending user APCs when it returns to user mode; it
; leaves PreviousMode alone (a trap does not change it) and restores every register.
; In: EBP = ESP = the trap frame.
; --------------------------------------------------------------------------------------------
KiExceptionExit:
    cli
    call KiDispatchUserApcs
    mov edx, [esp+KTRAP_FRAME_ExceptionList]
    mov [PCR_ExceptionList], edx
KiTrapExitCommon:
    test dword [ebp+KTRAP_FRAME_Dr7], DR7_ACTIVE_MASK
    jz short KiTrapExitCommon.debugRestored
    call KiRestoreDebugRegisters
KiTrapExitCommon.debugRestored:
    test dword [esp+KTRAP_FRAME_EFlags], EFLAGS_VM
    jnz near KiV86TrapReturn
    test word [esp+KTRAP_FRAME_SegCs], FRAME_EDITED
    jz short KiEditedTrapReturn
; KiTrapReturn: every register from the frame, then IRETD (to the same ring, or to ring 3 with
; its SS:ESP). The ErrCode slot says where the IRETD frame is: the frame's own Eip/SegCs/EFlags.
KiTrapReturn:
    lea ebx, [ebp+KTRAP_FRAME_Eip]
    mov [ebp+KTRAP_FRAME_ErrCode], ebx
KiTrapReturn.restore:
    lea esp, [ebp+KTRAP_FRAME_SegGs]
    pop gs
    pop es
    pop ds
    pop edx
    pop ecx
    pop eax
    lea esp, [ebp+KTRAP_FRAME_SegFs]
    pop fs
    lea esp, [ebp+KTRAP_FRAME_Edi]
    pop edi
    pop esi
    pop ebx
    pop ebp
    pop esp                                 ; ErrCode: the IRETD frame
    iretd

; KiEditedTrapReturn: a kernel-mode frame whose ESP was changed (KeContextToKframes put the new
; ESP in TempEsp and the real CS in TempSegCs). Build EIP, CS, EFLAGS just below the new ESP and
; IRETD from there. (RECONSTRUCTED.)
KiEditedTrapReturn:
    mov ebx, [esp+KTRAP_FRAME_TempSegCs]
    mov [esp+KTRAP_FRAME_SegCs], ebx
    mov ebx, [esp+KTRAP_FRAME_TempEsp]
    sub ebx, 12
    mov [esp+KTRAP_FRAME_ErrCode], ebx
    mov esi, [esp+KTRAP_FRAME_EFlags]
    mov [ebx+8], esi
    mov esi, [esp+KTRAP_FRAME_SegCs]
    mov [ebx+4], esi
    mov esi, [esp+KTRAP_FRAME_Eip]
    mov [ebx], esi
    jmp short KiTrapReturn.restore

; KiV86TrapReturn: XP leaves a virtual-8086 frame with the V86 segment slots. This machine has no
; V86 mode (EFLAGS.VM can never be set), so reaching here means the kernel is corrupt.
KiV86TrapReturn:
    push 0
    push 0
    push 0
    push EFLAGS_VM
    push UNEXPECTED_KERNEL_MODE_TRAP
    call KeBugCheckEx

; --------------------------------------------------------------------------------------------
; KiDispatchUserApcs: the user-APC loop of KiServiceExit2 and KiExceptionExit (KiServiceExit has
; its own, inline, as the seed listing shows it). When the frame returns to user mode: clear
; Alerted[KernelMode], and while a user APC is pending deliver it at APC_LEVEL (KiDeliverApc
; points the frame at ntdll!KiUserApcDispatcher). In: EBP = the trap frame, interrupts off.
; Uses EAX, EBX, ECX, EDX (the exits restore every register from the frame afterwards).
; --------------------------------------------------------------------------------------------
KiDispatchUserApcs:
    test dword [ebp+KTRAP_FRAME_EFlags], EFLAGS_VM
    jnz short KiDispatchUserApcs.checkApc
    test byte [ebp+KTRAP_FRAME_SegCs], 1
    jz short KiDispatchUserApcs.done
KiDispatchUserApcs.checkApc:
    mov ebx, [PCR_CurrentThread]
    mov byte [ebx+KTHREAD_Alerted], 0
KiDispatchUserApcs.apcCheck:
    cmp byte [ebx+KTHREAD_ApcState_UserApcPending], 0
    jz short KiDispatchUserApcs.done
    {load} mov ebx, ebp
    mov dword [ebx+KTRAP_FRAME_SegFs], KGDT_R3_TEB | 3
    mov dword [ebx+KTRAP_FRAME_SegDs], KGDT_R3_DATA | 3
    mov dword [ebx+KTRAP_FRAME_SegEs], KGDT_R3_DATA | 3
    mov dword [ebx+KTRAP_FRAME_SegGs], 0
    mov ecx, APC_LEVEL
    call [__imp_KfRaiseIrql]
    push eax
    sti
    push ebx
    push 0
    push USER_MODE
    call KiDeliverApc
    pop ecx
    call [__imp_KfLowerIrql]
    cli
    jmp short KiDispatchUserApcs.checkApc
KiDispatchUserApcs.done:
    ret

; --------------------------------------------------------------------------------------------
; Debug registers. A thread with KTHREAD.DebugActive (its CONTEXT armed DR7) has them saved into
; the frame on every entry from user mode, and the kernel runs with DR7 = 0; every exit to user
; mode with an armed Dr7 in the frame puts them back.
; --------------------------------------------------------------------------------------------

; In: EBP = the trap frame. Saves DR0-DR3, DR6, DR7 into it and disarms DR7. Keeps EAX, EDX.
KiSaveDebugRegisters:
    push ebx
    mov ebx, dr0
    mov [ebp+KTRAP_FRAME_Dr0], ebx
    mov ebx, dr1
    mov [ebp+KTRAP_FRAME_Dr1], ebx
    mov ebx, dr2
    mov [ebp+KTRAP_FRAME_Dr2], ebx
    mov ebx, dr3
    mov [ebp+KTRAP_FRAME_Dr3], ebx
    mov ebx, dr6
    mov [ebp+KTRAP_FRAME_Dr6], ebx
    mov ebx, dr7
    mov [ebp+KTRAP_FRAME_Dr7], ebx
    xor ebx, ebx
    mov dr7, ebx
    pop ebx
    ret

; In: EBP = the trap frame. Back to user mode only: loads DR0-DR3, DR6, DR7 from it.
KiRestoreDebugRegisters:
    test byte [ebp+KTRAP_FRAME_SegCs], 1
    jz short .done
    push ebx
    mov ebx, [ebp+KTRAP_FRAME_Dr0]
    mov dr0, ebx
    mov ebx, [ebp+KTRAP_FRAME_Dr1]
    mov dr1, ebx
    mov ebx, [ebp+KTRAP_FRAME_Dr2]
    mov dr2, ebx
    mov ebx, [ebp+KTRAP_FRAME_Dr3]
    mov dr3, ebx
    mov ebx, [ebp+KTRAP_FRAME_Dr6]
    mov dr6, ebx
    mov ebx, [ebp+KTRAP_FRAME_Dr7]
    mov dr7, ebx
    pop ebx
.done:
    ret

; --------------------------------------------------------------------------------------------
; Out-of-line paths of the entry and the dispatch.
; --------------------------------------------------------------------------------------------

; KiFastCallEntry2 (RECONSTRUCTED): KiTrap01 sends here a SYSENTER executed with TF set (the
; #DB struck KiFastCallEntry's first instruction in ring 0). Start as KiFastCallEntry does, but
; keep TF in the saved EFLAGS, so the return — by IRETD, see KiSystemCallExit2 — goes on
; single-stepping the user code.
KiFastCallEntry2.body:
    mov ecx, KGDT_R3_DATA | 3
    push KGDT_R0_PCR
    pop fs
    mov ds, ecx
    mov es, ecx
    mov ecx, [fs:KPCR_TSS]
    mov esp, [ecx+KTSS_Esp0]
    push KGDT_R3_DATA | 3
    push edx
    pushfd
    or dword [esp], EFLAGS_TF
    jmp near KiFastCallEntry.cleanFlags

; KiFastCallBadStack (RECONSTRUCTED, after ReactOS's description of XP's path): the frame is not
; at InitialStack - 0x29C, so TSS.Esp0 is not this thread's (on XP: a thread that came from
; virtual-8086 mode). Start over on Esp0 with the frame of a V86-mode invalid opcode — four V86
; segment slots, SS, ESP, EFLAGS with VM and IF, CS, EIP 0 — and go to KiTrap06 like XP.
KiFastCallBadStack.body:
    mov ecx, [fs:KPCR_TSS]
    mov esp, [ecx+KTSS_Esp0]
    push 0
    push 0
    push 0
    push 0
    push KGDT_R3_DATA | 3
    push 0
    push EFLAGS_VM | EFLAGS_IF | 2
    push KGDT_R3_CODE | 3
    push 0
    jmp near KiTrap06

; Dr_FastCallDrSave (RECONSTRUCTED): KiFastCallEntry found KTHREAD.DebugActive set. In: EBP =
; the frame, ESI = the thread, EDX = the arguments. Save the user's debug registers, then carry on.
Dr_FastCallDrSave.body:
    call KiSaveDebugRegisters
    jmp near KiFastCallEntry.debugSaved

; The same for KiSystemService (INT 2Eh or a Zw stub): only a frame from user mode has user
; debug registers to save.
KiSystemServiceDebugActive:
    test byte [ebp+KTRAP_FRAME_SegCs], 1
    jz near KiSystemService.enableInterrupts
    push eax
    call KiSaveDebugRegisters
    pop eax
    jmp near KiSystemService.enableInterrupts

; The number is past its table's limit. A win32k number (table 1) on a thread that is not yet a
; GUI thread converts it (its ServiceTable becomes KeServiceDescriptorTableShadow) and retries;
; anything else is STATUS_INVALID_SYSTEM_SERVICE.
KiBBTUnexpectedRange:
    cmp ecx, 0x10
    jnz short KiBBTUnexpectedRange.invalid
    push edx
    push ebx
    call PsConvertToGuiThread
    or eax, eax
    pop eax                                 ; the original service number
    pop edx
    jz near KiSystemService.repeat
.invalid:
    mov eax, STATUS_INVALID_SYSTEM_SERVICE
    jmp near KeReturnFromSystemCall

; The argument pointer is at or above MmUserProbeAddress. A kernel-mode caller (a Zw stub) may
; pass any kernel address; from user mode it is an access violation. The way back goes through
; `mov esp, ebp` (KiSystemService.callReturn), which drops the space reserved for the arguments,
; as the seed's listing shows (loc_4077EC, referenced from _KiFastCallEntry+2AF).
KiSystemServiceAccessViolation:
    test byte [ebp+KTRAP_FRAME_SegCs], 1
    jz near KiSystemService.copyArguments
    mov eax, STATUS_ACCESS_VIOLATION
    jmp near KiSystemService.callReturn

; --------------------------------------------------------------------------------------------
; The kernel's imports from hal.dll (XP's ntoskrnl calls the IRQL routines through them), and
; MmUserProbeAddress, the variable the dispatch compares the argument pointer with.
; --------------------------------------------------------------------------------------------
align 4
__imp_KfRaiseIrql:
    dd hal!KfRaiseIrql
__imp_KfLowerIrql:
    dd hal!KfLowerIrql
MmUserProbeAddress:
    dd MM_USER_PROBE_ADDRESS
