// Asynchronous file handles (issue L point 7): a file opened without FILE_SYNCHRONOUS_IO_ALERT /
// _NONALERT keeps no position for the I/O manager, so NtReadFile and NtWriteFile on it need a
// ByteOffset; without one they return STATUS_INVALID_PARAMETER — after the handle is referenced
// and the buffers probed, as XP orders its checks. A real program, run on the guest.
//   npx tsc -p tsconfig.json && npx tap dist/test/guest-async-io.test.js
import t from 'tap';
import { NTSTATUS as S, type ProgramSource } from '../core/index.js';
import { labelBytes, labelDword, ofType, runProgram } from './util/scenario.js';

const PROGRAM: ProgramSource = {
  fileName: 'async-io.asm',
  source: String.raw`; ntflow: user
; ntflow-file: \??\C:\data.txt = "0123456789"
GENERIC_READ          equ 0x80000000
GENERIC_WRITE         equ 0x40000000
FILE_OPEN             equ 1
FILE_SYNCHRONOUS_IO_NONALERT equ 0x20
FILE_NON_DIRECTORY_FILE      equ 0x40

start:
    ; the asynchronous handle: CreateOptions without FILE_SYNCHRONOUS_IO_*
    push FILE_NON_DIRECTORY_FILE
    push asyncHandle
    call open
    mov [statusOpenAsync], eax
    ; the synchronous one, for comparison
    push FILE_SYNCHRONOUS_IO_NONALERT | FILE_NON_DIRECTORY_FILE
    push syncHandle
    call open
    mov [statusOpenSync], eax

    push 0                                  ; ByteOffset NULL
    push buffer
    push dword [asyncHandle]
    call read
    mov [statusAsyncNull], eax

    push byteOffset                         ; ByteOffset = 2
    push buffer2
    push dword [asyncHandle]
    call read
    mov [statusAsyncOffset], eax

    push 0                                  ; ByteOffset NULL, a kernel buffer: the probe fails first
    push 0x80000000
    push dword [asyncHandle]
    call read
    mov [statusAsyncNullBadBuffer], eax

    push 0                                  ; ByteOffset NULL on a synchronous handle: its position
    push buffer
    push dword [syncHandle]
    call read
    mov [statusSyncNull], eax

    ; NtWriteFile(asyncHandle, 0, 0, 0, &iosb, buffer, 4, NULL, 0)
    push 0
    push 0
    push 4
    push buffer
    push iosb
    push 0
    push 0
    push 0
    push dword [asyncHandle]
    call ntdll!NtWriteFile
    mov [statusWriteAsyncNull], eax
    xor eax, eax
    ret

; open(&handle, CreateOptions): NtCreateFile for read and write, FILE_OPEN
open:
    push ebp
    mov ebp, esp
    push 0                                  ; EaLength
    push 0                                  ; EaBuffer
    push dword [ebp+12]                     ; CreateOptions
    push FILE_OPEN
    push 0                                  ; ShareAccess
    push 0                                  ; FileAttributes
    push 0                                  ; AllocationSize
    push iosb
    push objectAttributes
    push GENERIC_READ | GENERIC_WRITE
    push dword [ebp+8]
    call ntdll!NtCreateFile
    pop ebp
    ret 8

; read(handle, buffer, pByteOffset): NtReadFile of 4 bytes
read:
    push ebp
    mov ebp, esp
    push 0                                  ; Key
    push dword [ebp+16]                     ; ByteOffset
    push 4                                  ; Length
    push dword [ebp+12]                     ; Buffer
    push iosb
    push 0
    push 0
    push 0
    push dword [ebp+8]
    call ntdll!NtReadFile
    pop ebp
    ret 12

align 4
asyncHandle:               dd 0
syncHandle:                dd 0
statusOpenAsync:           dd -1
statusOpenSync:            dd -1
statusAsyncNull:           dd -1
statusAsyncOffset:         dd -1
statusAsyncNullBadBuffer:  dd -1
statusSyncNull:            dd -1
statusWriteAsyncNull:      dd -1
iosb:                      dd 0, 0
byteOffset:                dd 2, 0
buffer:                    times 16 db 0
buffer2:                   times 16 db 0
objectAttributes:
    dd 24, 0, fileName, 0x40, 0, 0
fileName:
    dw fileNameEnd - fileNameText, fileNameEnd - fileNameText
    dd fileNameText
fileNameText:
    dw '\', '?', '?', '\', 'C', ':', '\', 'd', 'a', 't', 'a', '.', 't', 'x', 't'
fileNameEnd:
`,
};

t.test('NtReadFile/NtWriteFile on an asynchronous handle without a ByteOffset: STATUS_INVALID_PARAMETER', async (t) => {
  const run = runProgram('async-io', { program: PROGRAM });
  t.equal(run.outcome.description, 'exited with STATUS_SUCCESS');
  const status = (label: string) => labelDword(run, 'async-io', label);
  t.same(
    {
      openAsync: status('statusOpenAsync'),
      openSync: status('statusOpenSync'),
      asyncNull: status('statusAsyncNull'),
      asyncOffset: status('statusAsyncOffset'),
      asyncNullBadBuffer: status('statusAsyncNullBadBuffer'),
      syncNull: status('statusSyncNull'),
      writeAsyncNull: status('statusWriteAsyncNull'),
    },
    {
      openAsync: S.STATUS_SUCCESS,
      openSync: S.STATUS_SUCCESS,
      asyncNull: S.STATUS_INVALID_PARAMETER,
      asyncOffset: S.STATUS_SUCCESS,
      asyncNullBadBuffer: S.STATUS_ACCESS_VIOLATION,
      syncNull: S.STATUS_SUCCESS,
      writeAsyncNull: S.STATUS_INVALID_PARAMETER,
    },
  );
  const text = (label: string) => String.fromCharCode(...labelBytes(run, 'async-io', label, 4));
  t.equal(text('buffer2'), '2345', 'the asynchronous read with ByteOffset 2');
  t.equal(text('buffer'), '0123', 'the synchronous read without one: from its position, 0');

  // The refused read referenced the handle and probed the buffers first (XP's order), then refused.
  const exits = ofType(run.events, 'service-exit').map((e) => e.seq);
  const enters = ofType(run.events, 'service-enter');
  const refused = enters[2]!;
  t.equal(refused.service, 'NtReadFile');
  const end = exits.find((s) => s > refused.seq)!;
  const inside = run.events.filter((e) => e.seq > refused.seq && e.seq < end && (e.type === 'handle-lookup' || e.type === 'probe')).map((e) => e.type);
  t.same(inside, ['handle-lookup', 'probe', 'probe'], 'handle lookup, then the IO_STATUS_BLOCK and buffer probes, then the refusal');
});

