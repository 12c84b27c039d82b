; ntflow: driver
;
; The OSR log driver ("Nt vs. Zw — Clearing Confusion on the Native API"), opening its log file
; WITHOUT OBJ_KERNEL_HANDLE (scenario osr-log-user-handle).
;
; IOCTL_OSRLOG_OPEN arrives in the program's thread, so ZwCreateFile's handle lands in the
; program's process handle table. The read dispatch routine (program's thread, PreviousMode =
; UserMode) then writes a line with:
;   NtWriteFile — PreviousMode UserMode: the handle is found in the process table, but the
;                 IO_STATUS_BLOCK and the line are kernel-mode buffers, and a UserMode caller's
;                 buffers must pass the probes: the first, ProbeForWrite of the IO_STATUS_BLOCK,
;                 fails: STATUS_ACCESS_VIOLATION.
;   ZwWriteFile — through KiSystemService: PreviousMode KernelMode, no probe: success.
; and queues a work item, which runs later on a System worker thread (System process, KernelMode)
; and writes with both again. The System process's handle table is the kernel handle table, in
; which the program's handle value names nothing: STATUS_INVALID_HANDLE for both.

FILE_DEVICE_UNKNOWN          equ 0x22
IRP_MJ_CREATE                equ 0x00
IRP_MJ_CLOSE                 equ 0x02
IRP_MJ_READ                  equ 0x03
IRP_MJ_DEVICE_CONTROL        equ 0x0E
DRIVER_OBJECT_MajorFunction  equ 0x38
IRP_IoStatus_Status          equ 0x18
IRP_IoStatus_Information     equ 0x1C
IRP_CurrentStackLocation     equ 0x60
IO_STACK_IoControlCode       equ 0x0C
IOCTL_OSRLOG_OPEN            equ 0x00222000
GENERIC_WRITE                equ 0x40000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 1
FILE_OVERWRITE_IF            equ 5
FILE_SYNCHRONOUS_IO_NONALERT equ 0x20
OBJ_CASE_INSENSITIVE         equ 0x40
OBJ_KERNEL_HANDLE            equ 0x200
DelayedWorkQueue             equ 1
STATUS_INVALID_DEVICE_REQUEST equ 0xC0000010
LOG_ATTRIBUTES               equ OBJ_CASE_INSENSITIVE   ; no OBJ_KERNEL_HANDLE

DriverEntry:
    push ebp
    mov ebp, esp
    push ebx
    mov ebx, [ebp+8]
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
    call nt!IoCreateSymbolicLink
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_CREATE*4], DispatchCreateClose
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_CLOSE*4], DispatchCreateClose
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_READ*4], DispatchRead
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_DEVICE_CONTROL*4], DispatchDeviceControl
    xor eax, eax
.done:
    pop ebx
    pop ebp
    ret 8

; Complete an IRP: ECX = Irp, EAX = status.
CompleteIrp:
    mov [ecx+IRP_IoStatus_Status], eax
    mov dword [ecx+IRP_IoStatus_Information], 0
    push eax
    push 0
    push ecx
    call nt!IoCompleteRequest
    pop eax
    ret

DispatchCreateClose:
    mov ecx, [esp+8]
    xor eax, eax
    call CompleteIrp
    ret 8

; IOCTL_OSRLOG_OPEN: open (create) the log file, in the program's thread.
DispatchDeviceControl:
    push ebp
    mov ebp, esp
    mov ecx, [ebp+12]
    mov edx, [ecx+IRP_CurrentStackLocation]
    mov eax, STATUS_INVALID_DEVICE_REQUEST
    cmp dword [edx+IO_STACK_IoControlCode], IOCTL_OSRLOG_OPEN
    jne .complete
    push 0
    push 0
    push FILE_SYNCHRONOUS_IO_NONALERT
    push FILE_OVERWRITE_IF
    push FILE_SHARE_READ
    push 0
    push 0
    push iosb
    push objectAttributes
    push GENERIC_WRITE | SYNCHRONIZE
    push logHandle
    call nt!ZwCreateFile
    mov ecx, [ebp+12]
.complete:
    call CompleteIrp
    pop ebp
    ret 8

; Write one line with NtWriteFile (direct) and one with ZwWriteFile; ESI = Nt line, EDI = Zw line.
; Both statuses are kept, in [ebx] and [ebx+4].
WriteBoth:
    push 0                                  ; Key
    push endOfFile                          ; ByteOffset: FILE_WRITE_TO_END_OF_FILE
    push dword [esi]                        ; Length
    push dword [esi+4]                      ; Buffer
    push iosb
    push 0
    push 0
    push 0
    push dword [logHandle]
    call nt!NtWriteFile
    mov [ebx], eax
    push 0
    push endOfFile
    push dword [edi]
    push dword [edi+4]
    push iosb
    push 0
    push 0
    push 0
    push dword [logHandle]
    call nt!ZwWriteFile
    mov [ebx+4], eax
    ret

; The read dispatch routine: log from here (the program's thread), and from a work item.
DispatchRead:
    push ebp
    mov ebp, esp
    push ebx
    push esi
    push edi
    mov ebx, dispatchStatus
    mov esi, lineDispatchNt
    mov edi, lineDispatchZw
    call WriteBoth
    push dword [deviceObject]
    call nt!IoAllocateWorkItem
    mov [workItem], eax
    push 0                                  ; Context
    push DelayedWorkQueue
    push WorkItemRoutine
    push eax
    call nt!IoQueueWorkItem
    mov ecx, [ebp+12]
    xor eax, eax
    call CompleteIrp
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret 8

; VOID WorkItemRoutine(PDEVICE_OBJECT DeviceObject, PVOID Context): on a System worker thread.
WorkItemRoutine:
    push ebx
    push esi
    push edi
    mov ebx, workItemStatus
    mov esi, lineWorkItemNt
    mov edi, lineWorkItemZw
    call WriteBoth
    push dword [workItem]
    call nt!IoFreeWorkItem
    pop edi
    pop esi
    pop ebx
    ret 8

align 4
deviceObject:   dd 0
logHandle:      dd 0
workItem:       dd 0
iosb:           dd 0, 0
endOfFile:      dd 0xFFFFFFFF, 0xFFFFFFFF   ; FILE_WRITE_TO_END_OF_FILE
dispatchStatus: dd 0, 0                     ; NtWriteFile, ZwWriteFile from the dispatch routine
workItemStatus: dd 0, 0                     ; NtWriteFile, ZwWriteFile from the work item
; Each line: length, address (the text is in this driver's image: kernel memory).
lineDispatchNt: dd textDispatchNtEnd - textDispatchNt, textDispatchNt
lineDispatchZw: dd textDispatchZwEnd - textDispatchZw, textDispatchZw
lineWorkItemNt: dd textWorkItemNtEnd - textWorkItemNt, textWorkItemNt
lineWorkItemZw: dd textWorkItemZwEnd - textWorkItemZw, textWorkItemZw
textDispatchNt: db 'dispatch routine: NtWriteFile', 13, 10
textDispatchNtEnd:
textDispatchZw: db 'dispatch routine: ZwWriteFile', 13, 10
textDispatchZwEnd:
textWorkItemNt: db 'work item: NtWriteFile', 13, 10
textWorkItemNtEnd:
textWorkItemZw: db 'work item: ZwWriteFile', 13, 10
textWorkItemZwEnd:
objectAttributes:
    dd 24, 0, logName, LOG_ATTRIBUTES, 0, 0
logName:
    dw logNameEnd - logNameText, logNameEnd - logNameText
    dd logNameText
logNameText:
    dw '\', '?', '?', '\', 'C', ':', '\', 'o', 's', 'r', 'l', 'o', 'g', '.', 't', 'x', 't'
logNameEnd:
deviceName:
    dw deviceNameEnd - deviceNameText, deviceNameEnd - deviceNameText
    dd deviceNameText
deviceNameText:
    dw '\', 'D', 'e', 'v', 'i', 'c', 'e', '\', 'O', 's', 'r', 'L', 'o', 'g'
deviceNameEnd:
linkName:
    dw linkNameEnd - linkNameText, linkNameEnd - linkNameText
    dd linkNameText
linkNameText:
    dw '\', '?', '?', '\', 'O', 's', 'r', 'L', 'o', 'g'
linkNameEnd:
