; kernel32.dll: the Win32 base API of the miniature XP SP1, at XP SP1's kernel32 base (0x77E60000).
;
; Every function here is stdcall and runs in user mode. It reaches the kernel the way XP's kernel32
; does: through ntdll's exports (`call ntdll!NtCreateFile`, `call ntdll!NtReadFile`, …), whose
; stubs go through SharedUserData!SystemCallStub and SYSENTER to nt!KiFastCallEntry. A failure is
; reported the XP way: the return value (FALSE, NULL or INVALID_HANDLE_VALUE) and the thread's last
; error, TEB.LastErrorValue (fs:[18h] is the TEB, +34h the value), which BaseSetLastNTError sets
; from the NTSTATUS through ntdll!RtlNtStatusToDosError.
;
; RECONSTRUCTED from XP's documented behaviour, with ReactOS's kernel32 (dll/win32/kernel32) as a
; guide to the order of things. Where this miniature departs from XP the comment says so; the
; main departures:
; - There is no process heap: the NT path of a file name is built on CreateFileW's stack instead of
;   in a heap buffer RtlDosPathNameToNtPathName_U allocates.
; - The console is a device (\Device\ConsoleOut, see core/guest/nt/console.ts), not CSRSS: the
;   standard handles are file handles, and WriteConsoleA is NtWriteFile on them.
;
; The structure offsets (TEB_*, PEB_*, RTL_USER_PROCESS_PARAMETERS_*, …), NTSTATUS names and
; ERROR_* codes come from the header build.ts puts in front of this file.

; ---- Win32 constants (winbase.h, winnt.h) and the NT ones they become (ntifc.h) ---------------
INVALID_HANDLE_VALUE         equ 0xFFFFFFFF
STD_INPUT_HANDLE             equ 0xFFFFFFF6     ; (DWORD)-10
STD_OUTPUT_HANDLE            equ 0xFFFFFFF5     ; (DWORD)-11
STD_ERROR_HANDLE             equ 0xFFFFFFF4     ; (DWORD)-12
NT_CURRENT_PROCESS           equ 0xFFFFFFFF     ; NtCurrentProcess()
NT_CURRENT_THREAD            equ 0xFFFFFFFE     ; NtCurrentThread()

GENERIC_READ                 equ 0x80000000
GENERIC_WRITE                equ 0x40000000
DELETE                       equ 0x00010000
SYNCHRONIZE                  equ 0x00100000
FILE_READ_ATTRIBUTES         equ 0x00000080

; dwCreationDisposition
CREATE_NEW                   equ 1
CREATE_ALWAYS                equ 2
OPEN_EXISTING                equ 3
OPEN_ALWAYS                  equ 4
TRUNCATE_EXISTING            equ 5
; NtCreateFile's CreateDisposition, and what IoStatusBlock.Information says it did
FILE_OPEN                    equ 1
FILE_CREATE                  equ 2
FILE_OPEN_IF                 equ 3
FILE_OVERWRITE               equ 4
FILE_OVERWRITE_IF            equ 5
FILE_OPENED                  equ 1
FILE_OVERWRITTEN             equ 3

; dwFlagsAndAttributes: the flags, and the CreateOptions each becomes
FILE_FLAG_WRITE_THROUGH      equ 0x80000000
FILE_FLAG_OVERLAPPED         equ 0x40000000
FILE_FLAG_NO_BUFFERING       equ 0x20000000
FILE_FLAG_RANDOM_ACCESS      equ 0x10000000
FILE_FLAG_SEQUENTIAL_SCAN    equ 0x08000000
FILE_FLAG_DELETE_ON_CLOSE    equ 0x04000000
FILE_FLAG_BACKUP_SEMANTICS   equ 0x02000000
FILE_FLAG_POSIX_SEMANTICS    equ 0x01000000
FILE_WRITE_THROUGH           equ 0x00000002
FILE_SEQUENTIAL_ONLY         equ 0x00000004
FILE_NO_INTERMEDIATE_BUFFERING equ 0x00000008
FILE_SYNCHRONOUS_IO_NONALERT equ 0x00000020
FILE_NON_DIRECTORY_FILE      equ 0x00000040
FILE_RANDOM_ACCESS           equ 0x00000800
FILE_DELETE_ON_CLOSE         equ 0x00001000
FILE_OPEN_FOR_BACKUP_INTENT  equ 0x00004000
; The attribute bits CreateFile passes on (FILE_ATTRIBUTE_VALID_FLAGS without FILE_ATTRIBUTE_DIRECTORY)
FILE_ATTRIBUTES_PASSED       equ 0x00007FA7

OBJ_INHERIT                  equ 0x00000002
OBJ_CASE_INSENSITIVE         equ 0x00000040

; SECURITY_ATTRIBUTES and OVERLAPPED (winbase.h)
SECURITY_ATTRIBUTES_lpSecurityDescriptor equ 4
SECURITY_ATTRIBUTES_bInheritHandle       equ 8
OVERLAPPED_Internal          equ 0x00           ; the IO_STATUS_BLOCK's Status …
OVERLAPPED_InternalHigh      equ 0x04           ; … and Information
OVERLAPPED_Offset            equ 0x08           ; Offset and OffsetHigh: a LARGE_INTEGER ByteOffset
OVERLAPPED_hEvent            equ 0x10

MEM_RELEASE                  equ 0x8000
BASE_ALLOCATION_GRANULARITY  equ 0x10000
INFINITE                     equ 0xFFFFFFFF
WAIT_IO_COMPLETION           equ 0x000000C0

FileFsDeviceInformation      equ 4
FILE_DEVICE_FILE_SYSTEM      equ 0x09
FILE_DEVICE_CONSOLE          equ 0x50

DPFLTR_DEFAULT_ID            equ 101
DPFLTR_INFO_LEVEL            equ 3

; TEB.StaticUnicodeString's buffer: 261 characters (MAX_PATH and its NUL)
STATIC_UNICODE_CHARS         equ 261
; The NT path CreateFileW builds on its stack: \??\, the current directory and the name
NT_PATH_CHARS                equ 600

; --------------------------------------------------------------------------------------------
; The last error: TEB.LastErrorValue of the calling thread.
; --------------------------------------------------------------------------------------------

; DWORD GetLastError(void)
GetLastError:
    mov eax, [fs:NT_TIB_Self]
    mov eax, [eax+TEB_LastErrorValue]
    ret

; void SetLastError(DWORD dwErrCode) — leaves the error in EAX, which BaseSetLastNTError returns.
SetLastError:
    mov eax, [esp+4]
    mov ecx, [fs:NT_TIB_Self]
    mov [ecx+TEB_LastErrorValue], eax
    ret 4

; DWORD BaseSetLastNTError(NTSTATUS Status): the last error from a failed system call's status
; (ntdll!RtlNtStatusToDosError, which also keeps the status in TEB.LastStatusValue); returns it.
BaseSetLastNTError:
    push dword [esp+4]
    call ntdll!RtlNtStatusToDosError
    push eax
    call SetLastError
    ret 4

; --------------------------------------------------------------------------------------------
; Pseudo handles and ids: no system call, as on XP.
; --------------------------------------------------------------------------------------------

; HANDLE GetCurrentProcess(void): NtCurrentProcess(), (HANDLE)-1
GetCurrentProcess:
    or eax, 0xFFFFFFFF
    ret

; HANDLE GetCurrentThread(void): NtCurrentThread(), (HANDLE)-2
GetCurrentThread:
    push NT_CURRENT_THREAD
    pop eax
    ret

; DWORD GetCurrentProcessId(void): TEB.ClientId.UniqueProcess
GetCurrentProcessId:
    mov eax, [fs:NT_TIB_Self]
    mov eax, [eax+TEB_ClientId_UniqueProcess]
    ret

; DWORD GetCurrentThreadId(void): TEB.ClientId.UniqueThread
GetCurrentThreadId:
    mov eax, [fs:NT_TIB_Self]
    mov eax, [eax+TEB_ClientId_UniqueThread]
    ret

; --------------------------------------------------------------------------------------------
; Standard handles: kept in PEB.ProcessParameters (RTL_USER_PROCESS_PARAMETERS StandardInput,
; StandardOutput, StandardError), which process creation filled with handles to the console.
; --------------------------------------------------------------------------------------------

; HANDLE BaseTranslateStdHandle(HANDLE h): STD_INPUT_HANDLE, STD_OUTPUT_HANDLE and STD_ERROR_HANDLE
; stand for the process's standard handles wherever a handle goes (XP's ReadFile, WriteFile and
; CloseHandle make the same switch inline); any other value is itself.
BaseTranslateStdHandle:
    mov eax, [esp+4]
    cmp eax, STD_ERROR_HANDLE
    jb short .itself
    cmp eax, STD_INPUT_HANDLE
    ja short .itself
    ; -10, -11, -12 → StandardInput, StandardOutput, StandardError (consecutive dwords)
    mov ecx, [fs:NT_TIB_Self]
    mov ecx, [ecx+TEB_ProcessEnvironmentBlock]
    mov ecx, [ecx+PEB_ProcessParameters]
    neg eax                                 ; 10, 11, 12
    mov eax, [ecx+eax*4+RTL_USER_PROCESS_PARAMETERS_StandardInput-40]
.itself:
    ret 4

; HANDLE GetStdHandle(DWORD nStdHandle): the handle, or INVALID_HANDLE_VALUE and
; ERROR_INVALID_HANDLE for any other nStdHandle.
GetStdHandle:
    mov eax, [esp+4]
    cmp eax, STD_ERROR_HANDLE
    jb short .invalid
    cmp eax, STD_INPUT_HANDLE
    ja short .invalid
    push eax
    call BaseTranslateStdHandle
    ret 4
.invalid:
    push ERROR_INVALID_HANDLE
    call SetLastError
    or eax, INVALID_HANDLE_VALUE
    ret 4

; --------------------------------------------------------------------------------------------
; BOOL CloseHandle(HANDLE hObject): NtClose. A handle the process does not have is
; STATUS_INVALID_HANDLE: FALSE and ERROR_INVALID_HANDLE.
; --------------------------------------------------------------------------------------------
CloseHandle:
    push dword [esp+4]
    call BaseTranslateStdHandle
    push eax
    call ntdll!NtClose
    test eax, eax
    js short .failed
    mov eax, 1
    ret 4
.failed:
    push eax
    call BaseSetLastNTError
    xor eax, eax
    ret 4

; --------------------------------------------------------------------------------------------
; HANDLE CreateFileA(lpFileName, dwDesiredAccess, dwShareMode, lpSecurityAttributes,
;                    dwCreationDisposition, dwFlagsAndAttributes, hTemplateFile)
; The name becomes UTF-16 in the thread's TEB.StaticUnicodeString (as XP's
; Basep8BitStringToStaticUnicodeString does), then CreateFileW does the work.
; --------------------------------------------------------------------------------------------
CreateFileA:
    push ebp
    {load} mov ebp, esp
    push dword [ebp+8]
    call Basep8BitStringToStaticUnicodeString
    test eax, eax
    jz short .failed                        ; the name is too long: the last error is set
    push dword [ebp+32]                     ; hTemplateFile
    push dword [ebp+28]                     ; dwFlagsAndAttributes
    push dword [ebp+24]                     ; dwCreationDisposition
    push dword [ebp+20]                     ; lpSecurityAttributes
    push dword [ebp+16]                     ; dwShareMode
    push dword [ebp+12]                     ; dwDesiredAccess
    push dword [eax+UNICODE_STRING_Buffer]  ; the name, now UTF-16
    call CreateFileW
    pop ebp
    ret 28
.failed:
    or eax, INVALID_HANDLE_VALUE
    pop ebp
    ret 28

; PUNICODE_STRING Basep8BitStringToStaticUnicodeString(LPCSTR Source): the ANSI string in the
; TEB's static UNICODE_STRING, or NULL with ERROR_FILENAME_EXCED_RANGE when it holds more than 260
; characters. XP converts with the ANSI code page (RtlAnsiStringToUnicodeString); this widens each
; byte, which is the same for ASCII. A NULL Source is the empty string.
Basep8BitStringToStaticUnicodeString:
    push esi
    push edi
    mov esi, [esp+12]
    mov edx, [fs:NT_TIB_Self]
    lea edi, [edx+TEB_StaticUnicodeBuffer]
    mov [edx+TEB_StaticUnicodeString+UNICODE_STRING_Buffer], edi
    mov word [edx+TEB_StaticUnicodeString+UNICODE_STRING_MaximumLength], STATIC_UNICODE_CHARS * 2
    xor eax, eax                            ; AH stays 0: LODSB fills AL, STOSW stores AX
    test esi, esi
    jz short .terminate
    mov ecx, STATIC_UNICODE_CHARS - 1       ; room for 260 characters and the NUL
.widen:
    lodsb
    test al, al
    jz short .terminate
    stosw
    loop .widen
    cmp byte [esi], 0
    je short .terminate                     ; exactly 260 characters
    push ERROR_FILENAME_EXCED_RANGE
    call SetLastError
    xor eax, eax
    jmp short .out
.terminate:
    mov word [edi], 0
    lea eax, [edx+TEB_StaticUnicodeBuffer]
    sub edi, eax                            ; the length in bytes
    mov [edx+TEB_StaticUnicodeString+UNICODE_STRING_Length], di
    lea eax, [edx+TEB_StaticUnicodeString]
.out:
    pop edi
    pop esi
    ret 4

; --------------------------------------------------------------------------------------------
; HANDLE CreateFileW(lpFileName, dwDesiredAccess, dwShareMode, lpSecurityAttributes,
;                    dwCreationDisposition, dwFlagsAndAttributes, hTemplateFile)
; NtCreateFile with:
; - the NT name of the DOS path (BaseDosPathToNtPath: `C:\dir\file` → `\??\C:\dir\file`,
;   `\\.\Name` → `\??\Name`; a relative name is resolved against the current directory);
; - dwCreationDisposition as XP maps it: CREATE_NEW → FILE_CREATE, CREATE_ALWAYS →
;   FILE_OVERWRITE_IF, OPEN_EXISTING → FILE_OPEN, OPEN_ALWAYS → FILE_OPEN_IF, TRUNCATE_EXISTING →
;   FILE_OVERWRITE (anything else: ERROR_INVALID_PARAMETER);
; - the access asked for, plus SYNCHRONIZE and FILE_READ_ATTRIBUTES (a handle can always be waited
;   on and its attributes read);
; - FILE_SYNCHRONOUS_IO_NONALERT unless FILE_FLAG_OVERLAPPED (the I/O manager then keeps the file
;   position and finishes each read and write before returning), FILE_NON_DIRECTORY_FILE unless
;   FILE_FLAG_BACKUP_SEMANTICS, and the other FILE_FLAG_* as their CreateOptions;
; - OBJ_CASE_INSENSITIVE unless FILE_FLAG_POSIX_SEMANTICS, OBJ_INHERIT from the security attributes.
; On failure: INVALID_HANDLE_VALUE and the last error from the status — except an existing file
; with CREATE_NEW, which is ERROR_FILE_EXISTS. On success the last error is ERROR_ALREADY_EXISTS when
; OPEN_ALWAYS opened, or CREATE_ALWAYS overwrote, a file that was there; else 0.
; The template file's extended attributes are not copied (no file here has any).
; --------------------------------------------------------------------------------------------
CFW_IOSB          equ -0x08                 ; IO_STATUS_BLOCK
CFW_HANDLE        equ -0x0C
CFW_OBJATTR       equ -0x24                 ; OBJECT_ATTRIBUTES
CFW_NTNAME        equ -0x2C                 ; UNICODE_STRING of the NT path
CFW_DISPOSITION   equ -0x30
CFW_OPTIONS       equ -0x34
CFW_ACCESS        equ -0x38
CFW_NAMEBUFFER    equ -0x38 - NT_PATH_CHARS * 2
CreateFileW:
    push ebp
    {load} mov ebp, esp
    sub esp, -CFW_NAMEBUFFER
    ; The disposition, through the table below.
    mov eax, [ebp+24]
    dec eax
    cmp eax, TRUNCATE_EXISTING
    jae near .badParameter
    movzx eax, byte [CreateDispositionMap+eax]
    mov [ebp+CFW_DISPOSITION], eax
    ; The access and the options.
    mov eax, [ebp+12]
    or eax, SYNCHRONIZE | FILE_READ_ATTRIBUTES
    mov edx, [ebp+28]                       ; dwFlagsAndAttributes
    xor ecx, ecx
    test edx, FILE_FLAG_OVERLAPPED
    jnz short .overlapped
    or ecx, FILE_SYNCHRONOUS_IO_NONALERT
.overlapped:
    test edx, FILE_FLAG_WRITE_THROUGH
    jz short .buffering
    or ecx, FILE_WRITE_THROUGH
.buffering:
    test edx, FILE_FLAG_NO_BUFFERING
    jz short .random
    or ecx, FILE_NO_INTERMEDIATE_BUFFERING
.random:
    test edx, FILE_FLAG_RANDOM_ACCESS
    jz short .sequential
    or ecx, FILE_RANDOM_ACCESS
.sequential:
    test edx, FILE_FLAG_SEQUENTIAL_SCAN
    jz short .deleteOnClose
    or ecx, FILE_SEQUENTIAL_ONLY
.deleteOnClose:
    test edx, FILE_FLAG_DELETE_ON_CLOSE
    jz short .backup
    or ecx, FILE_DELETE_ON_CLOSE
    or eax, DELETE                          ; deleting it on close needs the right to delete it
.backup:
    test edx, FILE_FLAG_BACKUP_SEMANTICS
    jz short .notBackup
    or ecx, FILE_OPEN_FOR_BACKUP_INTENT     ; may open a directory
    jmp short .optionsDone
.notBackup:
    or ecx, FILE_NON_DIRECTORY_FILE         ; CreateFile opens files only
.optionsDone:
    mov [ebp+CFW_ACCESS], eax
    mov [ebp+CFW_OPTIONS], ecx
    ; The NT name.
    push NT_PATH_CHARS
    lea eax, [ebp+CFW_NAMEBUFFER]
    push eax
    lea eax, [ebp+CFW_NTNAME]
    push eax
    push dword [ebp+8]
    call BaseDosPathToNtPath
    test eax, eax
    jnz short .named
    push ERROR_PATH_NOT_FOUND               ; empty, unusable or too long: XP's answer too
    call SetLastError
    jmp near .invalidHandle
.named:
    ; OBJECT_ATTRIBUTES { 0x18, no root, the NT name, attributes, security descriptor, no QoS }
    mov dword [ebp+CFW_OBJATTR+OBJECT_ATTRIBUTES_Length], OBJECT_ATTRIBUTES_LENGTH
    mov dword [ebp+CFW_OBJATTR+OBJECT_ATTRIBUTES_RootDirectory], 0
    lea eax, [ebp+CFW_NTNAME]
    mov [ebp+CFW_OBJATTR+OBJECT_ATTRIBUTES_ObjectName], eax
    mov dword [ebp+CFW_OBJATTR+OBJECT_ATTRIBUTES_SecurityQualityOfService], 0
    xor eax, eax                            ; the attributes
    xor ecx, ecx                            ; the security descriptor
    mov edx, [ebp+20]                       ; lpSecurityAttributes
    test edx, edx
    jz short .noSecurity
    mov ecx, [edx+SECURITY_ATTRIBUTES_lpSecurityDescriptor]
    cmp dword [edx+SECURITY_ATTRIBUTES_bInheritHandle], 0
    je short .noSecurity
    or eax, OBJ_INHERIT
.noSecurity:
    mov [ebp+CFW_OBJATTR+OBJECT_ATTRIBUTES_SecurityDescriptor], ecx
    test dword [ebp+28], FILE_FLAG_POSIX_SEMANTICS
    jnz short .caseSensitive
    or eax, OBJ_CASE_INSENSITIVE
.caseSensitive:
    mov [ebp+CFW_OBJATTR+OBJECT_ATTRIBUTES_Attributes], eax
    ; NtCreateFile(&Handle, Access, &ObjectAttributes, &IoStatusBlock, NULL, FileAttributes,
    ;              ShareAccess, Disposition, Options, NULL, 0)
    push 0                                  ; EaLength
    push 0                                  ; EaBuffer
    push dword [ebp+CFW_OPTIONS]
    push dword [ebp+CFW_DISPOSITION]
    push dword [ebp+16]                     ; dwShareMode
    mov eax, [ebp+28]
    and eax, FILE_ATTRIBUTES_PASSED
    push eax                                ; FileAttributes
    push 0                                  ; AllocationSize
    lea eax, [ebp+CFW_IOSB]
    push eax
    lea eax, [ebp+CFW_OBJATTR]
    push eax
    push dword [ebp+CFW_ACCESS]
    lea eax, [ebp+CFW_HANDLE]
    push eax
    call ntdll!NtCreateFile
    test eax, eax
    js short .createFailed
    ; Opened: the last error says whether OPEN_ALWAYS / CREATE_ALWAYS found the file there.
    xor ecx, ecx
    mov edx, [ebp+CFW_IOSB+IO_STATUS_BLOCK_Information]
    cmp dword [ebp+CFW_DISPOSITION], FILE_OPEN_IF
    jne short .notOpenIf
    cmp edx, FILE_OPENED
    jne short .setError
    mov ecx, ERROR_ALREADY_EXISTS
    jmp short .setError
.notOpenIf:
    cmp dword [ebp+CFW_DISPOSITION], FILE_OVERWRITE_IF
    jne short .setError
    cmp edx, FILE_OVERWRITTEN
    jne short .setError
    mov ecx, ERROR_ALREADY_EXISTS
.setError:
    push ecx
    call SetLastError
    mov eax, [ebp+CFW_HANDLE]
    jmp short .out
.createFailed:
    cmp eax, STATUS_OBJECT_NAME_COLLISION
    jne short .ntError
    cmp dword [ebp+CFW_DISPOSITION], FILE_CREATE
    jne short .ntError
    push ERROR_FILE_EXISTS                  ; CREATE_NEW of a file that exists
    call SetLastError
    jmp short .invalidHandle
.ntError:
    push eax
    call BaseSetLastNTError
    jmp short .invalidHandle
.badParameter:
    push ERROR_INVALID_PARAMETER
    call SetLastError
.invalidHandle:
    or eax, INVALID_HANDLE_VALUE
.out:
    mov esp, ebp
    pop ebp
    ret 28

; CREATE_NEW … TRUNCATE_EXISTING → NtCreateFile's CreateDisposition
CreateDispositionMap:
    db FILE_CREATE, FILE_OVERWRITE_IF, FILE_OPEN, FILE_OPEN_IF, FILE_OVERWRITE

; --------------------------------------------------------------------------------------------
; BOOL BaseDosPathToNtPath(DosName, NtName, Buffer, BufferChars): what XP's
; RtlDosPathNameToNtPathName_U does for the forms programs use, into a caller's buffer (XP
; allocates it from the process heap, which this miniature does not have):
;   \\?\X and \\.\X     → \??\X           (a device or a name the object manager takes as is)
;   \\server\share\X    → \??\UNC\server\share\X
;   C:\dir\file         → \??\C:\dir\file
;   \dir\file           → \??\C:\dir\file (the current directory's drive)
;   file, dir\file      → \??\C:\dir\file (relative to the current directory, PEB.ProcessParameters
;                                          ->CurrentDirectory.DosPath; a new process's is C:\)
;   C:file              → the same, on C: (another drive's current directory is its root)
; For a drive path '/' counts as '\', repeated separators collapse and '.' and '..' components are
; resolved (never above the root), as RtlGetFullPathName_U does; a trailing '\' is kept.
; TRUE with NtName = { Length, MaximumLength, Buffer } (NUL-terminated), or FALSE for an empty
; name or one that does not fit.
; --------------------------------------------------------------------------------------------
BaseDosPathToNtPath:
    push ebp
    {load} mov ebp, esp
    push ebx
    push esi
    push edi
    mov esi, [ebp+8]                        ; the DOS name
    mov edi, [ebp+16]                       ; where the NT name goes
    mov ebx, [ebp+20]
    lea ebx, [edi+ebx*2-2]                  ; the last character's slot, kept for the NUL
    test esi, esi
    jz near .fail
    cmp word [esi], 0
    je near .fail
    mov dword [edi], 0x003F005C             ; L"\?" …
    mov dword [edi+4], 0x005C003F           ; … L"?\" (every form starts in the \??\ directory)
    add edi, 8
    movzx eax, word [esi]
    call .isSeparator
    jne short .notUnc
    movzx eax, word [esi+2]
    call .isSeparator
    jne .rooted
    ; \\ — a device (\\.\X), a verbatim name (\\?\X) or a UNC path (\\server\share).
    movzx eax, word [esi+4]
    cmp eax, '.'
    je short .device
    cmp eax, '?'
    jne short .unc
.device:
    movzx eax, word [esi+6]
    call .isSeparator
    jne short .unc
    add esi, 8                              ; past the prefix, which \??\ replaces
    call .append
    jc near .fail
    jmp near .finish
.unc:
    mov dword [edi], 0x004E0055             ; L"UN" …
    mov dword [edi+4], 0x005C0043           ; … L"C\" (\??\UNC is the redirector's link)
    add edi, 8
    add esi, 4
    call .append
    jc near .fail
    jmp near .finish
.notUnc:
    cmp word [esi+2], ':'
    jne .relative
    ; X: — a drive.
    movzx eax, word [esi+4]
    call .isSeparator
    jne short .driveRelative
    ; X:\… — absolute: copied as it is, normalized below.
    call .append
    jc near .fail
    jmp .normalize
.driveRelative:
    ; X:name — relative to that drive's current directory: the process's own if it is on X:,
    ; else X:'s root.
    call .currentDirectory                  ; ECX = its length in characters, EDX = its text
    movzx eax, word [esi]
    and eax, 0xFFDF                         ; upper case (for letters)
    push eax
    movzx eax, word [edx]
    and eax, 0xFFDF
    cmp eax, [esp]
    pop eax
    jne short .otherDrive
    push esi
    mov esi, edx
    call .appendCounted
    pop esi
    jc near .fail
    add esi, 4                              ; past X:
    call .append
    jc near .fail
    jmp short .normalize
.otherDrive:
    movsw                                   ; X
    movsw                                   ; :
    mov word [edi], '\'
    add edi, 2
    call .append
    jc near .fail
    jmp short .normalize
.rooted:
    ; \dir\file — on the current directory's drive.
    call .currentDirectory
    push esi
    mov esi, edx
    mov ecx, 2                              ; its X:
    call .appendCounted
    pop esi
    jc near .fail
    call .append
    jc near .fail
    jmp short .normalize
.relative:
    ; dir\file — under the current directory (whose DosPath ends with '\').
    call .currentDirectory
    push esi
    mov esi, edx
    call .appendCounted
    pop esi
    jc near .fail
    call .append
    jc near .fail

.normalize:
    ; [root, EDI) is the path from the '\' after X:; rewrite it in place (reading with ESI,
    ; writing with EDX, which never passes ESI): separators collapse, '.' goes, '..' drops the
    ; segment before it.
    mov ecx, [ebp+16]
    add ecx, 12                             ; \??\X: is 6 characters: the root '\' comes next
    xor eax, eax
    cmp word [edi-2], '\'
    sete al
    push eax                                ; whether the name ended with '\'
    mov esi, ecx
    mov edx, ecx
    mov ebx, edi                            ; the end of what to read
.nextSegment:
    cmp esi, ebx
    jae short .normalized
    cmp word [esi], '\'
    jne short .segment
    add esi, 2
    jmp short .nextSegment
.segment:
    mov edi, esi                            ; find its end: the next '\' or the end
.scan:
    cmp edi, ebx
    jae short .scanned
    cmp word [edi], '\'
    je short .scanned
    add edi, 2
    jmp short .scan
.scanned:
    mov eax, edi
    sub eax, esi
    cmp eax, 2
    jne short .notDot
    cmp word [esi], '.'
    je short .skipSegment                   ; '.': this directory
.notDot:
    cmp eax, 4
    jne short .keepSegment
    cmp dword [esi], 0x002E002E
    jne short .keepSegment
.up:                                        ; '..': back to the '\' that began the last segment
    cmp edx, ecx
    jbe short .skipSegment
    sub edx, 2
    cmp word [edx], '\'
    jne short .up
    jmp short .skipSegment
.keepSegment:
    mov word [edx], '\'
    add edx, 2
.copySegment:
    mov ax, [esi]
    mov [edx], ax
    add esi, 2
    add edx, 2
    cmp esi, edi
    jb short .copySegment
.skipSegment:
    mov esi, edi
    jmp short .nextSegment
.normalized:
    pop eax
    cmp edx, ecx
    je short .trailingSlash                 ; nothing left but the root: keep its '\'
    test eax, eax
    jz short .normalizedEnd
.trailingSlash:
    mov word [edx], '\'
    add edx, 2
.normalizedEnd:
    mov edi, edx

.finish:
    mov word [edi], 0
    mov edx, [ebp+12]                       ; NtName
    mov eax, [ebp+16]
    mov [edx+UNICODE_STRING_Buffer], eax
    sub edi, eax
    mov [edx+UNICODE_STRING_Length], di
    add edi, 2
    mov [edx+UNICODE_STRING_MaximumLength], di
    mov eax, 1
    jmp short .out
.fail:
    xor eax, eax
.out:
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret 16

; ZF set when AX is a path separator ('\' or '/').
.isSeparator:
    cmp eax, '\'
    je short .separator
    cmp eax, '/'
.separator:
    ret

; Append the NUL-terminated string at ESI to EDI, '/' as '\' (ESI ends at the NUL); CF set when
; it does not fit below EBX.
.append:
    movzx eax, word [esi]
    test eax, eax
    jz short .appended
    cmp edi, ebx
    jae short .full
    cmp eax, '/'
    jne short .store
    mov eax, '\'
.store:
    stosw
    add esi, 2
    jmp short .append
.appended:
    clc
    ret
.full:
    stc
    ret

; Append ECX characters at ESI to EDI; CF set when they do not fit below EBX.
.appendCounted:
    jecxz .appended
    cmp edi, ebx
    jae short .full
    movsw
    dec ecx
    jmp short .appendCounted

; EDX = the current directory's text, ECX = its length in characters
; (PEB.ProcessParameters->CurrentDirectory.DosPath).
.currentDirectory:
    mov edx, [fs:NT_TIB_Self]
    mov edx, [edx+TEB_ProcessEnvironmentBlock]
    mov edx, [edx+PEB_ProcessParameters]
    movzx ecx, word [edx+RTL_USER_PROCESS_PARAMETERS_CurrentDirectory+CURDIR_DosPath+UNICODE_STRING_Length]
    shr ecx, 1
    mov edx, [edx+RTL_USER_PROCESS_PARAMETERS_CurrentDirectory+CURDIR_DosPath+UNICODE_STRING_Buffer]
    ret

; --------------------------------------------------------------------------------------------
; Reading and writing: NtReadFile / NtWriteFile on the handle (a standard-handle value stands for
; the handle itself, as on XP). Synchronously (no OVERLAPPED) from the file's own position
; (ByteOffset NULL), the count from the IO_STATUS_BLOCK; with an OVERLAPPED, at its Offset, the
; OVERLAPPED itself receiving the status and count (Internal, InternalHigh) and its hEvent
; signalled. The I/O manager here finishes every request before returning, so an overlapped one
; never stays pending.
; --------------------------------------------------------------------------------------------

; BOOL ReadFile(hFile, lpBuffer, nNumberOfBytesToRead, lpNumberOfBytesRead, lpOverlapped)
; Reading at the end of the file is success with 0 bytes (synchronously), ERROR_HANDLE_EOF with
; an OVERLAPPED.
ReadFile:
    push ebp
    {load} mov ebp, esp
    sub esp, 8                              ; IO_STATUS_BLOCK
    mov eax, [ebp+20]
    test eax, eax
    jz short .counted
    mov dword [eax], 0                      ; *lpNumberOfBytesRead = 0 first
.counted:
    push dword [ebp+8]
    call BaseTranslateStdHandle
    mov edx, [ebp+24]                       ; lpOverlapped
    test edx, edx
    jnz short .overlapped
    ; NtReadFile(hFile, NULL, NULL, NULL, &IoStatusBlock, lpBuffer, n, NULL, NULL)
    push 0                                  ; Key
    push 0                                  ; ByteOffset: the file's position
    push dword [ebp+16]
    push dword [ebp+12]
    lea ecx, [ebp-8]
    push ecx
    push 0
    push 0
    push 0
    push eax
    call ntdll!NtReadFile
    cmp eax, STATUS_END_OF_FILE
    jne short .result
    xor eax, eax                            ; at the end: success, nothing read
    mov dword [ebp-8+IO_STATUS_BLOCK_Information], 0
.result:
    push dword [ebp+20]
    lea ecx, [ebp-8]
    push ecx
    push eax
    call BasepIoResult
    jmp short .out
.overlapped:
    push eax
    push ntdll!NtReadFile
    call BasepOverlappedReadWrite
.out:
    mov esp, ebp
    pop ebp
    ret 20

; BOOL WriteFile(hFile, lpBuffer, nNumberOfBytesToWrite, lpNumberOfBytesWritten, lpOverlapped)
WriteFile:
    push ebp
    {load} mov ebp, esp
    sub esp, 8                              ; IO_STATUS_BLOCK
    mov eax, [ebp+20]
    test eax, eax
    jz short .counted
    mov dword [eax], 0                      ; *lpNumberOfBytesWritten = 0 first
.counted:
    push dword [ebp+8]
    call BaseTranslateStdHandle
    mov edx, [ebp+24]                       ; lpOverlapped
    test edx, edx
    jnz short .overlapped
    ; NtWriteFile(hFile, NULL, NULL, NULL, &IoStatusBlock, lpBuffer, n, NULL, NULL)
    push 0                                  ; Key
    push 0                                  ; ByteOffset: the file's position
    push dword [ebp+16]
    push dword [ebp+12]
    lea ecx, [ebp-8]
    push ecx
    push 0
    push 0
    push 0
    push eax
    call ntdll!NtWriteFile
    push dword [ebp+20]
    lea ecx, [ebp-8]
    push ecx
    push eax
    call BasepIoResult
    jmp short .out
.overlapped:
    push eax
    push ntdll!NtWriteFile
    call BasepOverlappedReadWrite
.out:
    mov esp, ebp
    pop ebp
    ret 20

; BOOL BasepOverlappedReadWrite(NtReadFile or NtWriteFile, hFile), in the frame of ReadFile or
; WriteFile (EBP: their lpBuffer at +0Ch, the count at +10h, lpNumberOfBytes at +14h, lpOverlapped
; at +18h): Internal = STATUS_PENDING, then
; Nt…File(hFile, hEvent, NULL, ApcContext, (PIO_STATUS_BLOCK)lpOverlapped, lpBuffer, n, &Offset, NULL)
; — the ApcContext is the OVERLAPPED unless hEvent's low bit says not to post a completion.
BasepOverlappedReadWrite:
    mov edx, [ebp+24]
    mov dword [edx+OVERLAPPED_Internal], STATUS_PENDING
    push 0                                  ; Key
    lea eax, [edx+OVERLAPPED_Offset]
    push eax                                ; ByteOffset: Offset, OffsetHigh
    push dword [ebp+16]
    push dword [ebp+12]
    push edx                                ; IoStatusBlock: the OVERLAPPED's first two fields
    mov ecx, [edx+OVERLAPPED_hEvent]
    mov eax, edx
    test ecx, 1
    jz short .context
    xor eax, eax
.context:
    push eax                                ; ApcContext
    push 0                                  ; ApcRoutine
    and ecx, 0xFFFFFFFE
    push ecx                                ; Event
    push dword [esp+40]                     ; hFile (the second argument, past the eight pushed)
    call [esp+40]                           ; the Nt routine (the first), past the nine
    push dword [ebp+20]
    push dword [ebp+24]
    push eax
    call BasepOverlappedResult
    ret 8

; BOOL BasepIoResult(Status, IoStatusBlock, lpNumberOfBytes): the end of a synchronous request —
; success: *lpNumberOfBytes = IoStatusBlock.Information, TRUE; failure: the last error, FALSE.
BasepIoResult:
    mov eax, [esp+4]
    test eax, eax
    js short .failed
    mov ecx, [esp+12]
    test ecx, ecx
    jz short .done
    mov edx, [esp+8]
    mov edx, [edx+IO_STATUS_BLOCK_Information]
    mov [ecx], edx
.done:
    mov eax, 1
    ret 12
.failed:
    push eax
    call BaseSetLastNTError
    xor eax, eax
    ret 12

; BOOL BasepOverlappedResult(Status, lpOverlapped, lpNumberOfBytes): the end of an overlapped
; request — done: *lpNumberOfBytes = InternalHigh, TRUE; still pending: ERROR_IO_PENDING, FALSE;
; failed: the last error, FALSE.
BasepOverlappedResult:
    mov eax, [esp+4]
    cmp eax, STATUS_PENDING
    je short .pending
    push dword [esp+12]
    push dword [esp+12]
    push eax
    call BasepIoResult
    ret 12
.pending:
    push ERROR_IO_PENDING
    call SetLastError
    xor eax, eax
    ret 12

; --------------------------------------------------------------------------------------------
; BOOL DeviceIoControl(hDevice, dwIoControlCode, lpInBuffer, nInBufferSize, lpOutBuffer,
;                      nOutBufferSize, lpBytesReturned, lpOverlapped)
; NtDeviceIoControlFile — or NtFsControlFile for a FILE_DEVICE_FILE_SYSTEM code (its device type,
; bits 16-31), as XP chooses — with the buffers as given; *lpBytesReturned from the
; IO_STATUS_BLOCK (or the OVERLAPPED). A code the driver does not know is its status
; (STATUS_INVALID_DEVICE_REQUEST: ERROR_INVALID_FUNCTION).
; --------------------------------------------------------------------------------------------
DeviceIoControl:
    push ebp
    {load} mov ebp, esp
    sub esp, 8                              ; IO_STATUS_BLOCK
    mov edx, [ebp+36]                       ; lpOverlapped
    push dword [ebp+28]                     ; OutputBufferLength
    push dword [ebp+24]                     ; OutputBuffer
    push dword [ebp+20]                     ; InputBufferLength
    push dword [ebp+16]                     ; InputBuffer
    push dword [ebp+12]                     ; IoControlCode
    test edx, edx
    jnz short .overlapped
    lea ecx, [ebp-8]
    push ecx                                ; IoStatusBlock
    push 0                                  ; ApcContext
    push 0                                  ; ApcRoutine
    push 0                                  ; Event
    jmp short .call
.overlapped:
    mov dword [edx+OVERLAPPED_Internal], STATUS_PENDING
    push edx                                ; IoStatusBlock: the OVERLAPPED
    mov ecx, [edx+OVERLAPPED_hEvent]
    mov eax, edx
    test ecx, 1
    jz short .context
    xor eax, eax
.context:
    push eax                                ; ApcContext
    push 0                                  ; ApcRoutine
    and ecx, 0xFFFFFFFE
    push ecx                                ; Event
.call:
    push dword [ebp+8]                      ; FileHandle
    cmp word [ebp+14], FILE_DEVICE_FILE_SYSTEM
    je short .fsControl
    call ntdll!NtDeviceIoControlFile
    jmp short .called
.fsControl:
    call ntdll!NtFsControlFile
.called:
    push dword [ebp+32]                     ; lpBytesReturned
    mov edx, [ebp+36]
    test edx, edx
    jnz short .overlappedResult
    lea ecx, [ebp-8]
    push ecx
    push eax
    call BasepIoResult
    jmp short .out
.overlappedResult:
    push edx
    push eax
    call BasepOverlappedResult
.out:
    mov esp, ebp
    pop ebp
    ret 32

; --------------------------------------------------------------------------------------------
; The console.
; --------------------------------------------------------------------------------------------

; BOOL WriteConsoleA(hConsoleOutput, lpBuffer, nNumberOfCharsToWrite, lpNumberOfCharsWritten,
;                    lpReserved)
; Only a console handle will do: NtQueryVolumeInformationFile(FileFsDeviceInformation) must say
; FILE_DEVICE_CONSOLE, else ERROR_INVALID_HANDLE (as XP refuses a handle that is not a console's).
; Then the characters (bytes, in the ANSI code page) go out by NtWriteFile to the console device.
WriteConsoleA:
    push ebp
    {load} mov ebp, esp
    sub esp, 16                             ; IO_STATUS_BLOCK at -8, FILE_FS_DEVICE_INFORMATION at -16
    push FileFsDeviceInformation
    push FILE_FS_DEVICE_INFORMATION_LENGTH
    lea eax, [ebp-16]
    push eax
    lea eax, [ebp-8]
    push eax
    push dword [ebp+8]
    call ntdll!NtQueryVolumeInformationFile
    test eax, eax
    js short .notConsole
    cmp dword [ebp-16+FILE_FS_DEVICE_INFORMATION_DeviceType], FILE_DEVICE_CONSOLE
    jne short .notConsole
    push 0                                  ; Key
    push 0                                  ; ByteOffset
    push dword [ebp+16]
    push dword [ebp+12]
    lea eax, [ebp-8]
    push eax
    push 0
    push 0
    push 0
    push dword [ebp+8]
    call ntdll!NtWriteFile
    push dword [ebp+20]
    lea ecx, [ebp-8]
    push ecx
    push eax
    call BasepIoResult
    jmp short .out
.notConsole:
    push ERROR_INVALID_HANDLE
    call SetLastError
    xor eax, eax
.out:
    mov esp, ebp
    pop ebp
    ret 20

; void OutputDebugStringA(LPCSTR lpOutputString)
; XP raises DBG_PRINTEXCEPTION_C for a user-mode debugger first; with none attached, its handler
; prints the text through ntdll's debug print, DebugPrint → DebugService → INT 2Dh with
; BREAKPOINT_PRINT, which the kernel serves (nt!KiDebugService). There is never a user-mode
; debugger here, so this goes straight to that print.
OutputDebugStringA:
    push ebp
    {load} mov ebp, esp
    sub esp, 8                              ; a STRING for the text
    mov edx, [ebp+8]
    xor eax, eax
    test edx, edx
    jz short .counted                       ; NULL prints nothing
.count:
    cmp byte [edx+eax], 0
    je short .counted
    inc eax
    cmp eax, 0xFFFF                         ; a STRING holds at most 0xFFFF bytes
    jb short .count
.counted:
    mov [ebp-8+STRING_Length], ax
    mov [ebp-8+STRING_MaximumLength], ax
    mov [ebp-8+STRING_Buffer], edx
    push DPFLTR_INFO_LEVEL
    push DPFLTR_DEFAULT_ID
    lea eax, [ebp-8]
    push eax
    call ntdll!DebugPrint
    mov esp, ebp
    pop ebp
    ret 4

; --------------------------------------------------------------------------------------------
; Virtual memory: VirtualAlloc, VirtualProtect and VirtualFree are their …Ex forms on the current
; process, which call the Nt services with the caller's own argument slots as the in/out
; variables (the rounded base and size come back there).
; --------------------------------------------------------------------------------------------

; LPVOID VirtualAlloc(lpAddress, dwSize, flAllocationType, flProtect)
VirtualAlloc:
    push dword [esp+16]
    push dword [esp+16]
    push dword [esp+16]
    push dword [esp+16]
    push NT_CURRENT_PROCESS
    call VirtualAllocEx
    ret 16

; LPVOID VirtualAllocEx(hProcess, lpAddress, dwSize, flAllocationType, flProtect): the base of the
; region, or NULL. An address below the allocation granularity (64 KiB) is refused here with
; ERROR_INVALID_PARAMETER, as XP's kernel32 does.
VirtualAllocEx:
    push ebp
    {load} mov ebp, esp
    mov eax, [ebp+12]
    test eax, eax
    jz short .allocate
    cmp eax, BASE_ALLOCATION_GRANULARITY
    jae short .allocate
    push ERROR_INVALID_PARAMETER
    call SetLastError
    xor eax, eax
    jmp short .out
.allocate:
    ; NtAllocateVirtualMemory(hProcess, &lpAddress, 0, &dwSize, flAllocationType, flProtect)
    push dword [ebp+24]
    push dword [ebp+20]
    lea eax, [ebp+16]
    push eax
    push 0                                  ; ZeroBits
    lea eax, [ebp+12]
    push eax
    push dword [ebp+8]
    call ntdll!NtAllocateVirtualMemory
    test eax, eax
    js short .failed
    mov eax, [ebp+12]
    jmp short .out
.failed:
    push eax
    call BaseSetLastNTError
    xor eax, eax
.out:
    pop ebp
    ret 20

; BOOL VirtualProtect(lpAddress, dwSize, flNewProtect, lpflOldProtect)
VirtualProtect:
    push dword [esp+16]
    push dword [esp+16]
    push dword [esp+16]
    push dword [esp+16]
    push NT_CURRENT_PROCESS
    call VirtualProtectEx
    ret 16

; BOOL VirtualProtectEx(hProcess, lpAddress, dwSize, flNewProtect, lpflOldProtect): the old
; protection of the first page in *lpflOldProtect (which must be writable: NULL is
; ERROR_NOACCESS, as on XP).
VirtualProtectEx:
    push ebp
    {load} mov ebp, esp
    ; NtProtectVirtualMemory(hProcess, &lpAddress, &dwSize, flNewProtect, lpflOldProtect)
    push dword [ebp+24]
    push dword [ebp+20]
    lea eax, [ebp+16]
    push eax
    lea eax, [ebp+12]
    push eax
    push dword [ebp+8]
    call ntdll!NtProtectVirtualMemory
    push eax
    call BasepStatusToBool
    pop ebp
    ret 20

; BOOL VirtualFree(lpAddress, dwSize, dwFreeType)
VirtualFree:
    push dword [esp+12]
    push dword [esp+12]
    push dword [esp+12]
    push NT_CURRENT_PROCESS
    call VirtualFreeEx
    ret 12

; BOOL VirtualFreeEx(hProcess, lpAddress, dwSize, dwFreeType): MEM_RELEASE frees the whole region,
; so its size must be 0 (else ERROR_INVALID_PARAMETER, from kernel32 itself); MEM_DECOMMIT decommits
; pages.
VirtualFreeEx:
    push ebp
    {load} mov ebp, esp
    test dword [ebp+20], MEM_RELEASE
    jz short .free
    cmp dword [ebp+16], 0
    je short .free
    push ERROR_INVALID_PARAMETER
    call SetLastError
    xor eax, eax
    jmp short .out
.free:
    ; NtFreeVirtualMemory(hProcess, &lpAddress, &dwSize, dwFreeType)
    push dword [ebp+20]
    lea eax, [ebp+16]
    push eax
    lea eax, [ebp+12]
    push eax
    push dword [ebp+8]
    call ntdll!NtFreeVirtualMemory
    push eax
    call BasepStatusToBool
.out:
    pop ebp
    ret 16

; BOOL BasepStatusToBool(Status): TRUE for a success, else FALSE with the last error set.
BasepStatusToBool:
    mov eax, [esp+4]
    test eax, eax
    js short .failed
    mov eax, 1
    ret 4
.failed:
    push eax
    call BaseSetLastNTError
    xor eax, eax
    ret 4

; --------------------------------------------------------------------------------------------
; Waiting and APCs.
; --------------------------------------------------------------------------------------------

; void Sleep(DWORD dwMilliseconds) = SleepEx(dwMilliseconds, FALSE)
Sleep:
    push 0
    push dword [esp+8]
    call SleepEx
    ret 4

; DWORD SleepEx(DWORD dwMilliseconds, BOOL bAlertable)
; NtDelayExecution(bAlertable, &Interval) with a relative interval (negative, in 100 ns units);
; INFINITE is the longest wait there is. An alertable sleep that an APC interrupts returns
; WAIT_IO_COMPLETION after the APC has run (the kernel delivered it on the way out of the
; system call, the status being STATUS_USER_APC); an alert alone does not end it. Else 0.
SleepEx:
    push ebp
    {load} mov ebp, esp
    sub esp, 8                              ; LARGE_INTEGER Interval
    mov eax, [ebp+8]
    cmp eax, INFINITE
    jne short .relative
    mov dword [ebp-8], 0
    mov dword [ebp-4], 0x80000000
    jmp short .wait
.relative:
    mov ecx, 10000
    mul ecx                                 ; EDX:EAX = milliseconds × 10 000
    neg eax                                 ; negated: a time relative to now
    adc edx, 0
    neg edx
    mov [ebp-8], eax
    mov [ebp-4], edx
.wait:
    lea eax, [ebp-8]
    push eax
    push dword [ebp+12]
    call ntdll!NtDelayExecution
    cmp dword [ebp+12], 0
    je short .done
    cmp eax, STATUS_ALERTED
    je short .wait
.done:
    cmp eax, STATUS_USER_APC
    mov eax, WAIT_IO_COMPLETION
    je short .out
    xor eax, eax
.out:
    mov esp, ebp
    pop ebp
    ret 8

; DWORD QueueUserAPC(PAPCFUNC pfnAPC, HANDLE hThread, ULONG_PTR dwData)
; NtQueueApcThread(hThread, BaseDispatchAPC, pfnAPC, dwData, ActivationContext): the APC runs when
; the thread next waits alertably (SleepEx(…, TRUE)), through ntdll!KiUserApcDispatcher and
; BaseDispatchAPC, which calls pfnAPC(dwData). Nonzero on success.
QueueUserAPC:
    push ebp
    {load} mov ebp, esp
    push 0                                  ; the activation context: none here
    push dword [ebp+16]                     ; dwData
    push dword [ebp+8]                      ; pfnAPC
    push BaseDispatchAPC
    push dword [ebp+12]                     ; hThread
    call ntdll!NtQueueApcThread
    push eax
    call BasepStatusToBool
    pop ebp
    ret 12

; BaseDispatchAPC(ApcRoutine, Data, ActivationContext): the APC's NormalRoutine — the user's
; pfnAPC(dwData). (XP activates the activation context around the call; there are none here.)
BaseDispatchAPC:
    push dword [esp+8]                      ; Data
    call [esp+8]                            ; ApcRoutine (one slot further now)
    ret 12

; --------------------------------------------------------------------------------------------
; Ending.
; --------------------------------------------------------------------------------------------

; void ExitProcess(UINT uExitCode): NtTerminateProcess(NtCurrentProcess(), uExitCode). (XP first
; ends the other threads and notifies the DLLs and CSRSS; this process has one thread and none.)
ExitProcess:
    push dword [esp+4]
    push NT_CURRENT_PROCESS
    call ntdll!NtTerminateProcess
    int3                                    ; it does not return

; void ExitThread(DWORD dwExitCode): NtTerminateThread(NULL, dwExitCode) ends the calling thread
; unless it is its process's last (STATUS_CANT_TERMINATE_SELF), and then the process ends instead.
ExitThread:
    push dword [esp+4]
    push 0
    call ntdll!NtTerminateThread
    push dword [esp+4]
    call ExitProcess
