; ntflow: driver
;
; The driver of nested-call.asm: its IOCTL_FINDINGS_READ fills the caller's output buffer from a
; backing file with ZwReadFile — but the driver never opened that file (its handle variable is
; still NULL: the bug). ZwReadFile goes through KiSystemService (PreviousMode KernelMode) in the
; program's thread; handle 0 is looked up in the current process's table (the program's), where
; slot 0 is never used: STATUS_INVALID_HANDLE. The dispatch routine completes the program's IRP
; with that status and returns it, so the program's NtDeviceIoControlFile fails with the nested
; call's status.

FILE_DEVICE_UNKNOWN          equ 0x22
IRP_MJ_CREATE                equ 0x00
IRP_MJ_CLOSE                 equ 0x02
IRP_MJ_DEVICE_CONTROL        equ 0x0E
IRP_MJ_CLEANUP               equ 0x12
DRIVER_OBJECT_MajorFunction  equ 0x38
IRP_SystemBuffer             equ 0x0C
IRP_IoStatus_Status          equ 0x18
IRP_IoStatus_Information     equ 0x1C
IRP_CurrentStackLocation     equ 0x60
IO_STACK_OutputBufferLength  equ 0x04
IO_STACK_IoControlCode       equ 0x0C
IOCTL_FINDINGS_READ          equ 0x00222000  ; CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
STATUS_INVALID_DEVICE_REQUEST equ 0xC0000010

DriverEntry:
    push ebp
    mov ebp, esp
    push ebx
    mov ebx, [ebp+8]                        ; DriverObject
    push deviceObject
    push 0
    push 0
    push FILE_DEVICE_UNKNOWN
    push deviceName
    push 0
    push ebx
    call nt!IoCreateDevice
    test eax, eax
    jnz .done
    push deviceName
    push linkName
    call nt!IoCreateSymbolicLink            ; \??\FindingsNested -> \Device\FindingsNested
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_CREATE*4], DispatchSucceed
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_CLOSE*4], DispatchSucceed
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_CLEANUP*4], DispatchSucceed
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_DEVICE_CONTROL*4], DispatchDeviceControl
    ; (the backing file should be opened here; it is not: backingHandle stays NULL)
    xor eax, eax
.done:
    pop ebx
    pop ebp
    ret 8

; Complete an IRP: ECX = Irp, EAX = status, EDX = Information; returns the status in EAX.
CompleteIrp:
    mov [ecx+IRP_IoStatus_Status], eax
    mov [ecx+IRP_IoStatus_Information], edx
    push eax
    push 0
    push ecx
    call nt!IoCompleteRequest
    pop eax
    ret

DispatchSucceed:
    mov ecx, [esp+8]
    xor eax, eax
    xor edx, edx
    call CompleteIrp
    ret 8

DispatchDeviceControl:
    push ebp
    mov ebp, esp
    push ebx
    mov ebx, [ebp+12]                       ; Irp
    mov edx, [ebx+IRP_CurrentStackLocation]
    mov eax, STATUS_INVALID_DEVICE_REQUEST
    cmp dword [edx+IO_STACK_IoControlCode], IOCTL_FINDINGS_READ
    jne .failed
    ; ZwReadFile(backingHandle, NULL, NULL, NULL, &IoStatusBlock, SystemBuffer, OutputBufferLength, &ByteOffset, NULL)
    push 0
    push byteOffset
    push dword [edx+IO_STACK_OutputBufferLength]
    push dword [ebx+IRP_SystemBuffer]
    push backingIosb
    push 0
    push 0
    push 0
    push dword [backingHandle]              ; NULL: never opened
    call nt!ZwReadFile
    test eax, eax
    jnz .failed
    mov edx, [backingIosb+4]                ; Information: the bytes read
    jmp .complete
.failed:
    xor edx, edx                            ; complete the program's IRP with the nested status
.complete:
    mov ecx, ebx
    call CompleteIrp
    pop ebx
    pop ebp
    ret 8

align 4
deviceObject:   dd 0
backingHandle:  dd 0                        ; the driver's bug: never set
backingIosb:    dd 0, 0
byteOffset:     dd 0, 0
deviceName:
    dw deviceNameEnd - deviceNameText, deviceNameEnd - deviceNameText
    dd deviceNameText
deviceNameText:
    dw '\', 'D', 'e', 'v', 'i', 'c', 'e', '\', 'F', 'i', 'n', 'd', 'i', 'n', 'g', 's', 'N', 'e', 's', 't', 'e', 'd'
deviceNameEnd:
linkName:
    dw linkNameEnd - linkNameText, linkNameEnd - linkNameText
    dd linkNameText
linkNameText:
    dw '\', '?', '?', '\', 'F', 'i', 'n', 'd', 'i', 'n', 'g', 's', 'N', 'e', 's', 't', 'e', 'd'
linkNameEnd:
