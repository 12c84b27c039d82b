; ntflow: user
; ntflow-file: \??\C:\readme.txt = "Hello from ntflow's in-memory file system.\r\n"
;
; user-zw-readfile: the same program through ntdll!ZwReadFile. In user mode NtXxx and ZwXxx are
; one stub at one address (0x77F761E8), so the path is identical: PreviousMode is UserMode.
;
; The call travels ntdll!NtReadFile (EAX = 0B7h) → SharedUserData!SystemCallStub (EDX = ESP) →
; SYSENTER → nt!KiFastCallEntry (builds the trap frame, PreviousMode = UserMode) →
; nt!KiSystemService+0x5C (the dispatch: KiServiceTable[0B7h], 24h argument bytes copied from the
; user stack after checking EDX against MmUserProbeAddress) → nt!NtReadFile (references the handle,
; then probes the user's buffers, because PreviousMode is UserMode) → nt!KiServiceExit (the APC
; check finds nothing) → SYSEXIT back to SharedUserData's ret and ntdll's `ret 24h`.
; The program's exit status is NtReadFile's NTSTATUS.

GENERIC_READ                 equ 0x80000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 0x00000001
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040

start:
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
    call ntdll!ZwCreateFile
    test eax, eax
    jnz .done                               ; could not open: exit with that status

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
    call ntdll!ZwReadFile
    mov ebx, eax                            ; keep the status

    push dword [fileHandle]
    call ntdll!ZwClose
    mov eax, ebx
.done:
    ret                                     ; exit status = NtReadFile's status

align 4
fileHandle:       dd 0
iosb:             dd 0, 0                   ; IO_STATUS_BLOCK: Status, Information
byteOffset:       dd 0, 0                   ; LARGE_INTEGER 0
objectAttributes:                           ; OBJECT_ATTRIBUTES
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
