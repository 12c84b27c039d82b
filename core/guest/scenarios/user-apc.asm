; ntflow: user
;
; user-apc: a user APC queued to the program's own thread runs on the way out of a system call.
;
; NtQueueApcThread(NtCurrentThread(), ApcRoutine, 1, 2, 3) only inserts the APC: the thread is not
; in an alertable wait, so UserApcPending stays 0 and NtQueueApcThread's own return finds nothing
; (the apc-check in KiServiceExit says pending = no). NtTestAlert sees the thread's user APC list
; is not empty and sets UserApcPending; on NtTestAlert's way out KiServiceExit's check finds it,
; calls KiDeliverApc, which sends the return to user mode into ntdll!KiUserApcDispatcher. The
; dispatcher calls ApcRoutine(1, 2, 3), then NtContinue resumes the thread right after NtTestAlert.
; The exit status is the sum the APC routine computed (1 + 2 + 3 = 6): it ran, with its arguments.

start:
    ; NtQueueApcThread(ThreadHandle, ApcRoutine, ApcArgument1, ApcArgument2, ApcArgument3)
    push 3
    push 2
    push 1
    push ApcRoutine
    push -2                                 ; NtCurrentThread()
    call ntdll!NtQueueApcThread
    test eax, eax
    jnz .done

    call ntdll!NtTestAlert                  ; the APC is delivered on this call's way out
    mov eax, [apcResult]                    ; NtContinue brought us back here
.done:
    ret

; VOID NTAPI ApcRoutine(PVOID NormalContext, PVOID SystemArgument1, PVOID SystemArgument2)
ApcRoutine:
    mov eax, [esp+4]
    add eax, [esp+8]
    add eax, [esp+12]
    mov [apcResult], eax
    ret 12

align 4
apcResult: dd 0xFFFFFFFF
