// String instructions: movs stos lods cmps scas (b/w/d) with rep / repe / repne, with 32-bit
// (ESI/EDI/ECX) or, under the 0x67 prefix, 16-bit (SI/DI/CX) addressing. Each iteration commits
// the index and count registers, so a fault part-way leaves them where a restart continues from
// (the instruction's EIP is unchanged until the count reaches zero), as on the real CPU. INS and
// OUTS live with the other port instructions (io.ts) and share the repeat loop below.
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

/** The offset in an index register (ESI, EDI), 16 bits of it with the 0x67 prefix. */
export function indexOffset(cpu: CPU, op: Op, reg: number): number {
  return op.addr16 ? cpu.regs[reg] & 0xffff : cpu.regs[reg];
}

/** Advance an index register by `d` (the low 16 bits only with the 0x67 prefix: SI/DI wrap at 64 KiB). */
export function advanceIndex(cpu: CPU, op: Op, reg: number, d: number): void {
  const regs = cpu.regs;
  if (op.addr16) regs[reg] = (regs[reg] & ~0xffff) | ((regs[reg] + d) & 0xffff);
  else regs[reg] = (regs[reg] + d) | 0;
}

/** One iteration (the comparison ones set the flags the repe/repne test reads). */
function once(cpu: CPU, op: Op, kind: Str): void {
  const size = op.size;
  const d = step(cpu, size);
  switch (kind) {
    case Str.MOVS: {
      const v = cpu.readSized(size, cpu.segLin(op.seg, indexOffset(cpu, op, R.ESI), size));
      cpu.writeSized(size, cpu.segLin(Seg.ES, indexOffset(cpu, op, R.EDI), size), v);
      advanceIndex(cpu, op, R.ESI, d);
      advanceIndex(cpu, op, R.EDI, d);
      return;
    }
    case Str.STOS:
      cpu.writeSized(size, cpu.segLin(Seg.ES, indexOffset(cpu, op, R.EDI), size), cpu.getReg(R.EAX, size));
      advanceIndex(cpu, op, R.EDI, d);
      return;
    case Str.LODS:
      cpu.setReg(R.EAX, size, cpu.readSized(size, cpu.segLin(op.seg, indexOffset(cpu, op, R.ESI), size)));
      advanceIndex(cpu, op, R.ESI, d);
      return;
    case Str.CMPS: {
      const a = cpu.readSized(size, cpu.segLin(op.seg, indexOffset(cpu, op, R.ESI), size));
      const b = cpu.readSized(size, cpu.segLin(Seg.ES, indexOffset(cpu, op, R.EDI), size));
      subFlags(cpu, a, b, size);
      advanceIndex(cpu, op, R.ESI, d);
      advanceIndex(cpu, op, R.EDI, d);
      return;
    }
    default: {
      const b = cpu.readSized(size, cpu.segLin(Seg.ES, indexOffset(cpu, op, R.EDI), size));
      subFlags(cpu, cpu.getReg(R.EAX, size), b, size);
      advanceIndex(cpu, op, R.EDI, d);
    }
  }
}

/**
 * The repeat loop of rep/repe/repne: iterations while the count (ECX, or CX under 0x67) is not
 * zero. The instruction ends early, with EIP left on it so the next step continues the loop, after
 * 64 Ki iterations (instruction limits and stops still apply, as the CPU lets interrupts in between
 * iterations), after a single iteration while EFLAGS.TF is set (a single-step trap follows every
 * iteration, SDM vol. 3 17.3.1.4), and after an iteration that hit a data or I/O breakpoint (the
 * #DB trap is taken there). `compares`: repe stops on a mismatch (ZF=0), repne on a match (ZF=1).
 */
export function repeat(cpu: CPU, op: Op, iteration: (cpu: CPU, op: Op) => void, compares: boolean): void {
  const regs = cpu.regs;
  const budget = cpu.ef & F.TF ? 1 : 0x10000;
  const a16 = op.addr16;
  for (let n = 0; ; ) {
    const count = a16 ? regs[R.ECX] & 0xffff : regs[R.ECX];
    if (count === 0) return;
    if (n === budget) {
      cpu.nextEip = cpu.eip;
      return;
    }
    iteration(cpu, op);
    if (a16) regs[R.ECX] = (regs[R.ECX] & ~0xffff) | ((count - 1) & 0xffff);
    else regs[R.ECX] = (count - 1) | 0;
    n++;
    if (compares && cpu.getZF() !== (op.rep === 1 ? 1 : 0)) return;
    if (cpu.dataHits !== 0 && (a16 ? regs[R.ECX] & 0xffff : regs[R.ECX]) !== 0) {
      cpu.nextEip = cpu.eip;
      return;
    }
  }
}

function stringOp(kind: Str) {
  const compares = kind === Str.CMPS || kind === Str.SCAS;
  const iteration = (cpu: CPU, o: Op) => once(cpu, o, kind);
  return (op: Op): Handler => {
    if (op.rep === 0) return iteration;
    return (cpu, o) => repeat(cpu, o, iteration, compares);
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
