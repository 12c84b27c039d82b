// Reading and writing an Op's operands. Operand 0 is the r/m (or register) destination, operand 1
// the source. A read-modify-write handler calls rd0 (which remembers the linear address of a memory
// operand) and then wr0, so the address is computed once and the write goes where the read came from.
import type { CPU } from '../cpu.js';
import { K, type Op } from '../op.js';

export function maskOf(size: number): number {
  return size === 4 ? -1 : size === 2 ? 0xffff : 0xff;
}

export function rd0(cpu: CPU, op: Op): number {
  if (op.k0 === K.REG) return cpu.getReg(op.r0, op.size);
  const lin = cpu.ea(op, op.size);
  cpu.lastLin = lin;
  return cpu.readSized(op.size, lin);
}

/** Read operand 0 of a read-modify-write instruction (a memory operand is checked for writing). */
export function rmw0(cpu: CPU, op: Op): number {
  if (op.k0 === K.REG) return cpu.getReg(op.r0, op.size);
  const lin = cpu.ea(op, op.size);
  cpu.lastLin = lin;
  return cpu.readForWrite(op.size, lin);
}

/** Write operand 0 after rd0/rmw0 (same address). */
export function wr0(cpu: CPU, op: Op, v: number): void {
  if (op.k0 === K.REG) cpu.setReg(op.r0, op.size, v);
  else cpu.writeSized(op.size, cpu.lastLin, v);
}

/** Write operand 0 without a prior read (mov, setcc, pop). */
export function store0(cpu: CPU, op: Op, v: number): void {
  if (op.k0 === K.REG) cpu.setReg(op.r0, op.size, v);
  else cpu.writeSized(op.size, cpu.ea(op, op.size), v);
}

export function rd1(cpu: CPU, op: Op): number {
  switch (op.k1) {
    case K.REG:
      return cpu.getReg(op.r1, op.size1);
    case K.IMM:
      return op.imm & maskOf(op.size);
    case K.MEM:
      return cpu.readSized(op.size1, cpu.ea(op, op.size1));
    default:
      return 0;
  }
}

/** The offset part of a memory operand (LEA: no segment, no limit check). */
export function offsetOf(cpu: CPU, op: Op): number {
  let off = op.disp;
  if (op.base >= 0) off += cpu.regs[op.base];
  if (op.index >= 0) off += cpu.regs[op.index] << op.scale;
  return op.addr16 ? off & 0xffff : off | 0;
}

/** Sign-extend a value of `size` bytes to int32. */
export function signExtend(v: number, size: number): number {
  return size === 4 ? v | 0 : size === 2 ? (v << 16) >> 16 : (v << 24) >> 24;
}

/** SF, ZF and PF bits for a result of `bits` bits. */
export function szp(res: number, bits: number, parity: Uint8Array): number {
  const m = bits === 32 ? -1 : (1 << bits) - 1;
  const r = res & m;
  return (r === 0 ? 0x40 : 0) | ((r >>> (bits - 1)) & 1 ? 0x80 : 0) | (parity[r & 0xff] ? 0x4 : 0);
}
