// The instruction set, described once as data: for each iced-x86 mnemonic the machine implements,
// the family file that executes it. Decoding looks an instruction's mnemonic up here and asks the
// entry for a handler specialised to the decoded operand forms; a mnemonic missing from the table
// is an emulator gap (a clear error naming the bytes), never a silent no-op.
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

export interface TableEntry {
  /** A handler for this decoded form, or null when the form is not emulated. */
  resolve: (op: Op, instr: Instruction) => Handler | null;
  /** SYSENTER/SYSEXIT: #UD on a CPU model without SEP. */
  requiresSep?: boolean;
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
};

export const INSTRUCTION_TABLE = new Map<number, TableEntry>();
for (const family of Object.values(FAMILIES)) {
  for (const [mnemonic, entry] of Object.entries(family)) INSTRUCTION_TABLE.set(Number(mnemonic), entry);
}
