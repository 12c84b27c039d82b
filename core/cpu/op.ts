// A decoded instruction, pre-resolved once per code address so the hot loop never touches
// iced-x86: operand kinds and register numbers, the memory operand's parts, immediates, the branch
// target, and the handler that executes it. Every Op has the same shape (one class, every field
// initialised) so V8 keeps property access monomorphic.
import type { CPU } from './cpu.js';

export type Handler = (cpu: CPU, op: Op) => void;

/** Operand kinds. */
export const enum K {
  NONE = 0,
  REG = 1, // general register of the operand's size (8-bit: 0-3 = AL..BL, 4-7 = AH..BH)
  MEM = 2,
  IMM = 3,
  SREG = 4, // segment register 0-5 = ES CS SS DS FS GS
  CR = 5, // control register number
  DR = 6, // debug register number
}

export class Op {
  exec: Handler;
  /** Instruction length in bytes. */
  len = 0;
  bytes: Uint8Array = EMPTY;
  /** iced-x86 Code and Mnemonic (for errors and tests). */
  code = 0;
  mnemonic = 0;
  /** Operand size in bytes of the main operand (1, 2, 4); for movzx/movsx the source size in `size1`. */
  size = 4;
  size1 = 4;
  k0 = K.NONE;
  r0 = 0;
  k1 = K.NONE;
  r1 = 0;
  k2 = K.NONE;
  r2 = 0;
  imm = 0;
  imm2 = 0;
  /** Memory operand: segment, base and index register (-1 none), scale as a shift, displacement. */
  seg = 3;
  base = -1;
  index = -1;
  scale = 0;
  disp = 0;
  /** 16-bit addressing (0x67 prefix): the offset wraps at 64 KiB. */
  addr16 = false;
  /** Condition code (iced ConditionCode) for jcc / setcc / cmovcc / loopcc. */
  cond = 0;
  /**
   * Near branch displacement from the next instruction. Relative, not absolute: decoded Ops are
   * cached per physical page, and one page may be mapped at several linear addresses.
   */
  rel = 0;
  /** Far branch offset. */
  target = 0;
  /** Far branch selector. */
  selector = 0;
  /** 0: none, 1: rep / repe, 2: repne. */
  rep = 0;
  /** Handler-specific selector (e.g. which ALU operation). */
  sub = 0;
  /** WinDbg-style text, filled on first request. */
  text: string | null = null;
  /** The code id a batch gave its last execution (core/batches.ts), -1 before any. */
  traceCode = -1;

  constructor(exec: Handler) {
    this.exec = exec;
  }
}

const EMPTY = new Uint8Array(0);
