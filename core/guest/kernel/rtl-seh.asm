; Rtl: structured exception handling on x86, assembled into both ntoskrnl and ntdll (as XP builds
; the same Rtl sources into both): RtlDispatchException walks the registration records linked at
; fs:[0] (the KPCR's ExceptionList in kernel mode, the TEB's in user mode) and asks each frame's
; handler; RtlUnwind calls the handlers of the frames being left and unlinks them; RtlCaptureContext
; takes the registers into a CONTEXT. Each image supplies RtlpGetStackLimits (where records may
; be), RtlpRaiseDispatch (what RtlRaiseException does with the exception) and ZwContinue.
;
; RECONSTRUCTED from public descriptions of the x86 SEH protocol (Matt Pietrek's "A Crash Course
; on the Depths of Win32 Structured Exception Handling" for the record and handler contract,
; ReactOS's RtlDispatchException / RtlUnwind / RtlpExecuteHandler for the order of the checks).
;
; A registration record is { Next, Handler } on the stack; a handler is
;   EXCEPTION_DISPOSITION Handler(ExceptionRecord, EstablisherFrame, ContextRecord, DispatcherContext)
; and answers ExceptionContinueExecution (0), ExceptionContinueSearch (1), ExceptionNestedException
; (2) or ExceptionCollidedUnwind (3).

; --------------------------------------------------------------------------------------------
; BOOLEAN RtlDispatchException(ExceptionRecord, ContextRecord): TRUE when a handler said
; ExceptionContinueExecution (the caller resumes the CONTEXT, which the handler may have changed),
; FALSE when the chain ran out or a record lies outside the stack (EXCEPTION_STACK_INVALID).
; --------------------------------------------------------------------------------------------
RtlDispatchException:
    push ebp
    {load} mov ebp, esp
    sub esp, 16                             ; [ebp-4] DispatcherContext, [ebp-8] stack low,
    push ebx                                ; [ebp-12] stack high, [ebp-16] the nested frame
    push esi
    push edi
    call RtlpGetStackLimits
    mov [ebp-8], eax
    mov [ebp-12], edx
    mov dword [ebp-16], 0
    mov ebx, [ebp+8]                        ; the record
    mov esi, [fs:0]                         ; the first registration record
RtlDispatchException.next:
    cmp esi, -1
    jz near RtlDispatchException.notHandled
    ; A record must lie whole on the thread's stack and be dword-aligned.
    cmp esi, [ebp-8]
    jb near RtlDispatchException.stackInvalid
    lea eax, [esi+EXCEPTION_REGISTRATION_RECORD_LENGTH]
    cmp eax, [ebp-12]
    ja near RtlDispatchException.stackInvalid
    test esi, 3
    jnz near RtlDispatchException.stackInvalid
    push dword [esi+EXCEPTION_REGISTRATION_RECORD_Handler]
    lea eax, [ebp-4]
    push eax                                ; DispatcherContext
    push dword [ebp+12]                     ; ContextRecord
    push esi                                ; EstablisherFrame
    push ebx                                ; ExceptionRecord
    call RtlpExecuteHandlerForException
    ; Once the frame whose handler raised a nested exception has been asked, the nesting is over.
    cmp esi, [ebp-16]
    jnz short .disposition
    and dword [ebx+EXCEPTION_RECORD_ExceptionFlags], ~EXCEPTION_NESTED_CALL
    mov dword [ebp-16], 0
.disposition:
    cmp eax, EXCEPTION_CONTINUE_EXECUTION
    jz short .continueExecution
    cmp eax, EXCEPTION_CONTINUE_SEARCH
    jz short .search
    cmp eax, EXCEPTION_NESTED_EXCEPTION
    jnz short .invalidDisposition
    ; An exception raised while this handler ran an earlier dispatch: note the frame of that
    ; earlier handler; until the walk gets past it, this is a nested call.
    or dword [ebx+EXCEPTION_RECORD_ExceptionFlags], EXCEPTION_NESTED_CALL
    mov eax, [ebp-4]
    cmp eax, [ebp-16]
    jbe short .following
    mov [ebp-16], eax
    jmp short .following
.search:
    test dword [ebx+EXCEPTION_RECORD_ExceptionFlags], EXCEPTION_STACK_INVALID
    jnz short RtlDispatchException.notHandled
.following:
    mov esi, [esi+EXCEPTION_REGISTRATION_RECORD_Next]
    jmp near RtlDispatchException.next
.continueExecution:
    test dword [ebx+EXCEPTION_RECORD_ExceptionFlags], EXCEPTION_NONCONTINUABLE
    jnz short .noncontinuable
    mov al, 1
    jmp short RtlDispatchException.done
.noncontinuable:
    mov eax, STATUS_NONCONTINUABLE_EXCEPTION
    jmp short .raise
.invalidDisposition:
    mov eax, STATUS_INVALID_DISPOSITION
.raise:
    push ebx
    push eax
    call RtlpRaiseChained
RtlDispatchException.stackInvalid:
    or dword [ebx+EXCEPTION_RECORD_ExceptionFlags], EXCEPTION_STACK_INVALID
RtlDispatchException.notHandled:
    xor al, al
RtlDispatchException.done:
    pop edi
    pop esi
    pop ebx
    leave
    ret 8

; --------------------------------------------------------------------------------------------
; RtlpExecuteHandlerForException / RtlpExecuteHandlerForUnwind(ExceptionRecord, EstablisherFrame,
; ContextRecord, DispatcherContext, Handler): call one handler with a registration record of our
; own linked in front, whose handler reports an exception raised inside that handler as nested
; (or an unwind that runs into it as collided). The handler may be cdecl or stdcall: the stack
; comes back from fs:[0].
; --------------------------------------------------------------------------------------------
RtlpExecuteHandlerForException:
    mov edx, RtlpExceptionProtector
    jmp short RtlpExecuteHandler
RtlpExecuteHandlerForUnwind:
    mov edx, RtlpUnwindProtector
RtlpExecuteHandler:
    push ebp
    {load} mov ebp, esp
    push dword [ebp+12]                     ; the establisher frame, for the protector
    push edx                                ; our record's Handler …
    push dword [fs:0]                       ; … and Next
    mov [fs:0], esp
    push dword [ebp+20]
    push dword [ebp+16]
    push dword [ebp+12]
    push dword [ebp+8]
    mov ecx, [ebp+24]
    call ecx
    mov esp, [fs:0]                         ; our record, whatever the handler popped
    pop dword [fs:0]
    leave
    ret 20

; The protectors (cdecl): while unwinding, keep searching; otherwise give the dispatcher the frame
; whose handler was running and say what happened.
RtlpExceptionProtector:
    mov eax, EXCEPTION_CONTINUE_SEARCH
    mov ecx, [esp+4]
    test dword [ecx+EXCEPTION_RECORD_ExceptionFlags], EXCEPTION_UNWINDING | EXCEPTION_EXIT_UNWIND
    jnz short .done
    mov ecx, [esp+8]                        ; our registration record
    mov edx, [esp+16]                       ; DispatcherContext
    mov eax, [ecx+8]                        ; the establisher frame we saved
    mov [edx], eax
    mov eax, EXCEPTION_NESTED_EXCEPTION
.done:
    ret
RtlpUnwindProtector:
    mov eax, EXCEPTION_CONTINUE_SEARCH
    mov ecx, [esp+4]
    test dword [ecx+EXCEPTION_RECORD_ExceptionFlags], EXCEPTION_UNWINDING | EXCEPTION_EXIT_UNWIND
    jz short .done
    mov ecx, [esp+8]
    mov edx, [esp+16]
    mov eax, [ecx+8]
    mov [edx], eax
    mov eax, EXCEPTION_COLLIDED_UNWIND
.done:
    ret

; --------------------------------------------------------------------------------------------
; RtlUnwind(TargetFrame, TargetIp, ExceptionRecord, ReturnValue): call the handler of every frame
; above TargetFrame with EXCEPTION_UNWINDING (and EXCEPTION_EXIT_UNWIND when TargetFrame is NULL:
; the whole chain), unlinking each, then return to the caller — through ZwContinue with a CONTEXT
; of the caller just after its call, EAX = ReturnValue. TargetIp is not used on x86. A target
; below a record on the chain is STATUS_INVALID_UNWIND_TARGET, a record off the stack
; STATUS_BAD_STACK, a handler's odd answer STATUS_INVALID_DISPOSITION (noncontinuable, raised).
; --------------------------------------------------------------------------------------------
RtlUnwind:
    push ebp
    {load} mov ebp, esp
    sub esp, CONTEXT_LENGTH + EXCEPTION_RECORD_LENGTH + 12
    ; The CONTEXT to come back with, taken first, while EBX, ESI, EDI are still the caller's.
    lea eax, [ebp-CONTEXT_LENGTH]
    push eax
    call RtlCaptureContext
    mov eax, [ebp+4]
    mov [ebp-CONTEXT_LENGTH+CONTEXT_Eip], eax
    lea eax, [ebp+24]                       ; the caller's ESP once our four arguments are gone
    mov [ebp-CONTEXT_LENGTH+CONTEXT_Esp], eax
    mov eax, [ebp]
    mov [ebp-CONTEXT_LENGTH+CONTEXT_Ebp], eax
    mov eax, [ebp+20]
    mov [ebp-CONTEXT_LENGTH+CONTEXT_Eax], eax
    push ebx
    push esi
    push edi
    ; [ebp-RL-4] DispatcherContext, [ebp-RL-8] stack low, [ebp-RL-12] stack high (RL = the locals above)
    call RtlpGetStackLimits
    mov [ebp-CONTEXT_LENGTH-EXCEPTION_RECORD_LENGTH-8], eax
    mov [ebp-CONTEXT_LENGTH-EXCEPTION_RECORD_LENGTH-12], edx
    ; The record handlers see: the caller's, or our own STATUS_UNWIND raised at the return address.
    mov ebx, [ebp+16]
    or ebx, ebx
    jnz short .haveRecord
    lea ebx, [ebp-CONTEXT_LENGTH-EXCEPTION_RECORD_LENGTH]
    mov dword [ebx+EXCEPTION_RECORD_ExceptionCode], STATUS_UNWIND
    mov dword [ebx+EXCEPTION_RECORD_ExceptionFlags], 0
    mov dword [ebx+EXCEPTION_RECORD_ExceptionRecord], 0
    mov eax, [ebp+4]
    mov [ebx+EXCEPTION_RECORD_ExceptionAddress], eax
    mov dword [ebx+EXCEPTION_RECORD_NumberParameters], 0
.haveRecord:
    or dword [ebx+EXCEPTION_RECORD_ExceptionFlags], EXCEPTION_UNWINDING
    cmp dword [ebp+8], 0
    jnz short .walk
    or dword [ebx+EXCEPTION_RECORD_ExceptionFlags], EXCEPTION_EXIT_UNWIND
.walk:
    mov esi, [fs:0]
RtlUnwind.next:
    cmp esi, -1
    jz near RtlUnwind.endOfChain
    cmp esi, [ebp+8]
    jz near RtlUnwind.resume                ; the target frame: stop here, keep it linked
    ; A target below this record is not on the chain.
    mov eax, [ebp+8]
    or eax, eax
    jz short .check
    cmp eax, esi
    jb near RtlUnwind.invalidTarget
.check:
    cmp esi, [ebp-CONTEXT_LENGTH-EXCEPTION_RECORD_LENGTH-8]
    jb near RtlUnwind.badStack
    lea eax, [esi+EXCEPTION_REGISTRATION_RECORD_LENGTH]
    cmp eax, [ebp-CONTEXT_LENGTH-EXCEPTION_RECORD_LENGTH-12]
    ja near RtlUnwind.badStack
    test esi, 3
    jnz near RtlUnwind.badStack
    push dword [esi+EXCEPTION_REGISTRATION_RECORD_Handler]
    lea eax, [ebp-CONTEXT_LENGTH-EXCEPTION_RECORD_LENGTH-4]
    push eax
    lea eax, [ebp-CONTEXT_LENGTH]
    push eax
    push esi
    push ebx
    call RtlpExecuteHandlerForUnwind
    cmp eax, EXCEPTION_CONTINUE_SEARCH
    jz short .unlink
    cmp eax, EXCEPTION_COLLIDED_UNWIND
    jnz short RtlUnwind.invalidDisposition
    ; This unwind ran into another one: carry on from where that one was.
    mov esi, [ebp-CONTEXT_LENGTH-EXCEPTION_RECORD_LENGTH-4]
.unlink:
    mov esi, [esi+EXCEPTION_REGISTRATION_RECORD_Next]
    mov [fs:0], esi
    jmp near RtlUnwind.next
RtlUnwind.endOfChain:
    ; The whole chain is unwound. Unwinding to the end on purpose (TargetFrame = -1) returns to
    ; the caller; an exit unwind (TargetFrame NULL), or a target that was never on the chain, goes
    ; to the kernel as a second chance: the thread's end.
    cmp dword [ebp+8], -1
    jz short RtlUnwind.resume
    push 0                                  ; FirstChance = FALSE
    lea eax, [ebp-CONTEXT_LENGTH]
    push eax
    push ebx
    call ZwRaiseException
    jmp short RtlUnwind.raise               ; only a failed ZwRaiseException returns
RtlUnwind.resume:
    push 0                                  ; TestAlert = FALSE
    lea eax, [ebp-CONTEXT_LENGTH]
    push eax
    call ZwContinue
    jmp short RtlUnwind.raise               ; only a failed ZwContinue returns
RtlUnwind.invalidTarget:
    mov eax, STATUS_INVALID_UNWIND_TARGET
    jmp short RtlUnwind.raise
RtlUnwind.badStack:
    mov eax, STATUS_BAD_STACK
    jmp short RtlUnwind.raise
RtlUnwind.invalidDisposition:
    mov eax, STATUS_INVALID_DISPOSITION
RtlUnwind.raise:
    push ebx
    push eax
    call RtlpRaiseChained

; --------------------------------------------------------------------------------------------
; RtlRaiseException(ExceptionRecord): capture the caller's CONTEXT (resuming after its call),
; note where the exception was raised, and hand both to RtlpRaiseDispatch: in user mode the
; thread's handlers are asked at once, in kernel mode NtRaiseException dispatches it. If that
; returns, the raise itself failed: that status is raised instead.
; --------------------------------------------------------------------------------------------
RtlRaiseException:
    push ebp
    {load} mov ebp, esp
    sub esp, CONTEXT_LENGTH
    lea eax, [ebp-CONTEXT_LENGTH]
    push eax
    call RtlCaptureContext
    mov eax, [ebp+4]
    mov [ebp-CONTEXT_LENGTH+CONTEXT_Eip], eax
    lea eax, [ebp+12]
    mov [ebp-CONTEXT_LENGTH+CONTEXT_Esp], eax
    mov eax, [ebp]
    mov [ebp-CONTEXT_LENGTH+CONTEXT_Ebp], eax
    mov ecx, [ebp+8]
    mov eax, [ebp+4]
    mov [ecx+EXCEPTION_RECORD_ExceptionAddress], eax
    lea eax, [ebp-CONTEXT_LENGTH]
    push eax
    push ecx
    call RtlpRaiseDispatch
    push eax
    call RtlRaiseStatus

; --------------------------------------------------------------------------------------------
; RtlpRaiseChained(Code, ExceptionRecord) and RtlRaiseStatus(Status): raise a new
; noncontinuable exception with that code and no parameters — chained to the record the
; dispatcher or unwinder was working on, or to none. Neither returns.
; --------------------------------------------------------------------------------------------
RtlRaiseStatus:
    pop eax                                 ; our return address …
    push 0                                  ; … becomes the place of a NULL ExceptionRecord
    push eax
RtlpRaiseChained:
    push ebp
    {load} mov ebp, esp
    sub esp, EXCEPTION_RECORD_LENGTH
    mov eax, [ebp+8]
    mov [ebp-EXCEPTION_RECORD_LENGTH+EXCEPTION_RECORD_ExceptionCode], eax
    mov dword [ebp-EXCEPTION_RECORD_LENGTH+EXCEPTION_RECORD_ExceptionFlags], EXCEPTION_NONCONTINUABLE
    mov eax, [ebp+12]
    mov [ebp-EXCEPTION_RECORD_LENGTH+EXCEPTION_RECORD_ExceptionRecord], eax
    mov dword [ebp-EXCEPTION_RECORD_LENGTH+EXCEPTION_RECORD_NumberParameters], 0
    lea eax, [ebp-EXCEPTION_RECORD_LENGTH]
    push eax
    call RtlRaiseException
    int3                                    ; not reached: a noncontinuable exception never returns

; --------------------------------------------------------------------------------------------
; RtlCaptureContext(ContextRecord): the registers as the caller has them, ESP and EIP as they will
; be when this call returns (after its one argument), CONTEXT_FULL.
; --------------------------------------------------------------------------------------------
RtlCaptureContext:
    push ebx
    mov ebx, [esp+8]
    mov [ebx+CONTEXT_Eax], eax
    mov [ebx+CONTEXT_Ecx], ecx
    mov [ebx+CONTEXT_Edx], edx
    mov eax, [esp]                          ; the caller's EBX
    mov [ebx+CONTEXT_Ebx], eax
    mov [ebx+CONTEXT_Esi], esi
    mov [ebx+CONTEXT_Edi], edi
    mov [ebx+CONTEXT_Ebp], ebp
    mov eax, [esp+4]
    mov [ebx+CONTEXT_Eip], eax
    lea eax, [esp+12]
    mov [ebx+CONTEXT_Esp], eax
    xor eax, eax
    mov ax, cs
    mov [ebx+CONTEXT_SegCs], eax
    mov ax, ss
    mov [ebx+CONTEXT_SegSs], eax
    mov ax, ds
    mov [ebx+CONTEXT_SegDs], eax
    mov ax, es
    mov [ebx+CONTEXT_SegEs], eax
    mov ax, fs
    mov [ebx+CONTEXT_SegFs], eax
    mov ax, gs
    mov [ebx+CONTEXT_SegGs], eax
    pushfd
    pop dword [ebx+CONTEXT_EFlags]
    mov dword [ebx+CONTEXT_ContextFlags], CONTEXT_FULL
    mov eax, [ebx+CONTEXT_Eax]
    pop ebx
    ret 4
