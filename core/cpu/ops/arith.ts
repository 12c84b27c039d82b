// Integer arithmetic and logic: add or adc sbb and sub xor cmp test inc dec neg not.
// Results are stored; flags are recorded lazily (see flags.ts).
import { Mnemonic } from 'iced-x86';
import type { CPU } from '../cpu.js';
import { LazyOp } from '../flags.js';
import { K, type Handler, type Op } from '../op.js';
import type { Family } from '../table.js';
import { maskOf, rd0, rd1, rmw0, wr0 } from './operands.js';

const enum Alu {
  ADD,
  OR,
  ADC,
  SBB,
  AND,
  SUB,
  XOR,
  CMP,
  TEST,
}

/** Compute a binary ALU result on values masked to `size`, recording the flags; returns the result. */
function alu(cpu: CPU, kind: Alu, a: number, b: number, size: number): number {
  const m = maskOf(size);
  const bits = size * 8;
  let r: number;
  switch (kind) {
    case Alu.ADD:
      r = (a + b) & m;
      cpu.setLazy(LazyOp.ADD, a, b, r, bits);
      return r;
    case Alu.ADC: {
      const cin = cpu.getCF();
      r = (a + b + cin) & m;
      cpu.setLazy(LazyOp.ADC, a, b, r, bits);
      cpu.lfCin = cin;
      return r;
    }
    case Alu.SUB:
    case Alu.CMP:
      r = (a - b) & m;
      cpu.setLazy(LazyOp.SUB, a, b, r, bits);
      return r;
    case Alu.SBB: {
      const cin = cpu.getCF();
      r = (a - b - cin) & m;
      cpu.setLazy(LazyOp.SBB, a, b, r, bits);
      cpu.lfCin = cin;
      return r;
    }
    case Alu.AND:
    case Alu.TEST:
      r = a & b & m;
      break;
    case Alu.OR:
      r = (a | b) & m;
      break;
    default:
      r = (a ^ b) & m;
      break;
  }
  cpu.setLazy(LazyOp.LOGIC, a, b, r, bits);
  return r;
}

function binary(kind: Alu) {
  const writes = kind !== Alu.CMP && kind !== Alu.TEST;
  return (op: Op): Handler => {
    // Fast paths for the register forms of 32-bit ops: the bulk of the guest's arithmetic.
    if (op.size === 4 && op.k0 === K.REG && op.k1 === K.REG) {
      return writes
        ? (cpu, o) => {
            const regs = cpu.regs;
            regs[o.r0] = alu(cpu, kind, regs[o.r0], regs[o.r1], 4);
          }
        : (cpu, o) => {
            alu(cpu, kind, cpu.regs[o.r0], cpu.regs[o.r1], 4);
          };
    }
    if (op.size === 4 && op.k0 === K.REG && op.k1 === K.IMM) {
      return writes
        ? (cpu, o) => {
            const regs = cpu.regs;
            regs[o.r0] = alu(cpu, kind, regs[o.r0], o.imm, 4);
          }
        : (cpu, o) => {
            alu(cpu, kind, cpu.regs[o.r0], o.imm, 4);
          };
    }
    return writes
      ? (cpu, o) => {
          // Operand order matters for faults: the destination is read (and its address fixed) first.
          const a = rmw0(cpu, o);
          const lin = cpu.lastLin;
          const b = rd1(cpu, o);
          cpu.lastLin = lin;
          wr0(cpu, o, alu(cpu, kind, a, b, o.size));
        }
      : (cpu, o) => {
          const a = rd0(cpu, o);
          alu(cpu, kind, a, rd1(cpu, o), o.size);
        };
  };
}

function incDec(inc: boolean) {
  return (op: Op): Handler => {
    if (op.size === 4 && op.k0 === K.REG) {
      return (cpu, o) => {
        const a = cpu.regs[o.r0];
        const r = inc ? (a + 1) | 0 : (a - 1) | 0;
        cpu.regs[o.r0] = r;
        cpu.setLazyKeepCF(inc ? LazyOp.INC : LazyOp.DEC, a, r, 32);
      };
    }
    return (cpu, o) => {
      const a = rmw0(cpu, o);
      const r = (inc ? a + 1 : a - 1) & maskOf(o.size);
      wr0(cpu, o, r);
      cpu.setLazyKeepCF(inc ? LazyOp.INC : LazyOp.DEC, a, r, o.size * 8);
    };
  };
}

const neg: Handler = (cpu, o) => {
  const a = rmw0(cpu, o);
  const r = -a & maskOf(o.size);
  wr0(cpu, o, r);
  cpu.setLazy(LazyOp.NEG, 0, a, r, o.size * 8);
};

const not: Handler = (cpu, o) => {
  wr0(cpu, o, ~rmw0(cpu, o) & maskOf(o.size));
};

export const arithmetic: Family = {
  [Mnemonic.Add]: { resolve: binary(Alu.ADD) },
  [Mnemonic.Or]: { resolve: binary(Alu.OR) },
  [Mnemonic.Adc]: { resolve: binary(Alu.ADC) },
  [Mnemonic.Sbb]: { resolve: binary(Alu.SBB) },
  [Mnemonic.And]: { resolve: binary(Alu.AND) },
  [Mnemonic.Sub]: { resolve: binary(Alu.SUB) },
  [Mnemonic.Xor]: { resolve: binary(Alu.XOR) },
  [Mnemonic.Cmp]: { resolve: binary(Alu.CMP) },
  [Mnemonic.Test]: { resolve: binary(Alu.TEST) },
  [Mnemonic.Inc]: { resolve: incDec(true) },
  [Mnemonic.Dec]: { resolve: incDec(false) },
  [Mnemonic.Neg]: { resolve: () => neg },
  [Mnemonic.Not]: { resolve: () => not },
};

/** Exposed for cmpxchg/xadd and the string compare instructions, which set flags as SUB/ADD do. */
export function subFlags(cpu: CPU, a: number, b: number, size: number): number {
  return alu(cpu, Alu.SUB, a, b, size);
}
export function addFlags(cpu: CPU, a: number, b: number, size: number): number {
  return alu(cpu, Alu.ADD, a, b, size);
}
