// What a program shows: its console (standard handles on \Device\ConsoleOut, WriteConsoleA and
// WriteFile → console-output events → console_outputs rows → record's summary, escaped) and debug
// output (OutputDebugStringA through ntdll's INT 2Dh debug service, a driver's DbgPrint →
// debug-print events → debug_prints rows → the summary); a recorded kernel32 session replays
// identically.
//   npx tsc -p tsconfig.json && npx tap dist/test/kernel32-output.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProgramSource } from '../core/index.js';
import { consoleOutput, dbgOutput } from '../core/guest/nt/index.js';
import { offsetOf } from '../core/guest/structs.js';
import { record } from '../recorder/index.js';
import { escapeGuestText, summaryText } from '../bin/record.js';
import { verifyCommand } from '../bin/verify.js';
import { isSubsequence, ofType, runProgram, symbolPath } from './util/scenario.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-k32-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Writes to stdout with WriteConsoleA, to stderr with WriteFile, prints for the debugger, exits 5. */
const PROGRAM: ProgramSource = {
  fileName: 'hello.asm',
  source: `; ntflow: user
start:
    push -11                                ; STD_OUTPUT_HANDLE
    call kernel32!GetStdHandle
    mov [stdout], eax
    push 0
    push written
    push helloEnd - hello
    push hello
    push eax
    call kernel32!WriteConsoleA
    mov [result], eax
    push 0
    push written
    push alarmEnd - alarm
    push alarm
    push -12                                ; STD_ERROR_HANDLE itself: WriteFile takes it
    call kernel32!WriteFile
    push 0
    push read
    push 16
    push buffer
    push -10                                ; STD_INPUT_HANDLE: nobody types, so at its end
    call kernel32!ReadFile
    mov [readResult], eax
    push debugText
    call kernel32!OutputDebugStringA
    push 5
    call kernel32!ExitProcess

align 4
stdout: dd 0
written: dd 0
result: dd 0
read: dd 0x55
readResult: dd 0
hello: db 'Hello, console!', 13, 10
helloEnd:
alarm: db 'red', 27, '[31m', 7, 9, 'tab', 13, 10
alarmEnd:
debugText: db 'to the debugger', 10, 0
buffer: times 16 db 0
`,
};

const DRIVER: ProgramSource = {
  fileName: 'printer.asm',
  source: `; ntflow: driver
DriverEntry:
    push 42
    push name
    push format
    call nt!DbgPrint
    add esp, 12                             ; DbgPrint is cdecl
    xor eax, eax
    ret 8
name: db 'printer', 0
format: db '%s: DriverEntry %d', 10, 0
`,
};

t.test('the console: standard handles, WriteConsoleA and WriteFile, console-output events', async (t) => {
  const r = runProgram('hello', { program: PROGRAM, drivers: [DRIVER], maxInstructions: 1_000_000 });
  t.same({ kind: r.outcome.kind, code: r.outcome.code }, { kind: 'exited', code: 5 });
  const k = r.guest.kernel;
  const params = k.r32(0x7ffdf000 + offsetOf('PEB', 'ProcessParameters'));
  t.equal(params, 0x20000, 'PEB.ProcessParameters');
  const std = ['StandardInput', 'StandardOutput', 'StandardError'].map((f) => k.r32(params + offsetOf('RTL_USER_PROCESS_PARAMETERS', f as 'StandardInput')));
  t.ok(std.every((h) => h !== 0 && h % 4 === 0), `three handles (${std.map((h) => h.toString(16))})`);
  const out = ofType(r.events, 'console-output');
  t.match(out, [
    { text: 'Hello, console!\r\n', bytes: 17, handle: std[1], stream: 'stdout', process: 'hello.exe' },
    { text: 'red\x1b[31m\x07\ttab\r\n', bytes: 15, handle: std[2], stream: 'stderr' },
  ]);
  t.equal(consoleOutput(k), 'Hello, console!\r\nred\x1b[31m\x07\ttab\r\n', 'consoleOutput()');
  t.ok(isSubsequence(symbolPath(r), ['kernel32!WriteConsoleA', 'ntdll!NtQueryVolumeInformationFile', 'nt!NtQueryVolumeInformationFile', 'ntdll!NtWriteFile', 'nt!NtWriteFile', 'nt!ConsoleDispatchWrite', 'kernel32!WriteConsoleA']), 'WriteConsoleA: is it a console? then NtWriteFile → IRP_MJ_WRITE');
  t.match(ofType(r.events, 'irp').filter((e) => e.majorFunctionName === 'IRP_MJ_WRITE' && e.phase === 'dispatch'), [{ driver: '\\Driver\\Console', requestorMode: 'UserMode' }, { driver: '\\Driver\\Console' }]);
  t.ok(ofType(r.events, 'irp').some((e) => e.majorFunctionName === 'IRP_MJ_READ' && e.status === 0xc0000011), 'reading the console: STATUS_END_OF_FILE');
  const d = (label: string) => r.guest.machine.cpu.mmu.peekBytes(r.guest.symbols.resolve('hello', label)!, 4).reduce((a: number, b, i) => a + (b ?? 0) * 256 ** i, 0);
  t.same([d('result'), d('written')], [1, 15], 'TRUE; written counts the last write');
  t.same([d('readResult'), d('read')], [1, 0], 'ReadFile of standard input: TRUE, 0 bytes');
});

t.test('debug output: a driver DbgPrint and OutputDebugStringA (INT 2Dh) are debug-print events', async (t) => {
  const r = runProgram('hello-debug', { program: PROGRAM, drivers: [DRIVER], maxInstructions: 1_000_000 });
  const prints = ofType(r.events, 'debug-print');
  t.match(prints, [
    { text: 'printer: DriverEntry 42\n', mode: 'KernelMode', source: 'DbgPrint', module: 'printer', callerSymbol: /^printer!DriverEntry\+0x/ },
    { text: 'to the debugger\n', mode: 'UserMode', source: 'int 2Dh', module: 'hello', callerSymbol: /^hello!start\+0x/, cpl: 0 },
  ]);
  t.same(dbgOutput(r.guest.kernel), ['printer: DriverEntry 42\n', 'to the debugger\n'], 'dbgOutput() keeps both');
  t.ok(isSubsequence(symbolPath(r), ['kernel32!OutputDebugStringA', 'ntdll!DebugPrint', 'ntdll!DebugService', 'nt!KiDebugService', 'nt!KdpPrintString', 'nt!KiExceptionExit', 'ntdll!DebugService', 'ntdll!DebugPrint', 'kernel32!OutputDebugStringA', 'hello!start']), 'INT 2Dh, printed, back past the int3');
  t.same(ofType(r.events, 'ring-transition').filter((e) => e.vector === 0x2d).map((e) => e.mechanism), ['int'], 'one INT 2Dh …');
  t.equal(ofType(r.events, 'exception-dispatch').length, 0, '… and no breakpoint exception');
});

t.test('another debug service is still a breakpoint for the thread', async (t) => {
  const source = '; ntflow: user\nstart:\n    mov eax, 2\n    int 0x2D\n    int3\n    ret\n';
  const r = runProgram('debug-service-2', { program: { fileName: 'ds.asm', source }, maxInstructions: 200_000 });
  t.same({ kind: r.outcome.kind, code: r.outcome.code }, { kind: 'exception', code: 0x80000003 }, 'STATUS_BREAKPOINT, unhandled');
});

t.test('recorded: console_outputs and debug_prints rows, the summary, replay --verify', async (t) => {
  const file = join(dir, 'hello.db');
  const summary = await record({ program: PROGRAM, drivers: [DRIVER] }, { output: file });
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  t.same(db.prepare('SELECT text, bytes, stream, process FROM console_outputs ORDER BY seq').all(), [
    { text: 'Hello, console!\r\n', bytes: 17, stream: 'stdout', process: 'hello.exe' },
    { text: 'red\x1b[31m\x07\ttab\r\n', bytes: 15, stream: 'stderr', process: 'hello.exe' },
  ]);
  t.same(db.prepare('SELECT text, mode, source, module FROM debug_prints ORDER BY seq').all(), [
    { text: 'printer: DriverEntry 42\n', mode: 'KernelMode', source: 'DbgPrint', module: 'printer' },
    { text: 'to the debugger\n', mode: 'UserMode', source: 'int 2Dh', module: 'hello' },
  ]);
  t.equal((db.prepare("SELECT count(*) AS n FROM events WHERE type IN ('console-output', 'debug-print')").get() as { n: number }).n, 4, 'in the events view');
  const text = summaryText(summary);
  t.match(text, /\n {2}console {7}2 writes, 32 bytes\n {4}\| Hello, console!\n {4}\| red\\x1b\[31m\\x07\\ttab\n/, 'the console, line by line, control characters escaped');
  t.match(text, /\n {2}debug output {2}2 prints\n {4}\| kernel printer!DriverEntry\+0x[0-9a-f]+: printer: DriverEntry 42\n {4}\| user hello!start\+0x[0-9a-f]+: to the debugger\n/);
  t.notMatch(text, /\x1b|\x07/, 'no raw control character reaches the terminal');
  const chunks: string[] = [];
  const result = await verifyCommand(file, { session: '1', out: { write: (s: string) => (chunks.push(s), true) }, exitCode: false });
  t.ok(result.identical, `replay --verify: identical (${chunks.join('').trim().split('\n').pop()})`);
});

t.test('escapeGuestText', async (t) => {
  t.equal(escapeGuestText('a\tb\rc\nd\x00\x1b\x7f\x9b\xe9\\'), 'a\\tb\\rc\\nd\\x00\\x1b\\x7f\\x9bé\\');
});
