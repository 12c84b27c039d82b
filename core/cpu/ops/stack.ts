// Stack instructions: push/pop (register, immediate, memory, segment register), pushad/popad,
// pushfd/popfd with the privilege rules for IF and IOPL, enter, leave.
import { Mnemonic } from 'iced-x86';
import { R, Seg } from '../cpu.js';
import { F } from '../flags.js';
import { K, type Handler, type Op } from '../op.js';
import type { Family } from '../table.js';

const pushReg32: Handler = (cpu, op) => {
  cpu.push32(cpu.regs[op.r0]); // push esp pushes the value before the decrement
};
const pushImm: Handler = (cpu, op) => {
  cpu.push(op.size, op.imm);
};
const pushMem: Handler = (cpu, op) => {
  cpu.push(op.size, cpu.readSized(op.size, cpu.ea(op, op.size)));
};
/** PUSH Sreg in 32-bit code writes the zero-extended selector as a dword (as QEMU does). */
const pushSreg: Handler = (cpu, op) => {
  cpu.push(op.size, cpu.segSel[op.r0]);
};
const pushReg16: Handler = (cpu, op) => {
  cpu.push16(cpu.getReg(op.r0, 2));
};

function resolvePush(op: Op): Handler | null {
  switch (op.k0) {
    case K.REG: return op.size === 4 ? pushReg32 : pushReg16;
    case K.IMM: return pushImm;
    case K.MEM: return pushMem;
    case K.SREG: return pushSreg;
    default: return null;
  }
}

const popReg: Handler = (cpu, op) => {
  const v = cpu.pop(op.size);
  cpu.setReg(op.r0, op.size, v); // pop esp: the popped value wins over the increment
};
/** POP m: ESP is incremented before the destination address is computed (SDM, POP). */
const popMem: Handler = (cpu, op) => {
  const esp = cpu.regs[R.ESP];
  const v = cpu.pop(op.size);
  try {
    cpu.writeSized(op.size, cpu.ea(op, op.size), v);
  } catch (e) {
    cpu.regs[R.ESP] = esp;
    throw e;
  }
};
/** POP Sreg: like MOV Sreg, loading SS holds debug exceptions until after the next instruction. */
const popSreg: Handler = (cpu, op) => {
  const v = (op.size === 4 ? cpu.peekStack32(0) : cpu.read16(cpu.segLin(Seg.SS, cpu.regs[R.ESP], 2))) & 0xffff;
  cpu.loadSegment(op.r0, v);
  cpu.regs[R.ESP] = (cpu.regs[R.ESP] + op.size) | 0;
  if (op.r0 === Seg.SS) cpu.noteStackSegmentLoad();
};

function resolvePop(op: Op): Handler | null {
  switch (op.k0) {
    case K.REG: return popReg;
    case K.MEM: return popMem;
    case K.SREG: return op.r0 === Seg.CS ? null : popSreg;
    default: return null;
  }
}

/** PUSHAD: EAX ECX EDX EBX (original) ESP EBP ESI EDI; all writes land before ESP moves. */
const pushad: Handler = (cpu, op) => {
  const size = op.size;
  const regs = cpu.regs;
  const esp = regs[R.ESP];
  for (let i = 0; i < 8; i++) {
    const lin = cpu.segLin(Seg.SS, (esp - size * (i + 1)) | 0, size);
    cpu.writeSized(size, lin, i === R.ESP ? esp : cpu.getReg(i, size));
  }
  regs[R.ESP] = (esp - size * 8) | 0;
};

/** POPAD: the saved ESP is skipped. */
const popad: Handler = (cpu, op) => {
  const size = op.size;
  const esp = cpu.regs[R.ESP];
  const values: number[] = [];
  for (let i = 0; i < 8; i++) values.push(cpu.readSized(size, cpu.segLin(Seg.SS, (esp + size * i) | 0, size)));
  for (let i = 0; i < 8; i++) {
    const reg = 7 - i;
    if (reg !== R.ESP) cpu.setReg(reg, size, values[i]);
  }
  cpu.regs[R.ESP] = (esp + size * 8) | 0;
};

/** PUSHFD: the image has VM and RF clear. */
const pushfd: Handler = (cpu, op) => {
  cpu.push(op.size, cpu.getEflags() & ~(F.VM | F.RF));
};

/** POPFD: IOPL changes only at CPL 0, IF only when CPL <= IOPL (silently kept otherwise). */
const popfd: Handler = (cpu, op) => {
  const v = cpu.peekStack32(0);
  const value = op.size === 2 ? (cpu.getEflags() & ~0xffff) | (v & 0xffff) : v;
  const next = cpu.poppedFlags(value, cpu.cpl);
  cpu.regs[R.ESP] = (cpu.regs[R.ESP] + op.size) | 0;
  cpu.setEflags(next);
};

/** ENTER imm16, imm8: make a stack frame, copying `level - 1` outer frame pointers. */
const enter: Handler = (cpu, op) => {
  const size = op.size;
  const alloc = op.imm & 0xffff;
  const level = op.imm2 & 0x1f;
  const regs = cpu.regs;
  const esp0 = regs[R.ESP];
  const ebp0 = regs[R.EBP];
  try {
    cpu.push(size, regs[R.EBP]);
    const frame = regs[R.ESP];
    let ebp = ebp0;
    if (level > 0) {
      for (let i = 1; i < level; i++) {
        ebp = (ebp - size) | 0;
        cpu.push(size, cpu.readSized(size, cpu.segLin(Seg.SS, ebp, size)));
      }
      cpu.push(size, frame);
    }
    const newEsp = (regs[R.ESP] - alloc) | 0;
    cpu.segLin(Seg.SS, newEsp, 1); // the new stack top must be within SS's limit
    cpu.setReg(R.EBP, size, frame);
    regs[R.ESP] = newEsp;
  } catch (e) {
    regs[R.ESP] = esp0;
    regs[R.EBP] = ebp0;
    throw e;
  }
};

const leave: Handler = (cpu, op) => {
  const regs = cpu.regs;
  const ebp = regs[R.EBP];
  const v = cpu.readSized(op.size, cpu.segLin(Seg.SS, ebp, op.size));
  regs[R.ESP] = (ebp + op.size) | 0;
  cpu.setReg(R.EBP, op.size, v);
};

export const stack: Family = {
  [Mnemonic.Push]: { resolve: resolvePush },
  [Mnemonic.Pop]: { resolve: resolvePop },
  [Mnemonic.Pushad]: { resolve: () => pushad },
  [Mnemonic.Pusha]: { resolve: () => pushad },
  [Mnemonic.Popad]: { resolve: () => popad },
  [Mnemonic.Popa]: { resolve: () => popad },
  [Mnemonic.Pushfd]: { resolve: () => pushfd },
  [Mnemonic.Pushf]: { resolve: () => pushfd },
  [Mnemonic.Popfd]: { resolve: () => popfd },
  [Mnemonic.Popf]: { resolve: () => popfd },
  [Mnemonic.Enter]: { resolve: () => enter },
  [Mnemonic.Leave]: { resolve: () => leave },
};
