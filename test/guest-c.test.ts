// C on the miniature XP (issue F points 3, 4 and 6): the OSR log driver and its client in C give
// the article's matrix exactly as the asm scenarios do (statuses, PreviousMode, handle tables); a C
// client's ReadFile runs kernel32 → ntdll → SharedUserData → KiFastCallEntry → nt!NtReadFile → the
// C driver's DispatchRead; a C driver calling every kernel routine point 4 lists gets what the
// guest kernel returns; a C program's GetLastError values are RtlNtStatusToDosError's; the shipped
// binaries rebuild byte for byte from their sources.
//   npx tsc -p tsconfig.json && npx tap dist/test/guest-c.test.js
import t from 'tap';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { ConsoleOutputEvent, DebugPrintEvent, HandleLookupEvent, ServiceEnterEvent, ServiceExitEvent } from '../core/events.js';
import { scenarioDir } from '../core/guest/scenarios.js';
import type { ProgramSource } from '../core/index.js';
import { DRIVER, PROGRAM, buildDir } from './util/mingw.js';
import { haveOracle } from './util/oracle.js';
import { repoPath } from './util/paths.js';
import { isSubsequence, ofType, runProgram, runScenario, serviceCalls, symbolPath, type Run } from './util/scenario.js';

const STATUS = { SUCCESS: 0, ACCESS_VIOLATION: 0xc0000005, INVALID_HANDLE: 0xc0000008, OBJECT_NAME_NOT_FOUND: 0xc0000034 };

/** What a run's system calls were: service, PreviousMode, status, and whose thread. */
function callTable(r: Run) {
  return serviceCalls(r.events).map(({ enter, exit }: { enter: ServiceEnterEvent; exit: ServiceExitEvent | null }) => ({
    service: enter.service,
    previousMode: enter.previousMode,
    status: exit?.status ?? null,
    system: enter.thread === r.guest.kernel.systemThread.id,
  }));
}

/** The handle lookups: which table, which handle kind, and the answer. */
function lookups(r: Run) {
  return ofType(r.events, 'handle-lookup').map((e: HandleLookupEvent) => ({ table: e.table, kernelHandle: (e.handle & 0x80000000) !== 0, status: e.status }));
}

/** The OSR driver's own record of what NtWriteFile and ZwWriteFile returned, read from guest memory. */
function driverStatuses(r: Run, module: string) {
  const read = (name: string) => {
    const at = r.guest.symbols.resolve(module, name)!;
    return [r.guest.kernel.r32(at) >>> 0, r.guest.kernel.r32(at + 4) >>> 0];
  };
  return { dispatch: read('dispatchStatus'), workItem: read('workItemStatus') };
}

// The article's matrix: dispatch routine (the program's thread) vs work item (System) × Nt vs Zw.
const MATRIX = {
  'osr-log-user-handle': { dispatch: [STATUS.ACCESS_VIOLATION, STATUS.SUCCESS], workItem: [STATUS.INVALID_HANDLE, STATUS.INVALID_HANDLE] },
  // NtWriteFile references the handle before it probes the caller's buffers (WRK's order): a
  // kernel handle under PreviousMode UserMode is STATUS_INVALID_HANDLE before any probe.
  'osr-log-kernel-handle': { dispatch: [STATUS.INVALID_HANDLE, STATUS.SUCCESS], workItem: [STATUS.SUCCESS, STATUS.SUCCESS] },
};

for (const [asm, matrix] of Object.entries(MATRIX)) {
  t.test(`${asm}-c gives ${asm}'s outcomes: statuses, PreviousMode, handle tables`, async (t) => {
    const a = runScenario(asm);
    const c = runScenario(`${asm}-c`);
    t.same(c.outcome, a.outcome, `both exit: ${c.outcome.description}`);
    t.same(callTable(c), callTable(a), 'the same system calls, PreviousModes and statuses, in the same threads');
    t.same(lookups(c), lookups(a), 'the same handle lookups: tables, handle kinds, answers');
    const asmDriver = asm === 'osr-log-user-handle' ? 'osr-log-user-handle' : 'osr-log-kernel-handle';
    t.same(driverStatuses(c, 'osrlog'), matrix, `the C driver's statuses are the article's matrix`);
    t.same(driverStatuses(a, asmDriver), matrix, "and the asm driver's");
    const logHandle = c.guest.kernel.r32(c.guest.symbols.resolve('osrlog', 'logHandle')!) >>> 0;
    t.equal((logHandle & 0x80000000) !== 0, asm === 'osr-log-kernel-handle', `the log handle ${logHandle.toString(16)} is in the ${asm === 'osr-log-kernel-handle' ? 'kernel' : "program's"} handle table`);
  });
}

t.test("the C client's ReadFile: kernel32 → ntdll → SystemCallStub → KiFastCallEntry → NtReadFile → osrlog!DispatchRead", async (t) => {
  const r = runScenario('osr-log-user-handle-c');
  const path = symbolPath(r);
  t.ok(
    isSubsequence(path, ['osrlog-client!start', 'kernel32!ReadFile', 'ntdll!NtReadFile', 'SharedUserData!SystemCallStub', 'nt!KiFastCallEntry', 'nt!KiSystemService', 'nt!NtReadFile', 'osrlog!DispatchRead', 'osrlog!WriteBoth', 'nt!NtWriteFile', 'nt!ZwWriteFile', 'nt!KiServiceExit']),
    'the path, with the C functions named',
  );
  const sysenters = ofType(r.events, 'ring-transition').filter((e) => e.mechanism === 'sysenter');
  t.ok(sysenters.length >= 5, 'every kernel32 call reached the kernel by SYSENTER');
});

// ---- the rest needs the compiler ---------------------------------------------------------------

t.test('built with MinGW at test time', async (t) => {
  if (!haveOracle(t, 'mingw')) return;
  const b = buildDir('ntflow-guest-c-');
  t.teardown(() => b.remove());
  const c = (name: string) => repoPath('test', 'programs', 'c', name);
  const image = (fileName: string, bytes: Uint8Array): ProgramSource => ({ fileName, source: '', image: bytes });

  t.test('a C driver calling every routine of issue F point 4 gets what the guest kernel returns', async (t) => {
    const r = runProgram('kapi', {
      program: image('kapi-client.exe', b.gcc('kapi-client.exe', [...PROGRAM, '-O1', c('kapi-client.c'), '-lkernel32'])),
      drivers: [image('kapi.sys', b.gcc('kapi.sys', [...DRIVER, '-O1', c('kapi.c'), '-lntoskrnl', '-lhal']))],
    });
    t.equal(r.outcome.description, 'exited with STATUS_SUCCESS', 'the client: the device opened, read, the METHOD_NEITHER copy came back, 6 bytes written');
    const at = r.guest.symbols.resolve('kapi', 'results')!;
    const slot = (i: number) => r.guest.kernel.r32(at + 4 * i) >>> 0;
    const program = r.guest.kernel.processes.find((p) => !p.isSystem)!;
    const want: [string, number][] = [
      ['ExAllocatePoolWithTag, memset, memcpy, strlen, ExFreePoolWithTag', 1],
      ['ExAllocatePoolWithTag, ExFreePool', 1],
      ['RtlInitUnicodeString, RtlCopyUnicodeString, _wcsicmp', 1],
      ['KeGetCurrentIrql in DriverEntry: PASSIVE_LEVEL', 0],
      ['KfRaiseIrql(DISPATCH_LEVEL) returns the old IRQL', 0],
      ['KeGetCurrentIrql then: DISPATCH_LEVEL', 2],
      ['KfLowerIrql back to PASSIVE_LEVEL', 0],
      ['PsGetCurrentProcessId in DriverEntry: System', 4],
      ['ZwCreateFile', STATUS.SUCCESS],
      ['ZwWriteFile', STATUS.SUCCESS],
      ['ZwReadFile', STATUS.SUCCESS],
      ['ZwReadFile read the 5 bytes written', 5],
      ['ObReferenceObjectByHandle(kernel handle, IoFileObjectType, KernelMode)', STATUS.SUCCESS],
      ['the object is a FILE_OBJECT', 1],
      ['ZwClose', STATUS.SUCCESS],
      ['NtCreateFile from DriverEntry (PreviousMode KernelMode)', STATUS.SUCCESS],
      ['NtReadFile from DriverEntry', STATUS.SUCCESS],
      ['NtClose from DriverEntry', STATUS.SUCCESS],
      ['IoDeleteSymbolicLink', STATUS.SUCCESS],
      ['ZwCreateFile on the deleted link (IoDeleteDevice too)', STATUS.OBJECT_NAME_NOT_FOUND],
      ['KeDelayExecutionThread', STATUS.SUCCESS],
      ["PsGetCurrentProcessId in the read dispatch routine: the program's", program.id],
      ["PsGetCurrentThreadId there: the program's thread", r.guest.kernel.threads.find((th) => th.process === program)!.id],
      ['NtCreateFile there, kernel buffers, PreviousMode UserMode', STATUS.ACCESS_VIOLATION],
      ["NtClose of DriverEntry's kernel handle there", STATUS.INVALID_HANDLE],
      ['ZwDeviceIoControlFile to its own device', STATUS.SUCCESS],
      ['the device-control routine saw the IOCTL', 1],
      ['ProbeForRead, ProbeForWrite of METHOD_NEITHER buffers', 1],
      ['inside KeStackAttachProcess(System), PsGetCurrentProcess() is System', 1],
      ["and PsGetCurrentProcessId there is the thread's own process", program.id],
      ["after KeUnstackDetachProcess, PsGetCurrentProcess() is the program's", 1],
      ['IRP_MJ_WRITE: the length written', 6],
      ["IRP_MJ_WRITE: the caller's first byte", 'w'.charCodeAt(0)],
    ];
    want.forEach(([what, value], i) => t.equal(slot(i), value >>> 0, what));
    const prints = ofType(r.events, 'debug-print').map((e: DebugPrintEvent) => e.text);
    t.same(prints, ['kapi: DriverEntry, registry path \\Registry\\Machine\\System\\CurrentControlSet\\Services\\kapi\n', `kapi: read dispatch in process ${program.id}\n`], 'DbgPrint, %wZ and %lu formatted, recorded as debug-print events');
  });

  t.test("a C program's GetLastError values are RtlNtStatusToDosError's, printed with WriteConsoleA", async (t) => {
    const r = runProgram('errors', { program: image('errors.exe', b.gcc('errors.exe', [...PROGRAM, '-O1', c('errors.c'), '-lkernel32'])) });
    t.equal(r.outcome.description, 'exited with STATUS_SUCCESS');
    const text = ofType(r.events, 'console-output').map((e: ConsoleOutputEvent) => e.text).join('');
    t.equal(
      text,
      [
        'CloseHandle(0x1234) 6', // STATUS_INVALID_HANDLE → ERROR_INVALID_HANDLE
        'CreateFileA(missing) 2', // STATUS_OBJECT_NAME_NOT_FOUND → ERROR_FILE_NOT_FOUND
        'ReadFile(kernel buffer) 998', // STATUS_ACCESS_VIOLATION → ERROR_NOACCESS
        'VirtualFree(nothing) 487', // STATUS_MEMORY_NOT_ALLOCATED → ERROR_INVALID_ADDRESS
        'ReadFile(notes) 0', // success leaves the 0 SetLastError wrote
        '',
      ].join('\r\n'),
    );
    t.same(ofType(r.events, 'debug-print').map((e: DebugPrintEvent) => e.text), ['errors.c: done\n'], 'OutputDebugStringA');
  });

  t.test("the README's example: hello.exe and hello.sys, built with the README's commands", async (t) => {
    const ex = (name: string) => repoPath('examples', 'c', name);
    const r = runProgram('hello', {
      program: image('hello.exe', b.gcc('hello.exe', [...PROGRAM, '-O1', ex('hello.c'), '-lkernel32'])),
      drivers: [image('hello.sys', b.gcc('hello.sys', [...DRIVER, '-O1', ex('hello-driver.c'), '-lntoskrnl', '-lhal']))],
    });
    t.equal(r.outcome.description, 'exited with STATUS_SUCCESS');
    t.same(ofType(r.events, 'console-output').map((e: ConsoleOutputEvent) => e.text), ['logged\r\n']);
    t.same(ofType(r.events, 'debug-print').map((e: DebugPrintEvent) => e.text), ['hello: NtWriteFile c0000008, ZwWriteFile 00000000\n'], 'NtWriteFile: STATUS_INVALID_HANDLE; ZwWriteFile: success');
    const failed = serviceCalls(r.events).filter((c) => c.exit && c.exit.status !== 0);
    t.same(failed.map((c) => [c.enter.service, c.enter.previousMode, c.exit!.statusName]), [['NtWriteFile', 'UserMode', 'STATUS_INVALID_HANDLE']], 'the one failure, as the README shows it');
  });

  t.test('the shipped binaries rebuild byte for byte from their sources (build.sh)', async (t) => {
    const bench = mkdtempSync(join(tmpdir(), 'ntflow-rebuild-bench-'));
    t.teardown(() => rmSync(bench, { recursive: true, force: true }));
    for (const f of ['build.sh', 'readloop.c']) cpSync(repoPath('bench', 'c', f), join(bench, f));
    const rb = spawnSync('sh', ['build.sh'], { cwd: bench, encoding: 'utf8' });
    t.equal(rb.status, 0, rb.stderr);
    t.ok(Buffer.from(readFileSync(join(bench, 'readloop.exe'))).equals(readFileSync(repoPath('bench', 'c', 'readloop.exe'))), 'bench/c/readloop.exe: identical');

    const from = join(scenarioDir(), 'c');
    const dir = mkdtempSync(join(tmpdir(), 'ntflow-rebuild-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    for (const f of ['build.sh', 'osrlog.c', 'osrlog-client.c']) cpSync(join(from, f), join(dir, f));
    const r = spawnSync('sh', ['build.sh'], { cwd: dir, encoding: 'utf8' });
    t.equal(r.status, 0, r.stderr);
    for (const f of ['osrlog-client.exe', 'user-handle/osrlog.sys', 'kernel-handle/osrlog.sys']) {
      t.ok(Buffer.from(readFileSync(join(dir, f))).equals(readFileSync(join(from, f))), `${f}: identical`);
    }
  });
});
