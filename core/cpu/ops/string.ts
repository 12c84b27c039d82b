// String instructions: movs stos lods cmps scas (b/w/d) with rep / repe / repne. Each iteration
// commits ESI/EDI/ECX, so a fault part-way leaves the registers where a restart continues from
// (the instruction's EIP is unchanged until ECX reaches zero), as on the real CPU.
import { Mnemonic } from 'iced-x86';
import type { CPU } from '../cpu.js';
import { R, Seg } from '../cpu.js';
import { F } from '../flags.js';
import type { Handler, Op } from '../op.js';
import type { Family } from '../table.js';
import { subFlags } from './arith.js';

const enum Str {
  MOVS,
  STOS,
  LODS,
  CMPS,
  SCAS,
}

function step(cpu: CPU, size: number): number {
  return cpu.ef & F.DF ? -size : size;
}

/** One iteration; returns false when a repe/repne compare ends the loop. */
function once(cpu: CPU, op: Op, kind: Str): boolean {
  const regs = cpu.regs;
  const size = op.size;
  const d = step(cpu, size);
  switch (kind) {
    case Str.MOVS: {
      const v = cpu.readSized(size, cpu.segLin(op.seg, regs[R.ESI], size));
      cpu.writeSized(size, cpu.segLin(Seg.ES, regs[R.EDI], size), v);
      regs[R.ESI] = (regs[R.ESI] + d) | 0;
      regs[R.EDI] = (regs[R.EDI] + d) | 0;
      return true;
    }
    case Str.STOS:
      cpu.writeSized(size, cpu.segLin(Seg.ES, regs[R.EDI], size), cpu.getReg(R.EAX, size));
      regs[R.EDI] = (regs[R.EDI] + d) | 0;
      return true;
    case Str.LODS:
      cpu.setReg(R.EAX, size, cpu.readSized(size, cpu.segLin(op.seg, regs[R.ESI], size)));
      regs[R.ESI] = (regs[R.ESI] + d) | 0;
      return true;
    case Str.CMPS: {
      const a = cpu.readSized(size, cpu.segLin(op.seg, regs[R.ESI], size));
      const b = cpu.readSized(size, cpu.segLin(Seg.ES, regs[R.EDI], size));
      subFlags(cpu, a, b, size);
      regs[R.ESI] = (regs[R.ESI] + d) | 0;
      regs[R.EDI] = (regs[R.EDI] + d) | 0;
      return true;
    }
    default: {
      const b = cpu.readSized(size, cpu.segLin(Seg.ES, regs[R.EDI], size));
      subFlags(cpu, cpu.getReg(R.EAX, size), b, size);
      regs[R.EDI] = (regs[R.EDI] + d) | 0;
      return true;
    }
  }
}

function stringOp(kind: Str) {
  const compares = kind === Str.CMPS || kind === Str.SCAS;
  return (op: Op): Handler => {
    if (op.rep === 0) return (cpu, o) => void once(cpu, o, kind);
    return (cpu, o) => {
      const regs = cpu.regs;
      for (let n = 0; regs[R.ECX] !== 0; n++) {
        // A very long rep yields every 64 Ki iterations by restarting itself, so instruction limits
        // and the stop flag still apply (the CPU likewise lets interrupts in between iterations).
        if (n === 0x10000) {
          cpu.nextEip = cpu.eip;
          break;
        }
        once(cpu, o, kind);
        regs[R.ECX] = (regs[R.ECX] - 1) | 0;
        // repe stops on a mismatch (ZF=0), repne on a match (ZF=1); movs/stos/lods ignore ZF.
        if (compares && cpu.getZF() !== (o.rep === 1 ? 1 : 0)) break;
      }
    };
  };
}

export const strings: Family = {
  [Mnemonic.Movsb]: { resolve: stringOp(Str.MOVS) },
  [Mnemonic.Movsw]: { resolve: stringOp(Str.MOVS) },
  [Mnemonic.Movsd]: { resolve: stringOp(Str.MOVS) },
  [Mnemonic.Stosb]: { resolve: stringOp(Str.STOS) },
  [Mnemonic.Stosw]: { resolve: stringOp(Str.STOS) },
  [Mnemonic.Stosd]: { resolve: stringOp(Str.STOS) },
  [Mnemonic.Lodsb]: { resolve: stringOp(Str.LODS) },
  [Mnemonic.Lodsw]: { resolve: stringOp(Str.LODS) },
  [Mnemonic.Lodsd]: { resolve: stringOp(Str.LODS) },
  [Mnemonic.Cmpsb]: { resolve: stringOp(Str.CMPS) },
  [Mnemonic.Cmpsw]: { resolve: stringOp(Str.CMPS) },
  [Mnemonic.Cmpsd]: { resolve: stringOp(Str.CMPS) },
  [Mnemonic.Scasb]: { resolve: stringOp(Str.SCAS) },
  [Mnemonic.Scasw]: { resolve: stringOp(Str.SCAS) },
  [Mnemonic.Scasd]: { resolve: stringOp(Str.SCAS) },
};
