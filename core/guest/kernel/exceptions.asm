; ntoskrnl: exceptions. What the trap handlers (KiTrap00-KiTrap1F: each builds a full
; KTRAP_FRAME as XP's ENTER_TRAP does) do with a fault, and how an exception is
; dispatched: to the kernel's own SEH chain (RtlDispatchException, in rtl-seh.asm), or to user
; mode through a frame on the user stack and ntdll!KiUserExceptionDispatcher, or — nobody wanting
; it — to the end of the process (user mode) or a bug check (kernel mode).
;
; RECONSTRUCTED from public descriptions of XP's trap handling (ReactOS's KiTrapXXHandler,
; KiDispatchException and CommonDispatchException for the steps and their order; the seed
; listing's cross-references from _KiTrap0E to KiSystemService's `rep movsd` and `mov esp,ebp`).
; The TypeScript bodies (KeContextFromKframes, KeContextToKframes, KiDispatchUserException,
; MmAccessFault, KiCheckPrivilegedInstruction) are core/guest/exceptions.ts and core/guest/mm.ts.
;
; The trap handlers here are the ones with more to decide than "raise this code"; the rest are
; generated (build.ts, trapVectors), each an ENTER_TRAP and a jump to KiTrapRaise0 or
; KiSystemFatalException. ENTER_TRAP is XP's macro, expanded by the builder: after it the frame is
; built and EBP = ESP points at it.

; --------------------------------------------------------------------------------------------
; KiTrap01 (#DB): a single step or a debug-register hit. The one that struck KiFastCallEntry's
; first instruction is a user SYSENTER made with TF set: it goes to KiFastCallEntry2 before any
; frame is built. Anything else is STATUS_SINGLE_STEP, with TF taken out of the frame so the
; handler itself is not single-stepped.
; --------------------------------------------------------------------------------------------
KiTrap01:
    cmp dword [esp], KiFastCallEntry        ; the EIP the CPU pushed
    jz short .fastCall
    ENTER_TRAP_NO_ERROR_CODE
    and byte [ebp+KTRAP_FRAME_EFlags+1], ~(EFLAGS_TF >> 8)
    mov eax, STATUS_SINGLE_STEP
    jmp near KiTrapRaise0
.fastCall:
    mov dword [esp], KiFastCallEntry2
    and byte [esp+9], ~(EFLAGS_TF >> 8)     ; TF out of the EFLAGS the CPU pushed
    iretd

; --------------------------------------------------------------------------------------------
; KiTrap03 (#BP, `int3`): STATUS_BREAKPOINT at the int3 itself (the frame's EIP is past it; the
; dispatcher's CONTEXT moves back by one as XP's does), with one parameter, BREAKPOINT_BREAK.
; With no debugger attached, a handler that continues without moving EIP runs the int3 again.
; --------------------------------------------------------------------------------------------
KiTrap03:
    ENTER_TRAP_NO_ERROR_CODE
    mov eax, STATUS_BREAKPOINT
    mov ebx, [ebp+KTRAP_FRAME_Eip]
    dec ebx
    mov ecx, 1
    xor edx, edx                            ; BREAKPOINT_BREAK
    jmp near CommonDispatchException

; --------------------------------------------------------------------------------------------
; KiTrap0D (#GP): from user mode, a privileged instruction (hlt, cli, in, mov cr0, …) is
; STATUS_PRIVILEGED_INSTRUCTION and anything else STATUS_ACCESS_VIOLATION, as XP's handler
; decides by looking at the instruction. From kernel mode: kernel code that ran with the DS or ES
; a user thread brought in (INT 2Eh with a null DS, say: KiSystemService reads ds:[0FFDFF000h]
; before it loads its own) gets the flat data selector and runs the instruction again; anything
; else is fatal.
; --------------------------------------------------------------------------------------------
KiTrap0D:
    ENTER_TRAP
    test dword [ebp+KTRAP_FRAME_EFlags], EFLAGS_VM
    jnz short .user
    test byte [ebp+KTRAP_FRAME_SegCs], 1
    jnz short .user
    cmp word [ebp+KTRAP_FRAME_SegDs], KGDT_R3_DATA | 3
    jnz short .kernelSegments
    cmp word [ebp+KTRAP_FRAME_SegEs], KGDT_R3_DATA | 3
    jz short .kernel
.kernelSegments:
    mov dword [ebp+KTRAP_FRAME_SegDs], KGDT_R3_DATA | 3
    mov dword [ebp+KTRAP_FRAME_SegEs], KGDT_R3_DATA | 3
    jmp near KiExceptionExit
.user:
    test byte [ebp+KTRAP_FRAME_EFlags+1], EFLAGS_IF >> 8
    jz short .classify
    sti
.classify:
    push ebp
    call KiCheckPrivilegedInstruction       ; EAX = the exception code
    cmp eax, STATUS_ACCESS_VIOLATION
    jnz near KiTrapRaise0
    ; An access violation: two parameters, a read (0) and an address it cannot know (-1).
    mov ebx, [ebp+KTRAP_FRAME_Eip]
    mov ecx, 2
    xor edx, edx
    mov esi, -1
    jmp near CommonDispatchException
.kernel:
    mov eax, 0x0D
    jmp near KiSystemFatalException

; --------------------------------------------------------------------------------------------
; KiTrap0E (#PF). MmAccessFault decides first: a fault it can resolve (a guard page's first touch
; excepted) runs the instruction again. One it cannot:
; - at KiSystemService's `rep movsd` (the caller's arguments run into memory it may not read):
;   the system call fails with STATUS_ACCESS_VIOLATION, resuming at `mov esp, ebp`;
; - anywhere else: the exception MmAccessFault names (STATUS_ACCESS_VIOLATION,
;   STATUS_GUARD_PAGE_VIOLATION), with two parameters: 0 read / 1 write, and the address.
; A kernel-mode access to an invalid system address never gets here: MmAccessFault bug-checks
; (PAGE_FAULT_IN_NONPAGED_AREA), handlers or not, as XP's does.
; --------------------------------------------------------------------------------------------
KiTrap0E:
    ENTER_TRAP
    mov edi, cr2
    test byte [ebp+KTRAP_FRAME_EFlags+1], EFLAGS_IF >> 8
    jz short .mm
    sti
.mm:
    ; MmAccessFault(StoreInstruction, VirtualAddress, PreviousMode, TrapInformation)
    push ebp
    mov eax, [ebp+KTRAP_FRAME_SegCs]
    and eax, 1
    push eax
    push edi
    mov eax, [ebp+KTRAP_FRAME_ErrCode]
    shr eax, 1
    and eax, 1
    push eax
    call MmAccessFault
    or eax, eax
    jl short .failed
    jmp near KiExceptionExit                ; resolved: the instruction runs again
.failed:
    cmp dword [ebp+KTRAP_FRAME_Eip], KiSystemService.copyArguments
    jnz short .dispatch
    mov dword [ebp+KTRAP_FRAME_Eip], KiSystemService.callReturn
    mov dword [ebp+KTRAP_FRAME_Eax], STATUS_ACCESS_VIOLATION
    jmp near KiExceptionExit
.dispatch:
    mov ebx, [ebp+KTRAP_FRAME_Eip]
    mov ecx, 2
    mov edx, [ebp+KTRAP_FRAME_ErrCode]
    shr edx, 1
    and edx, 1                              ; 0 read, 1 write
    mov esi, edi                            ; the address
    jmp near CommonDispatchException

; --------------------------------------------------------------------------------------------
; Raising the exception a trap stands for.
; --------------------------------------------------------------------------------------------

; KiTrapRaise0: EAX = the exception code; no parameters; the address is the frame's EIP.
KiTrapRaise0:
    mov ebx, [ebp+KTRAP_FRAME_Eip]
    xor ecx, ecx
; CommonDispatchException: EAX = code, EBX = address, ECX = number of parameters (0-3),
; EDX, ESI, EDI = the parameters, EBP = the trap frame. Builds the EXCEPTION_RECORD on the
; stack, dispatches it once (first chance) in the mode the trap came from, and leaves through the
; frame as the dispatch left it.
CommonDispatchException:
    sub esp, EXCEPTION_RECORD_LENGTH
    mov [esp+EXCEPTION_RECORD_ExceptionCode], eax
    xor eax, eax
    mov [esp+EXCEPTION_RECORD_ExceptionFlags], eax
    mov [esp+EXCEPTION_RECORD_ExceptionRecord], eax
    mov [esp+EXCEPTION_RECORD_ExceptionAddress], ebx
    mov [esp+EXCEPTION_RECORD_NumberParameters], ecx
    mov [esp+EXCEPTION_RECORD_ExceptionInformation], edx
    mov [esp+EXCEPTION_RECORD_ExceptionInformation+4], esi
    mov [esp+EXCEPTION_RECORD_ExceptionInformation+8], edi
    {load} mov ecx, esp
    ; The mode it came from: CS & 1, and a virtual-8086 frame counts as user mode.
    mov eax, [ebp+KTRAP_FRAME_SegCs]
    and eax, 1
    test dword [ebp+KTRAP_FRAME_EFlags], EFLAGS_VM
    jz short .mode
    mov eax, USER_MODE
.mode:
    push 1                                  ; FirstChance
    push eax                                ; PreviousMode
    push ebp                                ; TrapFrame
    push 0                                  ; ExceptionFrame (x86 has none)
    push ecx                                ; ExceptionRecord
    call KiDispatchException
    {load} mov esp, ebp
    jmp near KiExceptionExit

; KiSystemFatalException: EAX = the vector. A trap the kernel cannot survive.
KiSystemFatalException:
    push 0
    push 0
    push 0
    push eax
    push UNEXPECTED_KERNEL_MODE_TRAP
    call KeBugCheckEx

; --------------------------------------------------------------------------------------------
; KiDispatchException(ExceptionRecord, ExceptionFrame, TrapFrame, PreviousMode, FirstChance)
;   (probe: exception-dispatch, at the first instruction)
; The CONTEXT of the interrupted code is built from the trap frame. Kernel mode: the kernel's SEH
; chain at fs:[0] is searched (RtlDispatchException); a handler that continues gets its CONTEXT
; back into the frame; nobody wanting it is bug check 0x8E KERNEL_MODE_EXCEPTION_NOT_HANDLED
; (code, address, trap frame, 0). User mode: KiDispatchUserException writes the CONTEXT and the
; record to the user stack and points the frame at ntdll!KiUserExceptionDispatcher — or, at the
; second chance or with no usable user stack, ends the process with the exception code.
; --------------------------------------------------------------------------------------------
KiDispatchException:
    push ebp
    {load} mov ebp, esp
    sub esp, CONTEXT_LENGTH
    push ebx
    push esi
    push edi
    lea eax, [ebp-CONTEXT_LENGTH]
    push eax
    push dword [ebp+16]                     ; TrapFrame
    call KeContextFromKframes
    ; A breakpoint's CONTEXT points at the int3, not past it (a debugger resumes by moving on).
    mov ecx, [ebp+8]
    cmp dword [ecx+EXCEPTION_RECORD_ExceptionCode], STATUS_BREAKPOINT
    jnz short .mode
    dec dword [ebp-CONTEXT_LENGTH+CONTEXT_Eip]
.mode:
    cmp byte [ebp+20], KERNEL_MODE
    jnz short .user
    cmp byte [ebp+24], 0
    jz short .unhandled                     ; a second chance in kernel mode: nobody wanted it
    lea eax, [ebp-CONTEXT_LENGTH]
    push eax
    push dword [ebp+8]
    call RtlDispatchException
    or al, al
    jz short .unhandled
    ; A handler said ExceptionContinueExecution: its CONTEXT goes back into the frame.
    push KERNEL_MODE
    lea eax, [ebp-CONTEXT_LENGTH]
    push eax
    push dword [ebp+16]
    call KeContextToKframes
    jmp short .done
.unhandled:
    mov ecx, [ebp+8]
    push 0
    push dword [ebp+16]
    push dword [ecx+EXCEPTION_RECORD_ExceptionAddress]
    push dword [ecx+EXCEPTION_RECORD_ExceptionCode]
    push KERNEL_MODE_EXCEPTION_NOT_HANDLED
    call KeBugCheckEx
.user:
    push dword [ebp+24]                     ; FirstChance
    lea eax, [ebp-CONTEXT_LENGTH]
    push eax
    push dword [ebp+16]
    push dword [ebp+8]
    call KiDispatchUserException
.done:
    pop edi
    pop esi
    pop ebx
    leave
    ret 20

; --------------------------------------------------------------------------------------------
; NtRaiseException(ExceptionRecord, ContextRecord, FirstChance): a thread raises an exception
; itself (ntdll!RtlRaiseException, or KiUserExceptionDispatcher when no handler wanted one: the
; second chance). In: EBP = the caller's trap frame (KiSystemService's), which the body fills
; from the CONTEXT; the record is captured into this routine's frame. Leaves through
; KiServiceExit2, which restores every register from the frame as the dispatch left it.
; --------------------------------------------------------------------------------------------
NtRaiseException:
    ; Unchain the frame first (the CONTEXT is about to overwrite its Edx slot), and put back the
    ; exception list the entry saved there: a kernel-mode raiser's own handlers must be found.
    mov ecx, [PCR_CurrentThread]
    mov edx, [ebp+KTRAP_FRAME_Edx]
    mov [ecx+KTHREAD_TrapFrame], edx
    mov edx, [ebp+KTRAP_FRAME_ExceptionList]
    mov [PCR_ExceptionList], edx
    push ebp                                ; [ebp] below = the trap frame
    {load} mov ebp, esp
    sub esp, EXCEPTION_RECORD_LENGTH
    mov eax, ESCAPE_SERVICE_NtRaiseException
    out ESCAPE_PORT, eax                    ; the body: probe, capture the record, CONTEXT → frame
    or eax, eax
    jnz short .failed
    mov ecx, [PCR_CurrentThread]
    movzx eax, byte [ecx+KTHREAD_PreviousMode]
    lea ecx, [ebp-EXCEPTION_RECORD_LENGTH]
    push dword [ebp+16]                     ; FirstChance
    push eax                                ; PreviousMode
    push dword [ebp]                        ; TrapFrame
    push 0
    push ecx
    call KiDispatchException
    mov ebp, [ebp]
    {load} mov esp, ebp
    jmp near KiServiceExit2
.failed:
    ; Nothing was raised: re-chain the frame and return the status like any service.
    mov esp, ebp
    pop ebp
    mov ecx, [PCR_CurrentThread]
    mov [ecx+KTHREAD_TrapFrame], ebp
    ret 12

; --------------------------------------------------------------------------------------------
; NtContinue(Context, TestAlert): the body copies the CONTEXT into the caller's trap frame (and
; re-arms delivery of a queued user APC when TestAlert); the routine leaves through
; KiServiceExit2, which restores every register from that frame.
; --------------------------------------------------------------------------------------------
NtContinue:
    mov ecx, [PCR_CurrentThread]
    mov edx, [ebp+KTRAP_FRAME_Edx]
    mov [ecx+KTHREAD_TrapFrame], edx
    push ebp
    {load} mov ebp, esp
    mov eax, ESCAPE_SERVICE_NtContinue
    out ESCAPE_PORT, eax
    or eax, eax
    jnz short .failed
    mov ebp, [ebp]
    {load} mov esp, ebp
    jmp near KiServiceExit2
.failed:
    pop ebp
    mov ecx, [PCR_CurrentThread]
    mov [ecx+KTHREAD_TrapFrame], ebp
    ret 8

; RtlpRaiseDispatch(ExceptionRecord, ContextRecord), kernel half of RtlRaiseException
; (rtl-seh.asm): let NtRaiseException dispatch it in kernel mode through the Zw stub, which sets
; PreviousMode = KernelMode for it. EAX: the status the raise failed with, if it returns at all.
RtlpRaiseDispatch:
    push 1                                  ; FirstChance
    push dword [esp+12]
    push dword [esp+12]
    call ZwRaiseException
    ret 8

; RtlpGetStackLimits (kernel): EAX = the lowest, EDX = one past the highest address an exception
; registration record may have: the current thread's kernel stack.
RtlpGetStackLimits:
    mov eax, [PCR_CurrentThread]
    mov edx, [eax+KTHREAD_InitialStack]
    mov eax, [eax+KTHREAD_StackLimit]
    ret
