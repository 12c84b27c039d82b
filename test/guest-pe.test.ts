// PE32 images MinGW-w64 builds, loaded and run on the guest (issue F points 1 and 5): at their
// ImageBase or relocated when it is taken, imports bound by name and by ordinal to the guest's
// export directories, each page with its section's protection, C function names in the trace (and
// module+0xOFFSET for a stripped image), and every image the loader cannot run refused with one
// line through the real CLI, exit status 1, nothing recorded lost. Built at test time.
//   npx tsc -p tsconfig.json && npx tap dist/test/guest-pe.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { rmSync, writeFileSync } from 'node:fs';
import { Guest, ProgramError, type ProgramSource } from '../core/index.js';
import { readExportDirectory } from '../core/guest/kernel/exports.js';
import { MM_EXECUTE_READ, MM_READONLY, MM_READWRITE, findVad, userPage } from '../core/guest/mm.js';
import type { LoadedImage } from '../core/guest/pe-loader.js';
import { ntflow } from './util/cli.js';
import { DRIVER, DLLTOOL, PROGRAM, buildDir, run } from './util/mingw.js';
import { haveOracle } from './util/oracle.js';
import { repoPath } from './util/paths.js';
import { runProgram, symbolPath } from './util/scenario.js';

if (!haveOracle(t, 'mingw')) process.exit(0);

const b = buildDir('ntflow-guest-pe-');
t.teardown(() => b.remove());
const RELOCATE = repoPath('test', 'programs', 'c', 'relocate.c');
const image = (fileName: string, bytes: Uint8Array): ProgramSource => ({ fileName, source: '', image: bytes });
const c = (name: string, text: string) => {
  writeFileSync(b.path(name), text);
  return name;
};

// relocate.c computes 0x40A only when every absolute address was fixed up, + 0x10000 when
// ntdll!NtClose (bound through the IAT) returned STATUS_INVALID_HANDLE.
const RELOCATE_STATUS = 0x1040a;
const atBase = b.gcc('relocate.exe', [...PROGRAM, '-O1', RELOCATE, '-lntdll']);
const atStack = b.gcc('relocate-stack.exe', [...PROGRAM, '-O1', '-Wl,--image-base,0x00120000', RELOCATE, '-lntdll']);
const fixedAtStack = b.gcc('relocate-fixed.exe', [...PROGRAM, '-O1', '-Wl,--image-base,0x00120000', '-Wl,--disable-dynamicbase', '-Wl,--disable-reloc-section', RELOCATE, '-lntdll']);

const userProcess = (g: Guest) => g.kernel.processes.find((p) => !p.isSystem)!;

t.test('a program runs at its own ImageBase: nothing relocated, imports bound through the IAT', async (t) => {
  const r = runProgram('relocate', { program: image('relocate.exe', atBase) });
  const p = r.guest.program as LoadedImage;
  t.equal(p.origin, 0x400000, 'at the ImageBase MinGW links programs for');
  t.equal(p.relocationsApplied, 0);
  t.same(r.outcome, { kind: 'exited', code: RELOCATE_STATUS, description: 'exited with 0x0001040A' });
  const ntClose = r.guest.symbols.resolve('ntdll', 'NtClose');
  t.same(p.imports, [{ dll: 'ntdll.dll', import: 'NtClose', iatRva: p.imports[0]!.iatRva, address: ntClose }], 'the one import, bound to ntdll!NtClose');
  t.ok(
    r.guest.machine.mem.read32(userPage(r.guest.kernel, userProcess(r.guest), 0x400000 + p.imports[0]!.iatRva).frame + ((0x400000 + p.imports[0]!.iatRva) & 0xfff)) === ntClose,
    "the IAT slot in the program's memory holds the address",
  );
  const path = symbolPath(r);
  for (const s of ['relocate!start', 'relocate!twice', 'relocate!plusSeven', 'ntdll!NtClose', 'SharedUserData!SystemCallStub', 'nt!KiFastCallEntry', 'nt!NtClose']) t.ok(path.includes(s), `the trace passes ${s}`);
});

t.test('a program whose ImageBase is taken (here: the stack) is relocated to 0x00400000 and runs the same', async (t) => {
  const r = runProgram('relocate-stack', { program: image('relocate-stack.exe', atStack) });
  const p = r.guest.program as LoadedImage;
  t.equal(p.pe.imageBase, 0x120000, 'linked for 0x00120000');
  t.equal(p.origin, 0x400000, 'loaded at 0x00400000');
  t.equal(p.relocationsApplied, p.pe.relocations.length, 'every HIGHLOW fixup applied');
  t.ok(p.relocationsApplied >= 8, `${p.relocationsApplied} fixups`);
  t.equal(r.outcome.code, RELOCATE_STATUS, 'the same exit status: every absolute address was fixed');
  const k = r.guest.kernel;
  const header = userPage(k, userProcess(r.guest), 0x400000);
  const lfanew = r.guest.machine.mem.read32(header.frame + 0x3c);
  t.equal(r.guest.machine.mem.read32(header.frame + lfanew + 0x34), 0x400000, "the mapped headers' ImageBase says where the image is");
  t.ok(symbolPath(r).includes('relocate-stack!plusSeven'), 'symbols at the relocated addresses (the module is named after its file)');
});

t.test("each page gets its section's protection, under one image VAD", async (t) => {
  const g = Guest.boot({ program: image('relocate.exe', atBase) });
  const p = g.program as LoadedImage;
  const proc = userProcess(g);
  const section = (name: string) => p.pe.sections.find((s) => s.name === name)!;
  t.equal(userPage(g.kernel, proc, 0x400000).protection, MM_READONLY, 'headers: read-only');
  t.equal(userPage(g.kernel, proc, 0x400000 + section('.text').virtualAddress).protection, MM_EXECUTE_READ, '.text: execute-read');
  t.equal(userPage(g.kernel, proc, 0x400000 + section('.data').virtualAddress).protection, MM_READWRITE, '.data: read-write');
  t.equal(userPage(g.kernel, proc, 0x400000 + section('.rdata').virtualAddress).protection, MM_READONLY, '.rdata: read-only');
  const vad = findVad(g.kernel, proc, 0x400000)!;
  t.equal(vad.start, 0x400000);
  t.equal(vad.end, 0x400000 + p.pe.sizeOfImage, 'one VAD over SizeOfImage');
  t.notOk(vad.private, 'an image view, not private memory');
});

t.test('code and read-only data cannot be written: the write is an access violation the process dies of', async (t) => {
  const src = c('writecode.c', 'static const char text[] = "constant";\nlong __stdcall start(void) { *(volatile char *)text = 1; return 0; }\n');
  const r = runProgram('writecode', { program: image('writecode.exe', b.gcc('writecode.exe', [...PROGRAM, src])) });
  t.equal(r.outcome.kind, 'exception');
  t.equal(r.outcome.code, 0xc0000005, 'STATUS_ACCESS_VIOLATION');
});

t.test('imports by ordinal bind through the export directory’s ordinals', async (t) => {
  const g = Guest.boot({ program: { fileName: 'idle.asm', source: '; ntflow: user\nstart:\n    ret\n' } });
  const ntClose = readExportDirectory(g.kernel.images.ntdll).find((e) => e.name === 'NtClose')!;
  writeFileSync(b.path('ntord.def'), `LIBRARY ntdll.dll\nEXPORTS\nNtClose@4 @${ntClose.ordinal} NONAME\n`);
  run(DLLTOOL, ['-d', 'ntord.def', '-l', 'libntord.a'], b.dir);
  const bytes = b.gcc('ordinal.exe', [...PROGRAM, '-O1', RELOCATE, '-L', '.', '-lntord']);
  const r = runProgram('ordinal', { program: image('ordinal.exe', bytes) });
  const p = r.guest.program as LoadedImage;
  t.same(
    p.pe.imports.map((d) => d.functions.map((f) => f.by)),
    [['ordinal']],
    `the image imports ntdll.dll #${ntClose.ordinal}, no name`,
  );
  t.equal(p.imports[0]!.address, ntClose.address, 'bound to NtClose');
  t.equal(r.outcome.code, RELOCATE_STATUS);
});

const DRV = c(
  'drv.c',
  `#include <ntddk.h>
static ULONG calls;
NTSTATUS entryStatus = STATUS_PENDING;
static ULONG NTAPI __attribute__((noinline)) Count(ULONG n) { calls += n; return calls; }
NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path) {
  (void)driver; (void)path;
  entryStatus = Count(2) + Count(3) == 7 && KeGetCurrentIrql() == PASSIVE_LEVEL ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
  return entryStatus;
}
`,
);
const IDLE: ProgramSource = { fileName: 'idle.asm', source: '; ntflow: user\nstart:\n    xor eax, eax\n    ret\n' };

t.test('a C driver runs DriverEntry from its slot, relocated, with its function names', async (t) => {
  const r = runProgram('drv', { program: IDLE, drivers: [image('drv.sys', b.gcc('drv.sys', [...DRIVER, '-O1', DRV, '-lntoskrnl', '-lhal']))] });
  const d = r.guest.drivers[0] as LoadedImage;
  t.equal(d.origin, 0xf8a00000, 'the first driver slot');
  t.ok(d.relocationsApplied > 0, 'relocated from 0x00400000');
  const entryStatus = r.guest.symbols.resolve('drv', 'entryStatus')!;
  t.ok(entryStatus >= 0xf8a00000, 'the C variable entryStatus has a symbol');
  t.equal(r.guest.kernel.r32(entryStatus), 0, 'DriverEntry computed STATUS_SUCCESS (relocated data, called functions, the IRQL)');
  const path = symbolPath(r);
  t.ok(path.includes('drv!DriverEntry') && path.includes('drv!Count') && path.includes('hal!KeGetCurrentIrql'), 'drv!DriverEntry → drv!Count, hal!KeGetCurrentIrql');
});

t.test('a stripped image has no names: its addresses read module+0xOFFSET', async (t) => {
  const r = runProgram('drv-stripped', { program: IDLE, drivers: [image('drv.sys', b.gcc('drv-stripped.sys', [...DRIVER, '-O1', '-s', DRV, '-lntoskrnl', '-lhal']))] });
  const d = r.guest.drivers[0] as LoadedImage;
  t.equal(d.symbols.size, 0, 'no COFF symbols, no exports');
  const entry = r.guest.symbols.format(d.entry);
  t.equal(entry, `drv+0x${(d.entry - 0xf8a00000).toString(16)}`);
  t.ok(symbolPath(r).some((s) => /^drv\+0x[0-9a-f]+$/.test(s)), 'the trace names the module and the offset');
});

// ---- refusals: one line, exit status 1, through the CLI ------------------------------------------------

/** Patches a copy of a PE: the COFF header's Machine, or the optional header's Magic. */
function patched(bytes: Uint8Array, field: 'machine' | 'magic', value: number): Uint8Array {
  const out = bytes.slice();
  const v = new DataView(out.buffer);
  const nt = v.getUint32(0x3c, true);
  v.setUint16(field === 'machine' ? nt + 4 : nt + 24, value, true);
  return out;
}

const bigDrv = c('big.c', '#include <ntddk.h>\nchar big[0x20000] = {1};\nNTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING p) { (void)d; (void)p; return big[5]; }\n');
const missing = c('missing.c', '__declspec(dllimport) long __stdcall RtlGetVersion(void *v);\nlong __stdcall start(void) { char v[0x11c]; return RtlGetVersion(v); }\n');
const dll = c('lib.c', '__declspec(dllexport) int __stdcall Add(int a, int b) { return a + b; }\n');
const kernelProg = c('kprog.c', '#include <ntddk.h>\nlong __stdcall start(void) { return (long)PsGetCurrentProcessId(); }\n');
writeFileSync(b.path('text.exe'), 'not a PE image\n');

const REFUSALS: { what: string; args: () => string[]; line: RegExp }[] = [
  { what: 'not a PE', args: () => ['text.exe'], line: /^ntflow: (program )?text\.exe .*(MZ|not a PE)/ },
  { what: 'PE32+ (x64)', args: () => [write('x64.exe', patched(atBase, 'magic', 0x20b))], line: /^ntflow: x64\.exe .*(PE32\+|64-bit)/ },
  { what: 'not i386', args: () => [write('arm.exe', patched(atBase, 'machine', 0x1c0))], line: /^ntflow: arm\.exe .*(i386|x86)/ },
  { what: 'a DLL given as a program', args: () => [write('lib.dll', b.gcc('lib.dll', ['-shared', '-nostdlib', '-Wl,--no-insert-timestamp', dll]))], line: /^ntflow: lib\.dll .*DLL/ },
  { what: 'a driver given as a program', args: () => ['drv.sys'], line: /^ntflow: drv\.sys .*driver.*--driver/ },
  { what: 'a program given as a driver', args: () => ['relocate.exe', '--driver', 'relocate.exe'], line: /^ntflow: relocate\.exe .*(program|not a driver)/ },
  { what: 'a program importing the kernel', args: () => [write('kprog.exe', b.gcc('kprog.exe', [...PROGRAM, '-I', '/usr/share/mingw-w64/include/ddk', kernelProg, '-lntoskrnl']))], line: /^ntflow: kprog\.exe .*(kernel|driver)/ },
  { what: 'an import the guest does not export', args: () => [write('missing.exe', b.gcc('missing.exe', [...PROGRAM, missing, '-lntdll']))], line: /^ntflow: missing\.exe imports ntdll\.dll!RtlGetVersion, which the guest does not export; nearest: \w+/ },
  { what: 'a driver too big for its slot', args: () => ['relocate.exe', '--driver', write('big.sys', b.gcc('big.sys', [...DRIVER, bigDrv, '-lntoskrnl']))], line: /^ntflow: big\.sys is too big: its image needs 0x2[0-9A-F]{4} bytes \(SizeOfImage\) and a driver slot holds 0x10000$/ },
  { what: 'an image over the stack without relocations', args: () => [write('fixed.exe', fixedAtStack)], line: /^ntflow: fixed\.exe is linked to run at 0x00120000–0x0012[0-9A-F]{4}, which overlaps the program's stack, and its relocations were stripped/ },
];

function write(name: string, bytes: Uint8Array): string {
  writeFileSync(b.path(name), bytes);
  return name;
}

t.test('every image the loader cannot run is refused with one line and exit status 1; the trace keeps its sessions', async (t) => {
  write('relocate.exe', atBase);
  b.gcc('drv.sys', [...DRIVER, DRV, '-lntoskrnl', '-lhal']);
  const trace = b.path('kept.db');
  const first = await ntflow(['record', 'relocate.exe', '-o', trace], b.dir);
  t.equal(first.code, 0, first.stderr);
  for (const r of REFUSALS) {
    const out = await ntflow(['record', ...r.args(), '-o', trace], b.dir);
    t.equal(out.code, 1, `${r.what}: exit status 1`);
    t.equal(out.stderr.trim().split('\n').length, 1, `${r.what}: one line`);
    t.match(out.stderr.trim(), r.line, `${r.what}: ${out.stderr.trim()}`);
    t.notMatch(out.stderr, /\n\s+at /, `${r.what}: no stack trace`);
  }
  const db = new Database(trace, { readonly: true });
  t.same(db.prepare('select id, outcome, outcome_code from sessions').all(), [{ id: 1, outcome: 'exited', outcome_code: RELOCATE_STATUS }], 'the first session is intact and alone');
  db.close();
});

t.test('a session of PE files keeps their images: replay --verify re-runs it after the files are gone', async (t) => {
  const dir = buildDir('ntflow-pe-verify-');
  t.teardown(() => dir.remove());
  writeFileSync(dir.path('app.exe'), atBase);
  writeFileSync(dir.path('drv.sys'), b.gcc('drv-verify.sys', [...DRIVER, '-O1', DRV, '-lntoskrnl', '-lhal']));
  const trace = dir.path('pe.db');
  const rec = await ntflow(['record', 'app.exe', '--driver', 'drv.sys', '-o', trace], dir.dir);
  t.equal(rec.code, 0, rec.stderr);
  rmSync(dir.path('app.exe'));
  rmSync(dir.path('drv.sys'));
  const db = new Database(trace, { readonly: true });
  const s = db.prepare('select program_file, length(program_image) AS bytes, drivers from sessions').get() as { program_file: string; bytes: number; drivers: string };
  db.close();
  t.equal(s.program_file, 'app.exe');
  t.equal(s.bytes, atBase.length, 'the program image is in the trace');
  t.match(JSON.parse(s.drivers), [{ file: 'drv.sys', image: String }], "and the driver's");
  const v = await ntflow(['replay', trace, '--verify'], dir.dir);
  t.equal(v.code, 0, v.stderr);
  t.match(v.stdout, /identical/i, v.stdout.trim());
});

t.test('the loader’s errors are ProgramErrors for library users', async (t) => {
  t.throws(() => Guest.boot({ program: image('fixed.exe', fixedAtStack) }), ProgramError);
});
