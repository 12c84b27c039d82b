// Port I/O: in, out, ins (insb/insw/insd) and outs (outsb/outsw/outsd), with rep. Above IOPL the
// TSS I/O permission bitmap decides (SDM vol. 1 19.5.2, vol. 3 "I/O Permission Bit Map"):
// every bit for the bytes of the access must be clear; a bitmap that the TSS limit cuts off, or a
// TSS without one, denies the port (#GP(0)). The check comes before any port or memory access.
import { Mnemonic } from 'iced-x86';
import type { CPU } from '../cpu.js';
import { R, Seg } from '../cpu.js';
import { F } from '../flags.js';
import { GuestFault, Vector } from '../faults.js';
import { K, type Handler, type Op } from '../op.js';
import type { Family } from '../table.js';
import { advanceIndex, indexOffset, repeat } from './string.js';

/** I/O permission: CPL <= IOPL, or every bit of the port range clear in the TSS I/O bitmap. */
export function checkIo(cpu: CPU, port: number, size: number): void {
  if (cpu.cpl <= cpu.iopl) return;
  // The bitmap offset is the word at 66h of a 32-bit TSS; a TSS shorter than that has no bitmap.
  if (cpu.trLimit < 0x67) throw new GuestFault(Vector.GP, 0);
  const mapBase = cpu.readSys32((cpu.trBase + 0x64) | 0) >>> 16;
  // The CPU reads two bytes (an access may span a byte boundary of the map); both must lie
  // within the TSS limit, hence the byte of 1s that must end a bitmap.
  const byte = mapBase + (port >>> 3);
  if (byte + 1 > cpu.trLimit) throw new GuestFault(Vector.GP, 0);
  const bits = cpu.readSys16((cpu.trBase + byte) | 0);
  const mask = ((1 << size) - 1) << (port & 7);
  if (bits & mask) throw new GuestFault(Vector.GP, 0);
}

const inPort: Handler = (cpu, op) => {
  const port = op.k1 === K.IMM ? op.imm & 0xff : cpu.regs[R.EDX] & 0xffff;
  const size = op.size as 1 | 2 | 4;
  checkIo(cpu, port, size);
  cpu.setReg(R.EAX, size, cpu.io.in(port, size));
  cpu.ioAccess(port, size);
};
const outPort: Handler = (cpu, op) => {
  const port = op.k0 === K.IMM ? op.imm & 0xff : cpu.regs[R.EDX] & 0xffff;
  const size = op.size1 as 1 | 2 | 4;
  checkIo(cpu, port, size);
  cpu.io.out(port, size, cpu.getReg(R.EAX, size) >>> 0);
  cpu.ioAccess(port, size);
};

/**
 * INS: one element from port DX to ES:[E]DI (ES cannot be overridden), then [E]DI moves by the
 * element size (down when DF = 1). The destination is checked for writing before the port is
 * read, so a #PF or #GP on it leaves the device untouched and the instruction restartable.
 */
function insOnce(cpu: CPU, op: Op): void {
  const size = op.size as 1 | 2 | 4;
  const port = cpu.regs[R.EDX] & 0xffff;
  const lin = cpu.segLin(Seg.ES, indexOffset(cpu, op, R.EDI), size);
  cpu.readForWrite(size, lin);
  const v = cpu.io.in(port, size);
  cpu.ioAccess(port, size);
  cpu.writeSized(size, lin, v);
  advanceIndex(cpu, op, R.EDI, cpu.ef & F.DF ? -size : size);
}

/** OUTS: one element from DS:[E]SI (or the segment override) to port DX, then [E]SI moves. */
function outsOnce(cpu: CPU, op: Op): void {
  const size = op.size1 as 1 | 2 | 4;
  const port = cpu.regs[R.EDX] & 0xffff;
  const v = cpu.readSized(size, cpu.segLin(op.seg, indexOffset(cpu, op, R.ESI), size));
  cpu.io.out(port, size, v >>> 0);
  cpu.ioAccess(port, size);
  advanceIndex(cpu, op, R.ESI, cpu.ef & F.DF ? -size : size);
}

/** INS/OUTS, with or without rep: the permission check once, first (even for a zero count, as qemu does). */
function portString(out: boolean) {
  const iteration = out ? outsOnce : insOnce;
  return (op: Op): Handler => {
    const size = out ? op.size1 : op.size;
    if (op.rep === 0) {
      return (cpu, o) => {
        checkIo(cpu, cpu.regs[R.EDX] & 0xffff, size);
        iteration(cpu, o);
      };
    }
    return (cpu, o) => {
      checkIo(cpu, cpu.regs[R.EDX] & 0xffff, size);
      repeat(cpu, o, iteration, false);
    };
  };
}

export const io: Family = {
  [Mnemonic.In]: { resolve: () => inPort },
  [Mnemonic.Out]: { resolve: () => outPort },
  [Mnemonic.Insb]: { resolve: portString(false) },
  [Mnemonic.Insw]: { resolve: portString(false) },
  [Mnemonic.Insd]: { resolve: portString(false) },
  [Mnemonic.Outsb]: { resolve: portString(true) },
  [Mnemonic.Outsw]: { resolve: portString(true) },
  [Mnemonic.Outsd]: { resolve: portString(true) },
};
