// Random IA-32 cases for the Unicorn differential test.
//
// Machine code is built with iced-x86's Instruction.create* + Encoder, never with ntflow's own
// assembler, so a bug there cannot hide the same bug on both sides of the comparison.
//
// The generator keeps a small model of the machine while it emits instructions:
//  - which registers still hold a value it knows (so memory operands can be aimed into the
//    mapped data region, shift counts in CL are known, string ops get small ECX, ...). A register
//    that nothing has touched yet is "free": its initial value may still be chosen.
//  - which arithmetic flags are defined (Intel SDM). An instruction never reads an undefined
//    flag (a `cmp` that defines all six is inserted first), and every case carries the mask of
//    the EFLAGS bits that are defined at its end and before each instruction (for a #DE).
import {
  Code, Encoder, Formatter, FormatterSyntax, Instruction, InstructionInfoFactory, MemoryOperand,
  Mnemonic, OpAccess, Register, RepPrefixKind,
} from 'iced-x86';
import type { OracleCase } from '../oracle/unicorn.js';
import { Rng } from './prng.js';

// ---- The case's memory map (all flat, CPL 3) ----
export const CODE_BASE = 0x0040_1000;
/** Random data that memory operands and string ops aim at. */
export const DATA_BASE = 0x1000_0000;
export const DATA_SIZE = 0x100;
/** The stack page; ESP starts near its middle and a window around it is random and read back. */
export const STACK_PAGE = 0x1000_f000;
export const STACK_WIN = 0x1000_f700;
export const STACK_WIN_SIZE = 0x200;
const ESP_HOME = 0x1000_f800;

// ---- Flags ----
// iced's RflagsBits (OF=1 SF=2 ZF=4 AF=8 CF=16 PF=32) are not EFLAGS bits; the model uses
// iced's bits and converts when it writes the masks.
const F = { OF: 1, SF: 2, ZF: 4, AF: 8, CF: 16, PF: 32 } as const;
const ARITH = 63;
const TO_EFLAGS: [number, number][] = [[F.CF, 0x1], [F.PF, 0x4], [F.AF, 0x10], [F.ZF, 0x40], [F.SF, 0x80], [F.OF, 0x800]];
export const EFLAGS_DF = 0x400;
/** Arithmetic flags + DF: what the test compares (TF/IF/... are not touched by these families). */
export const EFLAGS_COMPARED = 0x8d5 | EFLAGS_DF;

export function icedToEflags(bits: number): number {
  let m = 0;
  for (const [i, e] of TO_EFLAGS) if (bits & i) m |= e;
  return m;
}

// ---- Registers ----
const R32 = [Register.EAX, Register.ECX, Register.EDX, Register.EBX, Register.ESP, Register.EBP, Register.ESI, Register.EDI];
const R16 = [Register.AX, Register.CX, Register.DX, Register.BX, Register.SP, Register.BP, Register.SI, Register.DI];
const R8 = [Register.AL, Register.CL, Register.DL, Register.BL, Register.AH, Register.CH, Register.DH, Register.BH];
const R64 = [Register.RAX, Register.RCX, Register.RDX, Register.RBX, Register.RSP, Register.RBP, Register.RSI, Register.RDI];
const ESP = 4;
const NAMES = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'] as const;
/** iced register -> index of the 32-bit register it is part of. */
const FULL = new Map<Register, number>();
R32.forEach((r, i) => FULL.set(r, i));
R16.forEach((r, i) => FULL.set(r, i));
R64.forEach((r, i) => FULL.set(r, i));
R8.forEach((r, i) => FULL.set(r, i & 3));

type Width = 8 | 16 | 32;
const WIDTHS: Width[] = [8, 16, 32];
const maskOf = (w: Width): number => (w === 32 ? 0xffffffff : (1 << w) - 1);
const signed = (v: number, w: Width): number => {
  const x = v & maskOf(w);
  return w === 32 ? x | 0 : x >= 1 << (w - 1) ? x - (1 << w) : x;
};
/** Register number `i` of width w (for 8 bits: AL CL DL BL AH CH DH BH). */
const reg = (w: Width, i: number): Register => (w === 8 ? R8[i]! : w === 16 ? R16[i]! : R32[i]!);

function code(name: string): Code {
  const c = (Code as unknown as Record<string, Code | undefined>)[name];
  if (c === undefined) throw new Error(`iced-x86 has no Code.${name}`);
  return c;
}

const EDGES = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0xffffff80, 0xffff8000, 0xfffffffe, 2];
const EDGE8 = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x81];
const EDGE16 = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0xff80];

const CONDITIONS = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
const cap = (s: string): string => s[0]!.toUpperCase() + s.slice(1);

export interface GeneratedCase {
  /** Exactly what both sides run (also what `ntflow exec` takes). */
  case: OracleCase;
  /** EFLAGS bits (arithmetic + DF) that are defined when the case runs to its end. */
  flagsMask: number;
  /** For each instruction address: the defined EFLAGS bits before it (used when it faults). */
  faultMasks: Record<number, number>;
  /** Disassembly, one line per instruction, with addresses. */
  text: string[];
  /** The families the case was built from, and the mnemonics it holds (coverage report). */
  families: string[];
  mnemonics: string[];
}

const factory = new InstructionInfoFactory();
const formatter = new Formatter(FormatterSyntax.Masm);
formatter.uppercaseHex = true;

interface EmitOptions {
  /** Flag model update instead of iced's generic rflags (count-dependent shifts, rep with ECX=0). */
  flags?: (defined: number) => number;
  /** Do not insert a flag-defining instruction even if undefined flags are read (pushfd). */
  noFlagCheck?: boolean;
  /** ESP change when the instruction writes ESP and the change is known. */
  espDelta?: number;
}

class CaseBuilder {
  private readonly bytes: number[] = [];
  readonly text: string[] = [];
  readonly mnemonics: string[] = [];
  readonly families: string[] = [];
  private readonly faultMasks: Record<number, number> = {};
  private readonly encoder = new Encoder(32);

  /** Initial register values (a "free" register's value may still change). */
  readonly init: number[];
  /** Current value when known, else null. */
  private readonly cur: (number | null)[];
  private readonly free: boolean[];
  /** Defined arithmetic flags, iced bits. */
  private defined = ARITH;
  readonly eflags: number;
  private readonly df: 0 | 1;
  /** Initial bytes of the data region and the stack window. */
  readonly data: Uint8Array;
  readonly stack: Uint8Array;
  /** Set once anything writes memory: memory values are then no longer known. */
  private memWritten = false;

  constructor(private readonly rng: Rng) {
    this.init = NAMES.map(() => this.value());
    this.init[ESP] = ESP_HOME - 4 * rng.int(0, 8);
    this.cur = [...this.init];
    this.free = NAMES.map((_, i) => i !== ESP);
    let ef = 0x202;
    for (const bit of [0x1, 0x4, 0x10, 0x40, 0x80, 0x800, 0x400]) if (rng.chance(0.5)) ef |= bit;
    this.eflags = ef;
    this.df = ef & EFLAGS_DF ? 1 : 0;
    this.data = this.randomBytes(DATA_SIZE);
    this.stack = this.randomBytes(STACK_WIN_SIZE);
  }

  private randomBytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; ) {
      // Runs of zeros and of 0xFF so that bsf/bsr/div/cmps meet zero and all-ones operands.
      const run = this.rng.int(1, 8);
      const kind = this.rng.weighted([[6, 'rand'], [2, 'zero'], [1, 'ones']] as const);
      for (let k = 0; k < run && i < n; k++, i++) b[i] = kind === 'rand' ? this.rng.int(0, 255) : kind === 'zero' ? 0 : 0xff;
    }
    return b;
  }

  /** A register value biased toward the edges where flags and carries change. */
  value(): number {
    const r = this.rng;
    return r.weighted<() => number>([
      [35, () => r.pick(EDGES)],
      [15, () => ((r.u32() & ~0xff) | r.pick(EDGE8)) >>> 0],
      [15, () => ((r.u32() & ~0xffff) | r.pick(EDGE16)) >>> 0],
      [10, () => r.int(0, 16)],
      [25, () => r.u32()],
    ])();
  }

  /** An immediate for a width-w operand, as iced wants it (signed). */
  imm(w: Width): number {
    return signed(this.value(), w);
  }

  // ---- Register model ----

  known(i: number): number | null {
    return this.cur[i]!;
  }

  /** The value of a 8/16/32-bit register if known. */
  regValue(w: Width, i: number): number | null {
    const full = this.cur[w === 8 ? i & 3 : i];
    if (full === null || full === undefined) return null;
    if (w === 8) return i >= 4 ? (full >>> 8) & 0xff : full & 0xff;
    return (full & maskOf(w)) >>> 0;
  }

  isFree(i: number): boolean {
    return this.free[i]!;
  }

  /** Make 32-bit register i hold v here: choose its initial value if free, else `mov r32, v`. */
  ensure(i: number, v: number): void {
    v >>>= 0;
    if (i === ESP) throw new Error('generator bug: ensure(esp)');
    if (this.free[i]) {
      this.init[i] = v;
      this.cur[i] = v;
      this.free[i] = false;
    } else if (this.cur[i] !== v) {
      this.emitRaw(Instruction.createRegU32(Code.Mov_r32_imm32, R32[i]!, v));
      this.cur[i] = v;
    }
  }

  /** Overwrite a register whose value is undefined (e.g. bsf's destination for a zero source). */
  overwrite(i: number): void {
    const v = this.value();
    this.emitRaw(Instruction.createRegU32(Code.Mov_r32_imm32, R32[i]!, v));
    this.cur[i] = v;
  }

  /** Value of memory bytes if still known (nothing has written memory yet). */
  memValue(addr: number, size: number): number | null {
    if (this.memWritten) return null;
    let region: Uint8Array, off: number;
    if (addr >= DATA_BASE && addr + size <= DATA_BASE + DATA_SIZE) [region, off] = [this.data, addr - DATA_BASE];
    else if (addr >= STACK_WIN && addr + size <= STACK_WIN + STACK_WIN_SIZE) [region, off] = [this.stack, addr - STACK_WIN];
    else return null;
    let v = 0;
    for (let k = size - 1; k >= 0; k--) v = v * 256 + region[off + k]!;
    return v;
  }

  /** A register to write (never ESP/SP: the stack must stay in its page). */
  dest(w: Width, avoid: number[] = []): number {
    const choices = [0, 1, 2, 3, 4, 5, 6, 7].filter((i) => (w === 8 || i !== ESP) && !avoid.includes(w === 8 ? i & 3 : i));
    return this.rng.pick(choices);
  }

  /** A register to read (ESP allowed). */
  src(w: Width, avoid: number[] = []): number {
    const choices = [0, 1, 2, 3, 4, 5, 6, 7].filter((i) => !avoid.includes(w === 8 ? i & 3 : i));
    return this.rng.pick(choices);
  }

  // ---- Memory operands ----

  /**
   * A memory operand of `size` bytes aimed into the data region (or [lo, hi) inside it), using a
   * random ModRM/SIB form. Base/index registers get values that make the address land there
   * (choosing free initial values, computing disp32, or a `mov` first). `avoid` registers are not
   * used (their values are fixed for the instruction being built).
   */
  mem(size: number, avoid: number[] = [], lo = DATA_BASE, hi = DATA_BASE + DATA_SIZE): { mem: MemoryOperand; addr: number } {
    const r = this.rng;
    const espKnown = this.cur[ESP] !== null;
    if (espKnown && !avoid.includes(ESP) && r.chance(0.1)) {
      // [esp+disp8] into the stack window.
      const disp = r.int(-48, 48);
      const addr = (this.cur[ESP]! + disp) >>> 0;
      return { mem: new MemoryOperand(Register.ESP, Register.None, 1, BigInt(disp), disp === 0 ? 0 : 1, false, Register.None), addr };
    }
    const addr = lo + r.int(0, hi - lo - size);
    const form = r.weighted([
      [1, { base: false, index: false, disp: 4 }],
      [2, { base: true, index: false, disp: 0 }],
      [2, { base: true, index: false, disp: 1 }],
      [1, { base: true, index: false, disp: 4 }],
      [2, { base: true, index: true, disp: 0 }],
      [2, { base: true, index: true, disp: 1 }],
      [1, { base: true, index: true, disp: 4 }],
      [1, { base: false, index: true, disp: 4 }],
    ] as const);
    const usable = [0, 1, 2, 3, 5, 6, 7].filter((i) => !avoid.includes(i));
    let disp = form.disp === 1 ? r.int(-128, 127) : form.disp === 4 ? r.u32() | 0 : 0;
    let dispSize: number = form.disp;
    let index = -1;
    let scale = 1;
    let indexPart = 0;
    if (form.index) {
      index = r.pick(usable);
      scale = r.pick([1, 2, 4, 8]);
      if (this.free[index] || this.cur[index] === null) {
        // Small or negative indexes, or any value when a disp32 can absorb it.
        this.ensure(index, form.disp === 4 && r.chance(0.5) ? this.value() : r.int(-16, 16));
      }
      indexPart = Math.imul(this.cur[index]!, scale);
    }
    let base = -1;
    if (form.base) {
      base = r.pick(usable.filter((i) => i !== index));
      const needed = (addr - indexPart - disp) >>> 0;
      if (this.free[base] || this.cur[base] === null) this.ensure(base, needed);
      else if (this.cur[base] !== needed) {
        if (dispSize === 4 || r.chance(0.5)) {
          disp = (addr - indexPart - this.cur[base]!) | 0;
          dispSize = 4;
        } else this.ensure(base, needed);
      }
    } else {
      disp = (addr - indexPart) | 0;
    }
    const mem = new MemoryOperand(
      base < 0 ? Register.None : R32[base]!, index < 0 ? Register.None : R32[index]!, scale,
      BigInt(disp), dispSize, false, Register.None);
    return { mem, addr };
  }

  // ---- Emitting ----

  private get ip(): number {
    return CODE_BASE + this.bytes.length;
  }

  /** Emit an instruction, first defining any flag it reads that is undefined. */
  emit(ins: Instruction, opt: EmitOptions = {}): void {
    if (!opt.noFlagCheck && ins.rflagsRead & ARITH & ~this.defined) {
      // cmp r32, imm32 defines all six flags from data, and touches nothing else.
      this.emitRaw(Instruction.createRegI32(Code.Cmp_rm32_imm32, R32[this.rng.int(0, 7)]!, this.imm(32)));
    }
    this.emitRaw(ins, opt);
  }

  emitRaw(ins: Instruction, opt: EmitOptions = {}): void {
    const ip = this.ip;
    this.faultMasks[ip] = icedToEflags(this.defined) | EFLAGS_DF;
    ins.ip = BigInt(ip);
    const n = this.encoder.encode(ins, BigInt(ip));
    this.bytes.push(...this.encoder.takeBuffer().subarray(0, n));
    this.text.push(`${ip.toString(16).padStart(8, '0')}  ${formatter.format(ins)}`);
    this.mnemonics.push(Mnemonic[ins.mnemonic] ?? String(ins.mnemonic));

    const espBefore = this.cur[ESP]!;
    const info = factory.info(ins);
    for (const u of info.usedRegisters()) {
      const i = FULL.get(u.register as Register);
      if (i === undefined) continue;
      this.free[i] = false;
      if (u.access !== OpAccess.Read && u.access !== OpAccess.CondRead) this.cur[i] = null;
    }
    for (const m of info.usedMemory()) {
      if (m.access !== OpAccess.Read && m.access !== OpAccess.CondRead && m.access !== OpAccess.NoMemAccess) this.memWritten = true;
    }
    if (this.cur[ESP] === null && opt.espDelta !== undefined && espBefore !== null) {
      this.cur[ESP] = (espBefore + opt.espDelta) >>> 0;
    }
    if (opt.flags) this.defined = opt.flags(this.defined) & ARITH;
    else {
      const m = ins.rflagsModified & ARITH;
      const u = ins.rflagsUndefined & ARITH;
      this.defined = (this.defined & ~m) | (m & ~u);
    }
  }

  setKnown(i: number, v: number | null): void {
    this.cur[i] = v === null ? null : v >>> 0;
  }

  get definedFlags(): number {
    return this.defined;
  }

  get directionDown(): boolean {
    return this.df === 1;
  }

  finish(): GeneratedCase {
    const hex = (b: Uint8Array | number[]): string => Buffer.from(b).toString('hex');
    const regs: Record<string, number> = {};
    NAMES.forEach((n, i) => { regs[n] = this.init[i]! >>> 0; });
    regs.eflags = this.eflags;
    return {
      case: {
        code: hex(this.bytes),
        base: CODE_BASE,
        regs,
        mem: [{ addr: DATA_BASE, data: hex(this.data) }, { addr: STACK_WIN, data: hex(this.stack) }],
        map: [[STACK_PAGE, 0x1000]],
        read: [[DATA_BASE, DATA_SIZE], [STACK_WIN, STACK_WIN_SIZE]],
      },
      flagsMask: icedToEflags(this.defined) | EFLAGS_DF,
      faultMasks: this.faultMasks,
      text: this.text,
      families: this.families,
      mnemonics: this.mnemonics,
    };
  }
}

// ---- Flag rules for count-dependent instructions (Intel SDM vol. 2, SAL/SAR/SHL/SHR, RCL/RCR/
// ROL/ROR, SHLD, SHRD). `count` is the raw count; the CPU masks it to 5 bits. ----
export type ShiftOp = 'shl' | 'shr' | 'sar' | 'rol' | 'ror' | 'rcl' | 'rcr' | 'shld' | 'shrd';

export function shiftFlags(op: ShiftOp, w: Width, count: number): (d: number) => number {
  const c = count & 31;
  return (d) => {
    if (c === 0) return d; // a masked count of 0 changes no flags
    let def = F.CF;
    let undef = 0;
    if (op === 'rol' || op === 'ror' || op === 'rcl' || op === 'rcr') {
      // Only CF and OF are affected; OF only for 1-bit rotates.
      if (c === 1) def |= F.OF;
      else undef |= F.OF;
    } else {
      def |= F.SF | F.ZF | F.PF;
      undef |= F.AF;
      if (c === 1) def |= F.OF;
      else undef |= F.OF;
      // SHL/SHR: CF is undefined when the count is >= the operand size (SAR's is the sign).
      if ((op === 'shl' || op === 'shr') && c >= w) undef |= F.CF;
    }
    return (d | def) & ~undef;
  };
}

// ---- Families ----

type Family = (b: CaseBuilder, r: Rng) => void;

/** Destination operand: a register (index) or a memory operand. */
type Operand = { reg: number } | { mem: MemoryOperand; addr: number };

function rm(b: CaseBuilder, r: Rng, w: Width, write: boolean, avoid: number[] = []): Operand {
  if (r.chance(0.35)) return b.mem(w / 8, avoid);
  return { reg: write ? b.dest(w, avoid) : b.src(w, avoid) };
}

const alu: Family = (b, r) => {
  const op = r.pick(['add', 'adc', 'sub', 'sbb', 'cmp', 'and', 'or', 'xor', 'test', 'inc', 'dec', 'neg', 'not']);
  const w = r.pick(WIDTHS);
  const O = cap(op);
  if (op === 'inc' || op === 'dec' || op === 'neg' || op === 'not') {
    if ((op === 'inc' || op === 'dec') && w !== 8 && r.chance(0.3)) {
      b.emit(Instruction.createReg(code(`${O}_r${w}`), reg(w, b.dest(w)))); // 0x40+r short form
      return;
    }
    const d = rm(b, r, w, true);
    b.emit('reg' in d ? Instruction.createReg(code(`${O}_rm${w}`), reg(w, d.reg)) : Instruction.createMem(code(`${O}_rm${w}`), d.mem));
    return;
  }
  const writes = op !== 'cmp' && op !== 'test';
  const form = r.weighted([[3, 'rm_r'], [op === 'test' ? 0 : 2, 'r_rm'], [2, 'rm_imm'], [op === 'test' || w === 8 ? 0 : 2, 'rm_imm8'], [1, 'acc_imm']] as const);
  switch (form) {
    case 'rm_r': {
      const d = rm(b, r, w, writes);
      const s = reg(w, b.src(w));
      b.emit('reg' in d ? Instruction.createRegReg(code(`${O}_rm${w}_r${w}`), reg(w, d.reg), s) : Instruction.createMemReg(code(`${O}_rm${w}_r${w}`), d.mem, s));
      return;
    }
    case 'r_rm': {
      const d = reg(w, writes ? b.dest(w) : b.src(w));
      const s = rm(b, r, w, false);
      b.emit('reg' in s ? Instruction.createRegReg(code(`${O}_r${w}_rm${w}`), d, reg(w, s.reg)) : Instruction.createRegMem(code(`${O}_r${w}_rm${w}`), d, s.mem));
      return;
    }
    case 'rm_imm':
    case 'rm_imm8': {
      const c = code(form === 'rm_imm' ? `${O}_rm${w}_imm${w}` : `${O}_rm${w}_imm8`);
      const imm = form === 'rm_imm' ? b.imm(w) : b.imm(8);
      const d = rm(b, r, w, writes);
      b.emit('reg' in d ? Instruction.createRegI32(c, reg(w, d.reg), imm) : Instruction.createMemI32(c, d.mem, imm));
      return;
    }
    case 'acc_imm': {
      const acc = w === 8 ? 'AL' : w === 16 ? 'AX' : 'EAX';
      b.emit(Instruction.createRegI32(code(`${O}_${acc}_imm${w}`), reg(w, 0), b.imm(w)));
      return;
    }
  }
};

function shiftCount(r: Rng, w: Width): number {
  return r.pick([0, 1, 2, 3, w - 1, w, w + 1, 31, 32, 33, r.int(0, 255), r.int(0, 255)]);
}

const shift: Family = (b, r) => {
  const op = r.weighted<ShiftOp>([[3, 'shl'], [3, 'shr'], [3, 'sar'], [2, 'rol'], [2, 'ror'], [2, 'rcl'], [2, 'rcr'], [2, 'shld'], [2, 'shrd']]);
  const double = op === 'shld' || op === 'shrd';
  const w: Width = double ? r.pick([16, 32] as const) : r.pick(WIDTHS);
  const form = r.weighted([[double ? 0 : 2, '1'], [3, 'imm'], [3, 'cl']] as const);
  // SHLD/SHRD: a 16-bit shift by more than 16 leaves the result undefined; keep counts <= 16.
  const okCount = (n: number): boolean => !(double && w === 16 && (n & 31) > 16);
  let count = 1;
  const avoid: number[] = [];
  if (form === 'imm') {
    do count = shiftCount(r, w); while (!okCount(count));
  } else if (form === 'cl') {
    avoid.push(1);
    const known = b.regValue(8, 1);
    if (known !== null && okCount(known) && r.chance(0.5)) count = known;
    else {
      do count = shiftCount(r, w); while (!okCount(count));
      b.ensure(1, ((r.u32() & ~0xff) | count) >>> 0);
    }
  }
  const O = cap(op);
  const d = rm(b, r, w, true, avoid);
  let ins: Instruction;
  if (double) {
    const s = reg(w, b.src(w));
    const c = code(`${O}_rm${w}_r${w}_${form === 'cl' ? 'CL' : 'imm8'}`);
    if (form === 'cl') ins = 'reg' in d ? Instruction.createRegRegReg(c, reg(w, d.reg), s, Register.CL) : Instruction.createMemRegReg(c, d.mem, s, Register.CL);
    else ins = 'reg' in d ? Instruction.createRegRegI32(c, reg(w, d.reg), s, count) : Instruction.createMemRegI32(c, d.mem, s, count);
  } else {
    const c = code(`${O}_rm${w}_${form === 'cl' ? 'CL' : form === '1' ? '1' : 'imm8'}`);
    if (form === 'cl') ins = 'reg' in d ? Instruction.createRegReg(c, reg(w, d.reg), Register.CL) : Instruction.createMemReg(c, d.mem, Register.CL);
    else ins = 'reg' in d ? Instruction.createRegI32(c, reg(w, d.reg), count) : Instruction.createMemI32(c, d.mem, count);
  }
  // RCL/RCR read CF only when they rotate; requiring it defined anyway is harmless.
  if ((op === 'rcl' || op === 'rcr') && !(b.definedFlags & F.CF)) {
    b.emitRaw(Instruction.createRegI32(Code.Cmp_rm32_imm32, R32[r.int(0, 7)]!, b.imm(32)));
  }
  // Unicorn 2.0.1 gets CF (and OF) wrong after SHLD/SHRD with a memory destination, and after
  // SHL/SHR/SAR of memory by CL (the memory result is right; checked against the real CPU).
  // Those flags are treated as unknown here so an oracle defect is not reported as ntflow's.
  const unicornCfBug = 'mem' in d && (double || (form === 'cl' && (op === 'shl' || op === 'shr' || op === 'sar')));
  const rule = shiftFlags(op, w, count);
  b.emit(ins, { flags: unicornCfBug && count & 31 ? (x) => rule(x) & ~(F.CF | F.OF) : rule, noFlagCheck: true });
};

const mulDiv: Family = (b, r) => {
  const kind = r.weighted([[2, 'mul'], [2, 'imul1'], [2, 'imul2'], [2, 'imul3'], [3, 'div'], [3, 'idiv']] as const);
  if (kind === 'imul2' || kind === 'imul3') {
    const w = r.pick([16, 32] as const);
    const d = reg(w, b.dest(w));
    const s = rm(b, r, w, false);
    if (kind === 'imul2') {
      const c = code(`Imul_r${w}_rm${w}`);
      b.emit('reg' in s ? Instruction.createRegReg(c, d, reg(w, s.reg)) : Instruction.createRegMem(c, d, s.mem));
    } else {
      const i8 = r.chance(0.5);
      const c = code(i8 ? `Imul_r${w}_rm${w}_imm8` : `Imul_r${w}_rm${w}_imm${w}`);
      const imm = b.imm(i8 ? 8 : w);
      b.emit('reg' in s ? Instruction.createRegRegI32(c, d, reg(w, s.reg), imm) : Instruction.createRegMemI32(c, d, s.mem, imm));
    }
    return;
  }
  const w = r.pick(WIDTHS);
  const O = kind === 'imul1' ? 'Imul' : cap(kind);
  const c = code(`${O}_rm${w}`);
  if (kind === 'mul' || kind === 'imul1') {
    const s = rm(b, r, w, false);
    b.emit('reg' in s ? Instruction.createReg(c, reg(w, s.reg)) : Instruction.createMem(c, s.mem));
    return;
  }
  // DIV/IDIV: a zero divisor and quotient overflow both raise #DE; also make plenty that fit.
  const implicit = w === 8 ? [0] : [0, 2];
  const mode = r.weighted([[1, 'zero'], [6, 'fit'], [3, 'random']] as const);
  let divisor: number | null;
  let operand: Operand;
  if (mode === 'zero' || r.chance(0.6)) {
    const i = b.src(w, [...implicit, 4]);
    if (mode === 'zero') {
      const full = w === 8 ? i & 3 : i;
      const known = b.known(full) ?? b.value();
      const cleared = w === 32 ? 0 : w === 16 ? known & ~0xffff : i >= 4 ? known & ~0xff00 : known & ~0xff;
      b.ensure(full, cleared);
    } else if (b.regValue(w, i) === null || b.regValue(w, i) === 0) {
      b.ensure(w === 8 ? i & 3 : i, b.value() | (w === 8 && i >= 4 ? 0x100 : 1));
    }
    operand = { reg: i };
    divisor = b.regValue(w, i);
  } else {
    const m = b.mem(w / 8, implicit);
    operand = m;
    divisor = b.memValue(m.addr, w / 8);
  }
  if (mode === 'fit' && divisor) {
    const low = b.value() & maskOf(w);
    let high: number;
    if (kind === 'div') high = r.int(0, divisor - 1);
    else high = signed(low, w) < 0 ? maskOf(w) : 0; // sign-extension: fits unless MIN / -1
    if (w === 8) b.ensure(0, ((b.value() & ~0xffff) | (high << 8) | low) >>> 0);
    else if (w === 16) {
      b.ensure(0, ((b.value() & ~0xffff) | low) >>> 0);
      b.ensure(2, ((b.value() & ~0xffff) | high) >>> 0);
    } else {
      b.ensure(0, low);
      b.ensure(2, high);
    }
  }
  b.emit('reg' in operand ? Instruction.createReg(c, reg(w, operand.reg)) : Instruction.createMem(c, operand.mem));
};

const bits: Family = (b, r) => {
  const w = r.pick([16, 32] as const);
  if (r.chance(0.3)) {
    // BSF/BSR. A zero source leaves the destination undefined (SDM), so then overwrite it.
    const op = r.pick(['Bsf', 'Bsr']);
    const c = code(`${op}_r${w}_rm${w}`);
    let s: Operand;
    let v: number | null;
    if (r.chance(0.6)) {
      const i = b.src(w);
      if (b.isFree(i) && r.chance(0.3)) b.ensure(i, w === 16 ? b.value() & ~0xffff : 0);
      s = { reg: i };
      v = b.regValue(w, i);
    } else {
      const m = b.mem(w / 8);
      s = m;
      v = b.memValue(m.addr, w / 8);
    }
    const d = b.dest(w);
    b.emit('reg' in s ? Instruction.createRegReg(c, reg(w, d), reg(w, s.reg)) : Instruction.createRegMem(c, reg(w, d), s.mem));
    if (v === null || v === 0) b.overwrite(d);
    return;
  }
  const O = r.pick(['Bt', 'Bts', 'Btr', 'Btc']);
  if (r.chance(0.4)) {
    const imm = r.pick([0, 1, w - 1, w, w + 1, r.int(0, 255)]);
    const c = code(`${O}_rm${w}_imm8`);
    const d = rm(b, r, w, true);
    b.emit('reg' in d ? Instruction.createRegI32(c, reg(w, d.reg), imm) : Instruction.createMemI32(c, d.mem, imm));
    return;
  }
  const c = code(`${O}_rm${w}_r${w}`);
  if (r.chance(0.5)) {
    b.emit(Instruction.createRegReg(c, reg(w, b.dest(w)), reg(w, b.src(w))));
    return;
  }
  // Memory bit string with a register offset: the offset is signed and may reach outside the
  // operand, so it is kept small and the operand sits in the middle of the data region.
  const o = b.src(w, [4]);
  const offset = r.int(-128, 255);
  b.ensure(o, w === 16 ? ((b.value() & ~0xffff) | (offset & 0xffff)) >>> 0 : offset >>> 0);
  const m = b.mem(w / 8, [o], DATA_BASE + 0x40, DATA_BASE + 0xc0);
  b.emit(Instruction.createMemReg(c, m.mem, reg(w, o)));
};

const stack: Family = (b, r) => {
  const kind = r.weighted([
    [3, 'push_r'], [2, 'push_imm'], [2, 'push_m'], [3, 'pop_r'], [2, 'pop_m'], [1, 'pusha'], [1, 'popa'],
    [2, 'pushf'], [2, 'enter'], [2, 'leave'],
  ] as const);
  const w = r.chance(0.25) ? 16 : 32;
  const n = w / 8;
  switch (kind) {
    case 'push_r':
      b.emit(Instruction.createReg(code(`Push_r${w}`), reg(w, b.src(w))), { espDelta: -n });
      return;
    case 'push_imm': {
      const i8 = r.chance(0.5);
      const c = w === 32 ? (i8 ? Code.Pushd_imm8 : Code.Pushd_imm32) : i8 ? Code.Pushw_imm8 : Code.Push_imm16;
      b.emit(Instruction.createI32(c, b.imm(i8 ? 8 : w)), { espDelta: -n });
      return;
    }
    case 'push_m':
      b.emit(Instruction.createMem(code(`Push_rm${w}`), b.mem(n).mem), { espDelta: -n });
      return;
    case 'pop_r':
      b.emit(Instruction.createReg(code(`Pop_r${w}`), reg(w, b.dest(w))), { espDelta: n });
      return;
    case 'pop_m':
      // With ESP as base, the address is computed after ESP is incremented (SDM POP).
      b.emit(Instruction.createMem(code(`Pop_rm${w}`), b.mem(n).mem), { espDelta: n });
      return;
    case 'pusha':
      b.emit(Instruction.create(w === 32 ? Code.Pushad : Code.Pushaw), { espDelta: -8 * n });
      return;
    case 'popa':
      b.emit(Instruction.create(w === 32 ? Code.Popad : Code.Popaw), { espDelta: 8 * n });
      return;
    case 'pushf': {
      // The pushed image holds undefined flags too; clear those bits in memory with an AND so
      // only defined ones are compared (bit 1, IF and DF are known).
      const keep = icedToEflags(b.definedFlags) | 0x602;
      b.emitRaw(Instruction.create(w === 32 ? Code.Pushfd : Code.Pushfw), { espDelta: -n });
      const top = new MemoryOperand(Register.ESP, Register.None, 1, 0n, 0, false, Register.None);
      b.emit(Instruction.createMemI32(w === 32 ? Code.And_rm32_imm32 : Code.And_rm16_imm16, top, signed(keep, w)));
      return;
    }
    case 'enter': {
      const size = r.pick([0, 4, 8, r.int(0, 32)]);
      // Levels 0 and 1 only: Unicorn 2.0.1 copies the wrong frame pointers for level >= 2
      // (e.g. `enter 8,2` stores EIP-like garbage where the CPU stores [EBP-4]).
      const level = r.pick([0, 0, 1]);
      if (level > 1) {
        // Level > 1 copies frame pointers from [ebp-4], [ebp-8], ...: aim EBP into the stack.
        b.ensure(5, (b.known(ESP)! + 4 * r.int(0, 16)) >>> 0);
      }
      const ebp = (b.known(ESP)! - 4) >>> 0;
      const delta = level === 0 ? 4 + size : 4 + 4 * level + size;
      b.emit(Instruction.createI32I32(Code.Enterd_imm16_imm8, size, level), { espDelta: -delta });
      b.setKnown(5, ebp);
      if (r.chance(0.5)) emitLeave(b);
      return;
    }
    case 'leave':
      if (b.known(5) === null || r.chance(0.3)) b.ensure(5, (b.known(ESP)! + 4 * r.int(0, 16)) >>> 0);
      // EBP must point into the stack window: it becomes ESP.
      if (Math.abs(b.known(5)! - b.known(ESP)!) > 0x100) b.ensure(5, (b.known(ESP)! + 4 * r.int(0, 16)) >>> 0);
      emitLeave(b);
      return;
  }
};

function emitLeave(b: CaseBuilder): void {
  const ebp = b.known(5)!;
  b.emit(Instruction.create(Code.Leaved));
  b.setKnown(ESP, ebp + 4);
}

const movx: Family = (b, r) => {
  const [op, dw, sw] = r.pick([['Movzx', 16, 8], ['Movzx', 32, 8], ['Movzx', 32, 16], ['Movsx', 16, 8], ['Movsx', 32, 8], ['Movsx', 32, 16]] as const);
  const c = code(`${op}_r${dw}_rm${sw}`);
  const d = reg(dw, b.dest(dw));
  const s = rm(b, r, sw, false);
  b.emit('reg' in s ? Instruction.createRegReg(c, d, reg(sw, s.reg)) : Instruction.createRegMem(c, d, s.mem));
};

const lea: Family = (b, r) => {
  const w = r.pick([16, 32] as const);
  const d = reg(w, b.dest(w));
  let m: MemoryOperand;
  if (r.chance(0.25)) {
    // 16-bit addressing (0x67): [bx|bp + si|di + disp8/16] and the single-register forms.
    const [base, index] = r.pick([
      [Register.BX, Register.SI], [Register.BX, Register.DI], [Register.BP, Register.SI], [Register.BP, Register.DI],
      [Register.SI, Register.None], [Register.DI, Register.None], [Register.BX, Register.None], [Register.BP, Register.None],
      [Register.None, Register.None],
    ] as const);
    const dispSize = base === Register.None ? 2 : r.pick([0, 1, 2]);
    const disp = dispSize === 1 ? r.int(-128, 127) : dispSize === 2 ? r.int(0, 0xffff) : 0;
    m = new MemoryOperand(base, index, 1, BigInt(disp), dispSize, false, Register.None);
  } else {
    // Any 32-bit form; LEA only computes the address, so any register values do.
    const base = r.chance(0.85) ? R32[r.int(0, 7)]! : Register.None;
    const index = r.chance(0.6) ? R32[r.pick([0, 1, 2, 3, 5, 6, 7])]! : Register.None;
    let dispSize = r.pick([0, 1, 4]);
    if (base === Register.None) dispSize = 4;
    const disp = dispSize === 1 ? r.int(-128, 127) : dispSize === 4 ? b.value() | 0 : 0;
    m = new MemoryOperand(base, index, r.pick([1, 2, 4, 8]), BigInt(disp), dispSize, false, Register.None);
  }
  b.emit(Instruction.createRegMem(code(`Lea_r${w}_m`), d, m));
};

const exchange: Family = (b, r) => {
  const kind = r.weighted([[3, 'xchg'], [1, 'xchg_acc'], [3, 'cmpxchg'], [3, 'xadd'], [2, 'bswap']] as const);
  if (kind === 'bswap') {
    // BSWAP with a 16-bit operand is undefined (SDM); only the 32-bit form.
    b.emit(Instruction.createReg(Code.Bswap_r32, R32[b.dest(32)]!));
    return;
  }
  if (kind === 'xchg_acc') {
    const w = r.pick([16, 32] as const);
    b.emit(Instruction.createRegReg(code(w === 16 ? 'Xchg_r16_AX' : 'Xchg_r32_EAX'), reg(w, b.dest(w)), reg(w, 0)));
    return;
  }
  const w = r.pick(WIDTHS);
  const O = cap(kind);
  const c = code(`${O}_rm${w}_r${w}`);
  const s = reg(w, b.dest(w));
  // cmpxchg: sometimes make the comparison succeed (accumulator = destination); the destination
  // then must not involve EAX, which is about to be set.
  const equal = kind === 'cmpxchg' && r.chance(0.4);
  const d = rm(b, r, w, true, equal ? [0] : []);
  if (equal) {
    const v = 'reg' in d ? b.regValue(w, d.reg) : b.memValue(d.addr, w / 8);
    if (v !== null) b.ensure(0, (((b.known(0) ?? b.value()) & ~maskOf(w)) | v) >>> 0);
  }
  b.emit('reg' in d ? Instruction.createRegReg(c, reg(w, d.reg), s) : Instruction.createMemReg(c, d.mem, s));
};

const strings: Family = (b, r) => {
  const op = r.pick(['movs', 'stos', 'lods', 'cmps', 'scas'] as const);
  const size = r.pick(['b', 'w', 'd'] as const);
  const conditional = op === 'cmps' || op === 'scas';
  // REPNE only where it means something (cmps/scas); plain REP elsewhere.
  const rep = r.weighted([[2, RepPrefixKind.None], [3, RepPrefixKind.Repe], [conditional ? 3 : 0, RepPrefixKind.Repne]] as const);
  const n = r.pick([0, 1, 2, 3, 4, 5, 8]);
  const where = (): number => DATA_BASE + 0x40 + r.int(0, 0x80);
  const usesSi = op === 'movs' || op === 'lods' || op === 'cmps';
  const usesDi = op !== 'lods';
  let esi = 0;
  if (usesSi) b.ensure(6, (esi = where()));
  if (usesDi) b.ensure(7, op === 'cmps' && r.chance(0.3) ? esi : where());
  if (rep !== RepPrefixKind.None) b.ensure(1, n);
  if (op === 'scas' && r.chance(0.5)) {
    const bytes = size === 'b' ? 1 : size === 'w' ? 2 : 4;
    const v = b.memValue(b.known(7)!, bytes);
    if (v !== null) b.ensure(0, ((b.known(0) ?? b.value()) & ~maskOf((bytes * 8) as Width) | v) >>> 0);
  }
  const S = cap(op) + size;
  const make = Instruction as unknown as Record<string, (...a: unknown[]) => Instruction>;
  const ins = op === 'stos' || op === 'scas' ? make[`create${S}`]!(32, rep) : make[`create${S}`]!(32, Register.None, rep);
  // A REP prefix with ECX = 0 does nothing, flags included.
  const skip = rep !== RepPrefixKind.None && n === 0;
  b.emit(ins, skip ? { flags: (d) => d } : {});
};

const conditional: Family = (b, r) => {
  const cc = r.pick(CONDITIONS);
  if (r.chance(0.5)) {
    const d = rm(b, r, 8, true);
    const c = code(`Set${cc}_rm8`);
    b.emit('reg' in d ? Instruction.createReg(c, reg(8, d.reg)) : Instruction.createMem(c, d.mem));
    return;
  }
  const w = r.pick([16, 32] as const);
  const c = code(`Cmov${cc}_r${w}_rm${w}`);
  const d = reg(w, b.dest(w));
  const s = rm(b, r, w, false);
  b.emit('reg' in s ? Instruction.createRegReg(c, d, reg(w, s.reg)) : Instruction.createRegMem(c, d, s.mem));
};

export const FAMILIES: Record<string, [number, Family]> = {
  alu: [20, alu],
  shift: [16, shift],
  muldiv: [12, mulDiv],
  bits: [9, bits],
  stack: [11, stack],
  movx: [5, movx],
  lea: [5, lea],
  exchange: [8, exchange],
  strings: [8, strings],
  setcc_cmovcc: [8, conditional],
};

/** One case of 1-6 instructions (plus the set-up movs/cmps the model needs). */
export function generateCase(rng: Rng, only?: string[], maxInstructions = 6): GeneratedCase {
  const b = new CaseBuilder(rng);
  const entries = Object.entries(FAMILIES).filter(([name]) => !only || only.includes(name));
  const n = rng.int(1, maxInstructions);
  for (let k = 0; k < n; k++) {
    const [name, [, fam]] = rng.weighted(entries.map((e) => [e[1][0], e] as const));
    b.families.push(name);
    fam(b, rng);
  }
  return b.finish();
}

/** `count` cases from one seed: case i depends only on (seed, i) through one stream. */
export function generateCases(seed: number, count: number, only?: string[], maxInstructions = 6): GeneratedCase[] {
  const rng = new Rng(seed);
  const out: GeneratedCase[] = [];
  for (let i = 0; i < count; i++) out.push(generateCase(rng, only, maxInstructions));
  return out;
}
