; ntflow: user
; ntflow-file: \??\C:\readme.txt = "Hello from ntflow's in-memory file system.\r\n"
;
; ntdll-stub-hook: a user-mode hook of ntdll!NtReadFile's stub, the way DLLs injected by user-mode
; rootkits and API monitors hooked the native API in each process they were loaded into. XP SP1's
; stub is `mov eax,0B7h` · `mov edx,7FFE0300h` · `call edx` · `ret 24h`: the hook rewrites the
; immediate of the second instruction (ntdll!NtReadFile+6) so that EDX = NtReadFileDetour, code in
; this program's image. The service number, the `call edx` and the stack are as before, so the
; detour sees exactly what SharedUserData!SystemCallStub would: EAX = the service number, [ESP]
; the return into the stub, [ESP+4] the caller's return, [ESP+8] the arguments. It counts
; NtReadFile calls, notes the FileHandle argument, and jumps (not calls: the kernel finds the
; arguments at EDX+8 from the stub's ESP) to the SystemCallStub address the stub held, so the read
; still works. Nothing in the kernel changes: only this process's ntdll does, which is what
; Volatility's apihooks finds by decoding each stub's `mov edx,X`.
;
; Done in-process, as an injected DLL did it, through the native API: ntdll's image is
; PAGE_EXECUTE_READ, so NtProtectVirtualMemory(NtCurrentProcess(), …, PAGE_EXECUTE_READWRITE)
; first (VirtualProtect in kernel32 is this call), the four bytes written, the old protection put
; back. A driver could write the same bytes with CR0.WP cleared while attached to the process, but
; the detour would still have to be user-mode code the process can run, so the in-process hook is
; the faithful one. Then the program reads C:\readme.txt exactly as user-nt-readfile does.
; The exit status is NtReadFile's NTSTATUS (or the status of the step that failed).

GENERIC_READ                 equ 0x80000000
SYNCHRONIZE                  equ 0x00100000
FILE_SHARE_READ              equ 0x00000001
FILE_OPEN                    equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
OBJ_CASE_INSENSITIVE         equ 0x00000040
PAGE_EXECUTE_READWRITE       equ 0x40
STATUS_UNSUCCESSFUL          equ 0xC0000001

start:
    ; ---- the hook: make the stub's page writable, patch `mov edx,imm32`, restore the page ----
    mov esi, ntdll!NtReadFile
    cmp byte [esi+5], 0xBA                  ; mov edx, imm32 — the stub we know?
    jne .notOurStub
    mov [protectBase], esi
    ; NtProtectVirtualMemory(ProcessHandle, &BaseAddress, &NumberOfBytes, NewProtect, &OldProtect)
    push oldProtect
    push PAGE_EXECUTE_READWRITE
    push protectSize
    push protectBase
    push -1                                 ; NtCurrentProcess()
    call ntdll!NtProtectVirtualMemory
    test eax, eax
    jnz .done
    mov eax, [esi+6]                        ; SharedUserData!SystemCallStub
    mov [originalSystemCallStub], eax
    mov dword [esi+6], NtReadFileDetour     ; the hook: mov edx, NtReadFileDetour
    ; put the old protection back (BaseAddress and the size now hold the rounded page range)
    push ignoredProtect
    push dword [oldProtect]
    push protectSize
    push protectBase
    push -1
    call ntdll!NtProtectVirtualMemory
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
    ;            &ByteOffset, Key) — through the hooked stub, so through NtReadFileDetour
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
.notOurStub:
    mov eax, STATUS_UNSUCCESSFUL
    ret

; Where ntdll!NtReadFile's `call edx` goes now. In: EAX = service number, [ESP] = the return into
; the stub, [ESP+4] = the caller's return, [ESP+8] = the first argument (FileHandle).
NtReadFileDetour:
    cmp eax, 0xB7                           ; NtReadFile (the stub's own number)
    jne .pass
    inc dword [detourCalls]
    mov edx, [esp+8]                        ; a filter would decide here: FileHandle
    mov [lastFileHandle], edx
.pass:
    jmp dword [originalSystemCallStub]      ; SharedUserData!SystemCallStub, the stack as it was

align 4
originalSystemCallStub: dd 0
detourCalls:            dd 0
lastFileHandle:         dd 0
protectBase:            dd 0
protectSize:            dd 5 + 5            ; mov eax / mov edx: the patched bytes lie within
oldProtect:             dd 0
ignoredProtect:         dd 0
fileHandle:             dd 0
iosb:                   dd 0, 0             ; IO_STATUS_BLOCK: Status, Information
byteOffset:             dd 0, 0             ; LARGE_INTEGER 0
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
