; ntdll: the user-mode entry points the kernel sends a thread to — KiUserApcDispatcher (a user
; APC), KiUserExceptionDispatcher (an exception) — and the user-mode halves of exception
; handling: RtlpRaiseDispatch and RtlpGetStackLimits. RtlDispatchException, RtlUnwind,
; RtlCaptureContext, RtlRaiseException and RtlRaiseStatus come from rtl-seh.asm, assembled here
; and into ntoskrnl.
; RECONSTRUCTED after ReactOS's ntdll dispatch code and XP's documented behaviour.

; --------------------------------------------------------------------------------------------
; KiUserApcDispatcher: where KiDeliverApc sends a thread with a user APC. The stack holds
; NormalRoutine, NormalContext, SystemArgument1, SystemArgument2 and the CONTEXT to resume.
; --------------------------------------------------------------------------------------------
KiUserApcDispatcher:
    lea edi, [esp+0x10]            ; the CONTEXT
    pop eax                        ; NormalRoutine …
    call eax                       ; … (NormalContext, SystemArgument1, SystemArgument2)
    push 1                         ; TestAlert: another queued APC is delivered next
    push edi
    call ZwContinue                ; resumes the CONTEXT; does not return
    int3

; --------------------------------------------------------------------------------------------
; KiUserExceptionDispatcher: where the kernel sends a thread that took an exception. The stack
; holds a pointer to the EXCEPTION_RECORD, a pointer to the CONTEXT of the faulting code, then
; the two themselves. The thread's own handlers (the SEH chain at fs:[0]) are asked; one that says
; ExceptionContinueExecution gets its CONTEXT resumed (ZwContinue); if none does, the exception
; goes back to the kernel for its second chance (ZwRaiseException, FirstChance = FALSE), which
; ends the process with the exception code.
; --------------------------------------------------------------------------------------------
KiUserExceptionDispatcher:
    mov ecx, [esp+4]               ; the CONTEXT
    mov ebx, [esp]                 ; the EXCEPTION_RECORD
    push ecx
    push ebx
    call RtlDispatchException
    or al, al
    jz short .unhandled
    pop ebx
    pop ecx
    push 0                         ; TestAlert = FALSE
    push ecx
    call ZwContinue
    jmp short .failed
.unhandled:
    pop ebx
    pop ecx
    push 0                         ; FirstChance = FALSE: the second chance
    push ecx
    push ebx
    call ZwRaiseException
.failed:
    ; Only a ZwContinue or ZwRaiseException that failed comes back: raise that status.
    push eax
    call RtlRaiseStatus
    int3

; RtlpRaiseDispatch(ExceptionRecord, ContextRecord), user half of RtlRaiseException
; (rtl-seh.asm): dispatch right here in user mode. A handler that continues gets its CONTEXT
; resumed; with none, the kernel takes its second chance. EAX: the status a failed
; ZwContinue / ZwRaiseException returned.
RtlpRaiseDispatch:
    push ebp
    {load} mov ebp, esp
    push dword [ebp+12]
    push dword [ebp+8]
    call RtlDispatchException
    or al, al
    jz short .unhandled
    push 0                         ; TestAlert = FALSE
    push dword [ebp+12]
    call ZwContinue
    jmp short .failed
.unhandled:
    push 0                         ; FirstChance = FALSE
    push dword [ebp+12]
    push dword [ebp+8]
    call ZwRaiseException
.failed:
    pop ebp
    ret 8

; RtlpGetStackLimits (user): EAX = the lowest, EDX = one past the highest address of the thread's
; stack, from its TEB (NT_TIB.StackLimit and StackBase).
RtlpGetStackLimits:
    mov eax, [fs:NT_TIB_StackLimit]
    mov edx, [fs:NT_TIB_StackBase]
    ret

; --------------------------------------------------------------------------------------------
; The return address of a program's `start`: its EAX is the exit status.
; --------------------------------------------------------------------------------------------
LdrpProgramExit:
    push eax                       ; ExitStatus
    push -1                        ; NtCurrentProcess()
    call ZwTerminateProcess
    int3
