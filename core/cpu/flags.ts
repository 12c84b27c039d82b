// EFLAGS bits and the lazy-flag operations. Arithmetic instructions record their operands and
// result instead of computing six flags each time; a flag is computed only when something reads it
// (a jcc, pushfd, adc). `LazyOp` names the recipe.

export const enum F {
  CF = 0x1,
  FIXED1 = 0x2, // bit 1 always reads 1
  PF = 0x4,
  AF = 0x10,
  ZF = 0x40,
  SF = 0x80,
  TF = 0x100,
  IF = 0x200,
  DF = 0x400,
  OF = 0x800,
  IOPL = 0x3000,
  NT = 0x4000,
  RF = 0x10000,
  VM = 0x20000,
  AC = 0x40000,
  ID = 0x200000,
}

/** The six arithmetic flags. */
export const ARITH_FLAGS = F.CF | F.PF | F.AF | F.ZF | F.SF | F.OF;

/** Bits a 486+ lets software change through POPFD at CPL 0 (VM is never set here: no V86 mode). */
export const POPF_MASK = ARITH_FLAGS | F.TF | F.IF | F.DF | F.IOPL | F.NT | F.AC | F.ID;

export const enum LazyOp {
  ADD = 1,
  ADC,
  SUB,
  SBB,
  LOGIC,
  INC,
  DEC,
  NEG,
}

/** PF: set when the low byte of the result has an even number of 1 bits. */
export const PARITY = (() => {
  const t = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    let b = i;
    b ^= b >> 4;
    b ^= b >> 2;
    b ^= b >> 1;
    t[i] = (b & 1) === 0 ? 1 : 0;
  }
  return t;
})();

/** Mask for an operand of `bits` (8, 16, 32) as a signed int32 (0xFFFFFFFF → -1). */
export function sizeMask(bits: number): number {
  return bits === 32 ? -1 : (1 << bits) - 1;
}
