; ntflow: user
; ntflow-file: \??\C:\readme.txt = "Hello from ntflow's in-memory file system.\r\n"
;
; thread-table-hook's program. It opens the driver's device (\\.\ThreadTableHook) and sends it
; IOCTL_HOOK_THIS_THREAD with NtDeviceIoControlFile: the driver's dispatch routine runs in this
; thread and gives it a copied service table with NtReadFile hooked (KTHREAD.ServiceTable). Then
; it reads C:\readme.txt exactly as user-nt-readfile does: NtCreateFile, NtReadFile, NtClose now
; dispatch through the copy, and NtReadFile through the driver's hook, which passes it on.
; The exit status is NtReadFile's NTSTATUS (or the status of the step that failed).

GENERIC_READ                 equ 0x80000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 0x00000001
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040
IOCTL_HOOK_THIS_THREAD       equ 0x00222000 ; CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)

start:
    ; ---- ask the driver to hook this thread ----
    push 0                                  ; EaLength
    push 0                                  ; EaBuffer
    push FILE_SYNCHRONOUS_IO_NONALERT
    push FILE_OPEN
    push 0                                  ; ShareAccess
    push 0                                  ; FileAttributes
    push 0                                  ; AllocationSize
    push iosb
    push deviceAttributes
    push GENERIC_READ | SYNCHRONIZE
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
    push IOCTL_HOOK_THIS_THREAD
    push iosb
    push 0
    push 0
    push 0
    push dword [deviceHandle]
    call ntdll!NtDeviceIoControlFile
    mov ebx, eax
    push dword [deviceHandle]
    call ntdll!NtClose
    mov eax, ebx
    test eax, eax
    jnz .done

    ; ---- the read of user-nt-readfile ----
    ; NtCreateFile(&FileHandle, DesiredAccess, &ObjectAttributes, &IoStatusBlock, AllocationSize,
    ;              FileAttributes, ShareAccess, CreateDisposition, CreateOptions, EaBuffer, EaLength)
    push 0                                  ; EaLength
    push 0                                  ; EaBuffer
    push FILE_SYNCHRONOUS_IO_NONALERT       ; CreateOptions
    push FILE_OPEN                          ; CreateDisposition: the file must exist
    push FILE_SHARE_READ                    ; ShareAccess
    push 0                                  ; FileAttributes
    push 0                                  ; AllocationSize
    push iosb
    push objectAttributes
    push GENERIC_READ | SYNCHRONIZE
    push fileHandle
    call ntdll!NtCreateFile
    test eax, eax
    jnz .done

    ; NtReadFile(FileHandle, Event, ApcRoutine, ApcContext, &IoStatusBlock, Buffer, Length,
    ;            &ByteOffset, Key)
    push 0                                  ; Key
    push byteOffset                         ; from the start of the file
    push 64                                 ; Length
    push buffer
    push iosb
    push 0                                  ; ApcContext
    push 0                                  ; ApcRoutine
    push 0                                  ; Event
    push dword [fileHandle]
    call ntdll!NtReadFile
    mov ebx, eax                            ; keep the status

    push dword [fileHandle]
    call ntdll!NtClose
    mov eax, ebx
.done:
    ret                                     ; exit status = NtReadFile's status

align 4
deviceHandle:     dd 0
fileHandle:       dd 0
iosb:             dd 0, 0                   ; IO_STATUS_BLOCK: Status, Information
byteOffset:       dd 0, 0                   ; LARGE_INTEGER 0
deviceAttributes:                           ; OBJECT_ATTRIBUTES of \??\ThreadTableHook
    dd 24, 0, deviceName, OBJ_CASE_INSENSITIVE, 0, 0
deviceName:
    dw deviceNameEnd - deviceNameText, deviceNameEnd - deviceNameText
    dd deviceNameText
deviceNameText:
    dw '\', '?', '?', '\', 'T', 'h', 'r', 'e', 'a', 'd', 'T', 'a', 'b', 'l', 'e', 'H', 'o', 'o', 'k'
deviceNameEnd:
align 4
objectAttributes:                           ; OBJECT_ATTRIBUTES of \??\C:\readme.txt
    dd 24                                   ; Length
    dd 0                                    ; RootDirectory
    dd fileName                             ; ObjectName
    dd OBJ_CASE_INSENSITIVE                 ; Attributes
    dd 0, 0                                 ; SecurityDescriptor, SecurityQualityOfService
fileName:                                   ; UNICODE_STRING (lengths in bytes)
    dw fileNameEnd - fileNameText, fileNameEnd - fileNameText
    dd fileNameText
fileNameText:
    dw '\', '?', '?', '\', 'C', ':', '\', 'r', 'e', 'a', 'd', 'm', 'e', '.', 't', 'x', 't'
fileNameEnd:
buffer:           times 64 db 0
