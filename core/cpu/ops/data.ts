// Data movement and flag control: mov (incl. moffs, segment registers), movzx, movsx, lea, xchg,
// cmpxchg, cmpxchg8b, xadd, cmovcc, cbw/cwde, cwd/cdq, lahf/sahf, xlat, lds les lfs lgs lss, nop,
// clc stc cmc cld std.
import { Mnemonic } from 'iced-x86';
import type { CPU } from '../cpu.js';
import { R, Seg } from '../cpu.js';
import { F } from '../flags.js';
import { K, type Handler, type Op } from '../op.js';
import type { Family } from '../table.js';
import { addFlags, subFlags } from './arith.js';
import { movControlRegister, movDebugRegister } from './system.js';
import { offsetOf, rmw0, rd1, signExtend, store0, wr0 } from './operands.js';

const movRegReg32: Handler = (cpu, op) => {
  cpu.regs[op.r0] = cpu.regs[op.r1];
};
const movRegImm32: Handler = (cpu, op) => {
  cpu.regs[op.r0] = op.imm;
};
const movGeneric: Handler = (cpu, op) => {
  store0(cpu, op, rd1(cpu, op));
};
/** MOV r/m, Sreg: a 32-bit register destination gets the selector zero-extended. */
const movFromSreg: Handler = (cpu, op) => {
  const sel = cpu.segSel[op.r1];
  if (op.k0 === K.REG) cpu.setReg(op.r0, op.size === 2 ? 2 : 4, sel);
  else cpu.write16(cpu.ea(op, 2), sel);
};
/** MOV Sreg, r/m16. Loading SS holds debug exceptions (and interrupts) until after the next instruction. */
const movToSreg: Handler = (cpu, op) => {
  const sel = op.k1 === K.REG ? cpu.getReg(op.r1, 2) : cpu.read16(cpu.ea(op, 2));
  cpu.loadSegment(op.r0, sel);
  if (op.r0 === Seg.SS) cpu.noteStackSegmentLoad();
};

function resolveMov(op: Op): Handler | null {
  if (op.k0 === K.CR || op.k1 === K.CR) return movControlRegister; // privileged: the system family
  if (op.k0 === K.DR || op.k1 === K.DR) return movDebugRegister;
  if (op.k1 === K.SREG) return movFromSreg;
  if (op.k0 === K.SREG) return movToSreg;
  if (op.size === 4 && op.k0 === K.REG && op.k1 === K.REG) return movRegReg32;
  if (op.size === 4 && op.k0 === K.REG && op.k1 === K.IMM) return movRegImm32;
  return movGeneric;
}

function extend(signed: boolean): Handler {
  return (cpu, op) => {
    const v = rd1(cpu, op);
    cpu.setReg(op.r0, op.size, signed ? signExtend(v, op.size1) : v);
  };
}

const lea: Handler = (cpu, op) => {
  cpu.setReg(op.r0, op.size, offsetOf(cpu, op));
};

/** XCHG: memory is written before the register, so a fault leaves both unchanged. */
const xchg: Handler = (cpu, op) => {
  if (op.k0 === K.REG && op.k1 === K.REG) {
    const a = cpu.getReg(op.r0, op.size);
    cpu.setReg(op.r0, op.size, cpu.getReg(op.r1, op.size));
    cpu.setReg(op.r1, op.size, a);
    return;
  }
  // One operand is memory: normalise to (mem, reg).
  const memFirst = op.k0 === K.MEM;
  const reg = memFirst ? op.r1 : op.r0;
  const lin = cpu.ea(op, op.size);
  const m = cpu.readForWrite(op.size, lin);
  cpu.writeSized(op.size, lin, cpu.getReg(reg, op.size));
  cpu.setReg(reg, op.size, m);
};

/** CMPXCHG r/m, reg: compare with the accumulator; the destination is always written (locked RMW). */
const cmpxchg: Handler = (cpu, op) => {
  const size = op.size;
  const dest = rmw0(cpu, op);
  const acc = cpu.getReg(0, size);
  subFlags(cpu, acc, dest, size);
  if (acc === dest) wr0(cpu, op, cpu.getReg(op.r1, size));
  else {
    wr0(cpu, op, dest);
    cpu.setReg(0, size, dest);
  }
};

/** XADD r/m, reg: reg = old destination, destination = sum. */
const xadd: Handler = (cpu, op) => {
  const size = op.size;
  const dest = rmw0(cpu, op);
  const src = cpu.getReg(op.r1, size);
  const sum = addFlags(cpu, dest, src, size);
  if (op.k0 === K.MEM) {
    wr0(cpu, op, sum);
    cpu.setReg(op.r1, size, dest);
  } else {
    cpu.setReg(op.r1, size, dest);
    cpu.setReg(op.r0, size, sum);
  }
};

/** CMOVcc: the source is read (and may fault) whatever the condition. */
const cmovcc: Handler = (cpu, op) => {
  const v = rd1(cpu, op);
  if (cpu.cond(op.cond)) cpu.setReg(op.r0, op.size, v);
};

const cbwCwde: Handler = (cpu, op) => {
  if (op.size === 4) cpu.regs[0] = signExtend(cpu.regs[0], 2);
  else cpu.setReg(0, 2, signExtend(cpu.regs[0], 1));
};
const cwdCdq: Handler = (cpu, op) => {
  if (op.size === 4) cpu.regs[2] = cpu.regs[0] >> 31;
  else cpu.setReg(2, 2, (signExtend(cpu.regs[0], 2) >> 16) & 0xffff);
};

const lahf: Handler = (cpu) => {
  cpu.setReg8(4, cpu.getEflags() & 0xd7);
};
const sahf: Handler = (cpu) => {
  cpu.setFlagBits(F.SF | F.ZF | F.AF | F.PF | F.CF, cpu.getReg8(4));
};

/**
 * CMPXCHG8B m64: compare EDX:EAX with the quadword; equal: ZF = 1 and ECX:EBX is stored, else
 * ZF = 0 and the quadword is loaded into EDX:EAX. The destination is written either way (the
 * locked read-modify-write cycle writes back what it read), so a read-only page faults.
 */
const cmpxchg8b: Handler = (cpu, op) => {
  const lin = cpu.ea(op, 8);
  const lo = cpu.readForWrite(4, lin);
  const hi = cpu.readForWrite(4, (lin + 4) | 0);
  const regs = cpu.regs;
  const equal = lo === regs[R.EAX] && hi === regs[R.EDX];
  cpu.write32(lin, equal ? regs[R.EBX] : lo);
  cpu.write32((lin + 4) | 0, equal ? regs[R.ECX] : hi);
  if (!equal) (regs[R.EAX] = lo), (regs[R.EDX] = hi);
  cpu.setFlagBits(F.ZF, equal ? F.ZF : 0);
};

/** XLAT: AL = [seg:EBX + AL] (BX + AL under the 0x67 prefix); DS unless overridden. */
const xlat: Handler = (cpu, op) => {
  const off = op.addr16 ? (cpu.regs[R.EBX] + (cpu.regs[R.EAX] & 0xff)) & 0xffff : (cpu.regs[R.EBX] + (cpu.regs[R.EAX] & 0xff)) | 0;
  cpu.setReg8(0, cpu.read8(cpu.segLin(op.seg, off, 1)));
};

/**
 * LDS/LES/LFS/LGS/LSS r, m16:16 or m16:32: the offset, then the selector after it. The segment
 * register is loaded with the usual checks (#GP/#SS/#NP with the selector) before the general
 * register is written, so a fault changes neither. LSS loads SS:ESP in one instruction and so has
 * no MOV SS shadow (the SDM gives the shadow to MOV SS and POP SS only).
 */
function loadFarPointer(seg: Seg): Handler {
  return (cpu, op) => {
    const size = op.size;
    const lin = cpu.ea(op, size + 2);
    const offset = cpu.readSized(size, lin);
    const sel = cpu.read16((lin + size) | 0);
    cpu.loadSegment(seg, sel);
    cpu.setReg(op.r0, size, offset);
  };
}

const nop: Handler = () => {};
function setFlag(mask: number, value: number): Handler {
  return (cpu: CPU) => {
    if (mask & (F.CF | F.OF | F.SF | F.ZF | F.AF | F.PF)) cpu.setFlagBits(mask, value);
    else cpu.ef = (cpu.ef & ~mask) | value;
  };
}
const cmc: Handler = (cpu) => cpu.setFlagBits(F.CF, cpu.getCF() ^ 1);

const cmovNames = [
  Mnemonic.Cmovo, Mnemonic.Cmovno, Mnemonic.Cmovb, Mnemonic.Cmovae, Mnemonic.Cmove, Mnemonic.Cmovne,
  Mnemonic.Cmovbe, Mnemonic.Cmova, Mnemonic.Cmovs, Mnemonic.Cmovns, Mnemonic.Cmovp, Mnemonic.Cmovnp,
  Mnemonic.Cmovl, Mnemonic.Cmovge, Mnemonic.Cmovle, Mnemonic.Cmovg,
];

export const dataMovement: Family = {
  [Mnemonic.Mov]: { resolve: resolveMov },
  [Mnemonic.Movzx]: { resolve: () => extend(false) },
  [Mnemonic.Movsx]: { resolve: () => extend(true) },
  [Mnemonic.Lea]: { resolve: () => lea },
  [Mnemonic.Xchg]: { resolve: () => xchg },
  [Mnemonic.Cmpxchg]: { resolve: () => cmpxchg },
  [Mnemonic.Xadd]: { resolve: () => xadd },
  [Mnemonic.Cbw]: { resolve: () => cbwCwde },
  [Mnemonic.Cwde]: { resolve: () => cbwCwde },
  [Mnemonic.Cwd]: { resolve: () => cwdCdq },
  [Mnemonic.Cdq]: { resolve: () => cwdCdq },
  [Mnemonic.Lahf]: { resolve: () => lahf },
  [Mnemonic.Sahf]: { resolve: () => sahf },
  [Mnemonic.Cmpxchg8b]: { resolve: () => cmpxchg8b },
  [Mnemonic.Xlatb]: { resolve: () => xlat },
  [Mnemonic.Lds]: { resolve: () => loadFarPointer(Seg.DS) },
  [Mnemonic.Les]: { resolve: () => loadFarPointer(Seg.ES) },
  [Mnemonic.Lfs]: { resolve: () => loadFarPointer(Seg.FS) },
  [Mnemonic.Lgs]: { resolve: () => loadFarPointer(Seg.GS) },
  [Mnemonic.Lss]: { resolve: () => loadFarPointer(Seg.SS) },
  [Mnemonic.Nop]: { resolve: () => nop },
  // 0F 0D, 0F 18-0F 1F forms the P6 family executes as no-operations (hint space), bar the
  // SSE prefetches, which decode to their own mnemonics and raise #UD here (no SSE).
  [Mnemonic.Reservednop]: { resolve: () => nop },
  [Mnemonic.Pause]: { resolve: () => nop },
  [Mnemonic.Clc]: { resolve: () => setFlag(F.CF, 0) },
  [Mnemonic.Stc]: { resolve: () => setFlag(F.CF, F.CF) },
  [Mnemonic.Cmc]: { resolve: () => cmc },
  [Mnemonic.Cld]: { resolve: () => setFlag(F.DF, 0) },
  [Mnemonic.Std]: { resolve: () => setFlag(F.DF, F.DF) },
  ...Object.fromEntries(cmovNames.map((m) => [m, { resolve: () => cmovcc }])),
};

