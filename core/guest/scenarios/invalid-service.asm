; ntflow: user
;
; invalid-service: service numbers the dispatcher must reject, made by hand the way ntdll's stubs
; make calls (EAX = number, EDX = SharedUserData!SystemCallStub, call edx).
;
;  0x011C  one past ntoskrnl's last service (KiServiceLimit is 284 = 0x11C): the limit check in
;          KiSystemService fails and the call returns STATUS_INVALID_SYSTEM_SERVICE.
;  0x1000  a win32k service (table 1) from a thread that is not a GUI thread yet: its
;          ServiceTable is KeServiceDescriptorTable, whose entry 1 is empty, so the limit check fails;
;          KiBBTUnexpectedRange converts the thread (PsConvertToGuiThread: its ServiceTable becomes
;          KeServiceDescriptorTableShadow) and retries. NtGdiAbortDoc then runs: this miniature's
;          win32k implements nothing, so STATUS_NOT_IMPLEMENTED.
;  0x1FFF  past win32k's 667 services even for a GUI thread: STATUS_INVALID_SYSTEM_SERVICE.
;
; The exit status is 0 when each call returned what is described above.

STATUS_INVALID_SYSTEM_SERVICE equ 0xC000001C
STATUS_NOT_IMPLEMENTED        equ 0xC0000002

start:
    mov eax, 0x11C
    call syscall
    mov [status11C], eax

    mov eax, 0x1000
    call syscall
    mov [status1000], eax

    mov eax, 0x1FFF
    call syscall
    mov [status1FFF], eax

    ; exit status: 0 if all three are as expected, else the first unexpected status
    mov eax, [status11C]
    cmp eax, STATUS_INVALID_SYSTEM_SERVICE
    jne .done
    mov eax, [status1000]
    cmp eax, STATUS_NOT_IMPLEMENTED
    jne .done
    mov eax, [status1FFF]
    cmp eax, STATUS_INVALID_SYSTEM_SERVICE
    jne .done
    xor eax, eax
.done:
    ret

; A system call the way an ntdll stub makes one (no arguments on the stack).
syscall:
    mov edx, 0x7FFE0300
    call edx
    ret

align 4
status11C:  dd 0
status1000: dd 0
status1FFF: dd 0
