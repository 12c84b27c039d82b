// Control transfer: jmp and call (relative, indirect, far), ret/ret imm16, retf, jcc, loop/loope/
// loopne, jecxz/jcxz, int n, int3, into, int1, bound, iret/iretd. The CPU's microcode (cpu.ts) does
// the privilege work.
import { Mnemonic } from 'iced-x86';
import { R, type CPU } from '../cpu.js';
import { GuestFault, Vector } from '../faults.js';
import { K, type Handler, type Op } from '../op.js';
import type { Family } from '../table.js';
import { rd0 } from './operands.js';

/** The target of a relative branch: next EIP + displacement (wrapping at 64 KiB for 16-bit operand size). */
function near(cpu: CPU, op: Op): number {
  const t = cpu.nextEip + op.rel;
  return op.size === 2 ? t & 0xffff : t | 0;
}

const jmpRel: Handler = (cpu, op) => {
  cpu.nextEip = near(cpu, op);
};
const jmpIndirect: Handler = (cpu, op) => {
  cpu.nextEip = op.size === 2 ? rd0(cpu, op) & 0xffff : rd0(cpu, op);
};
const jmpFarDirect: Handler = (cpu, op) => {
  cpu.farTransfer(op.selector, op.target, false, op.size);
};
/** JMP/CALL m16:32 — offset then selector in memory. */
function farIndirect(call: boolean): Handler {
  return (cpu, op) => {
    const size = op.size === 6 ? 4 : 2; // the memory operand is m16:32 (6 bytes) or m16:16
    const lin = cpu.ea(op, size + 2);
    const offset = cpu.readSized(size, lin);
    const sel = cpu.read16((lin + size) | 0);
    cpu.farTransfer(sel, offset, call, size);
  };
}

const callRel: Handler = (cpu, op) => {
  cpu.push(op.size, cpu.nextEip);
  cpu.nextEip = near(cpu, op);
};
/** CALL r/m: the target is read before the return address is pushed (call [esp] uses the old ESP). */
const callIndirect: Handler = (cpu, op) => {
  const target = rd0(cpu, op);
  cpu.push(op.size, cpu.nextEip);
  cpu.nextEip = op.size === 2 ? target & 0xffff : target;
};
const callFarDirect: Handler = (cpu, op) => {
  cpu.farTransfer(op.selector, op.target, true, op.size);
};

function resolveJmp(op: Op, far: boolean): Handler | null {
  if (far) return op.k0 === K.MEM ? farIndirect(false) : jmpFarDirect;
  return op.k0 === K.REG || op.k0 === K.MEM ? jmpIndirect : jmpRel;
}
function resolveCall(op: Op, far: boolean): Handler | null {
  if (far) return op.k0 === K.MEM ? farIndirect(true) : callFarDirect;
  return op.k0 === K.REG || op.k0 === K.MEM ? callIndirect : callRel;
}

/** RET [imm16]: EIP from the stack, then release imm16 bytes of arguments. */
const ret: Handler = (cpu, op) => {
  const eip = cpu.pop(op.size);
  if (op.k0 === K.IMM) cpu.regs[R.ESP] = (cpu.regs[R.ESP] + (op.imm & 0xffff)) | 0;
  cpu.nextEip = op.size === 2 ? eip & 0xffff : eip;
};
const retf: Handler = (cpu, op) => {
  cpu.retf(op.size, op.k0 === K.IMM ? op.imm & 0xffff : 0);
};

const jcc: Handler = (cpu, op) => {
  if (cpu.cond(op.cond)) cpu.nextEip = near(cpu, op);
};
/** The hot pair: jz/jnz on a lazily recorded result. */
const jnz: Handler = (cpu, op) => {
  if (cpu.getZF() === 0) cpu.nextEip = near(cpu, op);
};
const jz: Handler = (cpu, op) => {
  if (cpu.getZF() === 1) cpu.nextEip = near(cpu, op);
};

/** LOOP/LOOPE/LOOPNE: decrement the count — ECX, or CX under the 0x67 prefix — and branch. */
function loop(kind: 'loop' | 'loope' | 'loopne'): Handler {
  return (cpu, op) => {
    let count: number;
    if (op.addr16) {
      count = (cpu.regs[R.ECX] - 1) & 0xffff;
      cpu.regs[R.ECX] = (cpu.regs[R.ECX] & ~0xffff) | count;
    } else {
      count = (cpu.regs[R.ECX] - 1) | 0;
      cpu.regs[R.ECX] = count;
    }
    const zf = cpu.getZF();
    const go = count !== 0 && (kind === 'loop' || (kind === 'loope' ? zf === 1 : zf === 0));
    if (go) cpu.nextEip = near(cpu, op);
  };
}
const jecxz: Handler = (cpu, op) => {
  if (cpu.regs[R.ECX] === 0) cpu.nextEip = near(cpu, op);
};
/** JCXZ (67 E3): the 16-bit count register. */
const jcxz: Handler = (cpu, op) => {
  if ((cpu.regs[R.ECX] & 0xffff) === 0) cpu.nextEip = near(cpu, op);
};

const intN: Handler = (cpu, op) => cpu.softInterrupt(op.imm & 0xff);
const int3: Handler = (cpu) => cpu.softInterrupt(3);
const into: Handler = (cpu) => {
  if (cpu.getOF()) cpu.softInterrupt(4);
};
const int1: Handler = (cpu) => cpu.icebp();

/** BOUND r, m: #BR (vector 5, a fault) unless lower <= r <= upper, signed, the bounds a pair in memory. */
const bound: Handler = (cpu, op) => {
  const size = op.size;
  const lin = cpu.ea(op, 2 * size);
  const lower = size === 4 ? cpu.read32(lin) : (cpu.read16(lin) << 16) >> 16;
  const upper = size === 4 ? cpu.read32((lin + 4) | 0) : (cpu.read16((lin + 2) | 0) << 16) >> 16;
  const v = size === 4 ? cpu.regs[op.r0] : (cpu.regs[op.r0] << 16) >> 16;
  if (v < lower || v > upper) throw new GuestFault(Vector.BR);
};
const iretd: Handler = (cpu, op) => cpu.iret(op.size);

const jccNames = [
  Mnemonic.Jo, Mnemonic.Jno, Mnemonic.Jb, Mnemonic.Jae, Mnemonic.Je, Mnemonic.Jne, Mnemonic.Jbe,
  Mnemonic.Ja, Mnemonic.Js, Mnemonic.Jns, Mnemonic.Jp, Mnemonic.Jnp, Mnemonic.Jl, Mnemonic.Jge,
  Mnemonic.Jle, Mnemonic.Jg,
];

export const controlTransfer: Family = {
  [Mnemonic.Jmp]: { resolve: (op, instr) => resolveJmp(op, instr.isJmpFar || instr.isJmpFarIndirect) },
  [Mnemonic.Call]: { resolve: (op, instr) => resolveCall(op, instr.isCallFar || instr.isCallFarIndirect) },
  [Mnemonic.Ret]: { resolve: () => ret },
  [Mnemonic.Retf]: { resolve: () => retf },
  ...Object.fromEntries(jccNames.map((m) => [m, { resolve: () => (m === Mnemonic.Jne ? jnz : m === Mnemonic.Je ? jz : jcc) }])),
  [Mnemonic.Loop]: { resolve: () => loop('loop') },
  [Mnemonic.Loope]: { resolve: () => loop('loope') },
  [Mnemonic.Loopne]: { resolve: () => loop('loopne') },
  [Mnemonic.Jecxz]: { resolve: () => jecxz },
  [Mnemonic.Jcxz]: { resolve: () => jcxz },
  [Mnemonic.Int]: { resolve: () => intN },
  [Mnemonic.Int3]: { resolve: () => int3 },
  [Mnemonic.Into]: { resolve: () => into },
  [Mnemonic.Int1]: { resolve: () => int1 },
  [Mnemonic.Bound]: { resolve: () => bound },
  [Mnemonic.Iretd]: { resolve: () => iretd },
  [Mnemonic.Iret]: { resolve: () => iretd },
};
