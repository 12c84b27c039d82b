; ntoskrnl: NtReadFile. Its prologue is the seed listing's, byte for byte: an SEH frame with 0x58
; bytes of locals, PreviousMode read from the current thread, and the first arguments of
; ObReferenceObjectByHandle pushed. There the body continues in TypeScript through the one
; documented escape (`out ESCAPE_PORT, eax` with EAX = which body, see core/guest/escape.ts),
; which references the handle before it probes the caller's buffers, as XP's code does.

; @at 0x804E0458
NtReadFileScopeTable:               ; the scope table the prologue names (one __try, no filter)
    dd -1, 0, 0

; @at 0x8056B2EC
NtReadFile:
    push 0x58
    push NtReadFileScopeTable
    call _SEH_prolog
    {load} xor edi, edi
    mov [ebp-0x1C], edi             ; locals cleared: the file object, the event, …
    mov [ebp-0x20], edi
    mov [ebp-0x28], edi
    mov [ebp-0x24], edi
    mov eax, [fs:0x124]             ; the current thread (PCR->Prcb.CurrentThread)
    mov [ebp-0x2C], eax
    mov al, [eax+KTHREAD_PreviousMode]
    mov [ebp-0x30], al              ; PreviousMode, as the rest of the routine reads it
    push edi                        ; ObReferenceObjectByHandle(…, HandleInformation = NULL,
    lea eax, [ebp-0x34]             ;   Object = &FileObject,
    push eax
    push dword [ebp-0x30]           ;   AccessMode = PreviousMode, …)
    mov eax, ESCAPE_SERVICE_NtReadFile
    out ESCAPE_PORT, eax            ; the body: EAX = NTSTATUS
    add esp, 12
    call _SEH_epilog
    ret 0x24
