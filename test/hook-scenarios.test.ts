// The five hook scenarios of the second wave (msr-hook, idt-hook, ntdll-stub-hook,
// shadow-ssdt-hook, thread-table-hook): each installs its hook the way XP-era rootkits did, in
// guest code, and every assertion here reads what the run did from its events — the install
// (the instruction's writes, the msr-write), the hook's own instructions retiring after it, the
// evidence a detector would look for (MSR 176h, the IDT gate, the ntdll stub's bytes, the shadow
// table's entry, the thread's table), and the call still succeeding through the hook.
//   npx tsc -p tsconfig.json && npx tap dist/test/hook-scenarios.test.js
import t, { type Test } from 'tap';
import type { InstructionEvent, TraceEvent } from '../core/events.js';
import { disassemble } from '../core/disasm/index.js';
import {
  callsOf,
  labelBytes,
  labelDword,
  msrReads,
  ofType,
  ringTransitions,
  runScenario,
  ssdtLookups,
  symbolOf,
  symbolPath,
  userCallWindow,
  type Run,
} from './util/scenario.js';

// ---- facts of the guest (DESIGN.md's table, core/guest/layout.ts) ---------------------------------

const KI_FAST_CALL_ENTRY = 0x8053a270;
const KI_SYSTEM_SERVICE = 0x8053a2fb;
const NT_READ_FILE = 0x8056b2ec;
const NTDLL_NT_READ_FILE = 0x77f761e8;
const SYSTEM_CALL_STUB = 0x7ffe0300;
const KI_SERVICE_TABLE = 0x804e26a8;
const KI_SERVICE_LIMIT = 284;
const W32P_SERVICE_TABLE = 0xbf8014a4;
const IDT = 0x8003f400;
const KTHREAD_SERVICE_TABLE = 0xe0;
const PROGRAM_THREAD = 0x7cc;
const SYSTEM_THREAD = 8;
const MSR_SYSENTER_EIP = 0x176;
const PAGE_EXECUTE_READ = 0x20;
const PAGE_EXECUTE_READWRITE = 0x40;
const CR0_WP = 0x10000;

const STATUS_SUCCESS = 0;
const STATUS_NOT_IMPLEMENTED = 0xc0000002;

const README = "Hello from ntflow's in-memory file system.\r\n";

const hex = (n: number) => '0x' + (n >>> 0).toString(16);
const ascii = (bytes: readonly number[]) => String.fromCharCode(...bytes);

// ---- helpers ----------------------------------------------------------------------------------------

/** A guest address of a scenario's module (its driver or program), or a failure. */
function addr(r: Run, module: string, label: string): number {
  const a = r.guest.symbols.resolve(module, label);
  if (a === undefined) throw new Error(`no ${module}!${label}`);
  return a >>> 0;
}

/** A dword of guest memory as the run left it (read through the current page tables). */
function peek32(r: Run, a: number): number {
  const b = r.guest.machine.cpu.mmu.peekBytes(a, 4);
  if (b.some((x) => x === null)) throw new Error(`${hex(a)} is not mapped`);
  return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
}

/** Each write [address, size, value] an instruction made, with the instruction. */
function writesTo(r: Run, pred: (address: number) => boolean): { e: InstructionEvent; address: number; size: number; value: number }[] {
  const out: { e: InstructionEvent; address: number; size: number; value: number }[] = [];
  for (const e of r.instructions) {
    for (let i = 0; i < e.writes.length; i += 3) {
      const a = e.writes[i] >>> 0;
      if (pred(a)) out.push({ e, address: a, size: e.writes[i + 1], value: e.writes[i + 2] >>> 0 });
    }
  }
  return out;
}

/** The instructions retired inside [start, end) after `afterSeq`. */
function ranInside(r: Run, start: number, end: number, afterSeq = -1): InstructionEvent[] {
  return r.instructions.filter((e) => e.seq > afterSeq && e.eip >>> 0 >= start && e.eip >>> 0 < end);
}

/**
 * The first ring-0 instruction after a ring transition to ring 0 (the transition is emitted before
 * the SYSENTER or INT that made it retires; the next ring-0 instruction is where it led).
 */
function landedAt(r: Run, transitionSeq: number): number | undefined {
  return r.instructions.find((e) => e.seq > transitionSeq && e.cpl === 0)?.eip;
}

/** The NtReadFile call of a program, its window and its service call. */
function readCall(r: Run, module: string) {
  const w = userCallWindow(r, 'ntdll!NtReadFile', `${module}!start`);
  const ev = r.events.filter((e) => e.seq >= w.from && e.seq <= w.to);
  const calls = callsOf(ev, 'NtReadFile');
  if (calls.length !== 1) throw new Error(`${r.name}: expected one NtReadFile call, found ${calls.length}`);
  return { ...w, events: ev, call: calls[0] };
}

/** Assertions every run satisfies (the stream, the symbols). */
function basics(t: Test, r: Run) {
  t.ok(
    r.events.every((e, i) => e.seq === i),
    'seq is gapless from 0',
  );
  t.same([...new Set(r.symbols.filter((s) => s.startsWith('?')))], [], 'every executed address has a symbol');
  const bad = r.instructions.filter((e) => (e.eip >>> 0 >= 0x80000000 ? 0 : 3) !== e.cpl);
  t.same(bad.map((e) => hex(e.eip)), [], 'kernel-space code at CPL 0, user-space code at CPL 3');
}

function exitedWith(t: Test, r: Run, status: number) {
  t.same({ kind: r.outcome.kind, code: hex(r.outcome.code ?? 0) }, { kind: 'exited', code: hex(status) }, `exits with ${hex(status)} (${r.outcome.description})`);
}

const runs = new Map<string, Run>();
function run(name: string): Run {
  let r = runs.get(name);
  if (!r) runs.set(name, (r = runScenario(name)));
  return r;
}

// ---- msr-hook -------------------------------------------------------------------------------------

t.test('msr-hook: WRMSR 176h → msr-hook!KiFastCallEntryHook; SYSENTER lands there, then in nt!KiFastCallEntry', async (t) => {
  const r = run('msr-hook');
  exitedWith(t, r, STATUS_SUCCESS);
  basics(t, r);
  const hook = addr(r, 'msr-hook', 'KiFastCallEntryHook');
  const hookEnd = addr(r, 'msr-hook', 'originalKiFastCallEntry');

  // The install: RDMSR of the old value, then WRMSR of the driver's routine, in DriverEntry.
  const writes = ofType(r.events, 'msr-write').filter((e) => e.msr === MSR_SYSENTER_EIP);
  t.equal(writes.length, 1, 'one msr-write of MSR 176h');
  const install = writes[0];
  t.equal(install.value, BigInt(hook), 'it writes the address of msr-hook!KiFastCallEntryHook');
  t.equal(symbolOf(r.guest, install.eip), 'msr-hook!DriverEntry', 'from DriverEntry');
  t.equal(install.thread, SYSTEM_THREAD, 'on the System thread');
  t.equal(install.cpl, 0, 'at CPL 0');
  const rdmsr = msrReads(r.events).filter((e) => e.source === 'rdmsr' && e.msr === MSR_SYSENTER_EIP);
  t.same(
    rdmsr.map((e) => [e.value, e.seq < install.seq, symbolOf(r.guest, e.eip)]),
    [[BigInt(KI_FAST_CALL_ENTRY), true, 'msr-hook!DriverEntry']],
    'before it, an RDMSR of 176h read nt!KiFastCallEntry',
  );
  t.equal(labelDword(r, 'msr-hook', 'originalKiFastCallEntry'), KI_FAST_CALL_ENTRY, 'the driver kept nt!KiFastCallEntry');

  // Every SYSENTER after it reads the new value and enters the driver.
  const sysenters = ringTransitions(r.events).filter((e) => e.mechanism === 'sysenter');
  t.ok(sysenters.length >= 4, `the program's calls entered the kernel by SYSENTER (${sysenters.length})`);
  t.ok(
    sysenters.every((e) => e.seq > install.seq),
    'all of them after the install',
  );
  const eipReads = msrReads(r.events).filter((e) => e.source === 'sysenter' && e.msr === MSR_SYSENTER_EIP);
  t.equal(eipReads.length, sysenters.length, 'each SYSENTER read MSR 176h');
  t.ok(
    eipReads.every((e) => e.value === BigInt(hook) && e.seq > install.seq),
    'and found msr-hook!KiFastCallEntryHook there',
  );
  t.same([...new Set(sysenters.map((e) => e.toEip >>> 0))], [hook], 'every SYSENTER went to the hook');
  for (const s of sysenters) {
    if (landedAt(r, s.seq) !== hook) t.fail(`the instruction after the SYSENTER at seq ${s.seq} is not the hook's`);
  }

  // The hook ran, and went on into nt!KiFastCallEntry.
  const ran = ranInside(r, hook, hookEnd, install.seq);
  t.ok(ran.length >= sysenters.length * 4, `the hook's instructions retired after the install (${ran.length})`);
  t.ok(
    ran.every((e) => e.cpl === 0 && e.thread === PROGRAM_THREAD),
    "at CPL 0, in the program's thread",
  );
  const jumps = ran.filter((e) => e.nextEip >>> 0 === KI_FAST_CALL_ENTRY);
  t.equal(jumps.length, sysenters.length, 'each pass jumps to nt!KiFastCallEntry');

  const read = readCall(r, 'user-nt-readfile');
  t.same(
    symbolPath(r, read.from, read.to).slice(0, 6),
    ['user-nt-readfile!start', 'ntdll!NtReadFile', 'SharedUserData!SystemCallStub', 'msr-hook!KiFastCallEntryHook', 'nt!KiFastCallEntry', 'nt!KiSystemService'],
    "NtReadFile's path: SystemCallStub → SYSENTER → the hook → KiFastCallEntry",
  );
  t.match(ssdtLookups(read.events), [{ serviceNumber: 0xb7, tableBase: KI_SERVICE_TABLE, target: NT_READ_FILE }], 'the SSDT is untouched');
  t.match(read.call.enter, { previousMode: 'UserMode' }, 'NtReadFile sees UserMode');
  t.match(read.call.exit, { status: STATUS_SUCCESS }, 'and succeeds');
  t.equal(labelDword(r, 'msr-hook', 'hookedReads'), 1, 'hookedReads = 1: the hook counted the one NtReadFile');
  t.equal(ascii(labelBytes(r, 'user-nt-readfile', 'buffer', README.length)), README, 'the file’s bytes are in the buffer');
  t.equal(r.guest.machine.cpu.sysenterEip >>> 0, hook, 'MSR 176h still holds the hook at the end');
});

// ---- idt-hook -------------------------------------------------------------------------------------

t.test('idt-hook: SIDT, gate 2Eh rewritten → idt-hook!KiSystemServiceHook; INT 2Eh lands there, then in nt!KiSystemService', async (t) => {
  const r = run('idt-hook');
  exitedWith(t, r, STATUS_SUCCESS);
  basics(t, r);
  const hook = addr(r, 'idt-hook', 'KiSystemServiceHook');
  const hookEnd = addr(r, 'idt-hook', 'idtr');
  const gate = IDT + 0x2e * 8;

  // The install: SIDT in DriverEntry, then the two offset words of gate 2Eh.
  const sidt = r.instructions.filter((e) => e.bytes[0] === 0x0f && e.bytes[1] === 0x01 && ((e.bytes[2] >> 3) & 7) === 1);
  t.same(sidt.map((e) => symbolOf(r.guest, e.eip)), ['idt-hook!DriverEntry'], 'DriverEntry executes SIDT');
  t.same(sidt[0].writes.slice(0, 6).map((x) => x >>> 0), [addr(r, 'idt-hook', 'idtr'), 2, 0x7ff, addr(r, 'idt-hook', 'idtr') + 2, 4, IDT], 'SIDT stores the IDTR: limit 7FFh, base 8003F400h');
  const gateWrites = writesTo(r, (a) => a >= gate && a < gate + 8);
  t.same(
    gateWrites.map((w) => [hex(w.address), w.size, hex(w.value), symbolOf(r.guest, w.e.eip), w.e.thread]),
    [
      [hex(gate), 2, hex(hook & 0xffff), 'idt-hook!DriverEntry', SYSTEM_THREAD],
      [hex(gate + 6), 2, hex(hook >>> 16), 'idt-hook!DriverEntry', SYSTEM_THREAD],
    ],
    "the gate's offset words — low at +0, high at +6 — become the hook's, and nothing else of it changes",
  );
  const install = gateWrites[1].e;
  t.equal(labelDword(r, 'idt-hook', 'originalKiSystemService'), KI_SYSTEM_SERVICE, 'the driver kept nt!KiSystemService');
  t.same(
    r.guest.machine.cpu.mmu.peekBytes(gate, 8),
    [hook & 0xff, (hook >>> 8) & 0xff, 0x08, 0x00, 0x00, 0xee, (hook >>> 16) & 0xff, hook >>> 24],
    'gate 2Eh: offset = the hook, selector 8, a DPL-3 32-bit interrupt gate (EEh)',
  );

  // Every INT 2Eh from ring 3 after it enters the driver.
  const ints = ringTransitions(r.events).filter((e) => e.mechanism === 'int' && e.vector === 0x2e);
  t.ok(ints.length >= 4, `the program's calls entered the kernel by INT 2Eh (${ints.length})`);
  t.ok(
    ints.every((e) => e.seq > install.seq && e.fromCpl === 3 && e.toCpl === 0),
    'all of them after the install, from ring 3',
  );
  t.same([...new Set(ints.map((e) => e.toEip >>> 0))], [hook], "the int 2Eh transitions' to_eip is the driver's handler");
  for (const s of ints) {
    if (landedAt(r, s.seq) !== hook) t.fail(`the instruction after the INT 2Eh at seq ${s.seq} is not the hook's`);
  }
  const ran = ranInside(r, hook, hookEnd, install.seq);
  t.ok(ran.length >= ints.length * 4, `the hook's instructions retired after the install (${ran.length})`);
  t.equal(ran.filter((e) => e.nextEip >>> 0 === KI_SYSTEM_SERVICE).length, ints.length, 'each pass jumps to nt!KiSystemService');

  const read = readCall(r, 'user-nt-readfile');
  t.same(
    symbolPath(r, read.from, read.to).slice(0, 5),
    ['user-nt-readfile!start', 'ntdll!NtReadFile', 'SharedUserData!KiIntSystemCall', 'idt-hook!KiSystemServiceHook', 'nt!KiSystemService'],
    "NtReadFile's path: KiIntSystemCall → INT 2Eh → the hook → KiSystemService",
  );
  t.match(ssdtLookups(read.events), [{ serviceNumber: 0xb7, tableBase: KI_SERVICE_TABLE, target: NT_READ_FILE }], 'the SSDT is untouched');
  t.match(read.call.enter, { previousMode: 'UserMode' }, 'NtReadFile sees UserMode');
  t.match(read.call.exit, { status: STATUS_SUCCESS }, 'and succeeds');
  t.equal(labelDword(r, 'idt-hook', 'hookedReads'), 1, 'hookedReads = 1');
  t.equal(ascii(labelBytes(r, 'user-nt-readfile', 'buffer', README.length)), README, 'the file’s bytes are in the buffer');
});

// ---- ntdll-stub-hook --------------------------------------------------------------------------------

t.test('ntdll-stub-hook: ntdll!NtReadFile+5 becomes mov edx,NtReadFileDetour; the detour runs, then SystemCallStub', async (t) => {
  const r = run('ntdll-stub-hook');
  const M = 'ntdll-stub-hook';
  exitedWith(t, r, STATUS_SUCCESS);
  basics(t, r);
  const detour = addr(r, M, 'NtReadFileDetour');
  const detourEnd = addr(r, M, 'originalSystemCallStub');

  // The install: NtProtectVirtualMemory makes the page writable, one store patches the immediate,
  // NtProtectVirtualMemory puts the protection back.
  const protects = callsOf(r.events, 'NtProtectVirtualMemory');
  t.same(
    protects.map((c) => [c.enter.previousMode, hex(c.enter.args[0]), hex(c.enter.args[3]), c.exit?.status]),
    [
      ['UserMode', '0xffffffff', hex(PAGE_EXECUTE_READWRITE), STATUS_SUCCESS],
      ['UserMode', '0xffffffff', hex(PAGE_EXECUTE_READ), STATUS_SUCCESS],
    ],
    'NtProtectVirtualMemory(NtCurrentProcess(), PAGE_EXECUTE_READWRITE), then back to PAGE_EXECUTE_READ',
  );
  t.equal(labelDword(r, M, 'oldProtect'), PAGE_EXECUTE_READ, "ntdll's page was PAGE_EXECUTE_READ");
  t.equal(labelDword(r, M, 'protectBase'), NTDLL_NT_READ_FILE & ~0xfff, 'the whole page of the stub');
  const patch = writesTo(r, (a) => a >= NTDLL_NT_READ_FILE && a < NTDLL_NT_READ_FILE + 16);
  t.same(
    patch.map((w) => [hex(w.address), w.size, hex(w.value), symbolOf(r.guest, w.e.eip), w.e.cpl, w.e.thread]),
    [[hex(NTDLL_NT_READ_FILE + 6), 4, hex(detour), `${M}!start`, 3, PROGRAM_THREAD]],
    "one store, by the program at CPL 3: the immediate of ntdll!NtReadFile's mov edx",
  );
  const install = patch[0].e;
  t.ok(protects[0].exit!.seq < install.seq && install.seq < protects[1].enter.seq, 'between the two NtProtectVirtualMemory calls');
  t.equal(labelDword(r, M, 'originalSystemCallStub'), SYSTEM_CALL_STUB, 'the program kept SharedUserData!SystemCallStub');

  // The stub's second instruction, as it retired after the patch: mov edx,<detour>.
  const stubMovs = r.instructions.filter((e) => e.eip >>> 0 === NTDLL_NT_READ_FILE + 5 && e.seq > install.seq);
  t.equal(stubMovs.length, 1, 'ntdll!NtReadFile+5 ran once after the patch');
  const text = disassemble(stubMovs[0].bytes, NTDLL_NT_READ_FILE + 5)[0].text;
  t.equal(text, `mov edx,${detour.toString(16).toUpperCase()}h`, `ntdll!NtReadFile+5 now reads ${text}`);
  t.same([...stubMovs[0].bytes], [0xba, detour & 0xff, (detour >>> 8) & 0xff, (detour >>> 16) & 0xff, detour >>> 24], 'its bytes: BA and the detour’s address');
  t.same(
    r.guest.machine.cpu.mmu.peekBytes(NTDLL_NT_READ_FILE, 5),
    [0xb8, 0xb7, 0, 0, 0],
    'mov eax,0B7h is untouched',
  );

  // NtReadFile goes through the detour, then SystemCallStub and the usual path, and succeeds.
  const read = readCall(r, M);
  t.same(
    symbolPath(r, read.from, read.to).slice(0, 6),
    [`${M}!start`, 'ntdll!NtReadFile', `${M}!NtReadFileDetour`, 'SharedUserData!SystemCallStub', 'nt!KiFastCallEntry', 'nt!KiSystemService'],
    "NtReadFile's path: the stub → the detour (ring 3) → SystemCallStub → SYSENTER",
  );
  const ran = ranInside(r, detour, detourEnd, install.seq);
  t.ok(ran.length >= 5, `the detour's instructions retired after the patch (${ran.length})`);
  t.ok(
    ran.every((e) => e.cpl === 3),
    'in ring 3',
  );
  t.equal(ran.filter((e) => e.nextEip >>> 0 === SYSTEM_CALL_STUB).length, 1, 'and jumped to SharedUserData!SystemCallStub');
  t.match(ssdtLookups(read.events), [{ serviceNumber: 0xb7, tableBase: KI_SERVICE_TABLE, target: NT_READ_FILE }], 'the kernel sees an ordinary call');
  t.match(read.call.exit, { status: STATUS_SUCCESS }, 'NtReadFile succeeds');
  t.equal(labelDword(r, M, 'detourCalls'), 1, 'detourCalls = 1');
  t.equal(labelDword(r, M, 'lastFileHandle'), read.call.enter.args[0], 'the detour saw the FileHandle argument');
  t.equal(ascii(labelBytes(r, M, 'buffer', README.length)), README, 'the file’s bytes are in the buffer');
  // Only NtReadFile's stub was hooked: the program's other calls went straight to SystemCallStub.
  t.equal(ranInside(r, detour, detourEnd).filter((e) => e.eip >>> 0 === detour).length, 1, 'the detour ran for NtReadFile only');
});

// ---- shadow-ssdt-hook -------------------------------------------------------------------------------

t.test('shadow-ssdt-hook: W32pServiceTable[0] → shadow-ssdt-hook!HookNtGdiAbortDoc → win32k!NtGdiAbortDoc', async (t) => {
  const r = run('shadow-ssdt-hook');
  const D = 'shadow-ssdt-hook';
  exitedWith(t, r, STATUS_NOT_IMPLEMENTED);
  basics(t, r);
  const hook = addr(r, D, 'HookNtGdiAbortDoc');
  const hookEnd = addr(r, D, 'shadowTable');
  const shadow = r.guest.symbols.resolve('nt', 'KeServiceDescriptorTableShadow')!;
  const abortDoc = r.guest.symbols.resolve('win32k', 'NtGdiAbortDoc')!;

  // The search found the unexported shadow table; the hook went into win32k's table with WP off.
  t.equal(labelDword(r, D, 'shadowTable'), shadow, 'the driver found nt!KeServiceDescriptorTableShadow');
  t.equal(peek32(r, shadow + 0x10), W32P_SERVICE_TABLE, "its descriptor 1 is win32k's W32pServiceTable");
  const patch = writesTo(r, (a) => a >= W32P_SERVICE_TABLE && a < W32P_SERVICE_TABLE + 667 * 4);
  t.same(
    patch.map((w) => [hex(w.address), w.size, hex(w.value), symbolOf(r.guest, w.e.eip), w.e.thread]),
    [[hex(W32P_SERVICE_TABLE), 4, hex(hook), `${D}!DriverEntry`, SYSTEM_THREAD]],
    'one store: W32pServiceTable[0] = HookNtGdiAbortDoc, from DriverEntry',
  );
  const install = patch[0].e;
  const cr0 = r.instructions.filter((e) => e.seq < install.seq && e.bytes[0] === 0x0f && e.bytes[1] === 0x22 && symbolOf(r.guest, e.eip) === `${D}!DriverEntry`);
  t.ok(cr0.length > 0 && cr0[cr0.length - 1].regs.some((v, i) => i % 2 === 0 && v === 15 /* RegId.CR0 */ && (cr0[cr0.length - 1].regs[i + 1] & CR0_WP) === 0), 'CR0.WP was cleared just before the store');
  t.equal(labelDword(r, D, 'originalNtGdiAbortDoc'), abortDoc, 'the driver kept win32k!NtGdiAbortDoc');
  t.ok(
    writesTo(r, (a) => a >= KI_SERVICE_TABLE && a < KI_SERVICE_TABLE + KI_SERVICE_LIMIT * 4).length === 0,
    'KiServiceTable is not written',
  );

  // The program's call: rejected by table 0's empty descriptor 1, converted to GUI, dispatched
  // through the shadow's descriptor 1 to the hook.
  const lookups = ssdtLookups(r.events).filter((l) => l.serviceNumber === 0x1000);
  t.match(
    lookups,
    [
      { tableIndex: 1, inRange: false, target: null },
      { tableIndex: 1, serviceIndex: 0, tableBase: W32P_SERVICE_TABLE, target: hook, targetSymbol: `${D}!HookNtGdiAbortDoc`, argBytes: 4, inRange: true },
    ],
    'the lookup for table 1 targets the driver (after the GUI conversion)',
  );
  const lookup = lookups[1];
  t.same(
    symbolPath(r, lookup.seq).slice(0, 4),
    ['nt!KiSystemService', `${D}!HookNtGdiAbortDoc`, 'win32k!NtGdiAbortDoc', 'nt!KiSystemService'],
    'KiSystemService → the hook → win32k!NtGdiAbortDoc → back',
  );
  const ran = ranInside(r, hook, hookEnd, install.seq);
  t.same(ran.map((e) => [e.cpl, e.thread, e.seq > lookup.seq]), [[0, PROGRAM_THREAD, true], [0, PROGRAM_THREAD, true]], "the hook's two instructions ran once, in the program's thread");
  t.equal(ran[1].nextEip >>> 0, abortDoc, 'its jmp went to win32k!NtGdiAbortDoc');
  t.equal(labelDword(r, D, 'hookCalls'), 1, 'hookCalls = 1');
  const kt = r.guest.kernel.threads.find((th) => th.id === PROGRAM_THREAD)!.kthread;
  t.equal(peek32(r, kt + KTHREAD_SERVICE_TABLE), shadow, "the program's thread now uses the shadow table");
});

// ---- thread-table-hook ------------------------------------------------------------------------------

t.test("thread-table-hook: the program's KTHREAD.ServiceTable → a copied table with 0xB7 hooked; the global SSDT is untouched", async (t) => {
  const r = run('thread-table-hook');
  const D = 'thread-table-hook';
  const P = 'thread-table-client';
  exitedWith(t, r, STATUS_SUCCESS);
  basics(t, r);
  const hook = addr(r, D, 'HookNtReadFile');
  const hookEnd = addr(r, D, 'deviceObject');
  const ksdt = r.guest.symbols.resolve('nt', 'KeServiceDescriptorTable')!;
  const descriptors = labelDword(r, D, 'threadDescriptors');
  const copy = labelDword(r, D, 'threadServiceTable');
  const kt = r.guest.kernel.threads.find((th) => th.id === PROGRAM_THREAD)!.kthread;

  // The swap: one store into the program thread's KTHREAD.ServiceTable, from the IOCTL's dispatch
  // routine running in that thread.
  const swap = writesTo(r, (a) => a === kt + KTHREAD_SERVICE_TABLE);
  t.same(
    swap.map((w) => [w.size, hex(w.value), symbolOf(r.guest, w.e.eip), w.e.thread, w.e.cpl]),
    [[4, hex(descriptors), `${D}!HookCurrentThread`, PROGRAM_THREAD, 0]],
    "one store sets the program thread's ServiceTable to the driver's descriptors, in that thread",
  );
  const install = swap[0].e;
  const irps = ofType(r.events, 'irp').filter((e) => e.majorFunctionName === 'IRP_MJ_DEVICE_CONTROL' && e.phase === 'dispatch');
  t.same(irps.map((e) => [e.thread, e.requestorMode, e.seq < install.seq]), [[PROGRAM_THREAD, 'UserMode', true]], "the program's IOCTL reached the driver in the program's thread, before the swap");
  t.equal(peek32(r, kt + KTHREAD_SERVICE_TABLE), descriptors, 'it still points there at the end');
  t.ok(copy >= 0x81000000 && copy < 0x81400000, `the copy is in non-paged pool (${hex(copy)})`);
  t.equal(peek32(r, descriptors), copy, "the copied descriptor 0's Base is the copied table");
  t.same([peek32(r, descriptors + 4), peek32(r, descriptors + 8), peek32(r, descriptors + 12)], [peek32(r, ksdt + 4), KI_SERVICE_LIMIT, peek32(r, ksdt + 12)], 'its Count, Limit and argument table are KeServiceDescriptorTable’s');
  const differing: string[] = [];
  for (let i = 0; i < KI_SERVICE_LIMIT; i++) if (peek32(r, copy + i * 4) !== peek32(r, KI_SERVICE_TABLE + i * 4)) differing.push(`${hex(i)} → ${hex(peek32(r, copy + i * 4))}`);
  t.same(differing, [`0xb7 → ${hex(hook)}`], 'the copy is KiServiceTable but for entry 0xB7 = HookNtReadFile');

  // The globals are untouched.
  t.equal(peek32(r, KI_SERVICE_TABLE + 0xb7 * 4), NT_READ_FILE, 'KiServiceTable[0xB7] is still nt!NtReadFile');
  t.equal(peek32(r, ksdt), KI_SERVICE_TABLE, "KeServiceDescriptorTable's Base is still KiServiceTable");
  t.same(writesTo(r, (a) => (a >= KI_SERVICE_TABLE && a < KI_SERVICE_TABLE + KI_SERVICE_LIMIT * 4) || (a >= ksdt && a < ksdt + 0x80)), [], 'nothing wrote KiServiceTable or the descriptor tables');
  const system = r.guest.kernel.threads.find((th) => th.id === SYSTEM_THREAD)!.kthread;
  t.equal(peek32(r, system + KTHREAD_SERVICE_TABLE), ksdt, 'the System thread still uses KeServiceDescriptorTable');

  // Before the swap the program dispatched through KiServiceTable, after it through the copy.
  const lookups = ssdtLookups(r.events);
  const before = lookups.filter((l) => l.seq < install.seq);
  const after = lookups.filter((l) => l.seq > install.seq);
  t.same([...new Set(before.map((l) => hex(l.tableBase)))], [hex(KI_SERVICE_TABLE)], 'before: KiServiceTable (NtCreateFile, NtDeviceIoControlFile)');
  t.same([...new Set(after.map((l) => hex(l.tableBase)))], [hex(copy)], 'after: the copy, for every call');
  const read = readCall(r, P);
  t.match(
    ssdtLookups(read.events),
    [{ serviceNumber: 0xb7, tableIndex: 0, tableBase: copy, target: hook, targetSymbol: `${D}!HookNtReadFile`, argBytes: 0x24, inRange: true }],
    "NtReadFile's lookup: tableBase is not KiServiceTable, and its target is the driver's hook",
  );
  t.not(copy, KI_SERVICE_TABLE, 'the thread’s table 0 is a copy, not KiServiceTable');
  t.same(
    symbolPath(r, read.from, read.to).slice(3, 8),
    ['nt!KiFastCallEntry', 'nt!KiSystemService', `${D}!HookNtReadFile`, 'nt!NtReadFile', 'nt!_SEH_prolog'],
    'the path: the dispatcher → the hook → nt!NtReadFile',
  );
  const ran = ranInside(r, hook, hookEnd, install.seq);
  t.same(ran.map((e) => [e.cpl, e.thread]), [[0, PROGRAM_THREAD], [0, PROGRAM_THREAD]], "the hook's two instructions ran once, in the program's thread");
  t.equal(ran[1].nextEip >>> 0, NT_READ_FILE, 'its jmp went to nt!NtReadFile');
  t.match(read.call.enter, { previousMode: 'UserMode' }, 'NtReadFile sees UserMode');
  t.match(read.call.exit, { status: STATUS_SUCCESS }, 'and succeeds');
  t.equal(labelDword(r, D, 'hookCalls'), 1, 'hookCalls = 1');
  t.equal(labelDword(r, D, 'originalNtReadFile'), NT_READ_FILE, 'the driver kept nt!NtReadFile');
  t.equal(ascii(labelBytes(r, P, 'buffer', README.length)), README, 'the file’s bytes are in the buffer');
});

// ---- the same, deterministic --------------------------------------------------------------------------

t.test('each hook scenario gives the same event stream twice', async (t) => {
  const key = (ev: readonly TraceEvent[]) => ev.map((e) => `${e.seq}:${e.type}:${e.eip}`).join(',');
  for (const name of ['msr-hook', 'idt-hook', 'ntdll-stub-hook', 'shadow-ssdt-hook', 'thread-table-hook']) {
    t.equal(key(runScenario(name).events), key(run(name).events), name);
  }
});
