; ntflow: driver
;
; thread-table-hook: a hook of one thread's system calls that leaves every global table alone.
; The dispatcher does not use KeServiceDescriptorTable directly: it adds the service number's
; table bits to KTHREAD.ServiceTable (+0E0h; `add edi,[esi+KTHREAD_ServiceTable]`), which the
; kernel points at KeServiceDescriptorTable or, for a GUI thread, KeServiceDescriptorTableShadow.
; A driver that gives a thread its own descriptor tables, pointing at its own copy of
; KiServiceTable with one entry changed, hooks that thread only. KiServiceTable and
; KeServiceDescriptorTable stay as they were, so a scanner that reads the exported table (or
; compares KiServiceTable with ntoskrnl's file) finds nothing; Volatility's ssdt plugin walks every
; thread's ServiceTable for this reason, and reports each distinct table it finds.
;
; Which thread: DriverEntry runs on a System worker thread, not the program's. So the driver
; creates \Device\ThreadTableHook, and the program asks for the hook with an IOCTL: the I/O
; manager sends IRP_MJ_DEVICE_CONTROL to the dispatch routine in the caller's thread, where
; PsGetCurrentThread() is the thread to hook (a driver given a thread id instead would use
; PsLookupThreadByThreadId). There the driver:
;   1. reads the thread's ServiceTable (the four descriptors, 40h bytes);
;   2. allocates non-paged pool for a copy of them followed by a copy of descriptor 0's table
;      (Limit entries of KiServiceTable), and copies both;
;   3. points the copied descriptor 0's Base at the copied table, and keeps its argument table
;      (KiArgumentTable: the argument bytes are unchanged);
;   4. replaces NtReadFile's entry (0B7h) in the copy with HookNtReadFile;
;   5. stores the copied descriptors in the thread's KTHREAD.ServiceTable.
; Pool is writable, so no CR0.WP trick is needed: nothing read-only is written. The program's
; next system calls dispatch through the copy (the ssdt-lookup event's tableBase says so); its
; NtReadFile runs HookNtReadFile, which counts the call and jumps to the original nt!NtReadFile.

FILE_DEVICE_UNKNOWN           equ 0x22
IRP_MJ_CREATE                 equ 0x00
IRP_MJ_CLOSE                  equ 0x02
IRP_MJ_DEVICE_CONTROL         equ 0x0E
DRIVER_OBJECT_MajorFunction   equ 0x38      ; XP's DRIVER_OBJECT.MajorFunction[28]
IRP_IoStatus_Status           equ 0x18
IRP_IoStatus_Information      equ 0x1C
IRP_CurrentStackLocation      equ 0x60
IO_STACK_IoControlCode        equ 0x0C
IOCTL_HOOK_THIS_THREAD        equ 0x00222000 ; CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
KTHREAD_ServiceTable          equ 0xE0
DESCRIPTOR_Base               equ 0x00      ; KSERVICE_TABLE_DESCRIPTOR
DESCRIPTOR_Limit              equ 0x08
DESCRIPTORS_SIZE              equ 4 * 0x10  ; four descriptors per table array, as XP has
NonPagedPool                  equ 0
POOL_TAG                      equ 'Thdk'
SERVICE_NtReadFile            equ 0xB7
STATUS_INVALID_DEVICE_REQUEST equ 0xC0000010
STATUS_INSUFFICIENT_RESOURCES equ 0xC000009A
STATUS_UNSUCCESSFUL           equ 0xC0000001

; NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
DriverEntry:
    push ebp
    mov ebp, esp
    push ebx
    mov ebx, [ebp+8]                        ; DriverObject
    ; IoCreateDevice(DriverObject, ExtensionSize, &DeviceName, DeviceType, Characteristics,
    ;                Exclusive, &DeviceObject)
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
    call nt!IoCreateSymbolicLink            ; \??\ThreadTableHook -> \Device\ThreadTableHook
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_CREATE*4], DispatchCreateClose
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_CLOSE*4], DispatchCreateClose
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_DEVICE_CONTROL*4], DispatchDeviceControl
    xor eax, eax
.done:
    pop ebx
    pop ebp
    ret 8

; Complete an IRP: ECX = Irp, EAX = status (kept in EAX).
CompleteIrp:
    mov [ecx+IRP_IoStatus_Status], eax
    mov dword [ecx+IRP_IoStatus_Information], 0
    push eax
    push 0                                  ; IO_NO_INCREMENT
    push ecx
    call nt!IoCompleteRequest
    pop eax
    ret

; NTSTATUS DispatchCreateClose(PDEVICE_OBJECT DeviceObject, PIRP Irp): always succeeds.
DispatchCreateClose:
    mov ecx, [esp+8]
    xor eax, eax
    call CompleteIrp
    ret 8

; NTSTATUS DispatchDeviceControl(PDEVICE_OBJECT DeviceObject, PIRP Irp): in the caller's thread.
DispatchDeviceControl:
    push ebp
    mov ebp, esp
    push ebx
    push esi
    push edi
    mov ecx, [ebp+12]
    mov edx, [ecx+IRP_CurrentStackLocation]
    mov eax, STATUS_INVALID_DEVICE_REQUEST
    cmp dword [edx+IO_STACK_IoControlCode], IOCTL_HOOK_THIS_THREAD
    jne .complete
    call HookCurrentThread
.complete:
    mov ecx, [ebp+12]
    call CompleteIrp
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret 8

; Give the current thread its own service tables, NtReadFile hooked. Out: EAX = NTSTATUS.
HookCurrentThread:
    call nt!PsGetCurrentThread              ; the ETHREAD (its KTHREAD is at +0)
    mov ebx, eax
    mov esi, [ebx+KTHREAD_ServiceTable]     ; the descriptors the thread uses now
    mov eax, STATUS_UNSUCCESSFUL
    cmp dword [esi+DESCRIPTOR_Limit], SERVICE_NtReadFile
    jbe .ret                                ; not the table we know
    ; 1-2. pool for the descriptors and descriptor 0's table
    mov eax, [esi+DESCRIPTOR_Limit]
    lea eax, [eax*4+DESCRIPTORS_SIZE]
    push POOL_TAG
    push eax
    push NonPagedPool
    call nt!ExAllocatePoolWithTag
    test eax, eax
    jz .noMemory
    mov edi, eax
    mov [threadDescriptors], edi
    cld
    mov ecx, DESCRIPTORS_SIZE / 4
    rep movsd                               ; the four descriptors (ESI, EDI advance past them)
    mov esi, [ebx+KTHREAD_ServiceTable]
    mov ecx, [esi+DESCRIPTOR_Limit]
    mov esi, [esi+DESCRIPTOR_Base]          ; KiServiceTable
    mov [threadServiceTable], edi           ; the copy follows the descriptors
    rep movsd                               ; Limit entries
    ; 3. the copied descriptor 0 names the copied table
    mov edi, [threadDescriptors]
    mov eax, [threadServiceTable]
    mov [edi+DESCRIPTOR_Base], eax
    ; 4. the hook, in the copy only
    mov ecx, [eax+SERVICE_NtReadFile*4]
    mov [originalNtReadFile], ecx
    mov dword [eax+SERVICE_NtReadFile*4], HookNtReadFile
    ; 5. the swap: this thread dispatches through the copy from its next system call on
    mov [ebx+KTHREAD_ServiceTable], edi
    xor eax, eax                            ; STATUS_SUCCESS
.ret:
    ret
.noMemory:
    mov eax, STATUS_INSUFFICIENT_RESOURCES
    ret

; Same arguments as NtReadFile (the dispatcher copied them): count, then continue in the original.
HookNtReadFile:
    inc dword [hookCalls]
    jmp dword [originalNtReadFile]

align 4
deviceObject:       dd 0
threadDescriptors:  dd 0
threadServiceTable: dd 0
originalNtReadFile: dd 0
hookCalls:          dd 0
deviceName:
    dw deviceNameEnd - deviceNameText, deviceNameEnd - deviceNameText
    dd deviceNameText
deviceNameText:
    dw '\', 'D', 'e', 'v', 'i', 'c', 'e', '\', 'T', 'h', 'r', 'e', 'a', 'd', 'T', 'a', 'b', 'l', 'e', 'H', 'o', 'o', 'k'
deviceNameEnd:
linkName:
    dw linkNameEnd - linkNameText, linkNameEnd - linkNameText
    dd linkNameText
linkNameText:
    dw '\', '?', '?', '\', 'T', 'h', 'r', 'e', 'a', 'd', 'T', 'a', 'b', 'l', 'e', 'H', 'o', 'o', 'k'
linkNameEnd:
