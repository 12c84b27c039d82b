; ntoskrnl: structured exception handling frames for compiled kernel code (_SEH_prolog /
; _SEH_epilog, as the compiler's helpers in XP's ntoskrnl build them), at XP SP1's address.

; @at 0x805352D8
; --------------------------------------------------------------------------------------------
; _SEH_prolog — called right after `push <locals size>; push <scope table>`. Builds the frame
;   [ebp-4] try level (-1)  [ebp-8] scope table  [ebp-0Ch] handler  [ebp-10h] previous record
;   [ebp-18h] the ESP to restore on an exception;  [ebp] saved EBP, [ebp+4] return, [ebp+8] args
; below it the locals and the saved EBX, ESI, EDI, and links the record into FS:[0].
; --------------------------------------------------------------------------------------------
_SEH_prolog:
    push _except_handler3
    mov eax, [fs:0]
    push eax                        ; the previous registration record
    mov eax, [esp+0x10]             ; the size of the locals …
    mov [esp+0x10], ebp             ; … whose slot now holds the caller's EBP
    lea ebp, [esp+0x10]
    sub esp, eax
    push ebx
    push esi
    push edi
    mov eax, [ebp-8]                ; our return address
    mov [ebp-0x18], esp
    push eax
    mov eax, [ebp-4]                ; the scope table
    mov dword [ebp-4], -1           ; try level: outside any __try
    mov [ebp-8], eax
    lea eax, [ebp-0x10]
    mov [fs:0], eax                 ; link the record
    ret

; _SEH_epilog: unlink the record, restore EDI, ESI, EBX and the caller's EBP.
_SEH_epilog:
    mov ecx, [ebp-0x10]
    mov [fs:0], ecx
    pop ecx                         ; our return address
    pop edi
    pop esi
    pop ebx
    leave
    push ecx
    ret

; The frame-based handler the records name. Kernel faults inside service bodies are handled on
; the TypeScript side (a probe that faults returns STATUS_ACCESS_VIOLATION), so this handler only
; ever says "keep searching" (ExceptionContinueSearch).
_except_handler3:
    mov eax, 1
    ret
