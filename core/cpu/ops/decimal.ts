// Decimal (BCD) adjustment and its relatives: aaa aas daa das aam aad, and salc (the undocumented
// "set AL from carry", D6, which every IA-32 CPU executes). Defined flags follow the SDM's
// pseudo-code; where it calls a flag undefined, this CPU does what qemu does (AAA/AAS leave the
// others alone, DAA/DAS clear OF, AAM/AAD set flags as a logical result of AL: CF = OF = AF = 0).
import { Mnemonic } from 'iced-x86';
import { R } from '../cpu.js';
import { ARITH_FLAGS, F, LazyOp, PARITY } from '../flags.js';
import { GuestFault, Vector } from '../faults.js';
import type { Handler } from '../op.js';
import type { Family } from '../table.js';

/** SF, ZF, PF of an 8-bit result, as EFLAGS bits. */
function szp8(v: number): number {
  return (v & 0x80 ? F.SF : 0) | (v === 0 ? F.ZF : 0) | (PARITY[v] ? F.PF : 0);
}

/** AAA / AAS: adjust AL after an unpacked-BCD add / subtract, carrying into (borrowing from) AH. */
function asciiAdjust(sub: boolean): Handler {
  return (cpu) => {
    const ax = cpu.regs[R.EAX] & 0xffff;
    const al = ax & 0xff;
    let next: number;
    if ((al & 0xf) > 9 || cpu.getAF()) {
      // AX ± 6, then AH ± 1: AL's carry (borrow) reaches AH too.
      next = sub ? (ax - 6 - 0x100) & 0xffff : (ax + 0x106) & 0xffff;
      cpu.setFlagBits(F.CF | F.AF, F.CF | F.AF);
    } else {
      next = ax;
      cpu.setFlagBits(F.CF | F.AF, 0);
    }
    cpu.setReg(R.EAX, 2, next & 0xff0f);
  };
}

/** DAA / DAS: adjust AL after a packed-BCD add / subtract. */
function decimalAdjust(sub: boolean): Handler {
  return (cpu) => {
    const oldAl = cpu.regs[R.EAX] & 0xff;
    const oldCf = cpu.getCF();
    let al = oldAl;
    let cf = 0;
    let af = 0;
    if ((al & 0xf) > 9 || cpu.getAF()) {
      const t = sub ? al - 6 : al + 6;
      cf = oldCf | (t < 0 || t > 0xff ? 1 : 0);
      al = t & 0xff;
      af = 1;
    }
    if (oldAl > 0x99 || oldCf) {
      al = (sub ? al - 0x60 : al + 0x60) & 0xff;
      cf = 1;
    } else if (!sub) {
      cf = 0; // DAA clears CF here; DAS keeps the carry of its first step
    }
    cpu.setReg8(0, al);
    cpu.setFlagBits(ARITH_FLAGS, szp8(al) | (cf ? F.CF : 0) | (af ? F.AF : 0));
  };
}

/** AAM imm8: AH = AL / imm8, AL = AL mod imm8 (#DE for 0). */
const aam: Handler = (cpu, op) => {
  const base = op.imm & 0xff;
  if (base === 0) throw new GuestFault(Vector.DE);
  const al = cpu.regs[R.EAX] & 0xff;
  const res = al % base;
  cpu.setReg(R.EAX, 2, (Math.floor(al / base) << 8) | res);
  cpu.setLazy(LazyOp.LOGIC, res, res, res, 8);
};

/** AAD imm8: AL = AL + AH * imm8 (8 bits), AH = 0. */
const aad: Handler = (cpu, op) => {
  const ax = cpu.regs[R.EAX];
  const res = ((ax & 0xff) + ((ax >> 8) & 0xff) * (op.imm & 0xff)) & 0xff;
  cpu.setReg(R.EAX, 2, res);
  cpu.setLazy(LazyOp.LOGIC, res, res, res, 8);
};

/** SALC: AL = 0xFF when CF is set, else 0; no flag changes. */
const salc: Handler = (cpu) => {
  cpu.setReg8(0, cpu.getCF() ? 0xff : 0);
};

export const decimal: Family = {
  [Mnemonic.Aaa]: { resolve: () => asciiAdjust(false) },
  [Mnemonic.Aas]: { resolve: () => asciiAdjust(true) },
  [Mnemonic.Daa]: { resolve: () => decimalAdjust(false) },
  [Mnemonic.Das]: { resolve: () => decimalAdjust(true) },
  [Mnemonic.Aam]: { resolve: () => aam },
  [Mnemonic.Aad]: { resolve: () => aad },
  [Mnemonic.Salc]: { resolve: () => salc },
};
