; ntflow: user
;
; service-limit: a system call with a service number past the table's limit.
;
; The program makes a call the way an ntdll stub does — EAX = service number, EDX =
; SharedUserData+0x300 (SystemCallStub on a SYSENTER CPU, KiIntSystemCall on one without), call edx
; — with EAX = 0x11C: table 0 (bits 12-13 clear), index 0x11C, one past ntoskrnl's last service
; (KiServiceLimit is 284 = 0x11C). KiSystemService's limit check (`cmp eax,[edi+8]; jae`) fails, so
; no SSDT entry is read and no routine runs: the dispatcher returns STATUS_INVALID_SYSTEM_SERVICE.
; (A number in table 1 — 0x1000 and up — would first convert the thread to a GUI thread and
; retry; see the invalid-service scenario. Table 0 avoids that.)
;
; Must fail: exactly the call numbered 0x11C (it has no service name), STATUS_INVALID_SYSTEM_SERVICE
; (0xC000001C). Exit status: its status.

BAD_SERVICE                  equ 0x11C

start:
    mov eax, BAD_SERVICE
    mov edx, 0x7FFE0300                     ; SharedUserData+0x300
    call edx
    ret                                     ; exit status = the call's status
