// The IA-32 processor: architectural state, segmented and paged memory access, lazy flags,
// exception delivery through the IDT, and the fetch-decode-execute loop. Instruction semantics live
// in the family files under ops/; privilege-changing microcode (sysenter, sysexit, int, iret) is
// here because it is where ring transitions and MSR reads are reported.
import { Subject } from 'rxjs';
import { BATCH_INSTRUCTIONS, BatchCollector, type EventBatch } from '../batches.js';
import { Mnemonic } from 'iced-x86';
import type {
  MsrSource,
  RingMechanism,
  StopKind,
  TraceEvent,
} from '../events.js';
import { Mmu, PageFault, PhysicalMemory, hex } from '../mmu.js';
import { EmulatorError, GuestFault, VECTOR_NAMES, Vector, faultCombination, pushesErrorCode } from './faults.js';
import { ARITH_FLAGS, F, LazyOp, PARITY, POPF_MASK } from './flags.js';
import { Op } from './op.js';
import { decodeAt } from './decode.js';

export const enum Seg {
  ES = 0,
  CS = 1,
  SS = 2,
  DS = 3,
  FS = 4,
  GS = 5,
}
export const SEG_NAMES = ['es', 'cs', 'ss', 'ds', 'fs', 'gs'] as const;

export const enum R {
  EAX = 0,
  ECX,
  EDX,
  EBX,
  ESP,
  EBP,
  ESI,
  EDI,
}
export const REG_NAMES = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'] as const;

// CR0 / CR4 bits.
export const CR0_PE = 1;
export const CR0_MP = 2;
export const CR0_EM = 4;
export const CR0_TS = 8;
export const CR0_ET = 0x10;
export const CR0_WP = 0x10000;
export const CR0_PG = 0x80000000 | 0;
export const CR4_TSD = 4;
export const CR4_DE = 8;
export const CR4_PSE = 0x10;
export const CR4_PCE = 0x100;
const CR4_SUPPORTED = CR4_TSD | CR4_DE | CR4_PSE | CR4_PCE;

// Debug registers (SDM vol. 3, 17.2). DR6 bits 4-11 and 16-31 read as 1, bit 12 as 0; DR7 bit 10
// reads as 1 and bits 11, 12, 14, 15 as 0.
export const DR6_INIT = 0xffff0ff0 | 0;
export const DR6_BD = 0x2000;
export const DR6_BS = 0x4000;
const DR6_WRITABLE = 0xe00f;
export const DR7_INIT = 0x400;
export const DR7_GD = 0x2000;
const DR7_WRITABLE = 0xffff23ff | 0;

// Model-specific registers this CPU has.
export const MSR_TSC = 0x10;
export const MSR_SYSENTER_CS = 0x174;
export const MSR_SYSENTER_ESP = 0x175;
export const MSR_SYSENTER_EIP = 0x176;

/** A CPU with SYSENTER (Pentium II and later) or one without (Pentium), as `--cpu` chooses. */
export type CpuModel = 'sysenter' | 'int2e';

/** Descriptor attribute bits kept in the segment cache (the descriptor's high dword >> 8). */
const enum A {
  TYPE = 0xf,
  ACCESSED = 0x1,
  WRITABLE = 0x2, // data
  READABLE = 0x2, // code
  EXPAND_DOWN = 0x4, // data
  CONFORMING = 0x4, // code
  CODE = 0x8,
  S = 0x10, // code/data (not system)
  P = 0x80,
  DB = 0x4000,
  G = 0x8000,
}

/** A decoded segment descriptor. */
export interface Descriptor {
  base: number;
  limit: number;
  /** bits 8-23 of the high dword: type, S, DPL, P, AVL, D/B, G */
  attr: number;
  dpl: number;
}

export interface StopReason {
  kind: StopKind;
  detail?: string;
}

/** An access to an I/O port; `out` handlers get the value, `in` handlers return one. */
export interface IoPorts {
  out: (port: number, size: 1 | 2 | 4, value: number) => void;
  in: (port: number, size: 1 | 2 | 4) => number;
}

export interface CpuSnapshot {
  regs: number[];
  eip: number;
  eflags: number;
  segments: { selector: number; base: number; limit: number; attr: number; usable: boolean }[];
  cpl: number;
  gdtr: { base: number; limit: number };
  idtr: { base: number; limit: number };
  tr: { selector: number; base: number; limit: number; attr: number };
  cr0: number;
  cr2: number;
  cr3: number;
  cr4: number;
  msr: { sysenterCs: number; sysenterEsp: number; sysenterEip: number; tscOffset: number };
  icount: number;
  /** Debug registers (absent in snapshots taken before ntflow had them: reset values then). */
  debug?: { dr0: number; dr1: number; dr2: number; dr3: number; dr6: number; dr7: number };
}

const SEG_FLAT_LIMIT = 0xffffffff;
/** Shared by every event without register or memory effects (consumers treat effect lists as read-only). */
const NO_EFFECTS: readonly number[] = Object.freeze([]);

/** The first n entries of a typed buffer as a plain array (a loop: Array.from over a subarray is several times slower). */
function listOf(buf: Uint32Array, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(buf[i]);
  return out;
}

export class CPU {
  readonly regs = new Int32Array(8);
  eip = 0;
  /** Set by handlers that branch; the loop commits it as the new EIP when the instruction retires. */
  nextEip = 0;
  /** EFLAGS, except the arithmetic flags named in `lazyMask`, which `lf*` describe. */
  ef = F.FIXED1;
  lazyMask = 0;
  lfOp = 0;
  lfA = 0;
  lfB = 0;
  lfRes = 0;
  lfBits = 32;
  lfCin = 0;
  /** Bumped whenever the lazy-flag record or the stored flags are replaced (the traced loop's cheap "did EFLAGS change?"). */
  flagsVersion = 0;
  /** Set when a selector or control register may have changed (the traced loop diffs them only then). */
  systemDirty = true;

  readonly segSel = new Uint16Array(6);
  readonly segBase = new Int32Array(6);
  readonly segLimit: number[] = [0, 0, 0, 0, 0, 0];
  readonly segAttr = new Uint16Array(6);
  readonly segUsable = new Uint8Array(6);
  cpl = 0;
  /** cpl === 3: memory accesses are user-mode accesses for paging. */
  user = false;

  gdtrBase = 0;
  gdtrLimit = 0;
  idtrBase = 0;
  idtrLimit = 0x3ff;
  trSel = 0;
  trBase = 0;
  trLimit = 0;
  trAttr = 0;

  cr0 = CR0_ET;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  sysenterCs = 0;
  sysenterEsp = 0;
  sysenterEip = 0;
  /** TSC = icount + tscOffset: deterministic, never the wall clock. */
  tscOffset = 0;

  /**
   * Debug registers, indexed by number: DR0-DR3 (breakpoint addresses), DR6 (status), DR7
   * (control). DR4 and DR5 are never stored: MOV aliases them to DR6 and DR7 when CR4.DE = 0 and
   * raises #UD when CR4.DE = 1. Read them freely (a guest layer saving a thread's context); write
   * them with writeDebugRegister, which keeps the breakpoint matching in step with DR7.
   */
  readonly dr = new Int32Array(8);
  /**
   * Non-zero while something debug-related may happen at an instruction boundary: EFLAGS.TF or
   * RF set, a breakpoint enabled in DR7, or a #DB trap held back. The loops test this one field
   * per instruction and take the slow step (stepDebug) only then.
   */
  debugArmed = 0;
  /** The part of debugArmed that is not EFLAGS: breakpoints enabled, traps held. */
  private debugBase = 0;
  /** DR7's enabled breakpoints by kind, as masks of breakpoint numbers (bit n = DRn). */
  private bpExec = 0;
  private bpData = 0;
  private bpIo = 0;
  /** DR6 B0-B3 bits of the data and I/O breakpoints the current instruction hit (traps). */
  dataHits = 0;
  /**
   * Set when the current instruction invoked an interrupt handler itself (INT n, INT3, INTO,
   * INT1): no single-step trap follows it, as the handler is entered with TF clear (SDM vol. 3,
   * 17.3.1.4; the NASM and Ralf Brown notes: "interrupts are not traced").
   */
  stepSuppressed = false;
  /** icount of the last MOV SS / POP SS: debug exceptions wait until after the next instruction. */
  ssShadowAt = -2;
  /** #DB bits carried across the MOV SS shadow, and bits held because the machine stopped. */
  private shadowDb = 0;
  private heldDb = 0;

  /** Instructions retired. */
  icount = 0;
  /** Linear address of the last memory operand read by a read-modify-write handler. */
  lastLin = 0;

  readonly mmu: Mmu;
  io: IoPorts = {
    out: () => {},
    in: () => 0xffffffff,
  };

  // --- events -------------------------------------------------------------------------------
  readonly events = new Subject<TraceEvent>();
  /** The same events in batches, instructions in columns (core/batches.ts). */
  readonly batches = new Subject<EventBatch>();
  /** True while someone subscribes to either: the loop then collects effects. */
  tracing = false;
  /** events has subscribers: an object per instruction. */
  private perEvent = false;
  /** batches has subscribers: each instruction into the collector's columns. */
  private batching = false;
  private collector: BatchCollector | null = null;
  seq = 0;
  /** Guest thread id stamped on events (the guest layer sets it on thread switches). */
  threadId = 0;
  // Effects since the last effect-carrying event (only while tracing), in typed buffers with a
  // length, reused: a JS array emptied with `length = 0` after every instruction gives up its
  // storage and allocates again on the next push (most of a recording's garbage). Event objects
  // get arrays copied from them.
  /** Memory writes since the last effect-carrying event: [linear, size, value] triples. */
  private traceWrites = new Uint32Array(48);
  private traceWritesLength = 0;
  private traceTableWrites: number[] = [];
  /** The register changes of the event being made: [RegId, value] pairs (diffRegs). */
  private readonly regDiff = new Uint32Array(2 * 19);
  private regDiffLength = 0;
  private readonly traceBase = new Int32Array(19);

  // --- execution control --------------------------------------------------------------------
  private running = false;
  private stop: StopReason | null = null;
  /** Bare `exec` machine: stop at the first exception instead of delivering it through the IDT. */
  stopOnException = false;
  /** Set when stopOnException stopped the machine. */
  lastException: { vector: number; eip: number; errorCode: number | null; cr2: number | null } | null = null;
  /** Vector being delivered (for double-fault classification), -1 when none. */
  private delivering = -1;

  /**
   * Probes declared on guest labels: called with the register values at that instruction, before
   * it executes. Keyed by linear address; attached to the decoded instruction, so an address
   * without a probe costs nothing. Register them before the code first runs (or call
   * flushDecodeCache).
   */
  readonly probes = new Map<number, (cpu: CPU) => void>();

  // --- decoded-instruction cache, keyed by physical page --------------------------------------
  private readonly codeCache = new Map<number, (Op | undefined)[]>();
  private fetchLin = -1;
  private fetchPage: (Op | undefined)[] = [];
  private fetchPhysBase = 0;

  constructor(
    readonly mem: PhysicalMemory,
    readonly model: CpuModel = 'sysenter',
  ) {
    this.mmu = new Mmu(mem);
    mem.onCodeWrite = (page) => this.invalidateCodePage(page);
    for (let s = 0; s < 6; s++) this.segLimit[s] = 0xffff;
    this.dr[6] = DR6_INIT;
    this.dr[7] = DR7_INIT;
    this.powerOn = this.snapshot();
  }

  // ============================================================================================
  // Registers
  // ============================================================================================

  getReg8(r: number): number {
    return r < 4 ? this.regs[r] & 0xff : (this.regs[r - 4] >> 8) & 0xff;
  }
  setReg8(r: number, v: number): void {
    if (r < 4) this.regs[r] = (this.regs[r] & ~0xff) | (v & 0xff);
    else this.regs[r - 4] = (this.regs[r - 4] & ~0xff00) | ((v & 0xff) << 8);
  }
  getReg(r: number, size: number): number {
    if (size === 4) return this.regs[r];
    if (size === 2) return this.regs[r] & 0xffff;
    return this.getReg8(r);
  }
  setReg(r: number, size: number, v: number): void {
    if (size === 4) this.regs[r] = v;
    else if (size === 2) this.regs[r] = (this.regs[r] & ~0xffff) | (v & 0xffff);
    else this.setReg8(r, v);
  }

  // ============================================================================================
  // Flags
  // ============================================================================================

  /** Record an arithmetic result whose six flags are computed on demand. Values masked to `bits`. */
  setLazy(op: LazyOp, a: number, b: number, res: number, bits: number): void {
    this.flagsVersion++;
    this.lfOp = op;
    this.lfA = a;
    this.lfB = b;
    this.lfRes = res;
    this.lfBits = bits;
    this.lazyMask = ARITH_FLAGS;
  }

  /** INC/DEC: like setLazy but CF keeps its value. */
  setLazyKeepCF(op: LazyOp, a: number, res: number, bits: number): void {
    this.flagsVersion++;
    const cf = this.getCF();
    this.ef = (this.ef & ~F.CF) | cf;
    this.lfOp = op;
    this.lfA = a;
    this.lfB = 1;
    this.lfRes = res;
    this.lfBits = bits;
    this.lazyMask = ARITH_FLAGS & ~F.CF;
  }

  getCF(): number {
    if (!(this.lazyMask & F.CF)) return this.ef & F.CF;
    const a = this.lfA >>> 0;
    const b = this.lfB >>> 0;
    const r = this.lfRes >>> 0;
    switch (this.lfOp) {
      case LazyOp.ADD:
        return r < a ? 1 : 0;
      case LazyOp.ADC:
        return this.lfCin ? (r <= a ? 1 : 0) : r < a ? 1 : 0;
      case LazyOp.SUB:
        return a < b ? 1 : 0;
      case LazyOp.SBB:
        return this.lfCin ? (a <= b ? 1 : 0) : a < b ? 1 : 0;
      case LazyOp.NEG:
        return r !== 0 ? 1 : 0;
      default:
        return 0;
    }
  }
  getZF(): number {
    if (!(this.lazyMask & F.ZF)) return (this.ef >> 6) & 1;
    return this.lfRes === 0 ? 1 : 0;
  }
  getSF(): number {
    if (!(this.lazyMask & F.SF)) return (this.ef >> 7) & 1;
    return (this.lfRes >>> (this.lfBits - 1)) & 1;
  }
  getPF(): number {
    if (!(this.lazyMask & F.PF)) return (this.ef >> 2) & 1;
    return PARITY[this.lfRes & 0xff];
  }
  getOF(): number {
    if (!(this.lazyMask & F.OF)) return (this.ef >> 11) & 1;
    const a = this.lfA;
    const b = this.lfB;
    const r = this.lfRes;
    const top = this.lfBits - 1;
    switch (this.lfOp) {
      case LazyOp.ADD:
      case LazyOp.ADC:
        return (((a ^ r) & (b ^ r)) >>> top) & 1;
      case LazyOp.SUB:
      case LazyOp.SBB:
        return (((a ^ b) & (a ^ r)) >>> top) & 1;
      case LazyOp.INC:
      case LazyOp.NEG:
        return r === (1 << top) ? 1 : 0; // 1 << 31 is the int32 minimum, as results are stored
      case LazyOp.DEC:
        return r === ((1 << top) - 1 | 0) ? 1 : 0;
      default:
        return 0;
    }
  }
  getAF(): number {
    if (!(this.lazyMask & F.AF)) return (this.ef >> 4) & 1;
    if (this.lfOp === LazyOp.LOGIC) return 0;
    return ((this.lfA ^ this.lfB ^ this.lfRes) >> 4) & 1;
  }

  /** The full EFLAGS value, lazy flags computed. */
  getEflags(): number {
    if (this.lazyMask === 0) return this.ef;
    const m = this.lazyMask;
    let f = this.ef & ~m;
    if (m & F.CF) f |= this.getCF();
    if (m & F.PF) f |= this.getPF() << 2;
    if (m & F.AF) f |= this.getAF() << 4;
    if (m & F.ZF) f |= this.getZF() << 6;
    if (m & F.SF) f |= this.getSF() << 7;
    if (m & F.OF) f |= this.getOF() << 11;
    return f;
  }
  /** Replace EFLAGS (all bits; callers apply privilege rules first). */
  setEflags(v: number): void {
    this.flagsVersion++;
    this.ef = (v & ~0x8028) | F.FIXED1; // bits 3, 5, 15 read as 0, bit 1 as 1
    this.lazyMask = 0;
    this.debugArmed = (this.ef & (F.TF | F.RF)) | this.debugBase;
  }
  /** Set the given arithmetic flags eagerly from `bits` (other arithmetic flags keep their values). */
  setFlagBits(mask: number, bits: number): void {
    this.flagsVersion++;
    if (this.lazyMask & mask) this.ef = this.getEflags(), (this.lazyMask = 0);
    this.ef = (this.ef & ~mask) | (bits & mask);
  }
  get IF(): boolean {
    return (this.ef & F.IF) !== 0;
  }
  get iopl(): number {
    return (this.ef >> 12) & 3;
  }

  /** Condition codes as iced-x86 numbers them (ConditionCode: o=1 … g=16). */
  cond(cc: number): boolean {
    switch (cc) {
      case 1: return this.getOF() === 1;
      case 2: return this.getOF() === 0;
      case 3: return this.getCF() === 1;
      case 4: return this.getCF() === 0;
      case 5: return this.getZF() === 1;
      case 6: return this.getZF() === 0;
      case 7: return (this.getCF() | this.getZF()) === 1;
      case 8: return (this.getCF() | this.getZF()) === 0;
      case 9: return this.getSF() === 1;
      case 10: return this.getSF() === 0;
      case 11: return this.getPF() === 1;
      case 12: return this.getPF() === 0;
      case 13: return this.getSF() !== this.getOF();
      case 14: return this.getSF() === this.getOF();
      case 15: return this.getZF() === 1 || this.getSF() !== this.getOF();
      case 16: return this.getZF() === 0 && this.getSF() === this.getOF();
      default:
        throw new EmulatorError(`unknown condition code ${cc}`);
    }
  }

  // ============================================================================================
  // Memory: segmentation, then paging
  // ============================================================================================

  /** The linear address of a memory operand, after the segment limit check. */
  ea(op: Op, size: number): number {
    let off = op.disp;
    if (op.base >= 0) off += this.regs[op.base];
    if (op.index >= 0) off += this.regs[op.index] << op.scale;
    if (op.addr16) off &= 0xffff;
    return this.segLin(op.seg, off | 0, size);
  }

  /** Segment-relative offset → linear address, with the limit check when the segment is not flat. */
  segLin(s: number, off: number, size: number): number {
    if (this.segLimit[s] !== SEG_FLAT_LIMIT || !this.segUsable[s]) this.checkLimit(s, off, size);
    return (this.segBase[s] + off) | 0;
  }

  private checkLimit(s: number, off: number, size: number): void {
    const fault = s === Seg.SS ? Vector.SS : Vector.GP;
    if (!this.segUsable[s]) throw new GuestFault(fault, 0);
    const first = off >>> 0;
    const last = first + size - 1;
    const attr = this.segAttr[s];
    const limit = this.segLimit[s];
    if ((attr & (A.CODE | A.EXPAND_DOWN)) === A.EXPAND_DOWN) {
      const upper = attr & A.DB ? 0xffffffff : 0xffff;
      if (first <= limit || last > upper) throw new GuestFault(fault, 0);
    } else if (last > limit) {
      throw new GuestFault(fault, 0);
    }
  }

  /** Linear → physical; `size` > 0 marks a data access of that many bytes (data breakpoints see it). */
  private xlate(lin: number, write: boolean, user: boolean, size: number): number {
    const p = this.mmu.translate(lin, write, user, size);
    if (typeof p === 'number') return p;
    throw new GuestFault(Vector.PF, (p as PageFault).errorCode, (p as PageFault).linear >>> 0);
  }

  read8(lin: number): number {
    return this.mem.read8(this.xlate(lin, false, this.user, 1));
  }
  read16(lin: number): number {
    if ((lin & 0xfff) <= 0xffe) return this.mem.read16(this.xlate(lin, false, this.user, 2));
    return this.read8(lin) | (this.read8((lin + 1) | 0) << 8);
  }
  read32(lin: number): number {
    if ((lin & 0xfff) <= 0xffc) return this.mem.read32(this.xlate(lin, false, this.user, 4));
    let v = 0;
    for (let i = 0; i < 4; i++) v |= this.read8((lin + i) | 0) << (8 * i);
    return v;
  }
  readSized(size: number, lin: number): number {
    return size === 4 ? this.read32(lin) : size === 2 ? this.read16(lin) : this.read8(lin);
  }
  /**
   * The read half of a read-modify-write instruction: the CPU checks the access as a write, so a
   * fault here carries the write bit in its #PF error code, as on hardware.
   */
  readForWrite(size: number, lin: number): number {
    const p = this.xlate(lin, true, this.user, size);
    if ((lin & 0xfff) <= 0x1000 - size) return size === 4 ? this.mem.read32(p) : size === 2 ? this.mem.read16(p) : this.mem.read8(p);
    this.xlate((lin + size - 1) & ~0xfff, true, this.user, 0);
    return this.readSized(size, lin);
  }

  write8(lin: number, v: number): void {
    this.mem.write8(this.xlate(lin, true, this.user, 1), v);
    if (this.tracing) this.noteWrite(lin, 1, v & 0xff);
  }
  write16(lin: number, v: number): void {
    this.writeN(lin, 2, v & 0xffff, this.user);
  }
  write32(lin: number, v: number): void {
    if ((lin & 0xfff) <= 0xffc) {
      this.mem.write32(this.xlate(lin, true, this.user, 4), v);
      if (this.tracing) this.noteWrite(lin, 4, v);
      return;
    }
    this.writeN(lin, 4, v, this.user);
  }
  writeSized(size: number, lin: number, v: number): void {
    if (size === 4) this.write32(lin, v);
    else if (size === 2) this.write16(lin, v);
    else this.write8(lin, v);
  }

  /** A write that may straddle pages: both pages are checked before any byte is written. */
  private writeN(lin: number, size: number, v: number, user: boolean): void {
    const first = this.xlate(lin, true, user, size);
    const lastLin = (lin + size - 1) | 0;
    // The second page is checked at its first byte, which is what CR2 reports if it faults.
    const second = (lastLin & ~0xfff) !== (lin & ~0xfff) ? this.xlate(lastLin & ~0xfff, true, user, (lastLin & 0xfff) + 1) : -1;
    for (let i = 0; i < size; i++) {
      const l = (lin + i) | 0;
      const p = second >= 0 && (l & ~0xfff) === (lastLin & ~0xfff) ? second + (l & 0xfff) : first + i;
      this.mem.write8(p, (v >>> (8 * i)) & 0xff);
    }
    if (this.tracing) this.noteWrite(lin, size, size === 4 ? v : v & ((1 << (8 * size)) - 1));
  }

  /** A memory write for the effects of the event being made (only while tracing). */
  private noteWrite(lin: number, size: number, v: number): void {
    let w = this.traceWrites;
    const n = this.traceWritesLength;
    if (n + 3 > w.length) {
      w = new Uint32Array(w.length * 2);
      w.set(this.traceWrites);
      this.traceWrites = w;
    }
    w[n] = lin;
    w[n + 1] = size;
    w[n + 2] = v;
    this.traceWritesLength = n + 3;
  }

  /** The effects collected for an event object, as the lists events$ carries; the buffers start empty again. */
  private takeEffectLists(): { regs: readonly number[]; writes: readonly number[]; tableWrites: readonly number[] } {
    const regs = this.regDiffLength === 0 ? NO_EFFECTS : listOf(this.regDiff, this.regDiffLength);
    const writes = this.traceWritesLength === 0 ? NO_EFFECTS : listOf(this.traceWrites, this.traceWritesLength);
    let tableWrites: readonly number[] = this.traceTableWrites;
    if (tableWrites.length === 0) tableWrites = NO_EFFECTS;
    else this.traceTableWrites = [];
    this.regDiffLength = 0;
    this.traceWritesLength = 0;
    return { regs, writes, tableWrites };
  }

  /** Implicit supervisor accesses (GDT, IDT, TSS): not subject to the CPL-3 user check. */
  readSys32(lin: number): number {
    if ((lin & 0xfff) <= 0xffc) return this.mem.read32(this.xlate(lin, false, false, 0));
    let v = 0;
    for (let i = 0; i < 4; i++) v |= this.mem.read8(this.xlate((lin + i) | 0, false, false, 0)) << (8 * i);
    return v;
  }
  readSys16(lin: number): number {
    return this.mem.read8(this.xlate(lin, false, false, 0)) | (this.mem.read8(this.xlate((lin + 1) | 0, false, false, 0)) << 8);
  }
  writeSys32(lin: number, v: number): void {
    this.writeN(lin, 4, v, false);
  }

  // --- stack --------------------------------------------------------------------------------

  push32(v: number): void {
    const esp = (this.regs[R.ESP] - 4) | 0;
    this.write32(this.segLin(Seg.SS, esp, 4), v);
    this.regs[R.ESP] = esp;
  }
  push16(v: number): void {
    const esp = (this.regs[R.ESP] - 2) | 0;
    this.write16(this.segLin(Seg.SS, esp, 2), v);
    this.regs[R.ESP] = esp;
  }
  push(size: number, v: number): void {
    if (size === 4) this.push32(v);
    else this.push16(v);
  }
  pop32(): number {
    const esp = this.regs[R.ESP];
    const v = this.read32(this.segLin(Seg.SS, esp, 4));
    this.regs[R.ESP] = (esp + 4) | 0;
    return v;
  }
  pop16(): number {
    const esp = this.regs[R.ESP];
    const v = this.read16(this.segLin(Seg.SS, esp, 2));
    this.regs[R.ESP] = (esp + 2) | 0;
    return v;
  }
  pop(size: number): number {
    return size === 4 ? this.pop32() : this.pop16();
  }
  /** Read the stack at ESP + offset without popping. */
  peekStack32(offset: number): number {
    return this.read32(this.segLin(Seg.SS, (this.regs[R.ESP] + offset) | 0, 4));
  }

  // ============================================================================================
  // Segments and descriptors
  // ============================================================================================

  /** Read the descriptor a selector names from the GDT; #GP(selector) when outside the table. */
  readDescriptor(sel: number, vector = Vector.GP): Descriptor {
    const { lo, hi } = this.readDescriptorWords(sel, vector);
    return decodeDescriptor(lo, hi);
  }

  /** Set the accessed bit of a descriptor, as the CPU does when it loads one. */
  private markAccessed(sel: number, d: Descriptor): void {
    if (d.attr & A.ACCESSED) return;
    const lin = (this.gdtrBase + (sel & 0xfff8) + 4) | 0;
    const hi = this.readSys32(lin);
    this.writeSys32(lin, hi | 0x100);
    d.attr |= A.ACCESSED;
  }

  setSegmentCache(s: number, sel: number, d: Descriptor | null): void {
    this.systemDirty = true;
    this.segSel[s] = sel;
    if (d === null) {
      this.segBase[s] = 0;
      this.segLimit[s] = 0;
      this.segAttr[s] = 0;
      this.segUsable[s] = 0;
    } else {
      this.segBase[s] = d.base;
      this.segLimit[s] = d.limit;
      this.segAttr[s] = d.attr;
      this.segUsable[s] = 1;
    }
    if (s === Seg.CS) this.fetchLin = -1;
  }

  /** Flat 4 GiB segment cache with the given DPL (SYSENTER/SYSEXIT load these without reading the GDT). */
  private flatCache(s: number, sel: number, code: boolean, dpl: number): void {
    const type = code ? A.CODE | A.READABLE | A.ACCESSED : A.WRITABLE | A.ACCESSED;
    this.setSegmentCache(s, sel, {
      base: 0,
      limit: SEG_FLAT_LIMIT,
      attr: type | A.S | (dpl << 5) | A.P | A.DB | A.G,
      dpl,
    });
  }

  /** MOV/POP to a data segment register or SS, with the SDM's protected-mode checks. */
  loadSegment(s: number, sel: number): void {
    sel &= 0xffff;
    if (s === Seg.CS) throw new GuestFault(Vector.UD);
    if ((sel & 0xfffc) === 0) {
      if (s === Seg.SS) throw new GuestFault(Vector.GP, 0);
      this.setSegmentCache(s, sel, null);
      return;
    }
    const d = this.readDescriptor(sel);
    const rpl = sel & 3;
    const isCode = (d.attr & (A.S | A.CODE)) === (A.S | A.CODE);
    const isData = (d.attr & (A.S | A.CODE)) === A.S;
    if (s === Seg.SS) {
      if (rpl !== this.cpl || d.dpl !== this.cpl || !isData || !(d.attr & A.WRITABLE)) {
        throw new GuestFault(Vector.GP, sel & 0xfffc);
      }
      if (!(d.attr & A.P)) throw new GuestFault(Vector.SS, sel & 0xfffc);
    } else {
      if (!isData && !(isCode && d.attr & A.READABLE)) throw new GuestFault(Vector.GP, sel & 0xfffc);
      if ((isData || !(d.attr & A.CONFORMING)) && (rpl > d.dpl || this.cpl > d.dpl)) {
        throw new GuestFault(Vector.GP, sel & 0xfffc);
      }
      if (!(d.attr & A.P)) throw new GuestFault(Vector.NP, sel & 0xfffc);
    }
    this.markAccessed(sel, d);
    this.setSegmentCache(s, sel, d);
  }

  /**
   * Checks for a code segment reached by a far ret/iret or an interrupt gate: a null selector is
   * #GP(0); anything but a code segment (a data segment or any system descriptor) is #GP(selector).
   */
  private codeDescriptor(sel: number): Descriptor {
    if ((sel & 0xfffc) === 0) throw new GuestFault(Vector.GP, 0);
    const d = this.readDescriptor(sel);
    if ((d.attr & (A.S | A.CODE)) !== (A.S | A.CODE)) throw new GuestFault(Vector.GP, sel & 0xfffc);
    return d;
  }

  setCpl(cpl: number): void {
    this.cpl = cpl;
    this.user = cpl === 3;
    this.fetchLin = -1;
  }

  /**
   * Far JMP/CALL (SDM vol. 2, JMP and CALL, protected mode): the selector names a code segment,
   * a call gate, a task gate or a TSS; every privilege, type and present check is made, in the
   * SDM's order, before anything changes. A transfer the checks let through that would switch
   * tasks, or CALL through a call gate to a more privileged segment, is an emulator gap.
   */
  farTransfer(sel: number, offset: number, call: boolean, size: number): void {
    if ((sel & 0xfffc) === 0) throw new GuestFault(Vector.GP, 0);
    const { lo, hi } = this.readDescriptorWords(sel);
    const d = decodeDescriptor(lo, hi);
    const err = sel & 0xfffc;
    if (d.attr & A.S) {
      if (!(d.attr & A.CODE)) throw new GuestFault(Vector.GP, err);
      this.farToCode(sel, d, offset, call, size);
      return;
    }
    const rpl = sel & 3;
    const what = call ? 'far call' : 'far jmp';
    switch (d.attr & A.TYPE) {
      case 0x4: // 16-bit call gate
      case 0xc: // 32-bit call gate
        this.throughCallGate(sel, lo, hi, call);
        return;
      case 0x5: {
        // Task gate: its DPL, its present bit, then the TSS it names (in the GDT, available, present).
        if (d.dpl < this.cpl || d.dpl < rpl) throw new GuestFault(Vector.GP, err);
        if (!(d.attr & A.P)) throw new GuestFault(Vector.NP, err);
        const tss = lo >>> 16;
        if (tss & 4 || (tss & 0xfff8) + 7 > this.gdtrLimit) throw new GuestFault(Vector.GP, tss & 0xfffc);
        const td = this.readDescriptor(tss);
        const type = td.attr & (A.S | A.TYPE);
        if (type !== 0x1 && type !== 0x9) throw new GuestFault(Vector.GP, tss & 0xfffc); // busy, or not a TSS
        if (!(td.attr & A.P)) throw new GuestFault(Vector.NP, tss & 0xfffc);
        throw new EmulatorError(`${what} through task gate ${hex(sel, 4)} to TSS ${hex(tss, 4)} (task switches are not emulated)`);
      }
      case 0x1: // available 16-bit TSS
      case 0x9: // available 32-bit TSS
        if (d.dpl < this.cpl || d.dpl < rpl) throw new GuestFault(Vector.GP, err);
        if (!(d.attr & A.P)) throw new GuestFault(Vector.NP, err);
        throw new EmulatorError(`${what} to TSS ${hex(sel, 4)} (task switches are not emulated)`);
      default:
        // A busy TSS, an LDT, an interrupt or trap gate, a reserved type.
        throw new GuestFault(Vector.GP, err);
    }
  }

  /** The two dwords of the GDT entry a selector names; #GP(selector) outside the table or for the LDT. */
  private readDescriptorWords(sel: number, vector = Vector.GP): { lo: number; hi: number } {
    if (sel & 4) throw new GuestFault(vector, sel & 0xfffc); // no LDT is ever loaded
    const index = sel & 0xfff8;
    if (index + 7 > this.gdtrLimit) throw new GuestFault(vector, sel & 0xfffc);
    return { lo: this.readSys32((this.gdtrBase + index) | 0), hi: this.readSys32((this.gdtrBase + index + 4) | 0) };
  }

  /** Far JMP/CALL straight to a code segment: same privilege only (conforming: DPL <= CPL). */
  private farToCode(sel: number, d: Descriptor, offset: number, call: boolean, size: number): void {
    const rpl = sel & 3;
    if (d.attr & A.CONFORMING) {
      if (d.dpl > this.cpl) throw new GuestFault(Vector.GP, sel & 0xfffc);
    } else if (rpl > this.cpl || d.dpl !== this.cpl) {
      throw new GuestFault(Vector.GP, sel & 0xfffc);
    }
    if (!(d.attr & A.P)) throw new GuestFault(Vector.NP, sel & 0xfffc);
    if (call) this.pushReturnAddress(size);
    this.markAccessed(sel, d);
    this.setSegmentCache(Seg.CS, (sel & 0xfffc) | this.cpl, d);
    this.nextEip = size === 2 ? offset & 0xffff : offset;
  }

  /** CALL's CS:EIP push; both writes must succeed before anything else changes. */
  private pushReturnAddress(size: number): void {
    const esp = this.regs[R.ESP];
    this.push(size, this.segSel[Seg.CS]);
    try {
      this.push(size, this.nextEip);
    } catch (e) {
      this.regs[R.ESP] = esp;
      throw e;
    }
  }

  /**
   * JMP/CALL through a call gate (SDM vol. 2, CALL "CALL-GATE", JMP "CALL-GATE"): the gate's DPL
   * must be >= CPL and >= the selector's RPL; the target code segment must be present and, for
   * JMP, at the same privilege (or conforming with DPL <= CPL); CALL may go to a more privileged
   * non-conforming segment, which switches stacks through the TSS — not emulated (the trace has no
   * ring-transition mechanism for call gates), so it is an emulator gap after all the checks of
   * the gate and the code segment.
   */
  private throughCallGate(sel: number, lo: number, hi: number, call: boolean): void {
    const err = sel & 0xfffc;
    const dpl = (hi >>> 13) & 3;
    if (dpl < this.cpl || dpl < (sel & 3)) throw new GuestFault(Vector.GP, err);
    if (!(hi & 0x8000)) throw new GuestFault(Vector.NP, err);
    const gate32 = (hi & 0x800) !== 0;
    const offset = gate32 ? (lo & 0xffff) | (hi & 0xffff0000) : lo & 0xffff;
    const cs = lo >>> 16;
    if ((cs & 0xfffc) === 0) throw new GuestFault(Vector.GP, 0);
    const cd = this.readDescriptor(cs);
    const cerr = cs & 0xfffc;
    if ((cd.attr & (A.S | A.CODE)) !== (A.S | A.CODE)) throw new GuestFault(Vector.GP, cerr);
    const conforming = (cd.attr & A.CONFORMING) !== 0;
    if (call ? cd.dpl > this.cpl : conforming ? cd.dpl > this.cpl : cd.dpl !== this.cpl) throw new GuestFault(Vector.GP, cerr);
    if (!(cd.attr & A.P)) throw new GuestFault(Vector.NP, cerr);
    if (call && !conforming && cd.dpl < this.cpl) {
      throw new EmulatorError(`far call through call gate ${hex(sel, 4)} to ring ${cd.dpl} (inner-privilege call gates are not emulated)`);
    }
    if (call) this.pushReturnAddress(gate32 ? 4 : 2);
    this.markAccessed(cs, cd);
    this.setSegmentCache(Seg.CS, cerr | this.cpl, cd);
    this.nextEip = offset;
  }

  // ============================================================================================
  // Control registers, MSRs
  // ============================================================================================

  /** #GP(0) unless CPL 0 (privileged instructions). */
  requireCpl0(): void {
    if (this.cpl !== 0) throw new GuestFault(Vector.GP, 0);
  }

  writeCr(n: number, v: number): void {
    switch (n) {
      case 0: {
        if (v & CR0_PG && !(v & CR0_PE)) throw new GuestFault(Vector.GP, 0);
        if (!(v & CR0_PE)) throw new EmulatorError('clearing CR0.PE (real mode is not emulated)');
        this.cr0 = v | CR0_ET;
        this.syncPaging();
        return;
      }
      case 2:
        this.cr2 = v;
        this.systemDirty = true;
        return;
      case 3:
        this.cr3 = v;
        this.syncPaging();
        return;
      case 4:
        if (v & ~CR4_SUPPORTED) throw new GuestFault(Vector.GP, 0);
        this.cr4 = v;
        this.syncPaging();
        this.syncBreakpoints(); // CR4.DE turns R/W = 10 breakpoints into I/O breakpoints
        return;
      default:
        throw new GuestFault(Vector.UD);
    }
  }
  readCr(n: number): number {
    switch (n) {
      case 0: return this.cr0;
      case 2: return this.cr2;
      case 3: return this.cr3;
      case 4: return this.cr4;
      default: throw new GuestFault(Vector.UD);
    }
  }
  /** Paging state changed: tell the MMU and drop every cached translation. */
  syncPaging(): void {
    this.systemDirty = true;
    const ctl = this.mmu.ctl;
    ctl.paging = (this.cr0 & CR0_PG) !== 0;
    ctl.writeProtect = (this.cr0 & CR0_WP) !== 0;
    ctl.pse = (this.cr4 & CR4_PSE) !== 0;
    ctl.cr3 = this.cr3 & ~0xfff;
    this.mmu.flush();
    this.fetchLin = -1;
  }
  invlpg(lin: number): void {
    this.mmu.invalidate(lin);
    this.fetchLin = -1;
  }

  get tsc(): number {
    return this.icount + this.tscOffset;
  }

  /** RDMSR semantics (and the reads SYSENTER/SYSEXIT make); unknown MSRs raise #GP(0). */
  readMsr(msr: number, source: MsrSource): bigint {
    let value: bigint;
    switch (msr) {
      case MSR_TSC: value = BigInt(this.tsc); break;
      case MSR_SYSENTER_CS: value = BigInt(this.sysenterCs >>> 0); break;
      case MSR_SYSENTER_ESP: value = BigInt(this.sysenterEsp >>> 0); break;
      case MSR_SYSENTER_EIP: value = BigInt(this.sysenterEip >>> 0); break;
      default: throw new GuestFault(Vector.GP, 0);
    }
    if (this.tracing) this.emit({ type: 'msr-read', msr, value, source, ...this.base() });
    return value;
  }
  writeMsr(msr: number, value: bigint): void {
    const lo = Number(value & 0xffffffffn) | 0;
    switch (msr) {
      case MSR_TSC: this.tscOffset = Number(value) - this.icount; break;
      case MSR_SYSENTER_CS: this.sysenterCs = lo & 0xffff; break;
      case MSR_SYSENTER_ESP: this.sysenterEsp = lo; break;
      case MSR_SYSENTER_EIP: this.sysenterEip = lo; break;
      default: throw new GuestFault(Vector.GP, 0);
    }
    if (this.tracing) this.emit({ type: 'msr-write', msr, value, ...this.base() });
  }

  // ============================================================================================
  // Debug registers and breakpoints (SDM vol. 3, chapter 17)
  // ============================================================================================

  /** The register MOV DRn names: DR4/DR5 are DR6/DR7 when CR4.DE = 0, and #UD when CR4.DE = 1. */
  private debugRegisterIndex(n: number): number {
    if (n === 4 || n === 5) {
      if (this.cr4 & CR4_DE) throw new GuestFault(Vector.UD);
      return n + 2;
    }
    return n;
  }

  /** MOV r32, DRn once the privilege checks passed. */
  readDebugRegister(n: number): number {
    return this.dr[this.debugRegisterIndex(n)];
  }

  /** MOV DRn, r32 once the privilege checks passed (also the guest layer's context restore). */
  writeDebugRegister(n: number, v: number): void {
    const i = this.debugRegisterIndex(n);
    if (i === 6) this.dr[6] = (v & DR6_WRITABLE) | DR6_INIT;
    else if (i === 7) this.dr[7] = (v & DR7_WRITABLE) | DR7_INIT;
    else this.dr[i] = v;
    this.syncBreakpoints();
  }

  /** Bytes a breakpoint covers, from DR7.LENn: 1, 2, 8 (the P6 leaves 10b undefined), 4. */
  private breakpointLength(n: number): number {
    return [1, 2, 8, 4][(this.dr[7] >>> (18 + 4 * n)) & 3];
  }

  /**
   * Re-read DR7: which breakpoints are enabled (Ln or Gn; the CPU never switches tasks, so local
   * and global are the same here) and of which kind (R/Wn: 00 execute, 01 write, 11 read/write,
   * 10 I/O when CR4.DE = 1 — undefined without it, and then no breakpoint). Data breakpoints ask
   * the MMU to report accesses to their pages.
   */
  private syncBreakpoints(): void {
    const dr7 = this.dr[7];
    let exec = 0;
    let data = 0;
    let io = 0;
    const pages: number[] = [];
    for (let n = 0; n < 4; n++) {
      if (((dr7 >>> (2 * n)) & 3) === 0) continue;
      const rw = (dr7 >>> (16 + 4 * n)) & 3;
      if (rw === 0) exec |= 1 << n;
      else if (rw === 2) io |= this.cr4 & CR4_DE ? 1 << n : 0;
      else {
        data |= 1 << n;
        const len = this.breakpointLength(n);
        const first = (this.dr[n] & ~(len - 1)) >>> 0;
        for (const p of [first >>> 12, ((first + len - 1) >>> 12) & 0xfffff]) if (!pages.includes(p)) pages.push(p);
      }
    }
    this.bpExec = exec;
    this.bpData = data;
    this.bpIo = io;
    this.mmu.setWatchPages(pages);
    this.mmu.onWatch = data !== 0 ? this.watchData : null;
    this.updateDebugArmed();
  }

  private updateDebugArmed(): void {
    this.debugBase = this.bpExec | this.bpData | this.bpIo | this.shadowDb | this.heldDb;
    this.debugArmed = (this.ef & (F.TF | F.RF)) | this.debugBase;
  }

  /** The MMU's report of a data access on a watched page (or any access with paging off). */
  private readonly watchData = (linear: number, size: number, write: boolean): void => {
    const lo = linear >>> 0;
    for (let n = 0; n < 4; n++) {
      if (!(this.bpData & (1 << n))) continue;
      if (!write && ((this.dr[7] >>> (16 + 4 * n)) & 3) === 1) continue; // a write-only breakpoint
      const len = this.breakpointLength(n);
      const a = (this.dr[n] & ~(len - 1)) >>> 0;
      if (lo < a + len && a < lo + size) this.dataHits |= 1 << n;
    }
  };

  /** An IN/OUT/INS/OUTS port access: I/O breakpoints (R/Wn = 10 with CR4.DE) that cover it hit. */
  ioAccess(port: number, size: number): void {
    if (this.bpIo === 0) return;
    for (let n = 0; n < 4; n++) {
      if (!(this.bpIo & (1 << n))) continue;
      const len = this.breakpointLength(n);
      const a = this.dr[n] & 0xffff & ~(len - 1);
      if (port < a + len && a < port + size) this.dataHits |= 1 << n;
    }
  }

  /** MOV SS / POP SS loaded SS: debug exceptions are held until after the next instruction. */
  noteStackSegmentLoad(): void {
    this.ssShadowAt = this.icount;
  }

  /**
   * One instruction with the debug machinery on (debugArmed non-zero), in the order of SDM vol. 3
   * 6.9 / 17.3: a trap held from the last boundary; an instruction breakpoint on this
   * instruction (a fault: nothing executes, RF in EFLAGS suppresses it); the instruction; then
   * the traps it raised — single step (TF was set when it began, and it did not invoke a handler
   * itself), data and I/O breakpoints — as one #DB with the DR6 bits of all of them. A fault
   * inside the instruction propagates as usual and no trap follows it. After MOV SS / POP SS the
   * traps are held across the next instruction.
   */
  private stepDebug(traced: boolean): void {
    const icount = this.icount;
    const shadowed = this.ssShadowAt === icount - 1;
    if (this.heldDb !== 0 && !shadowed) {
      const bits = this.heldDb;
      this.heldDb = 0;
      this.debugTrap(bits);
      return;
    }
    const eip = this.eip;
    const cpl = this.cpl;
    const ef0 = this.ef;
    if (this.bpExec !== 0 && !(ef0 & F.RF) && !shadowed) {
      const lin = (this.segBase[Seg.CS] + eip) | 0;
      let hits = 0;
      for (let n = 0; n < 4; n++) if (this.bpExec & (1 << n) && this.dr[n] === lin) hits |= 1 << n;
      if (hits !== 0) {
        this.dr[6] = (this.dr[6] & ~0xf) | hits;
        // An instruction-breakpoint #DB is a fault whose frame keeps RF as it was (SDM 17.3.1.1):
        // the handler sets RF in the image to get past the breakpoint.
        this.handleFault(new GuestFault(Vector.DB), false);
        return;
      }
    }
    this.stepSuppressed = false;
    this.dataHits = 0;
    const op = this.fetch();
    this.nextEip = (eip + op.len) | 0;
    op.exec(this, op);
    this.eip = this.nextEip;
    this.icount = icount + 1;
    // RF lasts for one instruction: cleared once it completes (unless it was an IRET loading it).
    if (ef0 & F.RF && op.mnemonic !== Mnemonic.Iretd && op.mnemonic !== Mnemonic.Iret) this.setEflags(this.getEflags() & ~F.RF);
    if (traced) this.emitRetired(eip, cpl, icount, op);
    let bits = this.dataHits;
    this.dataHits = 0;
    if (ef0 & F.TF && !this.stepSuppressed) bits |= DR6_BS;
    if (shadowed) {
      bits |= this.shadowDb | this.heldDb;
      this.shadowDb = this.heldDb = 0;
    }
    if (bits === 0) {
      this.updateDebugArmed();
      return;
    }
    if (this.ssShadowAt === icount) this.shadowDb = bits;
    else if (!this.running) this.heldDb = bits; // taken at the start of the next run
    else {
      this.debugTrap(bits);
      return;
    }
    this.updateDebugArmed();
  }

  /** A trap-class #DB at the current boundary: DR6 gets the causes (B0-B3 replaced), then vector 1. */
  private debugTrap(bits: number): void {
    this.dr[6] = (this.dr[6] & ~0xf) | bits;
    this.updateDebugArmed();
    this.handleFault(new GuestFault(Vector.DB), false);
  }

  // ============================================================================================
  // Privilege-changing microcode
  // ============================================================================================

  /** SYSENTER (SDM vol. 2B): fast call to ring 0, CS/SS/EIP/ESP from the SYSENTER MSRs. */
  sysenter(): void {
    if (this.model !== 'sysenter') throw new GuestFault(Vector.UD);
    const cs = Number(this.readMsr(MSR_SYSENTER_CS, 'sysenter'));
    if ((cs & 0xfffc) === 0) throw new GuestFault(Vector.GP, 0);
    const esp = Number(this.readMsr(MSR_SYSENTER_ESP, 'sysenter')) | 0;
    const eip = Number(this.readMsr(MSR_SYSENTER_EIP, 'sysenter')) | 0;
    const from = { cpl: this.cpl, eip: this.eip, esp: this.regs[R.ESP] };
    this.setEflags(this.getEflags() & ~(F.VM | F.IF | F.RF));
    this.flatCache(Seg.CS, cs & 0xfffc, true, 0);
    this.flatCache(Seg.SS, (cs + 8) & 0xfffc, false, 0);
    this.setCpl(0);
    this.regs[R.ESP] = esp;
    this.nextEip = eip;
    this.ringTransition('sysenter', from, null);
  }

  /** SYSEXIT: fast return to ring 3; EIP = EDX, ESP = ECX. */
  sysexit(): void {
    if (this.model !== 'sysenter') throw new GuestFault(Vector.UD);
    if (this.cpl !== 0) throw new GuestFault(Vector.GP, 0);
    const cs = Number(this.readMsr(MSR_SYSENTER_CS, 'sysexit'));
    if ((cs & 0xfffc) === 0) throw new GuestFault(Vector.GP, 0);
    const from = { cpl: this.cpl, eip: this.eip, esp: this.regs[R.ESP] };
    this.flatCache(Seg.CS, ((cs + 16) & 0xfffc) | 3, true, 3);
    this.flatCache(Seg.SS, ((cs + 24) & 0xfffc) | 3, false, 3);
    this.setCpl(3);
    this.regs[R.ESP] = this.regs[R.ECX];
    this.nextEip = this.regs[R.EDX];
    this.ringTransition('sysexit', from, null);
  }

  /** INT n / INT3 / INTO: a software interrupt (gate DPL checked against CPL). */
  softInterrupt(vector: number): void {
    this.stepSuppressed = true;
    if (this.stopOnException) {
      this.lastException = { vector, eip: this.nextEip, errorCode: null, cr2: null };
      this.halt({ kind: 'exception', detail: `int ${hex(vector, 2)}` });
      return;
    }
    this.deliver(vector, null, true, this.nextEip, 'int', false);
  }

  /**
   * INT1 (ICEBP, F1): a #DB trap delivered like a hardware exception — no check of the gate's DPL,
   * EXT = 1 in error codes — with DR6 left alone (SDM vol. 2, INT1). Traced as an exception event
   * at the INT1, as the frame's EIP is the next instruction.
   */
  icebp(): void {
    this.stepSuppressed = true;
    const at = { eip: this.eip, cpl: this.cpl };
    const f = new GuestFault(Vector.DB);
    if (this.stopOnException) {
      this.lastException = { vector: Vector.DB, eip: this.nextEip, errorCode: null, cr2: null };
      this.emitException(at, f);
      this.halt({ kind: 'exception', detail: 'int1' });
      return;
    }
    this.deliver(Vector.DB, null, false, this.nextEip, 'exception', false);
    this.emitException(at, f);
  }

  /**
   * Deliver an interrupt or exception through the IDT (SDM vol. 3, 6.12): gate checks, a stack
   * switch from the TSS when the handler is more privileged, the frame, then CS:EIP from the gate.
   * Faults raised here propagate to the caller, which applies the double-fault rules.
   */
  private deliver(vector: number, errorCode: number | null, soft: boolean, returnEip: number, mech: RingMechanism, rf: boolean): void {
    const ext = soft ? 0 : 1;
    const gateErr = vector * 8 + 2 + ext;
    if (vector * 8 + 7 > this.idtrLimit) throw new GuestFault(Vector.GP, gateErr);
    const lo = this.readSys32((this.idtrBase + vector * 8) | 0);
    const hi = this.readSys32((this.idtrBase + vector * 8 + 4) | 0);
    const gateType = (hi >> 8) & 0x1f;
    const gateDpl = (hi >> 13) & 3;
    // Task, interrupt and trap gates; the privilege check (INT n only) and the present bit come
    // before anything that would switch tasks, so INT n from ring 3 to a DPL-0 task gate is #GP.
    if (gateType !== 0x05 && gateType !== 0x0e && gateType !== 0x0f) throw new GuestFault(Vector.GP, gateErr);
    if (soft && gateDpl < this.cpl) throw new GuestFault(Vector.GP, gateErr);
    if (!(hi & 0x8000)) throw new GuestFault(Vector.NP, gateErr);
    if (gateType === 0x05) throw new EmulatorError(`task gate in IDT vector ${hex(vector, 2)} (task switches are not emulated)`);
    const sel = lo >>> 16;
    const offset = (lo & 0xffff) | (hi & 0xffff0000);
    if ((sel & 0xfffc) === 0) throw new GuestFault(Vector.GP, ext);
    let cd: Descriptor;
    try {
      cd = this.codeDescriptor(sel);
    } catch (e) {
      // Past the GDT, or not a code segment: #GP(selector), with EXT for an external event.
      if (e instanceof GuestFault && e.errorCode !== null) throw new GuestFault(e.vector, e.errorCode | ext);
      throw e;
    }
    if (cd.dpl > this.cpl) throw new GuestFault(Vector.GP, (sel & 0xfffc) + ext);
    if (!(cd.attr & A.P)) throw new GuestFault(Vector.NP, (sel & 0xfffc) + ext);
    const newCpl = cd.attr & A.CONFORMING ? this.cpl : cd.dpl;
    const eflags = this.getEflags();
    const from = { cpl: this.cpl, eip: this.eip, esp: this.regs[R.ESP] };
    const oldCs = this.segSel[Seg.CS];
    const frame: number[] = [];
    let newSs = -1;
    let ssDesc: Descriptor | null = null;
    let esp: number;
    let ssBase: number;
    if (newCpl < this.cpl) {
      // Inner-privilege entry: the new stack comes from the TSS (SS0:ESP0 for ring 0).
      const tssOff = 4 + newCpl * 8;
      if (tssOff + 5 > this.trLimit) throw new GuestFault(Vector.TS, (this.trSel & 0xfffc) + ext);
      esp = this.readSys32((this.trBase + tssOff) | 0);
      newSs = this.readSys16((this.trBase + tssOff + 4) | 0);
      if ((newSs & 0xfffc) === 0) throw new GuestFault(Vector.TS, ext);
      ssDesc = this.readDescriptor(newSs, Vector.TS);
      if ((newSs & 3) !== newCpl || ssDesc.dpl !== newCpl || (ssDesc.attr & (A.S | A.CODE | A.WRITABLE)) !== (A.S | A.WRITABLE)) {
        throw new GuestFault(Vector.TS, (newSs & 0xfffc) + ext);
      }
      if (!(ssDesc.attr & A.P)) throw new GuestFault(Vector.SS, (newSs & 0xfffc) + ext);
      ssBase = ssDesc.base;
      frame.push(this.segSel[Seg.SS], this.regs[R.ESP]);
    } else {
      esp = this.regs[R.ESP];
      ssBase = this.segBase[Seg.SS];
    }
    // A fault's saved EFLAGS has RF set, so IRETD back to the instruction does not re-trigger an
    // instruction breakpoint on it (SDM vol. 3, 17.3.1.1); interrupts and traps save RF as it was.
    frame.push(rf ? eflags | F.RF : eflags, oldCs, returnEip);
    if (errorCode !== null) frame.push(errorCode);
    // Write the frame at the new privilege (ring-0 pushes are supervisor accesses).
    const user = newCpl === 3;
    for (const v of frame) {
      esp = (esp - 4) | 0;
      this.writeN((ssBase + esp) | 0, 4, v, user);
    }
    // Commit.
    if (ssDesc !== null) {
      this.markAccessed(newSs, ssDesc);
      this.setSegmentCache(Seg.SS, newSs, ssDesc);
    }
    this.markAccessed(sel, cd);
    this.setSegmentCache(Seg.CS, (sel & 0xfffc) | newCpl, cd);
    this.setCpl(newCpl);
    this.regs[R.ESP] = esp;
    let f = eflags & ~(F.TF | F.NT | F.RF | F.VM);
    if (gateType === 0x0e) f &= ~F.IF; // interrupt gate; a trap gate leaves IF alone
    this.setEflags(f);
    this.nextEip = offset;
    if (from.cpl !== newCpl) this.ringTransition(mech, from, vector);
  }

  /** A word of the stack at ESP + offset, of the operand size (2 or 4), without popping. */
  private peekStack(size: number, offset: number): number {
    return size === 4 ? this.peekStack32(offset) : this.read16(this.segLin(Seg.SS, (this.regs[R.ESP] + offset) | 0, 2));
  }

  /**
   * IRET / IRETD (SDM vol. 2A): same-privilege return, or return to an outer ring with SS:ESP;
   * with EFLAGS.NT set, a task return through the TSS's back link.
   */
  iret(size: number): void {
    if (this.ef & F.NT) this.taskReturn();
    const eip = this.peekStack(size, 0);
    const cs = this.peekStack(size, size) & 0xffff;
    const popped = this.peekStack(size, 2 * size);
    const rpl = cs & 3;
    if (rpl < this.cpl) throw new GuestFault(Vector.GP, cs & 0xfffc);
    const cd = this.codeDescriptor(cs);
    if (cd.attr & A.CONFORMING ? cd.dpl > rpl : cd.dpl !== rpl) throw new GuestFault(Vector.GP, cs & 0xfffc);
    if (!(cd.attr & A.P)) throw new GuestFault(Vector.NP, cs & 0xfffc);
    if (size === 4 && popped & F.VM && this.cpl === 0) throw new EmulatorError('IRET to virtual-8086 mode is not emulated');
    const from = { cpl: this.cpl, eip: this.eip, esp: this.regs[R.ESP] };
    // IRETD loads RF from the image (POPF never does); a 16-bit IRET loads FLAGS' low word only.
    const flags = size === 4 ? popped : (this.getEflags() & ~0xffff) | (popped & 0xffff);
    const newFlags = this.poppedFlags(flags, this.cpl) | (flags & F.RF);
    if (rpl === this.cpl) {
      this.regs[R.ESP] = (this.regs[R.ESP] + 3 * size) | 0;
      this.markAccessed(cs, cd);
      this.setSegmentCache(Seg.CS, cs, cd);
    } else {
      this.returnToOuter(cs, cd, 3 * size, size);
    }
    this.setEflags(newFlags);
    this.nextEip = size === 2 ? eip & 0xffff : eip;
    if (from.cpl !== this.cpl) this.ringTransition('iret', from, null);
  }

  /**
   * IRET with EFLAGS.NT = 1 returns to the task in the current TSS's back link (SDM vol. 2A, IRET
   * "TASK-RETURN"): the link must name a busy TSS in the GDT (#TS(link) otherwise, a null link
   * included), present (#NP(link)). Past those checks the task switch itself is an emulator gap.
   */
  private taskReturn(): never {
    const link = this.readSys16(this.trBase);
    const d = this.readDescriptor(link, Vector.TS);
    if ((d.attr & (A.S | 0x7)) !== 0x3) throw new GuestFault(Vector.TS, link & 0xfffc);
    if (!(d.attr & A.P)) throw new GuestFault(Vector.NP, link & 0xfffc);
    throw new EmulatorError(`IRET with EFLAGS.NT set to TSS ${hex(link, 4)} (task switches are not emulated)`);
  }

  /** RETF [n]: far return, to the same or an outer ring (16-bit or 32-bit operand size). */
  retf(size: number, release: number): void {
    const eip = this.peekStack(size, 0);
    const cs = this.peekStack(size, size) & 0xffff;
    const rpl = cs & 3;
    if (rpl < this.cpl) throw new GuestFault(Vector.GP, cs & 0xfffc);
    const cd = this.codeDescriptor(cs);
    if (cd.attr & A.CONFORMING ? cd.dpl > rpl : cd.dpl !== rpl) throw new GuestFault(Vector.GP, cs & 0xfffc);
    if (!(cd.attr & A.P)) throw new GuestFault(Vector.NP, cs & 0xfffc);
    if (rpl === this.cpl) {
      this.regs[R.ESP] = (this.regs[R.ESP] + 2 * size + release) | 0;
      this.markAccessed(cs, cd);
      this.setSegmentCache(Seg.CS, cs, cd);
    } else {
      this.returnToOuter(cs, cd, 2 * size + release, size, release);
    }
    this.nextEip = size === 2 ? eip & 0xffff : eip;
  }

  /** Shared tail of IRET/RETF to an outer ring: pop SS:ESP, load CS and SS, null inaccessible data segments. */
  private returnToOuter(cs: number, cd: Descriptor, frameBytes: number, size: number, release = 0): void {
    const rpl = cs & 3;
    const esp = this.peekStack(size, frameBytes);
    const ss = this.peekStack(size, frameBytes + size) & 0xffff;
    if ((ss & 0xfffc) === 0) throw new GuestFault(Vector.GP, 0);
    const sd = this.readDescriptor(ss);
    if ((ss & 3) !== rpl || sd.dpl !== rpl || (sd.attr & (A.S | A.CODE | A.WRITABLE)) !== (A.S | A.WRITABLE)) {
      throw new GuestFault(Vector.GP, ss & 0xfffc);
    }
    if (!(sd.attr & A.P)) throw new GuestFault(Vector.SS, ss & 0xfffc);
    this.markAccessed(cs, cd);
    this.markAccessed(ss, sd);
    this.setSegmentCache(Seg.CS, cs, cd);
    this.setSegmentCache(Seg.SS, ss, sd);
    this.setCpl(rpl);
    this.regs[R.ESP] = (esp + release) | 0;
    // Data segments the outer ring may not use are nulled (SDM: IRET, RET "return to outer privilege").
    for (const s of [Seg.ES, Seg.DS, Seg.FS, Seg.GS]) {
      const attr = this.segAttr[s];
      const dpl = (attr >> 5) & 3;
      const dataOrNonConforming = !(attr & A.CODE) || !(attr & A.CONFORMING);
      if (this.segUsable[s] && dataOrNonConforming && dpl < rpl) this.setSegmentCache(s, 0, null);
    }
  }

  /** Which EFLAGS bits a POPF/IRET may change, by the SDM's privilege rules. */
  poppedFlags(v: number, cpl: number): number {
    let mask = POPF_MASK;
    if (cpl > 0) mask &= ~F.IOPL;
    if (cpl > this.iopl) mask &= ~F.IF;
    return ((this.getEflags() & ~mask) | (v & mask)) & ~F.RF;
  }

  // ============================================================================================
  // Faults
  // ============================================================================================

  /**
   * Deliver an exception at EIP, applying the double/triple-fault rules: a fault of the
   * instruction at EIP, or (rf = false, EIP already past the instruction) a #DB trap. `rf`: the
   * frame's EFLAGS image gets RF, as for every fault but an instruction-breakpoint #DB.
   */
  private handleFault(f: GuestFault, rf = true): void {
    if (f.vector === Vector.PF && f.cr2 !== null) this.cr2 = f.cr2 | 0;
    const at = { eip: this.eip, cpl: this.cpl };
    if (this.stopOnException) {
      this.lastException = { vector: f.vector, eip: this.eip, errorCode: f.errorCode, cr2: f.cr2 };
      this.emitException(at, f);
      this.halt({ kind: 'exception', detail: describeFault(f) });
      return;
    }
    let current = f;
    for (;;) {
      this.delivering = current.vector;
      try {
        this.nextEip = this.eip;
        this.deliver(current.vector, pushesErrorCode(current.vector) ? current.errorCode ?? 0 : null, false, this.eip, 'exception', rf || current !== f);
        this.eip = this.nextEip;
        this.delivering = -1;
        this.emitException(at, current, f);
        return;
      } catch (e) {
        if (!(e instanceof GuestFault)) throw e;
        if (e.vector === Vector.PF && e.cr2 !== null) this.cr2 = e.cr2 | 0;
        const combo = faultCombination(current.vector, e.vector);
        if (combo === 'triple') {
          this.delivering = -1;
          this.halt({ kind: 'triple-fault', detail: `${describeFault(e)} while delivering ${describeFault(current)}` });
          return;
        }
        current = combo === 'double' ? new GuestFault(Vector.DF, 0) : e;
      }
    }
  }

  // ============================================================================================
  // The loop
  // ============================================================================================

  /** Run until the machine stops or `maxInstructions` more have retired. */
  run(maxInstructions: number): StopReason {
    this.startRun(maxInstructions);
    return this.continueRun();
  }

  /**
   * Begin a run without entering the loop: the instruction limit, the stop reason and tracing
   * are set, so the guest layer can call guest code (runNested) before the loop proper — e.g. a
   * driver's DriverEntry, traced like everything else.
   */
  startRun(maxInstructions: number): void {
    this.limit = this.icount + maxInstructions;
    this.stop = null;
    this.running = true;
    this.perEvent = this.events.observed;
    this.batching = this.batches.observed;
    if (this.batching) this.collector ??= new BatchCollector((b) => this.batches.next(b));
    this.tracing = this.perEvent || this.batching;
    if (this.tracing) this.resetTraceBase();
    this.mmu.onTableWrite = this.tracing ? (p, v) => this.traceTableWrites.push(p, v >>> 0) : null;
  }

  /**
   * The loop of a run begun with startRun (or stopped already by what ran before it). With
   * `pauseAt` (an icount), returns null when that many instructions have retired and the machine
   * could go on — a pause, not a stop: no machine-stop event, and the next continueRun resumes.
   */
  continueRun(pauseAt?: number): StopReason;
  continueRun(pauseAt: number): StopReason | null;
  continueRun(pauseAt?: number): StopReason | null {
    const limit = pauseAt === undefined ? this.limit : Math.min(this.limit, pauseAt);
    if (this.batching) this.collector!.capacity = Math.max(256, Math.min(BATCH_INSTRUCTIONS, limit - this.icount + 1));
    while (this.running) {
      try {
        if (this.tracing) this.loopTraced(limit);
        else this.loopFast(limit);
      } catch (e) {
        if (e instanceof GuestFault) this.handleFault(e);
        else {
          this.running = false;
          throw e;
        }
      }
      if (this.icount >= limit && this.running) {
        if (limit < this.limit) {
          if (this.batching) this.collector!.flush();
          return null;
        }
        this.halt({ kind: 'instruction-limit' });
      }
    }
    const stop: StopReason = this.stop ?? { kind: 'stopped' };
    // After the stopping instruction's own event (hlt retires, then the machine stops).
    if (this.tracing) this.emit({ type: 'machine-stop', reason: stop.kind, detail: stop.detail ?? null, ...this.base() });
    if (this.batching) this.collector!.flush();
    return stop;
  }

  /**
   * Run guest code from inside an instruction (the guest layer calling an x86 routine from a
   * service body): executes until `returnFromNested()` is called (by the routine's return
   * trampoline) and returns true, or until the machine stops for any other reason and returns false.
   * Shares the instruction limit of the run in progress.
   */
  runNested(): boolean {
    const outerNextEip = this.nextEip;
    this.nestedReturned = false;
    this.running = true;
    while (this.running) {
      try {
        if (this.tracing) this.loopTraced(this.limit);
        else this.loopFast(this.limit);
      } catch (e) {
        if (e instanceof GuestFault) this.handleFault(e);
        else throw e;
      }
      if (this.icount >= this.limit && this.running) this.halt({ kind: 'instruction-limit' });
    }
    this.nextEip = outerNextEip;
    if (this.nestedReturned) {
      this.nestedReturned = false;
      this.running = true;
      return true;
    }
    return false;
  }
  /** Called by the return trampoline of a nested call: ends the innermost runNested. */
  returnFromNested(): void {
    this.nestedReturned = true;
    this.running = false;
  }
  private nestedReturned = false;
  /** icount at which the current run stops (runNested shares it). */
  private limit = 0;

  /** Stop the loop after the current instruction (used by hlt, port handlers, the guest layer). */
  halt(reason: StopReason): void {
    if (this.stop === null) this.stop = reason;
    this.nestedReturned = false;
    this.running = false;
  }
  /** Why the machine stopped (null while it can run). */
  get stopReason(): StopReason | null {
    return this.stop;
  }
  /** Drop every decoded instruction (after registering probes on code that already ran). */
  flushDecodeCache(): void {
    for (const page of this.codeCache.keys()) this.mem.codePages[page] = 0;
    this.codeCache.clear();
    this.straddlers.clear();
    this.fetchLin = -1;
  }

  private loopFast(limit: number): void {
    while (this.running && this.icount < limit) {
      if (this.debugArmed !== 0) {
        this.stepDebug(false);
        continue;
      }
      const op = this.fetch();
      this.nextEip = (this.eip + op.len) | 0;
      op.exec(this, op);
      this.eip = this.nextEip;
      this.icount++;
    }
  }

  private loopTraced(limit: number): void {
    while (this.running && this.icount < limit) {
      if (this.debugArmed !== 0) {
        this.stepDebug(true);
        continue;
      }
      const eip = this.eip;
      const cpl = this.cpl;
      const op = this.fetch();
      this.nextEip = (eip + op.len) | 0;
      op.exec(this, op);
      this.eip = this.nextEip;
      const icount = this.icount;
      this.icount = icount + 1;
      this.emitRetired(eip, cpl, icount, op);
    }
  }

  /**
   * A retired instruction, with the effects collected since the last event: into the batch's
   * columns, and as an event object for events$ subscribers (with copies of the lists); then the
   * buffers start empty again.
   */
  private emitRetired(eip: number, cpl: number, icount: number, op: Op): void {
    this.diffRegs();
    if (this.batching) {
      this.collector!.instruction(this.seq, icount, cpl, eip >>> 0, this.threadId, op, this.regDiff, this.regDiffLength, this.traceWrites, this.traceWritesLength, this.traceTableWrites);
    }
    if (!this.perEvent) {
      this.seq++;
      this.regDiffLength = 0;
      this.traceWritesLength = 0;
      if (this.traceTableWrites.length !== 0) this.traceTableWrites = [];
      return;
    }
    const { regs, writes, tableWrites } = this.takeEffectLists();
    this.emitRaw({
      type: 'instruction',
      seq: this.seq++,
      icount,
      cpl,
      eip: eip >>> 0,
      thread: this.threadId,
      bytes: op.bytes,
      nextEip: this.eip >>> 0,
      regs,
      writes,
      tableWrites,
    });
  }

  /** The decoded instruction at CS:EIP (decoding and caching it on first use). */
  fetch(): Op {
    const lin = (this.segBase[Seg.CS] + this.eip) | 0;
    if ((lin & ~0xfff) === this.fetchLin) {
      const op = this.fetchPage[lin & 0xfff];
      if (op !== undefined) return op;
    }
    return this.fetchSlow(lin);
  }

  private fetchSlow(lin: number): Op {
    const phys = this.xlate(lin, false, this.user, 0);
    const page = phys >>> 12;
    let cache = this.codeCache.get(page);
    if (cache === undefined) {
      cache = [];
      this.codeCache.set(page, cache);
      this.mem.codePages[page] = 1;
    }
    this.fetchLin = lin & ~0xfff;
    this.fetchPage = cache;
    this.fetchPhysBase = phys & ~0xfff;
    let op = cache[lin & 0xfff];
    if (op === undefined) {
      // Up to 15 bytes; an instruction that runs into the next page translates it too (and may #PF).
      const bytes = new Uint8Array(15);
      let avail = 15;
      for (let i = 0; i < 15; i++) {
        const l = (lin + i) | 0;
        if ((l & ~0xfff) !== (lin & ~0xfff)) {
          const p = this.mmu.translate(l, false, this.user);
          if (typeof p !== 'number') {
            avail = i;
            break;
          }
          bytes[i] = this.mem.read8(p);
        } else {
          bytes[i] = this.mem.read8(phys + i);
        }
      }
      op = decodeAt(bytes.subarray(0, avail), this.eip, this.model);
      const probe = this.probes.get(lin >>> 0);
      if (probe !== undefined) {
        const exec = op.exec;
        op.exec = (cpu, o) => {
          probe(cpu);
          exec(cpu, o);
        };
      }
      if (op.len > avail) this.xlate((lin + avail) | 0, false, this.user, 0); // raises the #PF for the next page
      cache[lin & 0xfff] = op;
      // An instruction straddling into the next page must be dropped when that page is written.
      if (((lin + op.len - 1) & ~0xfff) !== (lin & ~0xfff)) {
        const p2 = this.xlate((lin + op.len - 1) | 0, false, this.user, 0) >>> 12;
        this.straddlers.set(p2, [...(this.straddlers.get(p2) ?? []), page]);
        this.mem.codePages[p2] = 1;
        if (!this.codeCache.has(p2)) this.codeCache.set(p2, []);
      }
    }
    return op;
  }
  private readonly straddlers = new Map<number, number[]>();

  private invalidateCodePage(page: number): void {
    this.codeCache.delete(page);
    this.mem.codePages[page] = 0;
    const also = this.straddlers.get(page);
    if (also) {
      this.straddlers.delete(page);
      for (const p of also) this.invalidateCodePage(p);
    }
    // The page being executed may be the one written (self-modifying code, run-time hooks).
    if (this.fetchPhysBase >>> 12 === page || also) this.fetchLin = -1;
    this.fetchLin = -1;
  }

  // ============================================================================================
  // Events
  // ============================================================================================

  base(): { seq: number; icount: number; cpl: number; eip: number; thread: number } {
    return { seq: this.seq++, icount: this.icount, cpl: this.cpl, eip: this.eip >>> 0, thread: this.threadId };
  }

  /** Emit an event built by the caller with `...this.base()` (only call while tracing). */
  emit(e: TraceEvent): void {
    if (this.batching) this.collector!.other(e);
    this.events.next(e);
  }

  /** Hand out the batch so far (the machine closing). */
  flushBatch(): void {
    this.collector?.flush();
  }
  private emitRaw(e: TraceEvent): void {
    this.events.next(e);
  }

  private ringTransition(mechanism: RingMechanism, from: { cpl: number; eip: number; esp: number }, vector: number | null): void {
    if (!this.tracing) return;
    this.emit({
      type: 'ring-transition',
      ...this.base(),
      cpl: from.cpl,
      eip: from.eip >>> 0,
      fromCpl: from.cpl,
      toCpl: this.cpl,
      mechanism,
      fromEip: from.eip >>> 0,
      toEip: this.nextEip >>> 0,
      fromEsp: from.esp >>> 0,
      toEsp: this.regs[R.ESP] >>> 0,
      vector,
    });
  }

  /** The exception event: where it happened (`at`), what was delivered, and the delivery's effects. */
  private emitException(at: { eip: number; cpl: number }, delivered: GuestFault, original: GuestFault = delivered): void {
    if (!this.tracing) return;
    this.diffRegs();
    const { regs, writes, tableWrites } = this.takeEffectLists();
    this.emit({
      type: 'exception',
      ...this.base(),
      cpl: at.cpl,
      eip: at.eip >>> 0,
      vector: delivered.vector,
      errorCode: delivered.errorCode,
      cr2: delivered.vector === Vector.PF || original.vector === Vector.PF ? this.cr2 >>> 0 : null,
      faultEip: at.eip >>> 0,
      regs,
      writes,
      tableWrites,
    });
  }

  /** The values effect lists report, in RegId order. */
  private currentRegValue(id: number): number {
    if (id < 8) return this.regs[id];
    if (id === 8) return this.getEflags();
    if (id < 15) return this.segSel[id - 9];
    switch (id) {
      case 15: return this.cr0;
      case 16: return this.cr2;
      case 17: return this.cr3;
      default: return this.cr4;
    }
  }
  private resetTraceBase(): void {
    for (let id = 0; id < 19; id++) this.traceBase[id] = this.currentRegValue(id);
    this.tracedFlagsVersion = -1;
    this.tracedEf = -1;
    this.systemDirty = true;
    this.traceWritesLength = 0;
    this.regDiffLength = 0;
    this.traceTableWrites = [];
  }
  /** The registers changed since the last effect-carrying event, into regDiff (RegId order). */
  private diffRegs(): void {
    const b = this.traceBase;
    const r = this.regs;
    const out = this.regDiff;
    let n = 0;
    for (let id = 0; id < 8; id++) {
      if (r[id] !== b[id]) {
        b[id] = r[id];
        out[n++] = id;
        out[n++] = r[id] >>> 0;
      }
    }
    // EFLAGS is only recomputed when its inputs changed (a new lazy record, or stored bits).
    if (this.flagsVersion !== this.tracedFlagsVersion || this.ef !== this.tracedEf) {
      this.tracedFlagsVersion = this.flagsVersion;
      this.tracedEf = this.ef;
      const ef = this.getEflags();
      if (ef !== b[8]) {
        b[8] = ef;
        out[n++] = 8;
        out[n++] = ef >>> 0;
      }
    }
    // Selectors and control registers change rarely: compared only after something touched them.
    if (this.systemDirty || this.cr2 !== b[16]) {
      this.systemDirty = false;
      const sel = this.segSel;
      for (let s = 0; s < 6; s++) {
        if (sel[s] !== b[9 + s]) {
          b[9 + s] = sel[s];
          out[n++] = 9 + s;
          out[n++] = sel[s];
        }
      }
      if (this.cr0 !== b[15] || this.cr2 !== b[16] || this.cr3 !== b[17] || this.cr4 !== b[18]) {
        for (let id = 15; id < 19; id++) {
          const v = this.currentRegValue(id);
          if (v !== b[id]) {
            b[id] = v;
            out[n++] = id;
            out[n++] = v >>> 0;
          }
        }
      }
    }
    this.regDiffLength = n;
  }
  private tracedFlagsVersion = -1;
  private tracedEf = -1;

  // ============================================================================================
  // Snapshots
  // ============================================================================================

  snapshot(): CpuSnapshot {
    return {
      regs: Array.from(this.regs, (v) => v >>> 0),
      eip: this.eip >>> 0,
      eflags: this.getEflags() >>> 0,
      segments: [0, 1, 2, 3, 4, 5].map((s) => ({
        selector: this.segSel[s],
        base: this.segBase[s] >>> 0,
        limit: this.segLimit[s],
        attr: this.segAttr[s],
        usable: this.segUsable[s] === 1,
      })),
      cpl: this.cpl,
      gdtr: { base: this.gdtrBase >>> 0, limit: this.gdtrLimit },
      idtr: { base: this.idtrBase >>> 0, limit: this.idtrLimit },
      tr: { selector: this.trSel, base: this.trBase >>> 0, limit: this.trLimit, attr: this.trAttr },
      cr0: this.cr0 >>> 0,
      cr2: this.cr2 >>> 0,
      cr3: this.cr3 >>> 0,
      cr4: this.cr4 >>> 0,
      msr: { sysenterCs: this.sysenterCs, sysenterEsp: this.sysenterEsp >>> 0, sysenterEip: this.sysenterEip >>> 0, tscOffset: this.tscOffset },
      icount: this.icount,
      debug: {
        dr0: this.dr[0] >>> 0,
        dr1: this.dr[1] >>> 0,
        dr2: this.dr[2] >>> 0,
        dr3: this.dr[3] >>> 0,
        dr6: this.dr[6] >>> 0,
        dr7: this.dr[7] >>> 0,
      },
    };
  }

  /**
   * Back to the power-on state (registers, segments, control registers, MSRs, counters) with every
   * cached translation and decoded instruction dropped. Memory is the caller's business.
   */
  reset(): void {
    this.restore(this.powerOn);
    for (const page of this.codeCache.keys()) this.mem.codePages[page] = 0;
    this.codeCache.clear();
    this.straddlers.clear();
    this.fetchLin = -1;
    this.stop = null;
    this.running = false;
    this.stopOnException = false;
    this.lastException = null;
    this.delivering = -1;
    this.seq = 0;
    this.threadId = 0;
    this.mmu.onNotPresent = null;
  }
  private readonly powerOn: CpuSnapshot;

  restore(s: CpuSnapshot): void {
    s.regs.forEach((v, i) => (this.regs[i] = v));
    this.eip = s.eip | 0;
    this.setEflags(s.eflags);
    s.segments.forEach((g, i) => {
      this.segSel[i] = g.selector;
      this.segBase[i] = g.base;
      this.segLimit[i] = g.limit;
      this.segAttr[i] = g.attr;
      this.segUsable[i] = g.usable ? 1 : 0;
    });
    this.setCpl(s.cpl);
    this.gdtrBase = s.gdtr.base | 0;
    this.gdtrLimit = s.gdtr.limit;
    this.idtrBase = s.idtr.base | 0;
    this.idtrLimit = s.idtr.limit;
    this.trSel = s.tr.selector;
    this.trBase = s.tr.base | 0;
    this.trLimit = s.tr.limit;
    this.trAttr = s.tr.attr;
    this.cr0 = s.cr0 | 0;
    this.cr2 = s.cr2 | 0;
    this.cr3 = s.cr3 | 0;
    this.cr4 = s.cr4 | 0;
    this.sysenterCs = s.msr.sysenterCs;
    this.sysenterEsp = s.msr.sysenterEsp | 0;
    this.sysenterEip = s.msr.sysenterEip | 0;
    this.tscOffset = s.msr.tscOffset;
    this.icount = s.icount;
    this.syncPaging();
    const d = s.debug ?? { dr0: 0, dr1: 0, dr2: 0, dr3: 0, dr6: DR6_INIT, dr7: DR7_INIT };
    [d.dr0, d.dr1, d.dr2, d.dr3].forEach((v, i) => (this.dr[i] = v));
    this.dr[6] = d.dr6;
    this.dr[7] = d.dr7;
    this.dataHits = this.shadowDb = this.heldDb = 0;
    this.stepSuppressed = false;
    this.ssShadowAt = -2;
    this.syncBreakpoints();
  }

  // ============================================================================================
  // Setup helpers (loaders and bare machines)
  // ============================================================================================

  /**
   * Put the CPU in 32-bit protected mode with flat 4 GiB segment caches at the given privilege
   * level, paging off, as a multiboot loader leaves it (selectors 0x08/0x10 for ring 0, 0x1B/0x23 for
   * ring 3). No GDT is needed until the guest loads a selector itself.
   */
  enterFlatProtectedMode(opts: { eip: number; esp?: number; cpl?: 0 | 3; eflags?: number }): void {
    const cpl = opts.cpl ?? 0;
    this.cr0 = CR0_PE | CR0_ET;
    this.syncPaging();
    const code = cpl === 0 ? 0x08 : 0x1b;
    const data = cpl === 0 ? 0x10 : 0x23;
    this.flatCache(Seg.CS, code, true, cpl);
    for (const s of [Seg.SS, Seg.DS, Seg.ES, Seg.FS, Seg.GS]) this.flatCache(s, data, false, cpl);
    this.setCpl(cpl);
    this.eip = opts.eip | 0;
    this.regs[R.ESP] = opts.esp ?? 0;
    this.setEflags(opts.eflags ?? F.FIXED1);
  }

  /** Set a segment cache directly (loaders and `exec`'s fs_base). */
  setSegmentDirect(s: number, sel: number, base: number, limit: number, dpl: number, code = false): void {
    const type = code ? A.CODE | A.READABLE | A.ACCESSED : A.WRITABLE | A.ACCESSED;
    this.setSegmentCache(s, sel, {
      base: base | 0,
      limit,
      attr: type | A.S | (dpl << 5) | A.P | A.DB | (limit > 0xfffff ? A.G : 0),
      dpl,
    });
  }

  /** LTR semantics for loaders and the instruction: load TR from an available 32-bit TSS and mark it busy. */
  loadTaskRegister(sel: number): void {
    if ((sel & 0xfffc) === 0) throw new GuestFault(Vector.GP, 0);
    const d = this.readDescriptor(sel);
    if (d.attr & A.S || (d.attr & A.TYPE) !== 0x9) throw new GuestFault(Vector.GP, sel & 0xfffc);
    if (!(d.attr & A.P)) throw new GuestFault(Vector.NP, sel & 0xfffc);
    const lin = (this.gdtrBase + (sel & 0xfff8) + 4) | 0;
    this.writeSys32(lin, this.readSys32(lin) | 0x200); // busy
    this.trSel = sel;
    this.trBase = d.base;
    this.trLimit = d.limit;
    this.trAttr = d.attr | 0x2;
  }
}

export function decodeDescriptor(lo: number, hi: number): Descriptor {
  let limit = (lo & 0xffff) | (hi & 0xf0000);
  const attr = (hi >>> 8) & 0xf0ff;
  if (attr & A.G) limit = (limit * 4096 + 0xfff) >>> 0;
  return {
    base: ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) | 0,
    limit,
    attr,
    dpl: (attr >> 5) & 3,
  };
}

export function describeFault(f: GuestFault): string {
  const name = VECTOR_NAMES[f.vector] ?? `vector ${hex(f.vector, 2)}`;
  const code = f.errorCode !== null ? `(${hex(f.errorCode, 4)})` : '';
  const cr2 = f.cr2 !== null ? ` at ${hex(f.cr2)}` : '';
  return `${name}${code}${cr2}`;
}

// Keep the import used for the type-only re-export in tests.
export { GuestFault, EmulatorError };
