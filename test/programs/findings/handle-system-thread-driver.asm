; ntflow: driver
;
; The driver of handle-system-thread.asm: it opens a log file WITHOUT OBJ_KERNEL_HANDLE while
; serving the program's IOCTL, and uses that handle again from a work item.
;
; IOCTL_FINDINGS_OPEN (program's thread): ZwCreateFile(C:\findings-log.txt) — PreviousMode
;   KernelMode (ZwCreateFile goes through KiSystemService), but the attributes lack
;   OBJ_KERNEL_HANDLE, so ObpCreateHandle puts the handle in the CURRENT process's table: the
;   program's. ZwWriteFile of one line through it succeeds here (the program's table holds it).
;   Then a work item is queued.
; The work item (System worker thread, System process, KernelMode): ZwWriteFile through the same
;   handle value. The current process is now System, whose table is the kernel handle table
;   (ObpKernelHandleTable); the value has no bit 31, so it is looked up there as a plain index —
;   and names nothing there: STATUS_INVALID_HANDLE. The status is kept for the program.
; IOCTL_FINDINGS_STATUS (program's thread): returns that status (4 bytes, METHOD_BUFFERED).
; IRP_MJ_CLEANUP (program's thread, when the program closes the device): ZwClose of the log handle
;   — in the program's table, where it is: success, so nothing leaks.

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
IO_STACK_IoControlCode       equ 0x0C
IOCTL_FINDINGS_OPEN          equ 0x00222000  ; CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
IOCTL_FINDINGS_STATUS        equ 0x00222004  ; CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
GENERIC_WRITE                equ 0x40000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 1
FILE_OVERWRITE_IF            equ 5
FILE_SYNCHRONOUS_IO_NONALERT equ 0x20
OBJ_CASE_INSENSITIVE         equ 0x40
DelayedWorkQueue             equ 1
STATUS_INVALID_DEVICE_REQUEST equ 0xC0000010
STATUS_PENDING               equ 0x00000103

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
    call nt!IoCreateSymbolicLink            ; \??\FindingsWorker -> \Device\FindingsWorker
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_CREATE*4], DispatchSucceed
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_CLOSE*4], DispatchSucceed
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_CLEANUP*4], DispatchCleanup
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_DEVICE_CONTROL*4], DispatchDeviceControl
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

; IRP_MJ_CLEANUP: the program closed its last handle to the device; close the log handle, in the
; program's thread, where the handle's table is current.
DispatchCleanup:
    cmp dword [logHandle], 0
    je .complete
    push dword [logHandle]
    call nt!ZwClose
    mov dword [logHandle], 0
.complete:
    mov ecx, [esp+8]
    xor eax, eax
    xor edx, edx
    call CompleteIrp
    ret 8

; Write the line at [lineLength, lineText] through logHandle with ZwWriteFile; EAX = its status.
WriteLine:
    push 0                                  ; Key
    push endOfFile                          ; ByteOffset: FILE_WRITE_TO_END_OF_FILE
    push lineTextEnd - lineText             ; Length
    push lineText                           ; Buffer
    push logIosb
    push 0
    push 0
    push 0
    push dword [logHandle]
    call nt!ZwWriteFile
    ret

DispatchDeviceControl:
    push ebp
    mov ebp, esp
    push ebx
    mov ebx, [ebp+12]                       ; Irp
    mov edx, [ebx+IRP_CurrentStackLocation]
    mov eax, [edx+IO_STACK_IoControlCode]
    cmp eax, IOCTL_FINDINGS_OPEN
    je .open
    cmp eax, IOCTL_FINDINGS_STATUS
    je .status
    mov eax, STATUS_INVALID_DEVICE_REQUEST
    xor edx, edx
    jmp .complete

.open:
    ; ZwCreateFile(&logHandle, GENERIC_WRITE | SYNCHRONIZE, &ObjectAttributes (no OBJ_KERNEL_HANDLE),
    ;              &IoStatusBlock, NULL, 0, FILE_SHARE_READ, FILE_OVERWRITE_IF, FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0)
    push 0
    push 0
    push FILE_SYNCHRONOUS_IO_NONALERT
    push FILE_OVERWRITE_IF
    push FILE_SHARE_READ
    push 0
    push 0
    push logIosb
    push objectAttributes
    push GENERIC_WRITE | SYNCHRONIZE
    push logHandle
    call nt!ZwCreateFile
    test eax, eax
    jnz .failed
    call WriteLine                          ; from the program's thread: succeeds
    test eax, eax
    jnz .failed
    ; IoQueueWorkItem(IoAllocateWorkItem(DeviceObject), WorkItemRoutine, DelayedWorkQueue, NULL)
    push dword [deviceObject]
    call nt!IoAllocateWorkItem
    mov [workItem], eax
    push 0
    push DelayedWorkQueue
    push WorkItemRoutine
    push eax
    call nt!IoQueueWorkItem
    xor eax, eax
.failed:
    xor edx, edx
    jmp .complete

.status:
    ; the work item's ZwWriteFile status, into the 4-byte output buffer
    mov ecx, [ebx+IRP_SystemBuffer]
    mov eax, [workItemStatus]
    mov [ecx], eax
    xor eax, eax
    mov edx, 4

.complete:
    mov ecx, ebx
    call CompleteIrp
    pop ebx
    pop ebp
    ret 8

; VOID WorkItemRoutine(PDEVICE_OBJECT DeviceObject, PVOID Context): on the System worker thread.
WorkItemRoutine:
    call WriteLine                          ; the program's handle value, in the System process
    mov [workItemStatus], eax
    push dword [workItem]
    call nt!IoFreeWorkItem
    ret 8

align 4
deviceObject:   dd 0
logHandle:      dd 0
workItem:       dd 0
workItemStatus: dd STATUS_PENDING           ; until the work item has run
logIosb:        dd 0, 0
endOfFile:      dd 0xFFFFFFFF, 0xFFFFFFFF   ; FILE_WRITE_TO_END_OF_FILE
lineText:       db 'a line through the log handle', 13, 10
lineTextEnd:
objectAttributes:
    dd 24, 0, logName, OBJ_CASE_INSENSITIVE, 0, 0   ; no OBJ_KERNEL_HANDLE: the mistake
logName:
    dw logNameEnd - logNameText, logNameEnd - logNameText
    dd logNameText
logNameText:
    dw '\', '?', '?', '\', 'C', ':', '\', 'f', 'i', 'n', 'd', 'i', 'n', 'g', 's', '-', 'l', 'o', 'g', '.', 't', 'x', 't'
logNameEnd:
deviceName:
    dw deviceNameEnd - deviceNameText, deviceNameEnd - deviceNameText
    dd deviceNameText
deviceNameText:
    dw '\', 'D', 'e', 'v', 'i', 'c', 'e', '\', 'F', 'i', 'n', 'd', 'i', 'n', 'g', 's', 'W', 'o', 'r', 'k', 'e', 'r'
deviceNameEnd:
linkName:
    dw linkNameEnd - linkNameText, linkNameEnd - linkNameText
    dd linkNameText
linkNameText:
    dw '\', '?', '?', '\', 'F', 'i', 'n', 'd', 'i', 'n', 'g', 's', 'W', 'o', 'r', 'k', 'e', 'r'
linkNameEnd:
