// Random ring-3 programs for the user/kernel boundary (issue L), the checks every run of one must
// pass, and a shrinker that turns a failing program into a minimal one.
//
// A program is ntflow assembly (`; ntflow: user`, Intel syntax), generated from a seed by a
// deterministic PRNG: the same (seed, index) always gives the same program, on any machine. It is
// biased toward what matters at the boundary: system calls by every route (ntdll stubs with edge
// arguments, SharedUserData!SystemCallStub by hand, bare SYSENTER and INT 2Eh with chosen
// EAX/EDX/EBP/ESP, INT 2Ah–2Dh), service numbers in and out of every table, argument pointers into
// every region of the address space, privileged and odd instructions, crafted IRETD/RETF/far-jump
// frames, POPFD with TF/IOPL/NT, self-modifying code, jumps into the kernel and into the middle of
// ntdll stubs, random instruction mixes and a few raw byte strings.
//
// The checks every run must pass are test/util/invariants.ts's (runChecked below runs them on
// the bare guest; test/util/fuzz-recorded.ts on the recorded one).
import { assemble, Guest, layout as L, NT_SERVICES, type CpuModel, type GuestOutcome, type ProgramSource } from '../../core/index.js';
import { INSTRUCTION_LIMIT, InvariantChecker, KERNEL_BASE, type Checked, type RunHooks } from './invariants.js';

export { INSTRUCTION_LIMIT, KERNEL_BASE, describeChecked, exceptionClass, outcomeClass, type Checked, type RunHooks, type Sample } from './invariants.js';


// ================================================================================================
// PRNG: sfc32 seeded through splitmix32 (small, fast, and the same on every platform)
// ================================================================================================

function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = splitmix32(seed);
    this.b = splitmix32(this.a ^ 0x1234567);
    this.c = splitmix32(this.b ^ 0x7654321);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.u32();
  }
  /** A uniform unsigned 32-bit integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** 0 … n-1. */
  int(n: number): number {
    return Math.floor((this.u32() / 0x100000000) * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  /** Pick by weight: [[weight, value], …]. */
  weighted<T>(xs: readonly (readonly [number, T])[]): T {
    const total = xs.reduce((s, [w]) => s + w, 0);
    let r = this.u32() / 0x100000000 * total;
    for (const [w, v] of xs) {
      if ((r -= w) < 0) return v;
    }
    return xs[xs.length - 1][1];
  }
}

/** The seed of program `index` of a run seeded with `seed`. */
export function programSeed(seed: number, index: number): number {
  return splitmix32((seed >>> 0) ^ Math.imul(index + 1, 0x27d4eb2d)) >>> 0;
}

/** A seed from an environment variable or option (decimal or 0x hex); `fallback` when absent. */
export function parseSeed(text: string | undefined, fallback: number): number {
  if (text === undefined || text.trim() === '') return fallback >>> 0;
  const n = Number(text.trim());
  if (!Number.isFinite(n)) throw new RangeError(`not a seed: '${text}'`);
  return n >>> 0;
}

// ================================================================================================
// Values: pointers into every region, integers at the edges, service numbers of every kind
// ================================================================================================

const hex = (n: number): string => '0x' + (n >>> 0).toString(16).toUpperCase();

const SUD = L.SHARED_USER_DATA;
/** Addresses that matter at the boundary, by region. */
export const POINTER_REGIONS: readonly (readonly [string, readonly number[]])[] = [
  ['null', [0, 4, 8]],
  ['small', [0x10, 0xffc, 0x1000, 0xfffc]],
  ['user stack', [L.USER_STACK_TOP - L.USER_STACK_SIZE, L.USER_STACK_TOP - 0x100, L.USER_STACK_TOP - 0x10]],
  ['top of user stack', [L.USER_STACK_TOP - 8, L.USER_STACK_TOP - 4, L.USER_STACK_TOP]],
  ['below user stack', [L.USER_STACK_TOP - L.USER_STACK_SIZE - 4]],
  ['program image', [L.PROGRAM_BASE, L.PROGRAM_CODE]],
  ['unmapped user', [0x00100000, 0x00500000, 0x10000000, 0x7ffd0000]],
  ['ntdll', [L.NTDLL_BASE, L.NTDLL_NTREADFILE]],
  ['TEB/PEB', [L.TEB, L.PEB]],
  ['SharedUserData', [SUD, SUD + 0x300, SUD + 0xffc]],
  ['under MmUserProbeAddress', [0x7ffefffc, 0x7ffefff8, 0x7ffeffff]],
  ['MmUserProbeAddress', [L.MM_USER_PROBE_ADDRESS, L.MM_USER_PROBE_ADDRESS + 4, 0x7ffffffc, 0x7fffffff]],
  ['kernel', [KERNEL_BASE, L.NTOSKRNL_BASE, L.KI_FAST_CALL_ENTRY, L.GDT, L.IDT, L.POOL_BASE]],
  ['kernel stacks', [L.KERNEL_STACKS, L.DPC_STACK_TOP - 4]],
  ['KPCR', [L.KPCR, L.KPCR + 0x124, L.SHARED_USER_DATA_KERNEL]],
  ['top', [0xfffffff0, 0xfffffffc, 0xffffffff]],
];

/** An address from a random region, sometimes misaligned or nudged. */
export function randomPointer(r: Rng): number {
  let p = r.pick(r.pick(POINTER_REGIONS)[1]);
  if (r.chance(0.15)) p += r.range(1, 3);
  else if (r.chance(0.1)) p -= r.pick([4, 8, 0x10, 0x1000]);
  return p >>> 0;
}

/** An integer at an edge. */
export function randomInt(r: Rng): number {
  return r.weighted<() => number>([
    [3, () => 0],
    [2, () => 1],
    [2, () => 0xffffffff],
    [1, () => 0xfffffffe],
    [1, () => 0x7fffffff],
    [1, () => 0x80000000],
    [2, () => r.range(2, 0x100)],
    [1, () => r.pick([0x1000, 0x10000, 0x100000, 0x7fff0000])],
    [2, () => r.u32()],
    [2, () => randomPointer(r)],
  ])() >>> 0;
}

/** A handle: valid-looking, pseudo, kernel (bit 31), or garbage. */
function randomHandle(r: Rng): string {
  return r.weighted<() => string>([
    [4, () => 'dword [handle]'],
    [1, () => '-1'],
    [1, () => '-2'],
    [1, () => hex(r.pick([0, 4, 8, 0xc, 0x7ffffffc]))],
    [1, () => hex(r.pick([0x80000004, 0x80000008, 0xfffffffc]))],
    [1, () => hex(r.u32())],
  ])();
}

/** A service number: valid, past the limit, win32k, the unused tables, bits 14–15 set, garbage. */
export function randomServiceNumber(r: Rng): number {
  const limit = NT_SERVICES.length; // 0x11C
  return r.weighted<() => number>([
    [6, () => r.pick(IMPLEMENTED).number],
    [4, () => r.int(limit)],
    [2, () => limit + r.pick([0, 1, 0x100])],
    [1, () => 0xfff],
    [2, () => 0x1000 + r.pick([0, 1, r.int(667), 666, 667, 0xfff])],
    [1, () => r.pick([0x2000, 0x3000, 0x20b7, 0x30b7])],
    [1, () => r.pick([0x4000, 0x8000, 0xc000]) | r.pick([0, 0xb7, 0x19, 0x1000])],
    [1, () => r.pick([0xffffffff, 0x80000000, 0x10000, 0x100b7])],
    [1, () => r.u32()],
  ])() >>> 0;
}

// ================================================================================================
// The services that have bodies, with argument templates (a kind per argument)
// ================================================================================================

type ArgKind =
  | 'handle'
  | 'outHandle'
  | 'access'
  | 'oa'
  | 'iosb'
  | 'buffer'
  | 'length'
  | 'offset'
  | 'zero'
  | 'int'
  | 'ptr'
  | 'base'
  | 'size'
  | 'protect'
  | 'allocType'
  | 'routine'
  | 'context'
  | 'thread'
  | 'process';

interface Template {
  name: string;
  number: number;
  args: ArgKind[];
  /** Relative weight among the implemented services. */
  weight: number;
}

function service(name: string): { number: number; argBytes: number } {
  const s = NT_SERVICES.find((x) => x.name === name);
  if (!s) throw new Error(`no service ${name}`);
  return s;
}

const T = (name: string, weight: number, args: ArgKind[]): Template => {
  const s = service(name);
  if (s.argBytes !== args.length * 4) throw new Error(`${name}: ${args.length} arguments, table says ${s.argBytes} bytes`);
  return { name, number: s.number, args, weight };
};

export const IMPLEMENTED: readonly Template[] = [
  T('NtCreateFile', 5, ['outHandle', 'access', 'oa', 'iosb', 'ptr', 'int', 'int', 'int', 'int', 'ptr', 'int']),
  T('NtOpenFile', 3, ['outHandle', 'access', 'oa', 'iosb', 'int', 'int']),
  T('NtReadFile', 6, ['handle', 'handle', 'routine', 'ptr', 'iosb', 'buffer', 'length', 'offset', 'ptr']),
  T('NtWriteFile', 5, ['handle', 'handle', 'routine', 'ptr', 'iosb', 'buffer', 'length', 'offset', 'ptr']),
  T('NtClose', 4, ['handle']),
  T('NtDeviceIoControlFile', 3, ['handle', 'handle', 'routine', 'ptr', 'iosb', 'int', 'buffer', 'length', 'buffer', 'length']),
  T('NtAllocateVirtualMemory', 4, ['process', 'base', 'int', 'size', 'allocType', 'protect']),
  T('NtProtectVirtualMemory', 4, ['process', 'base', 'size', 'protect', 'ptr']),
  T('NtQueueApcThread', 3, ['thread', 'routine', 'int', 'int', 'int']),
  T('NtTestAlert', 3, []),
  T('NtDelayExecution', 2, ['int', 'ptr']),
  T('NtContinue', 3, ['context', 'int']),
  T('NtTerminateThread', 0.3, ['thread', 'int']),
  T('NtTerminateProcess', 0.3, ['process', 'int']),
];

/** A sensible argument of a kind (the label or value a correct caller would pass). */
function saneArg(kind: ArgKind, r: Rng): string {
  switch (kind) {
    case 'handle': return 'dword [handle]';
    case 'outHandle': return 'handle';
    case 'access': return hex(r.pick([0x80100000, 0x40100000, 0xc0100000, 0x120089, 0x1f01ff]));
    case 'oa': return r.pick(['oa', 'oa_device']);
    case 'iosb': return 'iosb';
    case 'buffer': return 'buffer';
    case 'length': return hex(r.pick([0, 1, 16, 64]));
    case 'offset': return r.pick(['0', 'byte_offset']);
    case 'zero': return '0';
    case 'int': return hex(r.pick([0, 1, 0x20, 0x40]));
    case 'ptr': return r.pick(['0', 'scratch']);
    case 'base': return 'vm_base';
    case 'size': return 'vm_size';
    case 'protect': return hex(r.pick([0x02, 0x04, 0x20, 0x40]));
    case 'allocType': return hex(r.pick([0x1000, 0x2000, 0x3000]));
    case 'routine': return r.pick(['0', 'apc_routine']);
    case 'context': return 'ctx';
    case 'thread': return '-2';
    case 'process': return '-1';
  }
}

/** An argument of a kind: sensible half the time, else an edge value for that kind. */
function randomArg(kind: ArgKind, r: Rng): string {
  if (r.chance(0.5)) return saneArg(kind, r);
  switch (kind) {
    case 'handle':
    case 'thread':
    case 'process':
      return randomHandle(r);
    case 'length':
      return hex(r.pick([0xffffffff, 0x80000000, 0x1000, 0x10001, 3, r.u32()]));
    case 'protect':
      return hex(r.pick([0, 1, 0x08, 0x80, 0x104, 0x201, 0x301, 0xffffffff]));
    case 'allocType':
      return hex(r.pick([0, 0x80000, 0x100000 | 0x3000, 0xffffffff, 0x1000 | 0x400000]));
    case 'routine':
      return r.chance(0.5) ? 'evil' : hex(randomPointer(r));
    default:
      return hex(randomInt(r));
  }
}

// ================================================================================================
// Programs
// ================================================================================================

export interface RandProgram {
  /** The run's seed and this program's index in it: `generateProgram(seed, index)` rebuilds it. */
  seed: number;
  index: number;
  cpu: CpuModel;
  /** The source, one line per element (the shrinker drops lines). */
  lines: string[];
}

export const sourceOf = (lines: readonly string[]): string => lines.join('\n') + '\n';

export const HEADER = [
  '; ntflow: user',
  '; ntflow-file: \\??\\C:\\readme.txt = "ntflow fuzz file\\r\\n"',
  'start:',
  '    mov [saved_esp], esp',
];

/** The end of every program, the routines blocks aim at, and the data they use. */
export const FOOTER = [
  'finish:',
  '    mov esp, [saved_esp]',
  '    push 0',
  '    push -1',
  '    call ntdll!NtTerminateProcess',
  '; the escape target: what must never run at CPL 0',
  'evil:',
  '    mov eax, cr0',
  '    rdmsr',
  '    mov cr4, eax',
  '    hlt',
  'apc_routine:',
  '    ret 12',
  'align 16',
  'saved_esp: dd 0',
  'handle: dd 0',
  'iosb: dd 0, 0',
  'byte_offset: dd 0, 0',
  'vm_base: dd 0',
  'vm_size: dd 0x1000',
  'far_ptr: dd evil',
  '    dw 0x08',
  'desc_ptr: dw 0x3FF',
  '    dd 0x8003F400',
  'results: times 16 dd 0',
  'oa: dd 24, 0, fname, 0x40, 0, 0',
  'fname: dw 34, 34',
  '    dd fname_text',
  "fname_text: dw '\\', '?', '?', '\\', 'C', ':', '\\', 'r', 'e', 'a', 'd', 'm', 'e', '.', 't', 'x', 't'",
  'oa_device: dd 24, 0, dname, 0x40, 0, 0',
  'dname: dw 28, 28',
  '    dd dname_text',
  "dname_text: dw '\\', 'D', 'e', 'v', 'i', 'c', 'e', '\\', 'N', 'u', 'l', 'l', 'x', 'x'",
  'align 16',
  'fake_stack: times 32 dd 0',
  'buffer: times 64 db 0',
  'scratch: times 64 db 0',
  'ctx: times 0x2CC db 0',
];

// CONTEXT offsets (x86): what NtContinue reads.
const CTX = { ContextFlags: 0x00, SegGs: 0x8c, SegFs: 0x90, SegEs: 0x94, SegDs: 0x98, Edi: 0x9c, Esi: 0xa0, Ebx: 0xa4, Edx: 0xa8, Ecx: 0xac, Eax: 0xb0, Ebp: 0xb4, Eip: 0xb8, SegCs: 0xbc, EFlags: 0xc0, Esp: 0xc4, SegSs: 0xc8 };

interface Ctx {
  r: Rng;
  id: number;
}

const REGS = ['eax', 'ebx', 'ecx', 'edx', 'esi', 'edi', 'ebp'] as const;
const REGS8 = ['al', 'bl', 'cl', 'dl', 'ah', 'bh', 'ch', 'dh'] as const;

/** EBP before a raw system call: the escape's `evil`, null, kernel, stack, garbage. */
function randomEbp(r: Rng): string {
  return r.weighted<() => string>([
    [3, () => 'evil'],
    [1, () => '0'],
    [2, () => hex(r.pick([KERNEL_BASE, L.NT_NTREADFILE, L.KI_FAST_CALL_ENTRY, L.KPCR]))],
    [1, () => hex(L.USER_STACK_TOP - 0x20)],
    [2, () => hex(randomPointer(r))],
  ])();
}

/** EDX (the argument pointer) before a raw system call. */
function randomEdx(r: Rng): string {
  return r.weighted<() => string>([
    [2, () => 'fake_stack'],
    [1, () => 'esp'],
    [5, () => hex(randomPointer(r))],
  ])();
}

/** ESP for a system call made with odd stack: near the top, at probe edges, in the kernel, null. */
function randomEsp(r: Rng): number {
  return r.pick([
    L.USER_STACK_TOP - 8, L.USER_STACK_TOP - 4, L.USER_STACK_TOP, L.USER_STACK_TOP - L.USER_STACK_SIZE,
    0, 8, 0x7ffefffc, 0x7fff0000, SUD + 0x10, KERNEL_BASE, L.KPCR + 0x100, 0xfffffffc, randomPointer(r),
  ]) >>> 0;
}

/** Push the arguments of a template, last first. */
function pushArgs(t: Template, r: Rng, out: string[]): void {
  for (let i = t.args.length - 1; i >= 0; i--) out.push(`    push ${randomArg(t.args[i], r)}`);
}

function pickTemplate(r: Rng): Template {
  return r.weighted(IMPLEMENTED.map((t) => [t.weight, t] as const));
}

// ---- blocks: each a few lines that assemble on their own (labels are unique per block) ----------

/** call ntdll!NtXxx with random or edge arguments. */
function blockNtCall({ r, id }: Ctx): string[] {
  const out: string[] = [];
  if (r.chance(0.75)) {
    const t = pickTemplate(r);
    if (t.args.includes('base') && r.chance(0.5)) out.push(`    mov dword [vm_base], ${hex(r.chance(0.5) ? randomPointer(r) : 0)}`);
    if (t.args.includes('size') && r.chance(0.4)) out.push(`    mov dword [vm_size], ${hex(randomInt(r))}`);
    if (t.args.includes('context')) out.push(...contextSetup(r));
    pushArgs(t, r, out);
    out.push(`    call ntdll!${r.chance(0.5) ? t.name : 'Zw' + t.name.slice(2)}`);
  } else {
    // any service of the table, its ntdll stub, arguments from anywhere
    const s = r.pick(NT_SERVICES);
    for (let i = 0; i < s.argBytes / 4; i++) out.push(`    push ${hex(randomInt(r))}`);
    out.push(`    call ntdll!${s.name}`);
  }
  out.push(`    mov [results+${(id % 16) * 4}], eax`);
  return out;
}

/** A CONTEXT for NtContinue: a crafted Eip, CS, EFLAGS, ESP and segments. */
function contextSetup(r: Rng): string[] {
  const out: string[] = [];
  const set = (field: keyof typeof CTX, v: string): void => void out.push(`    mov dword [ctx+${hex(CTX[field])}], ${v}`);
  set('ContextFlags', hex(r.pick([0x10007, 0x1003f, 0x10001, 0])));
  set('Eip', r.pick(['evil', 'finish', hex(randomPointer(r))]));
  set('SegCs', hex(r.pick([0x1b, 0x08, 0x0b, 0x18, 0x28, 0xffff])));
  set('EFlags', hex(r.pick([0x202, 0x3202, 0x4202, 0x20202, 0x302, 0x40202, 0xffffffff])));
  set('Esp', r.chance(0.5) ? hex(L.USER_STACK_TOP - 0x100) : hex(randomEsp(r)));
  set('SegSs', hex(r.pick([0x23, 0x10, 0x00, 0x2b])));
  if (r.chance(0.5)) set('SegDs', hex(r.pick([0x23, 0x10, 0x00, 0x3b, 0xfff3])));
  if (r.chance(0.5)) set('SegFs', hex(r.pick([0x3b, 0x30, 0x00, 0xfff3])));
  if (r.chance(0.3)) set('Ebp', r.pick(['evil', hex(KERNEL_BASE)]));
  return out;
}

/** A hand-made system call: EAX, EDX, EBP (and ESP) chosen, then a route into the kernel. */
function blockRawSyscall(cx: Ctx): string[] {
  const { r, id } = cx;
  const out: string[] = [];
  const route = r.weighted([
    [4, 'sysenter'],
    [4, 'int2e'],
    [2, 'stub'],
    [1, 'midstub'],
    [1, 'sud-sysenter'],
  ] as const);
  const number = r.chance(0.5) ? r.pick(IMPLEMENTED).number : randomServiceNumber(r);
  const argWords = r.range(0, 12);
  const resume = `b${id}_resume`;
  // a fake user stack for routes that return through SystemCallStub's `ret` with ESP = EDX
  if (r.chance(0.8)) {
    out.push(`    mov dword [fake_stack], ${resume}`);
    for (let i = 0; i < Math.min(argWords, 6); i++) out.push(`    mov dword [fake_stack+${8 + 4 * i}], ${r.chance(0.5) ? 'buffer' : hex(randomInt(r))}`);
  }
  if (r.chance(0.6)) out.push(`    mov ebp, ${randomEbp(r)}`);
  if (r.chance(0.3)) out.push(`    mov ecx, ${hex(randomInt(r))}`);
  switch (route) {
    case 'sysenter': {
      out.push(`    mov eax, ${hex(number)}`, `    mov edx, ${randomEdx(r)}`);
      if (r.chance(0.2)) out.push(`    mov esp, ${hex(randomEsp(r))}`);
      out.push('    sysenter');
      break;
    }
    case 'sud-sysenter': {
      // jump to SystemCallStub+2 (the sysenter itself) with EDX chosen
      out.push(`    mov eax, ${hex(number)}`, `    mov edx, ${randomEdx(r)}`, `    push ${resume}`, `    jmp ${hex(L.SYSTEM_CALL_STUB + 2)}`);
      break;
    }
    case 'int2e': {
      out.push(`    mov eax, ${hex(number)}`, `    mov edx, ${randomEdx(r)}`);
      if (r.chance(0.35)) out.push(`    mov esp, ${hex(randomEsp(r))}`);
      out.push(`    int 0x2E`);
      break;
    }
    case 'stub': {
      // what an ntdll stub does: arguments, a return slot, EDX = SystemCallStub, call edx
      for (let i = 0; i < argWords; i++) out.push(`    push ${hex(randomInt(r))}`);
      out.push('    push 0', `    mov eax, ${hex(number)}`, `    mov edx, ${hex(L.SYSTEM_CALL_STUB)}`, '    call edx');
      break;
    }
    case 'midstub': {
      // into the middle of an ntdll stub: past its `mov eax` (+5) or its `mov edx` (+10)
      const t = r.pick(IMPLEMENTED);
      for (let i = 0; i < argWords; i++) out.push(`    push ${hex(randomInt(r))}`);
      out.push(`    mov eax, ${hex(number)}`);
      const skip = r.pick([5, 10, 12, 1, 3]);
      if (skip >= 10) out.push(`    mov edx, ${randomEdx(r)}`);
      out.push(`    call ntdll!${t.name}+${skip}`);
      break;
    }
  }
  out.push(`${resume}:`, `    mov esp, [saved_esp]`, `    mov [results+${(id % 16) * 4}], eax`);
  return out;
}

/** Queue a user APC (routine anywhere), then a system call with the stack somewhere odd. */
function blockApc({ r, id }: Ctx): string[] {
  const out: string[] = [];
  const routine = r.weighted<() => string>([[3, () => 'apc_routine'], [1, () => 'evil'], [2, () => hex(randomPointer(r))]])();
  out.push('    push 3', '    push 2', '    push 1', `    push ${routine}`, `    push ${r.chance(0.8) ? '-2' : randomHandle(r)}`, '    call ntdll!NtQueueApcThread');
  const testAlert = service('NtTestAlert').number;
  if (r.chance(0.5)) {
    out.push(`    mov esp, ${hex(randomEsp(r))}`, `    mov eax, ${hex(testAlert)}`, `    mov edx, ${randomEdx(r)}`);
    out.push(r.chance(0.6) ? '    int 0x2E' : '    sysenter');
  } else {
    out.push('    call ntdll!NtTestAlert');
  }
  out.push(`b${id}_after:`, '    mov esp, [saved_esp]', `    mov [results+${(id % 16) * 4}], eax`);
  return out;
}

/** INT n from ring 3: XP's DPL-3 gates 2Ah–2Eh, breakpoints, and gates user mode may not use. */
function blockInt({ r }: Ctx): string[] {
  const v = r.weighted<() => number>([
    [4, () => r.range(0x2a, 0x2d)],
    [1, () => 0x2e],
    [1, () => r.pick([1, 3, 4, 8, 0xd, 0xe, 0x20, 0x2f, 0x80, 0xff])],
    [1, () => r.int(256)],
  ])();
  const out: string[] = [];
  if (r.chance(0.5)) out.push(`    mov eax, ${hex(randomServiceNumber(r))}`, `    mov edx, ${randomEdx(r)}`);
  out.push(`    int ${hex(v)}`);
  return out;
}

/** Privileged and odd instructions (each kills the thread on XP, which is the point: only that). */
function blockOdd({ r, id }: Ctx): string[] {
  const reg = r.pick(REGS);
  const choices: (() => string[])[] = [
    () => ['    cli'],
    () => ['    sti'],
    () => ['    hlt'],
    () => ['    mov dx, ' + hex(r.pick([0x8e, 0x8f, 0x20, 0x60, 0xcf8, 0x3f8])), r.pick(['    in al, dx', '    in eax, dx', '    out dx, al', '    out dx, eax'])],
    () => [`    mov eax, ${hex(randomInt(r))}`, r.pick(['    out 0x8E, eax', '    out 0x8F, eax', '    in eax, 0x8E'])],
    () => ['    mov dx, 0x8E', '    mov esi, scratch', '    mov edi, scratch', r.pick(['    insb', '    insd', '    outsb', '    outsd', '    rep insb', '    rep outsd'])],
    () => [`    mov eax, ${hex(randomInt(r))}`, `    mov cr${r.pick([0, 2, 3, 4])}, eax`],
    () => [`    mov ${reg}, cr${r.pick([0, 2, 3, 4])}`],
    () => [`    mov ${reg}, dr${r.pick([0, 6, 7])}`],
    () => [`    mov eax, ${hex(randomInt(r))}`, `    mov dr${r.pick([0, 7])}, eax`],
    () => [`    mov ecx, ${hex(r.pick([0x174, 0x175, 0x176, 0x10, 0x1b, r.u32()]))}`, r.chance(0.5) ? '    rdmsr' : '    wrmsr'],
    () => [r.pick(['    lgdt [desc_ptr]', '    lidt [desc_ptr]', '    ltr ax', '    lldt ax', '    clts', '    invd', '    wbinvd', '    invlpg [scratch]', '    lmsw ax'])],
    () => [r.pick(['    sgdt [scratch]', '    sidt [scratch]', '    str ax', '    sldt ax', '    smsw ax', '    cpuid', '    rdtsc'])],
    () => ['    int3'],
    () => ['    mov al, 0x7F', '    add al, 1', '    into'],
    () => ['    into'],
    () => [r.pick(['    ud2', '    db 0x0F, 0x0B', '    db 0x0F, 0xFF', '    db 0xF1'])],
    () => ['    xor ecx, ecx', '    mov eax, 1', '    cdq', r.chance(0.5) ? '    div ecx' : '    idiv ecx'],
    () => ['    mov eax, 0x80000000', '    cdq', '    mov ecx, -1', '    idiv ecx'],
    () => ['    sysexit'],
    () => [`    mov ecx, ${hex(randomEsp(r))}`, `    mov edx, ${r.pick(['evil', hex(KERNEL_BASE), 'finish'])}`, '    sysexit'],
    () => {
      // POPFD with TF / IOPL / NT / AC / VM / RF
      const f = r.pick([0x100, 0x3000, 0x4000, 0x40000, 0x20000, 0x10000, 0x4100, 0x3100, 0x200, 0xffffffff]);
      const after = r.pick(['    nop', '    iretd', '    sysenter', '    int 0x2E', '    call ntdll!NtTestAlert', '    pushfd']);
      return ['    pushfd', `    or dword [esp], ${hex(f)}`, '    popfd', ...(after === '    sysenter' || after === '    int 0x2E' ? [`    mov eax, ${hex(r.pick(IMPLEMENTED).number)}`, '    mov edx, esp'] : []), after];
    },
    () => {
      // IRETD with a crafted frame: SS, ESP, EFLAGS, CS, EIP
      const cs = r.pick([0x08, 0x1b, 0x0b, 0x18, 0x23, 0x28, 0x30, 0x3b, 0x00, 0x1f]);
      const eip = r.pick(['evil', `b${id}_next`, hex(randomPointer(r))]);
      const fl = r.pick([0x202, 0x3202, 0x4202, 0x20202, 0x302, 0x2]);
      const frame = [`    push ${hex(r.pick([0x23, 0x10, 0x00, 0x3b]))}`, `    push ${hex(r.chance(0.7) ? L.USER_STACK_TOP - 0x40 : randomEsp(r))}`, `    push ${hex(fl)}`, `    push ${hex(cs)}`, `    push ${eip}`];
      return [...(r.chance(0.7) ? frame : frame.slice(2)), '    iretd', `b${id}_next:`, '    mov esp, [saved_esp]'];
    },
    () => {
      const cs = r.pick([0x08, 0x1b, 0x0b, 0x28, 0x30, 0x00, 0x1f, 0x4b]);
      const eip = r.pick(['evil', `b${id}_next`, hex(randomPointer(r))]);
      const far = r.chance(0.5) ? [`    push ${hex(0x23)}`, `    push ${hex(L.USER_STACK_TOP - 0x40)}`] : [];
      return [...far, `    push ${hex(cs)}`, `    push ${eip}`, far.length ? '    retf 0' : '    retf', `b${id}_next:`, '    mov esp, [saved_esp]'];
    },
    () => [r.pick(['    jmp 0x08:evil', '    call 0x08:evil', '    jmp 0x28:0', '    jmp 0x30:0', '    call 0x1B:finish', '    jmp 0x0B:evil', '    jmp far [far_ptr]', '    call far [far_ptr]', '    jmp 0x3B:0'])],
    () => [`    mov ax, ${hex(r.pick([0x10, 0x08, 0x30, 0x28, 0x3b, 0x0, 0xfff3, 0x13, 0x1b]))}`, `    mov ${r.pick(['ds', 'es', 'fs', 'gs', 'ss'])}, ax`, '    mov eax, [scratch]'],
    () => ['    lss esp, [far_ptr]'],
  ];
  return r.pick(choices)();
}

/** Self-modifying code: patch the next instruction (or someone else's code) and run it. */
function blockSmc({ r, id }: Ctx): string[] {
  const site = `b${id}_site`;
  const patch = r.pick([
    [0xf4], [0x0f, 0x34], [0xcd, 0x2e], [0xcd, 0x2a], [0xfa], [0x0f, 0x22, 0xc0], [0xcc], [0x0f, 0x0b],
    [0xea, 0x00, 0x00, 0x00, 0x80, 0x08, 0x00], [0xe7, 0x8e], [0xcf], [0x0f, 0x35], [r.int(256), r.int(256)],
  ]);
  const out: string[] = [];
  if (r.chance(0.75)) {
    if (r.chance(0.5)) out.push(`    mov eax, ${hex(r.pick(IMPLEMENTED).number)}`, `    mov edx, ${r.chance(0.5) ? 'fake_stack' : hex(randomPointer(r))}`);
    patch.forEach((b, i) => out.push(`    mov byte [${site}+${i}], ${hex(b)}`));
    out.push(`${site}:`, `    times ${Math.max(patch.length, 2)} nop`, `    mov esp, [saved_esp]`);
  } else {
    // write into read-only code: ntdll, SharedUserData, the kernel
    const target = r.pick([L.NTDLL_NTREADFILE, L.SYSTEM_CALL_STUB, L.KI_FAST_CALL_ENTRY, L.KI_SYSTEM_SERVICE_DISPATCH, L.SHARED_USER_DATA_KERNEL]);
    out.push(`    mov byte [${hex(target)}], ${hex(patch[0])}`);
  }
  return out;
}

/** Jumps and calls to kernel addresses and into the middle of ntdll stubs and SystemCallStub. */
function blockJump({ r, id }: Ctx): string[] {
  const target = r.weighted<() => string>([
    [2, () => hex(r.pick([L.KI_FAST_CALL_ENTRY, L.KI_SYSTEM_SERVICE, L.KI_SYSTEM_SERVICE_DISPATCH, L.NT_NTREADFILE, KERNEL_BASE, L.KPCR]))],
    [2, () => `ntdll!${r.pick(IMPLEMENTED).name}+${r.pick([1, 2, 5, 6, 10, 11, 12])}`],
    [2, () => hex(L.SYSTEM_CALL_STUB + r.pick([0, 1, 2, 3, 4, 5]))],
    [1, () => hex(randomPointer(r))],
  ])();
  const out: string[] = [];
  if (r.chance(0.5)) out.push(`    mov eax, ${hex(randomServiceNumber(r))}`);
  if (r.chance(0.5)) out.push(`    mov edx, ${randomEdx(r)}`);
  if (r.chance(0.3)) out.push(`    mov ebp, ${randomEbp(r)}`);
  out.push(`    push b${id}_back`, r.chance(0.5) ? `    jmp ${target}` : `    call ${target}`, `b${id}_back:`, '    mov esp, [saved_esp]');
  return out;
}

/** Ordinary instructions: arithmetic, flags, memory in the scratch area, a short loop, strings. */
function blockMix({ r, id }: Ctx): string[] {
  const out: string[] = [];
  const n = r.range(2, 8);
  for (let i = 0; i < n; i++) {
    const a = r.pick(REGS);
    const b = r.pick(REGS);
    out.push(
      r.weighted<() => string>([
        [4, () => `    mov ${a}, ${hex(randomInt(r))}`],
        [4, () => `    ${r.pick(['add', 'sub', 'xor', 'and', 'or', 'adc', 'sbb', 'cmp', 'test'])} ${a}, ${r.chance(0.5) ? b : hex(r.u32())}`],
        [2, () => `    ${r.pick(['shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr'])} ${a}, ${r.int(32)}`],
        [2, () => `    ${r.pick(['inc', 'dec', 'neg', 'not', 'bswap'])} ${a}`],
        [1, () => `    imul ${a}, ${b}`],
        [1, () => `    lea ${a}, [${b}+${r.int(64) * 4}]`],
        [1, () => `    xchg ${a}, ${b}`],
        [1, () => `    set${r.pick(['e', 'ne', 'b', 'a', 'l', 'g', 'o', 's'])} ${r.pick(REGS8)}`],
        [1, () => `    cmov${r.pick(['e', 'ne', 'b', 'a', 'l', 'g'])} ${a}, ${b}`],
        [1, () => `    movzx ${a}, byte [scratch+${r.int(64)}]`],
        [2, () => `    mov [scratch+${r.int(16) * 4}], ${a}`],
        [1, () => `    ${r.pick(['bt', 'bts', 'btr', 'btc'])} ${a}, ${r.int(32)}`],
        [1, () => `    ${r.pick(['clc', 'stc', 'cmc', 'cld', 'cdq', 'cwde', 'lahf', 'sahf', 'nop', 'pushfd\n    popfd', 'pushad\n    popad'])}`],
        [1, () => `    push ${a}\n    pop ${b}`],
      ])(),
    );
  }
  if (r.chance(0.25)) out.push(`    mov ecx, ${r.range(1, 40)}`, `b${id}_loop:`, `    add eax, ecx`, `    loop b${id}_loop`);
  if (r.chance(0.2)) out.push('    cld', '    mov esi, buffer', '    mov edi, scratch', `    mov ecx, ${r.range(0, 16)}`, `    rep ${r.pick(['movsb', 'movsd', 'stosb', 'stosd'])}`);
  // the stage for later system calls: EBP/EDX left somewhere odd
  if (r.chance(0.3)) out.push(`    mov ${r.pick(['ebp', 'edx'])}, ${hex(randomPointer(r))}`);
  // split multi-line picks into lines
  return out.flatMap((l) => l.split('\n').map((x, i) => (i === 0 ? x : '    ' + x.trim())));
}

/** A few random bytes, executed as they decode (the first byte is kept away from prefixes). */
function blockBytes({ r }: Ctx): string[] {
  const n = r.range(2, 10);
  const bytes = Array.from({ length: n }, () => r.int(256));
  return [`    db ${bytes.map((b) => hex(b)).join(', ')}`, '    times 8 nop', '    mov esp, [saved_esp]'];
}

/** Open the seeded file so later reads, writes and closes have a real handle. */
function blockOpen({ r, id }: Ctx): string[] {
  return [
    '    push 0', '    push 0', '    push 0x20', '    push 1', '    push 3', '    push 0', '    push 0',
    '    push iosb', `    push ${r.chance(0.8) ? 'oa' : hex(randomPointer(r))}`, `    push ${hex(r.pick([0xc0100000, 0x80100000]))}`, '    push handle',
    '    call ntdll!NtCreateFile', `    mov [results+${(id % 16) * 4}], eax`,
  ];
}

/** Loads of a user address, then a store through it (user writes to kernel memory must fault). */
function blockPoke({ r }: Ctx): string[] {
  const p = randomPointer(r);
  return r.chance(0.5) ? [`    mov eax, [${hex(p)}]`] : [`    mov dword [${hex(p)}], ${hex(randomInt(r))}`];
}

/** Blocks after which the program usually goes on. */
const BODY: readonly (readonly [number, (cx: Ctx) => string[]])[] = [
  [26, blockNtCall],
  [22, blockRawSyscall],
  [5, blockApc],
  [14, blockMix],
];

/** Blocks that usually end the thread (a fault): they come last, or now and then in the middle. */
const TAIL: readonly (readonly [number, (cx: Ctx) => string[]])[] = [
  [10, blockOdd],
  [4, blockInt],
  [3, blockSmc],
  [4, blockJump],
  [2, blockBytes],
  [3, blockPoke],
];

export interface GenerateOptions {
  /** Body blocks per program (default 3–12). */
  minBlocks?: number;
  maxBlocks?: number;
}

/** Program `index` of a run seeded with `seed`. */
export function generateProgram(seed: number, index: number, o: GenerateOptions = {}): RandProgram {
  const r = new Rng(programSeed(seed, index));
  const cpu: CpuModel = r.chance(0.75) ? 'sysenter' : 'int2e';
  const lines = [...HEADER, `; seed ${seed} program ${index} cpu ${cpu}`];
  const n = r.range(o.minBlocks ?? 3, o.maxBlocks ?? 12);
  if (r.chance(0.6)) lines.push(...blockOpen({ r, id: 0 }));
  let id = 1;
  for (; id <= n; id++) lines.push(...r.weighted(r.chance(0.08) ? TAIL : BODY)({ r, id }));
  const tail = r.weighted<number>([[3, 0], [5, 1], [2, 2]]);
  for (let k = 0; k < tail; k++, id++) lines.push(...r.weighted(TAIL)({ r, id }));
  lines.push(...FOOTER);
  return { seed, index, cpu, lines };
}

// ================================================================================================
// Running with the checks
// ================================================================================================

export interface RunSpec {
  cpu?: CpuModel;
  program: ProgramSource;
  drivers?: ProgramSource[];
  maxInstructions?: number;
}

/**
 * Boot, run to the limit, and check every event as it comes (test/util/invariants.ts: nothing is
 * kept but counters and the first few offenders, so long runs cost no memory).
 */
export function runChecked(spec: RunSpec, hooks: RunHooks = {}): Checked {
  // A program that does not boot is the generator's (or the test's) bug, never an invariant: it throws.
  const guest = Guest.boot({ cpu: spec.cpu, program: spec.program, drivers: spec.drivers });
  hooks.onGuest?.(guest);
  const checker = new InvariantChecker(guest, hooks.onEvent);
  let outcome: GuestOutcome | null = null;
  let thrown: unknown = undefined;
  try {
    outcome = guest.run(spec.maxInstructions ?? INSTRUCTION_LIMIT);
  } catch (e) {
    thrown = e;
  }
  return checker.finish(outcome, thrown);
}

// ================================================================================================
// Shrinking: drop lines while the failure stays
// ================================================================================================

let symbolResolver: ((module: string, name: string) => number | undefined) | null = null;

/** Whether lines assemble as a user program with `start` (cheap: no machine is built). */
export function assembles(lines: readonly string[]): boolean {
  if (!symbolResolver) {
    const g = Guest.boot({ program: { fileName: 'probe.asm', source: '; ntflow: user\nstart:\n    ret\n' } });
    symbolResolver = (m, n) => g.symbols.resolve(m, n);
  }
  if (!/^\s*;\s*ntflow:\s*user/.test(lines[0] ?? '')) return false;
  try {
    const r = assemble(sourceOf(lines), { origin: L.PROGRAM_CODE, fileName: 'shrink.asm', resolveSymbol: (m, n) => symbolResolver!(m, n) });
    return r.labels.has('start');
  } catch {
    return false;
  }
}

export interface ShrinkResult {
  lines: string[];
  /** Candidate programs run. */
  runs: number;
  /** Whether the budget ran out before a fixpoint. */
  exhausted: boolean;
}

/**
 * Delta debugging over lines (the first line, `; ntflow: user`, stays): remove chunks, halving
 * their size, while `fails(lines)` holds; candidates that do not assemble are skipped unrun.
 */
export function shrinkLines(lines: readonly string[], fails: (lines: string[]) => boolean, budget = 400): ShrinkResult {
  let cur = lines.slice();
  let runs = 0;
  let chunk = Math.max(1, Math.floor((cur.length - 1) / 2));
  while (runs < budget) {
    let removed = false;
    for (let i = cur.length - chunk; i >= 1 && runs < budget; i -= chunk) {
      const from = Math.max(1, i);
      const cand = [...cur.slice(0, from), ...cur.slice(from + chunk)];
      if (!assembles(cand)) continue;
      runs++;
      if (fails(cand)) {
        cur = cand;
        removed = true;
      }
    }
    if (!removed) {
      if (chunk === 1) return { lines: cur, runs, exhausted: false };
      chunk = Math.max(1, Math.floor(chunk / 2));
    } else {
      chunk = Math.min(chunk, Math.max(1, Math.floor((cur.length - 1) / 2)));
    }
  }
  return { lines: cur, runs, exhausted: true };
}

/** Shrink a program whose runs fall in `failureClass`; comments and blank lines go too. */
export function shrinkProgram(p: { lines: readonly string[]; cpu: CpuModel }, failureClass: string, budget = 400, maxInstructions = INSTRUCTION_LIMIT): ShrinkResult {
  const fails = (lines: string[]): boolean => {
    const c = runChecked({ cpu: p.cpu, program: { fileName: 'min.asm', source: sourceOf(lines) }, maxInstructions });
    return c.classes.includes(failureClass);
  };
  const start = p.lines.filter((l, i) => i === 0 || !/^\s*(;.*)?$/.test(l) || /ntflow-file:/.test(l));
  const base = fails(start) ? start : p.lines.slice();
  const res = shrinkLines(base, fails, budget);
  return { ...res, runs: res.runs + 1 };
}
