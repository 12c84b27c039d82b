; ntoskrnl: the system-call path. KiFastCallEntry (SYSENTER), KiSystemService (INT 2Eh and the
; kernel-mode Zw stubs), the shared dispatch through the service descriptor tables, and
; KiServiceExit with its user-APC check, laid out at the addresses of XP SP1's ntoskrnl.
;
; Structure offsets (KTHREAD_*, KTRAP_FRAME_*, …) and the PCR_* absolute addresses come from one
; TypeScript description (core/guest/structs.ts); `; @at ADDRESS` lines place the code that
; follows at that exact address (the builder pads with int3 up to it).
;
; The trap frame (KTRAP_FRAME, 0x8C bytes) both entries build, from ESP upwards:
;   +00 DbgEbp DbgEip DbgArgMark DbgArgPointer TempSegCs TempEsp Dr0..Dr3 Dr6 Dr7
;   +30 SegGs SegEs SegDs Edx Ecx Eax PreviousPreviousMode ExceptionList SegFs
;   +54 Edi Esi Ebx Ebp ErrCode  +68 Eip SegCs EFlags [HardwareEsp HardwareSegSs]
; A SYSENTER or INT 2Eh from ring 3 has the last two; a Zw call from ring 0 stops at EFlags.

; @at 0x8053A260
; --------------------------------------------------------------------------------------------
; KiFastCallBadStack: the trap frame KiFastCallEntry built is not where InitialStack says the
; thread's frame must be: the kernel stack is corrupt. Nothing can be trusted; stop the system.
; --------------------------------------------------------------------------------------------
KiFastCallBadStack:
    push 0
    push 0
    push 0
    push 0
    push UNEXPECTED_KERNEL_MODE_TRAP
    call KeBugCheckEx

; @at 0x8053A270
; --------------------------------------------------------------------------------------------
; KiFastCallEntry — where SYSENTER lands (MSR 0x176). The CPU has loaded CS = 8, SS = 0x10,
; ESP = MSR 0x175 (the DPC stack) and cleared IF; it saved neither the user EIP nor ESP. ntdll's
; SystemCallStub left EAX = service number and EDX = user ESP (the arguments are at EDX+8).
; Because this routine ends by jumping into the middle of KiSystemService (+0x5C), it must do
; itself everything KiSystemService's first 0x5C bytes do for INT 2Eh — in 0x89 bytes.
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
    mov ecx, [PCR_TSS]
    mov esp, [ecx+KTSS_Esp0]
    ; Build the hardware part of the frame by hand: SS, ESP = user EDX, EFLAGS, CS, EIP.
    push KGDT_R3_DATA | 3
    push edx
    pushfd
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
    push dword [esi+KTHREAD_PreviousMode]         ; PreviousPreviousMode
    sub esp, KTRAP_FRAME_PreviousPreviousMode     ; the rest of the frame (Dbg*, Dr*, segments, volatiles)
    sub ebp, 0x210 + KTRAP_FRAME_LENGTH           ; where this thread's frame must be
    mov byte [esi+KTHREAD_PreviousMode], USER_MODE ; SYSENTER only comes from ring 3
    cmp ebp, esp
    jnz short KiFastCallBadStack
    and dword [ebp+KTRAP_FRAME_Dr7], 0
    ; Chain the frame: the previous Thread->TrapFrame is kept in the frame's Edx slot.
    mov ebx, [esi+KTHREAD_TrapFrame]
    mov [ebp+KTRAP_FRAME_Edx], ebx
    mov [esi+KTHREAD_TrapFrame], ebp
    ; Debugger bookkeeping in the frame, as XP keeps it.
    mov [ebp+KTRAP_FRAME_DbgArgPointer], edx
    mov dword [ebp+KTRAP_FRAME_DbgArgMark], 0xBADB0D00
    mov ebx, [ebp+KTRAP_FRAME_Ebp]
    mov [ebp+KTRAP_FRAME_DbgEbp], ebx
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
    ; Chain the frame through its Edx slot.
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
    rep movsd
KiSystemService.call:
    call ebx
KiSystemService.callReturn:
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
KiServiceExit.restore:
    ; Restore the exception list and PreviousMode saved on entry.
    mov edx, [esp+KTRAP_FRAME_ExceptionList]
    mov [PCR_ExceptionList], edx
    mov ecx, [esp+KTRAP_FRAME_PreviousPreviousMode]
    mov esi, [PCR_CurrentThread]
    mov [esi+KTHREAD_PreviousMode], cl
    ; Back to a kernel-mode Zw caller, or to user mode?
    test byte [esp+KTRAP_FRAME_SegCs], 1
    jz near KiSystemCallReturn
    test dword [esp+KTRAP_FRAME_EFlags], EFLAGS_TF
    jnz short KiSystemCallExit              ; single-stepping: IRETD sets TF in the right place
KiSystemCallExitBranch:
    ; Patched at boot like XP's: SYSEXIT (KiSystemCallExit2) when the CPU has SYSENTER,
    ; IRETD (KiSystemCallExit) when it does not — whichever way the call came in.
    jmp short KiSystemCallExit2

; Return to user mode by IRETD: restore the non-volatile registers and FS, drop ErrCode.
KiSystemCallExit:
    lea esp, [esp+KTRAP_FRAME_SegFs]
    pop fs
    pop edi
    pop esi
    pop ebx
    pop ebp
    add esp, 4                              ; ErrCode
    iretd

; Return to user mode by SYSEXIT: EDX = the frame's Eip, ECX = its HardwareEsp.
KiSystemCallExit2:
    mov edx, [esp+KTRAP_FRAME_Eip]
    mov ecx, [esp+KTRAP_FRAME_HardwareEsp]
    and byte [esp+KTRAP_FRAME_EFlags+1], ~(EFLAGS_IF >> 8)   ; restore EFLAGS with IF clear …
    lea esp, [esp+KTRAP_FRAME_SegFs]
    pop fs
    pop edi
    pop esi
    pop ebx
    pop ebp
    add esp, 12                             ; ErrCode, Eip, SegCs
    popfd
    ; … and set it here: STI takes effect only after the next instruction, so no interrupt can
    ; arrive between here and ring 3, yet ring 3 starts with interrupts enabled.
    sti
    sysexit

; Return to a kernel-mode Zw caller: `popfd; jmp` to the return address the stub's call pushed.
KiSystemCallReturn:
    mov edx, [esp+KTRAP_FRAME_Eip]
    lea esp, [esp+KTRAP_FRAME_SegFs]
    pop fs
    pop edi
    pop esi
    pop ebx
    pop ebp
    add esp, 12                             ; ErrCode, Eip, SegCs
    popfd
    jmp edx

; --------------------------------------------------------------------------------------------
; KiServiceExit2: like KiServiceExit, but for a trap frame a service rewrote completely
; (NtContinue): every register comes from the frame, and the way out is always IRETD.
; --------------------------------------------------------------------------------------------
KiServiceExit2:
    cli
    test byte [ebp+KTRAP_FRAME_SegCs], 1
    jz short KiServiceExit2.restore
KiServiceExit2.checkApc:
    mov ebx, [PCR_CurrentThread]
    mov byte [ebx+KTHREAD_Alerted], 0
KiServiceExit2.apcCheck:
    cmp byte [ebx+KTHREAD_ApcState_UserApcPending], 0
    jz short KiServiceExit2.restore
    {load} mov ebx, ebp
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
    jmp short KiServiceExit2.checkApc
KiServiceExit2.restore:
    mov edx, [esp+KTRAP_FRAME_ExceptionList]
    mov [PCR_ExceptionList], edx
    mov ecx, [esp+KTRAP_FRAME_PreviousPreviousMode]
    mov esi, [PCR_CurrentThread]
    mov [esi+KTHREAD_PreviousMode], cl
    mov edx, [esp+KTRAP_FRAME_Edx]
    mov ecx, [esp+KTRAP_FRAME_Ecx]
    mov eax, [esp+KTRAP_FRAME_Eax]
    lea esp, [esp+KTRAP_FRAME_SegFs]
    pop fs
    pop edi
    pop esi
    pop ebx
    pop ebp
    add esp, 4
    iretd

; --------------------------------------------------------------------------------------------
; Out-of-line paths of the dispatch.
; --------------------------------------------------------------------------------------------

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
; pass any kernel address; from user mode it is an access violation.
KiSystemServiceAccessViolation:
    test byte [ebp+KTRAP_FRAME_SegCs], 1
    jz near KiSystemService.copyArguments
    mov eax, STATUS_ACCESS_VIOLATION
    jmp near KeReturnFromSystemCall

; The thread has debug registers armed: XP saves them into the frame here. This machine has no
; debug registers, so there is nothing to save.
KiSystemServiceDebugActive:
    jmp near KiSystemService.enableInterrupts

; --------------------------------------------------------------------------------------------
; IRQL: the PCR's Irql byte. (XP's hal exports these; ntoskrnl calls them through its imports.)
; --------------------------------------------------------------------------------------------
KfRaiseIrql:                                ; fastcall: CL = new IRQL; returns the old one in AL
    movzx eax, byte [PCR_Irql]
    mov [PCR_Irql], cl
    ret
KfLowerIrql:                                ; fastcall: CL = new IRQL
    mov [PCR_Irql], cl
    ret
__imp_KfRaiseIrql:
    dd KfRaiseIrql
__imp_KfLowerIrql:
    dd KfLowerIrql
MmUserProbeAddress:
    dd MM_USER_PROBE_ADDRESS
