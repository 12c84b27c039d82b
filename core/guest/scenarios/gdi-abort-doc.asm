; ntflow: user
;
; A program that makes one win32k system call, NtGdiAbortDoc(HDC) — service 1000h, the first entry
; of win32k's table, one argument — the way gdi32.dll's stubs make them on XP SP1 (the same four
; instructions as ntdll's: EAX = number, EDX = SharedUserData!SystemCallStub, call edx, ret 4).
; gdi32 is not one of ntflow's guest modules, so the program carries the stub itself.
;
; The thread is not a GUI thread yet: its ServiceTable is KeServiceDescriptorTable, whose
; descriptor 1 is empty, so the first dispatch fails the limit check; KiBBTUnexpectedRange converts
; the thread (PsConvertToGuiThread: ServiceTable = KeServiceDescriptorTableShadow) and dispatches
; again, through W32pServiceTable[0]. With shadow-ssdt-hook's driver loaded that entry is the
; driver's hook, which passes the call on to win32k!NtGdiAbortDoc. This miniature's win32k
; implements no service: NtGdiAbortDoc returns STATUS_NOT_IMPLEMENTED (C0000002h).
; The exit status is what NtGdiAbortDoc returned to the program.

start:
    push 0                                  ; hdc: no device context (nothing is implemented behind it)
    call NtGdiAbortDoc
    ret                                     ; exit status = NtGdiAbortDoc's status

; gdi32!NtGdiAbortDoc, as XP SP1's gdi32 has it.
NtGdiAbortDoc:
    mov eax, 0x1000
    mov edx, 0x7FFE0300                     ; SharedUserData!SystemCallStub
    call edx
    ret 4
