// Builds an iced Instruction for one chosen form and encodes it at its address.
import { Encoder, Instruction, OpCodeOperandKind as K, OpKind, Register, type Code } from 'iced-x86';
import { immediateKind, NEAR_BRANCH_KINDS } from './match.js';
import type { OpcodeForm } from './opcodes.js';
import type { Operand } from './operands.js';

export interface Prefixes {
  lock: boolean;
  rep: boolean;
  repe: boolean;
  repne: boolean;
  segment: Register;
}

// The implicit memory operands of string instructions, as iced's instruction model names them.
const IMPLICIT_OP_KINDS = new Map<K, OpKind>([
  [K.seg_rSI, OpKind.MemorySegESI],
  [K.es_rDI, OpKind.MemoryESEDI],
  [K.seg_rDI, OpKind.MemorySegEDI],
]);

const FIXED_REGISTER_KINDS = new Map<K, Register>([
  [K.al, Register.AL], [K.cl, Register.CL], [K.ax, Register.AX], [K.dx, Register.DX], [K.eax, Register.EAX], [K.st0, Register.ST0],
  [K.es, Register.ES], [K.cs, Register.CS], [K.ss, Register.SS], [K.ds, Register.DS], [K.fs, Register.FS], [K.gs, Register.GS],
]);

let encoder: Encoder | undefined;

/**
 * Encodes the form with these operands at `address`. Returns undefined when iced refuses (e.g. a
 * short branch that does not reach), with iced's reason.
 */
export function encodeForm(form: OpcodeForm, operands: Operand[], prefixes: Prefixes, address: number): { bytes: Uint8Array } | { error: string } {
  encoder ??= new Encoder(32);
  const instruction = buildInstruction(form.code, form, operands, prefixes);
  try {
    encoder.encode(instruction, BigInt(address));
    const bytes = encoder.takeBuffer();
    return { bytes: form.hasMandatoryPrefix ? bytes : nasmPrefixOrder(bytes) };
  } catch (error) {
    encoder.takeBuffer();
    return { error: error instanceof Error ? error.message : String(error) };
  } finally {
    instruction.free();
  }
}

// NASM writes lock/rep first, then the segment override, then 66h and 67h.
const PREFIX_RANK = new Map<number, number>([
  [0xf0, 0], [0xf2, 0], [0xf3, 0],
  [0x26, 1], [0x2e, 1], [0x36, 1], [0x3e, 1], [0x64, 1], [0x65, 1],
  [0x66, 2], [0x67, 3],
]);

function nasmPrefixOrder(bytes: Uint8Array): Uint8Array {
  let count = 0;
  while (count < bytes.length && PREFIX_RANK.has(bytes[count]!)) count++;
  if (count < 2) return bytes;
  const prefixes = [...bytes.subarray(0, count)].sort((a, b) => PREFIX_RANK.get(a)! - PREFIX_RANK.get(b)!);
  const reordered = Uint8Array.from(bytes);
  reordered.set(prefixes, 0);
  return reordered;
}

function buildInstruction(code: Code, form: OpcodeForm, operands: Operand[], prefixes: Prefixes): Instruction {
  const instruction = Instruction.create(code);
  let sawImmediate = false;
  form.operands.forEach((kind, i) => {
    const implicit = IMPLICIT_OP_KINDS.get(kind);
    if (implicit !== undefined) {
      instruction.setOpKind(i, implicit);
      return;
    }
    if (kind === K.seg_rBX_al) {
      instruction.setOpKind(i, OpKind.Memory);
      instruction.memoryBase = Register.EBX;
      instruction.memoryIndex = Register.AL;
      return;
    }
    const written = form.explicit.indexOf(i);
    const operand = written >= 0 ? operands[written] : undefined;
    if (operand === undefined) {
      // Fixed registers of string instructions (lodsb's al, outsb's dx).
      instruction.setOpKind(i, OpKind.Register);
      instruction.setOpRegister(i, FIXED_REGISTER_KINDS.get(kind) ?? Register.None);
      return;
    }
    switch (operand.kind) {
      case 'register':
        instruction.setOpKind(i, OpKind.Register);
        instruction.setOpRegister(i, operand.info.register);
        break;
      case 'memory':
        instruction.setOpKind(i, OpKind.Memory);
        instruction.memoryBase = operand.base;
        instruction.memoryIndex = operand.index;
        instruction.memoryIndexScale = operand.scale;
        instruction.memoryDisplacement = operand.displacement;
        instruction.memoryDisplSize = operand.displacementSize;
        break;
      case 'farPointer':
        instruction.setOpKind(i, OpKind.FarBranch32);
        instruction.farBranch32 = Number(BigInt.asUintN(32, operand.offset));
        instruction.farBranchSelector = Number(BigInt.asUintN(16, operand.selector));
        break;
      case 'immediate':
        if (NEAR_BRANCH_KINDS.has(kind)) {
          instruction.setOpKind(i, OpKind.NearBranch32);
          instruction.nearBranch32 = Number(BigInt.asUintN(32, operand.value));
        } else {
          setImmediate(instruction, i, kind, operand.value, sawImmediate);
          sawImmediate = true;
        }
        break;
    }
  });
  if (prefixes.segment !== Register.None) instruction.segmentPrefix = prefixes.segment;
  const memory = operands.find((o) => o.kind === 'memory');
  if (memory?.kind === 'memory' && memory.segment !== Register.None) instruction.segmentPrefix = memory.segment;
  instruction.hasLockPrefix = prefixes.lock;
  if (prefixes.rep) instruction.hasRepPrefix = true;
  if (prefixes.repe) instruction.hasRepePrefix = true;
  if (prefixes.repne) instruction.hasRepnePrefix = true;
  return instruction;
}

function setImmediate(instruction: Instruction, i: number, kind: K, value: bigint, second: boolean): void {
  const bits = immediateKind(kind)?.bits ?? 32;
  const unsigned = Number(BigInt.asUintN(32, value));
  switch (kind) {
    case K.imm8sex16:
      instruction.setOpKind(i, OpKind.Immediate8to16);
      instruction.immediate8to16 = Number(BigInt.asIntN(8, value));
      return;
    case K.imm8sex32:
      instruction.setOpKind(i, OpKind.Immediate8to32);
      instruction.immediate8to32 = Number(BigInt.asIntN(8, value));
      return;
  }
  if (bits === 8) {
    instruction.setOpKind(i, second ? OpKind.Immediate8_2nd : OpKind.Immediate8);
    if (second) instruction.immediate8_2nd = unsigned & 0xff;
    else instruction.immediate8 = unsigned & 0xff;
  } else if (bits === 16) {
    instruction.setOpKind(i, OpKind.Immediate16);
    instruction.immediate16 = unsigned & 0xffff;
  } else {
    instruction.setOpKind(i, OpKind.Immediate32);
    instruction.immediate32 = unsigned;
  }
}
