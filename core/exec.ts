// `ntflow exec`: run raw code on a bare flat machine, speaking the case/result JSON of the project's
// Unicorn oracle (test/oracle/unicorn_oracle.py), so one case runs on ntflow, Unicorn and the real
// CPU alike. The machine pages with 4 KiB user pages (mapped on demand when `automap` is on, as
// the oracle does), runs at CPL 3 unless told otherwise, with CR0.EM set (the CPU has no FPU: x87
// instructions raise #NM), and stops at the first exception.
import { Subscription } from 'rxjs';
import { EmulatorError } from './cpu/faults.js';
import { F } from './cpu/flags.js';
import { CR0_EM, CR0_PG, Seg, type CpuModel } from './cpu/cpu.js';
import { Machine } from './machine.js';
import { PTE_P, PTE_RW, PTE_US, hex } from './mmu.js';

export interface ExecCase {
  code: string;
  base?: number | string;
  regs?: Record<string, number | string>;
  mem?: { addr: number | string; data: string }[];
  map?: [number | string, number | string][];
  fs_base?: number | string;
  read?: [number | string, number | string][];
  count?: number | string;
  automap?: boolean;
  trace?: boolean;
  /** ntflow's own: the privilege level to run at (default 3). */
  cpl?: 0 | 3;
  /** ntflow's own: the CPU model (default sysenter). */
  cpu?: CpuModel;
}

export interface ExecResult {
  regs: Record<'eax' | 'ecx' | 'edx' | 'ebx' | 'esp' | 'ebp' | 'esi' | 'edi' | 'eip', number>;
  eflags: number;
  flags: Record<'CF' | 'PF' | 'AF' | 'ZF' | 'SF' | 'TF' | 'IF' | 'DF' | 'OF', number>;
  mem: { addr: number; data: string | null; error?: string }[];
  writes: [number, number, number][];
  exception: { vector: number; eip: number; error_code?: number; cr2?: number } | null;
  error: string | null;
  automapped: number[];
  trace?: number[];
  icount?: number;
}

/** A case the user got wrong: the message names the field and what it should be. */
export class ExecInputError extends Error {
  override name = 'ExecInputError';
}

const DEFAULT_BASE = 0x00401000;
const STACK_TOP = 0x00130000;
const STACK_SIZE = 0x10000;
const DEFAULT_ESP = STACK_TOP - 0x100;
const REG_ORDER = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'] as const;
const FLAG_BITS = { CF: 0, PF: 2, AF: 4, ZF: 6, SF: 7, TF: 8, IF: 9, DF: 10, OF: 11 } as const;
const CASE_FIELDS = new Set(['code', 'base', 'regs', 'mem', 'map', 'fs_base', 'read', 'count', 'automap', 'trace', 'cpl', 'cpu']);
/** Physical memory of the bare machine: page tables and every page the case touches. */
const EXEC_MEMORY = 8 * 1024 * 1024;
/** Default bound when the case gives no count and the code never reaches its end. */
const DEFAULT_COUNT = 1_000_000;

function num(v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^\s*(0x[0-9a-f]+|\d+|-\d+)\s*$/i.test(v)) return Number(BigInt.asIntN(64, BigInt(v.trim())));
  throw new ExecInputError(`${field}: expected an integer or a "0x…" string, got ${JSON.stringify(v)}`);
}

function hexBytes(s: unknown, field: string): Uint8Array {
  if (typeof s !== 'string') throw new ExecInputError(`${field}: expected a hex string like "01c8 49", got ${JSON.stringify(s)}`);
  const clean = s.replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) {
    throw new ExecInputError(`${field}: invalid hex ${JSON.stringify(s)} (use pairs of hex digits, e.g. "01c8 49")`);
  }
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => parseInt(b, 16));
}

/** Builds page tables on the bare machine and hands out zeroed physical frames. */
class FlatAddressSpace {
  private nextFrame = 0x1000;
  /** Bytes of physical memory handed out so far (frames are allocated from 0 upwards). */
  get used(): number {
    return this.nextFrame;
  }
  readonly pageDirectory: number;
  readonly mapped = new Set<number>();

  constructor(private readonly m: Machine) {
    this.pageDirectory = this.frame();
  }

  private frame(): number {
    if (this.nextFrame + 0x1000 > this.m.mem.size) {
      throw new ExecInputError(`the case maps more than ${this.m.mem.size >>> 20} MiB of memory`);
    }
    const f = this.nextFrame;
    this.nextFrame += 0x1000;
    return f;
  }

  mapPage(linear: number): void {
    const page = (linear & ~0xfff) >>> 0;
    if (this.mapped.has(page)) return;
    const mem = this.m.mem;
    const pdeAddr = this.pageDirectory + (page >>> 22) * 4;
    let pde = mem.read32(pdeAddr);
    if (!(pde & PTE_P)) {
      pde = this.frame() | PTE_P | PTE_RW | PTE_US;
      mem.write32(pdeAddr, pde);
    }
    const pteAddr = (pde & ~0xfff) + ((page >>> 12) & 0x3ff) * 4;
    mem.write32(pteAddr, this.frame() | PTE_P | PTE_RW | PTE_US);
    this.mapped.add(page);
  }

  mapRange(linear: number, size: number): void {
    const first = linear & ~0xfff;
    const last = (linear + Math.max(size, 1) - 1) & ~0xfff;
    for (let p = first; p <= last; p += 0x1000) this.mapPage(p >>> 0);
  }

  /** The physical address of a mapped linear address (walks this space's own tables). */
  physical(linear: number): number {
    const mem = this.m.mem;
    const pde = mem.read32(this.pageDirectory + (linear >>> 22) * 4);
    const pte = mem.read32((pde & ~0xfff) + ((linear >>> 12) & 0x3ff) * 4);
    if (!(pde & PTE_P) || !(pte & PTE_P)) throw new Error(`internal: ${hex(linear)} is not mapped`);
    return (pte & ~0xfff) + (linear & 0xfff);
  }

  /** Write bytes through the page tables (loader use: no access checks, no trace). */
  write(linear: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.m.mem.write8(this.physical((linear + i) >>> 0), data[i]);
  }
}

// One bare machine per CPU model, reused across cases: allocating megabytes of memory and a TLB
// for every three-instruction case would cost more than running it. Each case starts from the
// CPU's power-on state and zeroed memory.
const machines = new Map<CpuModel, Machine>();
function bareMachine(model: CpuModel): Machine {
  let m = machines.get(model);
  if (m === undefined) {
    m = new Machine({ cpu: model, memorySize: EXEC_MEMORY });
    machines.set(model, m);
  } else {
    m.cpu.reset();
  }
  return m;
}

/** Check a case's shape; throws ExecInputError naming the bad field. */
export function validateCase(c: unknown): ExecCase {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new ExecInputError('case: expected a JSON object with at least "code"');
  const obj = c as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (!CASE_FIELDS.has(k)) throw new ExecInputError(`${k}: unknown field (known: ${[...CASE_FIELDS].join(', ')})`);
  }
  if (!('code' in obj)) throw new ExecInputError('code: missing (hex machine code, e.g. "01c8")');
  hexBytes(obj.code, 'code');
  if (obj.regs !== undefined) {
    if (typeof obj.regs !== 'object' || obj.regs === null) throw new ExecInputError('regs: expected an object like {"eax": 1}');
    for (const [k, v] of Object.entries(obj.regs)) {
      const name = k.toLowerCase();
      if (!(REG_ORDER as readonly string[]).includes(name) && name !== 'eflags') {
        throw new ExecInputError(`regs.${k}: unknown register (use ${REG_ORDER.join(' ')} eflags)`);
      }
      num(v, `regs.${k}`);
    }
  }
  if (obj.mem !== undefined) {
    if (!Array.isArray(obj.mem)) throw new ExecInputError('mem: expected a list of {"addr": …, "data": "hex"}');
    obj.mem.forEach((m, i) => {
      if (typeof m !== 'object' || m === null) throw new ExecInputError(`mem[${i}]: expected {"addr": …, "data": "hex"}`);
      num((m as Record<string, unknown>).addr, `mem[${i}].addr`);
      hexBytes((m as Record<string, unknown>).data, `mem[${i}].data`);
    });
  }
  for (const field of ['map', 'read'] as const) {
    const list = obj[field];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new ExecInputError(`${field}: expected a list of [addr, size] pairs`);
    list.forEach((pair, i) => {
      if (!Array.isArray(pair) || pair.length !== 2) throw new ExecInputError(`${field}[${i}]: expected [addr, size]`);
      num(pair[0], `${field}[${i}][0]`);
      const size = num(pair[1], `${field}[${i}][1]`);
      if (size < 0 || size > 0x1000000) throw new ExecInputError(`${field}[${i}][1]: size ${size} out of range (0 to 16 MiB)`);
    });
  }
  for (const field of ['base', 'fs_base', 'count'] as const) if (obj[field] !== undefined) num(obj[field], field);
  if (obj.count !== undefined && num(obj.count, 'count') < 0) throw new ExecInputError('count: must not be negative');
  for (const field of ['automap', 'trace'] as const) {
    if (obj[field] !== undefined && typeof obj[field] !== 'boolean') throw new ExecInputError(`${field}: expected true or false`);
  }
  if (obj.cpl !== undefined && obj.cpl !== 0 && obj.cpl !== 3) throw new ExecInputError('cpl: expected 0 or 3');
  if (obj.cpu !== undefined && obj.cpu !== 'sysenter' && obj.cpu !== 'int2e') throw new ExecInputError('cpu: expected "sysenter" or "int2e"');
  return obj as unknown as ExecCase;
}

/** Run one case. Bad input throws ExecInputError; everything the guest does is in the result. */
export function runCase(input: ExecCase, defaults: { cpl?: 0 | 3; cpu?: CpuModel } = {}): ExecResult {
  const c = validateCase(input);
  const code = hexBytes(c.code, 'code');
  const base = num(c.base ?? DEFAULT_BASE, 'base') >>> 0;
  const m = bareMachine(c.cpu ?? defaults.cpu ?? 'sysenter');
  const cpu = m.cpu;
  const space = new FlatAddressSpace(m);
  const automap = c.automap ?? true;
  const automapped: number[] = [];

  space.mapRange(base, code.length + 16);
  space.mapRange(STACK_TOP - STACK_SIZE, STACK_SIZE);
  for (const [a, s] of c.map ?? []) space.mapRange(num(a, 'map') >>> 0, num(s, 'map'));
  const memRegions: [number, Uint8Array][] = (c.mem ?? []).map((r) => [num(r.addr, 'mem') >>> 0, hexBytes(r.data, 'mem')]);
  for (const [a, d] of memRegions) space.mapRange(a, d.length);
  space.write(base, code);
  for (const [a, d] of memRegions) space.write(a, d);

  const cpl = c.cpl ?? defaults.cpl ?? 3;
  const regs = Object.fromEntries(Object.entries(c.regs ?? {}).map(([k, v]) => [k.toLowerCase(), num(v, `regs.${k}`)]));
  cpu.enterFlatProtectedMode({ eip: base, cpl, esp: (regs.esp ?? DEFAULT_ESP) | 0 });
  REG_ORDER.forEach((name, i) => {
    if (name !== 'esp') cpu.regs[i] = (regs[name] ?? 0) | 0;
  });
  // EFLAGS as given, minus what the CPU would not let this privilege level hold (IOPL stays 0).
  cpu.setEflags(((regs.eflags ?? 0x202) & ~(F.VM | F.RF | F.IOPL | F.NT)) | F.FIXED1);
  cpu.cr3 = space.pageDirectory;
  // Paging, and CR0.EM as an OS sets it on this FPU-less CPU: x87 instructions raise #NM (vector 7).
  cpu.writeCr(0, cpu.cr0 | CR0_PG | CR0_EM);
  if (c.fs_base !== undefined) cpu.setSegmentDirect(Seg.FS, cpl === 0 ? 0x30 : 0x3b, num(c.fs_base, 'fs_base'), 0xfff, cpl);
  cpu.stopOnException = true;
  cpu.mmu.onNotPresent = (linear) => {
    if (!automap) return false;
    space.mapPage(linear);
    automapped.push((linear & ~0xfff) >>> 0);
    return true;
  };

  const writes: [number, number, number][] = [];
  const trace: number[] = [];
  const sub: Subscription = m.events$.subscribe((e) => {
    // A faulting instruction's partial writes (e.g. a rep movs cut short) come with the exception.
    if (e.type === 'instruction' || e.type === 'exception') {
      for (let i = 0; i < e.writes.length; i += 3) writes.push([e.writes[i], e.writes[i + 1], e.writes[i + 2]]);
      if (c.trace && e.type === 'instruction') trace.push(e.eip >>> 0);
    }
  });

  const end = (base + code.length) >>> 0;
  const count = c.count !== undefined && num(c.count, 'count') > 0 ? num(c.count, 'count') : DEFAULT_COUNT;
  let error: string | null = null;
  try {
    for (let n = 0; n < count && cpu.eip >>> 0 !== end; n++) {
      const stop = cpu.run(1);
      if (stop.kind !== 'instruction-limit') {
        if (stop.kind === 'hlt') error = 'hlt executed';
        if (stop.kind === 'triple-fault') error = `triple fault: ${stop.detail ?? ''}`;
        break;
      }
    }
  } catch (e) {
    if (!(e instanceof EmulatorError)) throw e;
    error = `emulator: ${e.message}`;
  } finally {
    sub.unsubscribe();
  }
  const result = collect(c, m, memRegions, writes, error, automapped, trace);
  m.mem.bytes.fill(0, 0, space.used);
  return result;
}

function collect(
  c: ExecCase,
  m: Machine,
  memRegions: [number, Uint8Array][],
  writes: [number, number, number][],
  error: string | null,
  automapped: number[],
  trace: number[],
): ExecResult {
  const cpu = m.cpu;

  const eflags = cpu.getEflags() >>> 0;
  const ex = cpu.lastException;
  const reads = c.read ?? memRegions.map(([a, d]) => [a, d.length] as [number, number]);
  const result: ExecResult = {
    regs: {
      ...(Object.fromEntries(REG_ORDER.map((name, i) => [name, cpu.regs[i] >>> 0])) as Record<(typeof REG_ORDER)[number], number>),
      eip: cpu.eip >>> 0,
    },
    eflags,
    flags: Object.fromEntries(Object.entries(FLAG_BITS).map(([k, b]) => [k, (eflags >>> b) & 1])) as ExecResult['flags'],
    mem: reads.map(([a, s]) => {
      const addr = num(a, 'read') >>> 0;
      const bytes = cpu.mmu.peekBytes(addr, num(s, 'read'));
      if (bytes.some((b) => b === null)) return { addr, data: null, error: 'unmapped' };
      return { addr, data: Buffer.from(bytes as number[]).toString('hex') };
    }),
    writes,
    exception: ex === null ? null : { vector: ex.vector, eip: ex.eip >>> 0, ...(ex.errorCode !== null ? { error_code: ex.errorCode } : {}), ...(ex.cr2 !== null ? { cr2: ex.cr2 } : {}) },
    error,
    automapped,
  };
  if (c.trace) {
    result.trace = trace;
    result.icount = trace.length;
  }
  return result;
}
