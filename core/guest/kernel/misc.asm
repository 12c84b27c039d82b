; ntoskrnl: routines around the system-call path that are x86 but not part of it — NtContinue's
; exit through KiServiceExit2, the trap handlers' common tail, and the trampoline guest code
; called from the TypeScript side returns through.

; --------------------------------------------------------------------------------------------
; NtContinue(Context, TestAlert): the body (TypeScript) copies the CONTEXT into the caller's trap
; frame; the routine then leaves through KiServiceExit2, which restores every register from that
; frame (not just the non-volatile ones) and returns with IRETD.
; --------------------------------------------------------------------------------------------
NtContinue:
    push ebp
    {load} mov ebp, esp
    mov eax, ESCAPE_SERVICE_NtContinue
    out ESCAPE_PORT, eax
    or eax, eax
    jnz short .failed
    ; Unwind to the trap frame and unchain it, as KeReturnFromSystemCall would.
    mov ecx, [PCR_CurrentThread]
    mov ebp, [ecx+KTHREAD_TrapFrame]
    mov edx, [ebp+KTRAP_FRAME_Edx]
    mov [ecx+KTHREAD_TrapFrame], edx
    {load} mov esp, ebp
    jmp near KiServiceExit2
.failed:
    pop ebp
    ret 8

; --------------------------------------------------------------------------------------------
; Trap handlers (IDT vectors 0x00-0x1F). Each pushes a dummy error code where the CPU pushes none,
; then its vector, and joins KiTrapCommon, whose body (TypeScript) decides: a fault in user mode
; ends the thread with the matching exception code; one in kernel mode is a bug check.
; --------------------------------------------------------------------------------------------
KiTrapCommon:
    mov eax, ESCAPE_ROUTINE_KiTrapCommon
    out ESCAPE_PORT, eax
    hlt                             ; not reached: the body stops the thread or the system

; The target of the return address ntflow pushes when its TypeScript side calls a guest routine
; (a driver's DriverEntry or dispatch routine, a work item): the routine's `ret` lands here.
KiCallbackReturnTrampoline:
    out CALLBACK_RETURN_PORT, eax
    hlt
