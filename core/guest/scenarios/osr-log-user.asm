; ntflow: user
;
; The OSR log driver's client (scenarios osr-log-user-handle, osr-log-kernel-handle): opens
; \\.\OsrLog, asks the driver to open its log file (an IOCTL), reads from the device once — the
; read dispatch routine writes to the log and queues a work item — then waits a moment, which lets
; the System worker thread run the work item. The log file's final contents show which writes
; landed; the trace shows each write's PreviousMode, handle table and status.

GENERIC_READ                 equ 0x80000000
GENERIC_WRITE                equ 0x40000000
SYNCHRONIZE                  equ 0x00100000
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040
IOCTL_OSRLOG_OPEN            equ 0x00222000  ; CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)

start:
    ; NtCreateFile on \??\OsrLog
    push 0
    push 0
    push FILE_SYNCHRONOUS_IO_NONALERT
    push FILE_OPEN
    push 0
    push 0
    push 0
    push iosb
    push objectAttributes
    push GENERIC_READ | GENERIC_WRITE | SYNCHRONIZE
    push deviceHandle
    call ntdll!NtCreateFile
    test eax, eax
    jnz .done

    ; NtDeviceIoControlFile(FileHandle, Event, ApcRoutine, ApcContext, &IoStatusBlock,
    ;                       IoControlCode, InputBuffer, InputLength, OutputBuffer, OutputLength)
    push 0
    push 0
    push 0
    push 0
    push IOCTL_OSRLOG_OPEN
    push iosb
    push 0
    push 0
    push 0
    push dword [deviceHandle]
    call ntdll!NtDeviceIoControlFile
    test eax, eax
    jnz .done

    ; NtReadFile on the device: the read dispatch routine does the writing
    push 0
    push 0
    push 16
    push buffer
    push iosb
    push 0
    push 0
    push 0
    push dword [deviceHandle]
    call ntdll!NtReadFile
    test eax, eax
    jnz .done

    ; NtDelayExecution(Alertable = FALSE, &Interval): give the work item its turn
    push interval
    push 0
    call ntdll!NtDelayExecution

    push dword [deviceHandle]
    call ntdll!NtClose
    xor eax, eax
.done:
    ret

align 4
deviceHandle: dd 0
iosb:         dd 0, 0
interval:     dd -100000, -1                ; 10 ms, relative
objectAttributes:
    dd 24, 0, deviceName, OBJ_CASE_INSENSITIVE, 0, 0
deviceName:
    dw deviceNameEnd - deviceNameText, deviceNameEnd - deviceNameText
    dd deviceNameText
deviceNameText:
    dw '\', '?', '?', '\', 'O', 's', 'r', 'L', 'o', 'g'
deviceNameEnd:
buffer: times 16 db 0
