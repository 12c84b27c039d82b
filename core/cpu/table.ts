// The instruction set, described once as data: for each iced-x86 mnemonic the machine implements,
// the family file that executes it. Decoding first checks the instruction's CPUID features against
// this CPU model (decode.ts: a feature the CPU lacks is #UD, x87 is #NM under CR0.EM/TS), then
// looks the mnemonic up here and asks the entry for a handler specialised to the decoded operand
// forms; a mnemonic missing from the table is an emulator gap (a clear error naming the bytes),
// never a silent no-op. test/cpu-coverage.test.ts walks every instruction iced-x86 decodes in
// 32-bit mode and checks that each one lands in exactly one of those three places.
import type { Instruction } from 'iced-x86';
import type { Handler, Op } from './op.js';
import { arithmetic } from './ops/arith.js';
import { shifts } from './ops/shift.js';
import { multiply } from './ops/muldiv.js';
import { bits } from './ops/bits.js';
import { dataMovement } from './ops/data.js';
import { stack } from './ops/stack.js';
import { controlTransfer } from './ops/control.js';
import { strings } from './ops/string.js';
import { system } from './ops/system.js';
import { io } from './ops/io.js';
import { decimal } from './ops/decimal.js';

export interface TableEntry {
  /** A handler for this decoded form, or null when the form is not emulated. */
  resolve: (op: Op, instr: Instruction) => Handler | null;
}

/** A family file's part of the table, keyed by iced-x86 Mnemonic. */
export type Family = Record<number, TableEntry>;

export const FAMILIES: Record<string, Family> = {
  arithmetic,
  shifts,
  multiply,
  bits,
  dataMovement,
  stack,
  controlTransfer,
  strings,
  system,
  io,
  decimal,
};

export const INSTRUCTION_TABLE = new Map<number, TableEntry>();
for (const family of Object.values(FAMILIES)) {
  for (const [mnemonic, entry] of Object.entries(family)) INSTRUCTION_TABLE.set(Number(mnemonic), entry);
}
