// Shifts and rotates: shl/sal shr sar rol ror rcl rcr (by 1, imm8, cl), shld shrd.
// The count is masked to 5 bits; a masked count of 0 changes nothing, flags included. Flags the SDM
// leaves undefined (OF for counts > 1, AF) are given the values QEMU computes, so traces are stable.
import { Mnemonic } from 'iced-x86';
import type { CPU } from '../cpu.js';
import { ARITH_FLAGS, F, PARITY } from '../flags.js';
import { K, type Handler, type Op } from '../op.js';
import type { Family } from '../table.js';
import { maskOf, rmw0, signExtend, szp, wr0 } from './operands.js';

const enum Sh {
  ROL,
  ROR,
  RCL,
  RCR,
  SHL,
  SHR,
  SAR,
}

/** A masked count of 0 changes nothing, but the CPU still accesses a memory operand (and may fault). */
function touchIfMemory(cpu: CPU, op: Op): void {
  if (op.k0 === K.MEM) cpu.readForWrite(op.size, cpu.ea(op, op.size));
}

/** The shift count: operand 1 (CL or an immediate; `shl eax,1` decodes with an immediate 1). */
function count(cpu: CPU, op: Op): number {
  return (op.k1 === K.REG ? cpu.regs[1] & 0xff : op.imm) & 0x1f;
}

function shift(kind: Sh) {
  return (): Handler => (cpu, op) => {
    const c = count(cpu, op);
    if (c === 0) return touchIfMemory(cpu, op);
    const size = op.size;
    const bits = size * 8;
    const m = maskOf(size);
    const a = rmw0(cpu, op);
    let r = 0;
    let cf = 0;
    let of = 0;
    let flags = -1; // -1: set CF and OF only (rotates); otherwise all arithmetic flags
    switch (kind) {
      case Sh.SHL:
        r = c < 32 ? (a << c) & m : 0;
        cf = c <= bits ? (a >>> (bits - c)) & 1 : 0;
        of = ((r >>> (bits - 1)) & 1) ^ cf;
        flags = szp(r, bits, PARITY);
        break;
      case Sh.SHR:
        r = (a & m) >>> c;
        if (c >= 32) r = 0;
        cf = c <= bits ? ((a & m) >>> (c - 1)) & 1 : 0;
        of = c === 1 ? (a >>> (bits - 1)) & 1 : 0;
        flags = szp(r, bits, PARITY);
        break;
      case Sh.SAR: {
        const s = signExtend(a, size);
        r = (s >> Math.min(c, 31)) & m;
        cf = (s >> Math.min(c - 1, 31)) & 1;
        of = 0;
        flags = szp(r, bits, PARITY);
        break;
      }
      case Sh.ROL: {
        const n = c % bits;
        r = n === 0 ? a : ((a << n) | ((a & m) >>> (bits - n))) & m;
        cf = r & 1;
        of = ((r >>> (bits - 1)) & 1) ^ cf;
        break;
      }
      case Sh.ROR: {
        const n = c % bits;
        r = n === 0 ? a : (((a & m) >>> n) | (a << (bits - n))) & m;
        cf = (r >>> (bits - 1)) & 1;
        of = cf ^ ((r >>> (bits - 2)) & 1);
        break;
      }
      case Sh.RCL:
      case Sh.RCR: {
        // Rotate through carry: a (bits+1)-bit rotation, done one bit at a time.
        const n = c % (bits + 1);
        cf = cpu.getCF();
        r = a & m;
        if (n === 0) return;
        for (let i = 0; i < n; i++) {
          if (kind === Sh.RCL) {
            const out = (r >>> (bits - 1)) & 1;
            r = ((r << 1) | cf) & m;
            cf = out;
          } else {
            const out = r & 1;
            r = ((r & m) >>> 1) | (cf << (bits - 1));
            r &= m;
            cf = out;
          }
        }
        of = kind === Sh.RCL ? ((r >>> (bits - 1)) & 1) ^ cf : ((r >>> (bits - 1)) ^ (r >>> (bits - 2))) & 1;
        break;
      }
    }
    wr0(cpu, op, r);
    if (flags === -1) cpu.setFlagBits(F.CF | F.OF, cf | (of << 11));
    else cpu.setFlagBits(ARITH_FLAGS, flags | cf | (of << 11));
  };
}

/** SHLD/SHRD r/m, reg, imm8|CL: shift in bits from the second operand. */
function doubleShift(left: boolean) {
  return (): Handler => (cpu, op) => {
    const c = (op.k2 === K.REG ? cpu.regs[1] & 0xff : op.imm) & 0x1f;
    if (c === 0) return touchIfMemory(cpu, op);
    const size = op.size;
    const bits = size * 8;
    const m = maskOf(size);
    const a = rmw0(cpu, op) & m;
    const b = cpu.getReg(op.r1, size) & m;
    let r: number;
    let cf: number;
    if (size === 4) {
      r = left ? (a << c) | (b >>> (32 - c)) : (a >>> c) | (b << (32 - c));
      cf = left ? (a >>> (32 - c)) & 1 : (a >>> (c - 1)) & 1;
    } else {
      // 16-bit: the SDM leaves counts > 16 undefined; compute over the 32-bit concatenation like QEMU.
      const cat = left ? ((a << 16) | b) >>> 0 : ((b << 16) | a) >>> 0;
      if (left) {
        const wide = c <= 16 ? cat : ((cat << 16) | a) >>> 0;
        const k = c <= 16 ? c : c - 16;
        r = ((wide << k) >>> 16) & m;
        cf = (wide >>> (32 - k)) & 1;
      } else {
        r = (cat >>> c) & m;
        cf = (cat >>> (c - 1)) & 1;
      }
    }
    r &= m;
    wr0(cpu, op, r);
    const of = ((a ^ r) >>> (bits - 1)) & 1;
    cpu.setFlagBits(ARITH_FLAGS, szp(r, bits, PARITY) | cf | (of << 11));
  };
}

export const shifts: Family = {
  [Mnemonic.Rol]: { resolve: shift(Sh.ROL) },
  [Mnemonic.Ror]: { resolve: shift(Sh.ROR) },
  [Mnemonic.Rcl]: { resolve: shift(Sh.RCL) },
  [Mnemonic.Rcr]: { resolve: shift(Sh.RCR) },
  [Mnemonic.Shl]: { resolve: shift(Sh.SHL) },
  [Mnemonic.Sal]: { resolve: shift(Sh.SHL) },
  [Mnemonic.Shr]: { resolve: shift(Sh.SHR) },
  [Mnemonic.Sar]: { resolve: shift(Sh.SAR) },
  [Mnemonic.Shld]: { resolve: doubleShift(true) },
  [Mnemonic.Shrd]: { resolve: doubleShift(false) },
};
