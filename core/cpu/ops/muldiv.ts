// Multiply and divide: mul, imul (one, two and three operands), div, idiv (#DE on a zero divisor
// or a quotient that does not fit). CF and OF are defined; SF, ZF, AF, PF after a multiply are
// undefined and get QEMU's values (from the low half of the result, AF clear).
import { Mnemonic } from 'iced-x86';
import type { CPU } from '../cpu.js';
import { ARITH_FLAGS, PARITY } from '../flags.js';
import { GuestFault, Vector } from '../faults.js';
import { K, type Handler, type Op } from '../op.js';
import type { Family } from '../table.js';
import { maskOf, rd0, rd1, signExtend, szp } from './operands.js';

/** Unsigned 32×32 → 64: [low, high] as int32. */
function mulu32(a: number, b: number): [number, number] {
  const p = BigInt(a >>> 0) * BigInt(b >>> 0);
  return [Number(p & 0xffffffffn) | 0, Number(p >> 32n) | 0];
}

function setMulFlags(cpu: CPU, overflow: boolean, low: number, bits: number): void {
  const cfof = overflow ? 0x801 : 0;
  cpu.setFlagBits(ARITH_FLAGS, cfof | (szp(low, bits, PARITY) & ~0x10));
}

/** MUL r/m: EDX:EAX = EAX * src (or DX:AX, AX). */
const mul: Handler = (cpu, op) => {
  const src = rd0(cpu, op);
  const regs = cpu.regs;
  switch (op.size) {
    case 1: {
      const p = (regs[0] & 0xff) * src;
      cpu.setReg(0, 2, p);
      setMulFlags(cpu, p > 0xff, p & 0xff, 8);
      break;
    }
    case 2: {
      const p = (regs[0] & 0xffff) * src;
      cpu.setReg(0, 2, p & 0xffff);
      cpu.setReg(2, 2, p >>> 16);
      setMulFlags(cpu, p > 0xffff, p & 0xffff, 16);
      break;
    }
    default: {
      const [lo, hi] = mulu32(regs[0], src);
      regs[0] = lo;
      regs[2] = hi;
      setMulFlags(cpu, hi !== 0, lo, 32);
    }
  }
};

/** Signed product of two values of `size`; returns [low, high, overflow]. */
function imulSized(a: number, b: number, size: number): [number, number, boolean] {
  const sa = signExtend(a, size);
  const sb = signExtend(b, size);
  if (size === 4) {
    const p = BigInt(sa) * BigInt(sb);
    const lo = Number(BigInt.asIntN(32, p));
    const hi = Number(BigInt.asIntN(32, p >> 32n));
    return [lo, hi, BigInt(lo) !== p];
  }
  const p = sa * sb;
  const bits = size * 8;
  const lo = p & maskOf(size);
  const hi = (p >> bits) & maskOf(size);
  return [lo, hi, signExtend(lo, size) !== p];
}

/** IMUL r/m (one operand): the double-width product in (E)DX:(E)AX or AX. */
const imul1: Handler = (cpu, op) => {
  const src = rd0(cpu, op);
  const size = op.size;
  const [lo, hi, overflow] = imulSized(cpu.getReg(0, size), src, size);
  if (size === 1) cpu.setReg(0, 2, ((hi & 0xff) << 8) | (lo & 0xff));
  else {
    cpu.setReg(0, size, lo);
    cpu.setReg(2, size, hi);
  }
  setMulFlags(cpu, overflow, lo, size * 8);
};

/** IMUL reg, r/m [, imm]: the truncated product in reg. */
const imulN: Handler = (cpu, op) => {
  const size = op.size;
  const b = op.k2 === K.IMM ? op.imm & maskOf(size) : cpu.getReg(op.r0, size);
  const a = rd1(cpu, op);
  const [lo, , overflow] = imulSized(a, b, size);
  cpu.setReg(op.r0, size, lo);
  setMulFlags(cpu, overflow, lo, size * 8);
};

/** DIV / IDIV: quotient in (E)AX or AL, remainder in (E)DX or AH. */
function divide(signed: boolean): Handler {
  return (cpu, op) => {
    const size = op.size;
    const divisor = rd0(cpu, op);
    if (divisor === 0) throw new GuestFault(Vector.DE);
    const regs = cpu.regs;
    let dividend: bigint;
    if (size === 1) dividend = BigInt(regs[0] & 0xffff);
    else if (size === 2) dividend = BigInt((((regs[2] & 0xffff) << 16) | (regs[0] & 0xffff)) >>> 0);
    else dividend = (BigInt(regs[2] >>> 0) << 32n) | BigInt(regs[0] >>> 0);
    const bits = BigInt(size * 16);
    let d = BigInt(divisor >>> 0);
    if (signed) {
      dividend = BigInt.asIntN(Number(bits), dividend);
      d = BigInt(signExtend(divisor, size));
    }
    const q = dividend / d; // BigInt division truncates toward zero, as IDIV does
    const r = dividend % d;
    const qbits = BigInt(size * 8);
    const fits = signed ? BigInt.asIntN(Number(qbits), q) === q : BigInt.asUintN(Number(qbits), q) === q;
    if (!fits) throw new GuestFault(Vector.DE);
    const qn = Number(BigInt.asUintN(Number(qbits), q));
    const rn = Number(BigInt.asUintN(Number(qbits), r));
    if (size === 1) cpu.setReg(0, 2, (rn << 8) | qn);
    else {
      cpu.setReg(0, size, qn);
      cpu.setReg(2, size, rn);
    }
  };
}

export const multiply: Family = {
  [Mnemonic.Mul]: { resolve: () => mul },
  [Mnemonic.Imul]: { resolve: (op: Op) => (op.k1 === K.NONE ? imul1 : imulN) },
  [Mnemonic.Div]: { resolve: () => divide(false) },
  [Mnemonic.Idiv]: { resolve: () => divide(true) },
};
