; ntflow: driver
; ntflow-file: \??\C:\readme.txt = "Hello from ntflow's in-memory file system.\r\n"
;
; The reader driver, Nt flavour (scenario kernel-nt-readfile): the same driver as zw-reader.asm,
; but its read dispatch routine calls nt!NtReadFile directly. A direct call goes through no
; system-service dispatch, so PreviousMode stays what it was: UserMode, because this dispatch
; routine runs in the program's thread, serving the program's NtReadFile. NtReadFile therefore
; treats the driver's arguments as coming from user mode: the kernel handle (bit 31 set) may only
; be used from KernelMode, so the call fails with STATUS_INVALID_HANDLE before any buffer is
; even probed — and the program's read fails with it.

FILE_DEVICE_UNKNOWN          equ 0x22
IRP_MJ_CREATE                equ 0x00
IRP_MJ_CLOSE                 equ 0x02
IRP_MJ_READ                  equ 0x03
DRIVER_OBJECT_MajorFunction  equ 0x38       ; XP's DRIVER_OBJECT.MajorFunction[28]
IRP_IoStatus_Status          equ 0x18
IRP_IoStatus_Information     equ 0x1C
GENERIC_READ                 equ 0x80000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 1
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x20
OBJ_CASE_INSENSITIVE         equ 0x40
OBJ_KERNEL_HANDLE            equ 0x200

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
    call nt!IoCreateSymbolicLink            ; \??\NtflowReader -> \Device\NtflowReader
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_CREATE*4], DispatchCreateClose
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_CLOSE*4], DispatchCreateClose
    mov dword [ebx+DRIVER_OBJECT_MajorFunction+IRP_MJ_READ*4], DispatchRead
    ; ZwCreateFile(&FileHandle, …, &ObjectAttributes (OBJ_KERNEL_HANDLE), &IoStatusBlock, …)
    push 0
    push 0
    push FILE_SYNCHRONOUS_IO_NONALERT
    push FILE_OPEN
    push FILE_SHARE_READ
    push 0
    push 0
    push iosb
    push objectAttributes
    push GENERIC_READ | SYNCHRONIZE
    push fileHandle
    call nt!ZwCreateFile
.done:
    pop ebx
    pop ebp
    ret 8

; NTSTATUS DispatchCreateClose(PDEVICE_OBJECT DeviceObject, PIRP Irp): always succeeds.
DispatchCreateClose:
    mov ecx, [esp+8]
    xor eax, eax
    mov [ecx+IRP_IoStatus_Status], eax
    mov [ecx+IRP_IoStatus_Information], eax
    push 0
    push ecx
    call nt!IoCompleteRequest
    xor eax, eax
    ret 8

; NTSTATUS DispatchRead(PDEVICE_OBJECT DeviceObject, PIRP Irp): read the file through NtReadFile.
DispatchRead:
    push ebp
    mov ebp, esp
    push ebx
    push 0                                  ; Key
    push byteOffset
    push 64
    push buffer
    push iosb
    push 0
    push 0
    push 0
    push dword [fileHandle]
    call nt!NtReadFile                      ; direct: PreviousMode stays UserMode
    mov ebx, eax
    mov ecx, [ebp+12]                       ; complete the program's IRP with that status
    mov [ecx+IRP_IoStatus_Status], ebx
    mov dword [ecx+IRP_IoStatus_Information], 0
    push 0
    push ecx
    call nt!IoCompleteRequest
    mov eax, ebx
    pop ebx
    pop ebp
    ret 8

align 4
deviceObject: dd 0
fileHandle:   dd 0
iosb:         dd 0, 0
byteOffset:   dd 0, 0
objectAttributes:
    dd 24, 0, fileName, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, 0, 0
fileName:
    dw fileNameEnd - fileNameText, fileNameEnd - fileNameText
    dd fileNameText
fileNameText:
    dw '\', '?', '?', '\', 'C', ':', '\', 'r', 'e', 'a', 'd', 'm', 'e', '.', 't', 'x', 't'
fileNameEnd:
deviceName:
    dw deviceNameEnd - deviceNameText, deviceNameEnd - deviceNameText
    dd deviceNameText
deviceNameText:
    dw '\', 'D', 'e', 'v', 'i', 'c', 'e', '\', 'N', 't', 'f', 'l', 'o', 'w', 'R', 'e', 'a', 'd', 'e', 'r'
deviceNameEnd:
linkName:
    dw linkNameEnd - linkNameText, linkNameEnd - linkNameText
    dd linkNameText
linkNameText:
    dw '\', '?', '?', '\', 'N', 't', 'f', 'l', 'o', 'w', 'R', 'e', 'a', 'd', 'e', 'r'
linkNameEnd:
buffer: times 64 db 0
