// Which of iced's forms of a mnemonic can take the written operands. Shape first (register class,
// memory, immediate), then immediate ranges, so that errors can say which of the two went wrong.
import { OpCodeOperandKind as K, Register } from 'iced-x86';
import type { OpcodeForm } from './opcodes.js';
import type { Operand } from './operands.js';
import type { RegisterClass } from './registers.js';

const REGISTER_KINDS = new Map<K, RegisterClass>([
  [K.r8_reg, 'gpr8'], [K.r8_opcode, 'gpr8'],
  [K.r16_reg, 'gpr16'], [K.r16_rm, 'gpr16'], [K.r16_opcode, 'gpr16'], [K.r16_reg_mem, 'gpr16'],
  [K.r32_reg, 'gpr32'], [K.r32_rm, 'gpr32'], [K.r32_opcode, 'gpr32'], [K.r32_vvvv, 'gpr32'], [K.r32_reg_mem, 'gpr32'],
  [K.seg_reg, 'segment'], [K.cr_reg, 'control'], [K.dr_reg, 'debug'], [K.tr_reg, 'test'], [K.bnd_reg, 'bound'],
  [K.k_reg, 'mask'], [K.kp1_reg, 'mask'], [K.k_rm, 'mask'], [K.k_vvvv, 'mask'],
  [K.mm_reg, 'mmx'], [K.mm_rm, 'mmx'],
  [K.xmm_reg, 'xmm'], [K.xmm_rm, 'xmm'], [K.xmm_vvvv, 'xmm'], [K.xmmp3_vvvv, 'xmm'], [K.xmm_is4, 'xmm'], [K.xmm_is5, 'xmm'],
  [K.ymm_reg, 'ymm'], [K.ymm_rm, 'ymm'], [K.ymm_vvvv, 'ymm'], [K.ymm_is4, 'ymm'], [K.ymm_is5, 'ymm'],
  [K.zmm_reg, 'zmm'], [K.zmm_rm, 'zmm'], [K.zmm_vvvv, 'zmm'], [K.zmmp3_vvvv, 'zmm'],
  [K.sti_opcode, 'fpu'],
]);

const REGISTER_OR_MEMORY = new Map<K, RegisterClass>([
  [K.r8_or_mem, 'gpr8'], [K.r16_or_mem, 'gpr16'], [K.r32_or_mem, 'gpr32'], [K.r32_or_mem_mpx, 'gpr32'],
  [K.mm_or_mem, 'mmx'], [K.xmm_or_mem, 'xmm'], [K.ymm_or_mem, 'ymm'], [K.zmm_or_mem, 'zmm'], [K.k_or_mem, 'mask'], [K.bnd_or_mem_mpx, 'bound'],
]);

const FIXED_REGISTERS = new Map<K, Register>([
  [K.al, Register.AL], [K.cl, Register.CL], [K.ax, Register.AX], [K.dx, Register.DX], [K.eax, Register.EAX], [K.st0, Register.ST0],
  [K.es, Register.ES], [K.cs, Register.CS], [K.ss, Register.SS], [K.ds, Register.DS], [K.fs, Register.FS], [K.gs, Register.GS],
]);

const MEMORY_KINDS = new Set<K>([K.mem, K.mem_mpx, K.mem_mib, K.sibmem]);

/** Immediate kinds with their accepted value ranges (NASM accepts both signed and unsigned spellings). */
const IMMEDIATE_KINDS = new Map<K, { bits: number; fits: (v: bigint) => boolean }>([
  [K.imm8, { bits: 8, fits: (v) => v >= -128n && v <= 255n }],
  [K.imm8_const_1, { bits: 8, fits: (v) => v === 1n }],
  [K.imm8sex16, { bits: 8, fits: (v) => v >= -32768n && v <= 65535n && inSigned8(BigInt.asIntN(16, v)) }],
  [K.imm8sex32, { bits: 8, fits: (v) => v >= -(1n << 31n) && v < 1n << 32n && inSigned8(BigInt.asIntN(32, v)) }],
  [K.imm16, { bits: 16, fits: (v) => v >= -32768n && v <= 65535n }],
  [K.imm32, { bits: 32, fits: (v) => v >= -(1n << 31n) && v < 1n << 32n }],
  [K.imm4_m2z, { bits: 8, fits: (v) => v >= 0n && v <= 15n }],
]);

const inSigned8 = (v: bigint) => v >= -128n && v <= 127n;

export const NEAR_BRANCH_KINDS = new Set<K>([K.br32_1, K.br32_4, K.xbegin_4]);
// 16-bit branch forms (66 E9 rel16 ...) are shorter but truncate EIP: never chosen silently.
const BRANCH16_KINDS = new Set<K>([K.br16_1, K.br16_2, K.xbegin_2, K.brdisp_2, K.farbr2_2]);

export function immediateKind(kind: K): { bits: number; fits: (v: bigint) => boolean } | undefined {
  return IMMEDIATE_KINDS.get(kind);
}

/** Does the operand have the right shape for this kind (ignoring immediate ranges)? */
function shapeFits(kind: K, operand: Operand): boolean {
  const cls = REGISTER_KINDS.get(kind);
  if (cls !== undefined) return operand.kind === 'register' && operand.info.cls === cls;
  const either = REGISTER_OR_MEMORY.get(kind);
  if (either !== undefined) return operand.kind === 'memory' || (operand.kind === 'register' && operand.info.cls === either);
  const fixed = FIXED_REGISTERS.get(kind);
  if (fixed !== undefined) return operand.kind === 'register' && operand.info.register === fixed;
  if (MEMORY_KINDS.has(kind)) return operand.kind === 'memory';
  if (kind === K.mem_offs) return operand.kind === 'memory' && operand.base === Register.None && operand.index === Register.None;
  if (IMMEDIATE_KINDS.has(kind)) return operand.kind === 'immediate' && operand.distance === undefined;
  // As in nasm, a jump to an absolute address (a number, module!Name) is near unless written short:
  // only distances within the program are known to stay put.
  if (kind === K.br32_1) {
    if (operand.kind !== 'immediate' || operand.distance === 'near' || operand.distance === 'far') return false;
    if (operand.size >= 2) return false; // `jmp dword label` is a near jump, as in nasm
    return !operand.absolute || operand.distance === 'short';
  }
  if (kind === K.br32_4 || kind === K.xbegin_4) return operand.kind === 'immediate' && operand.distance !== 'short' && operand.distance !== 'far';
  if (kind === K.farbr4_2) return operand.kind === 'farPointer';
  return false;
}

export interface Written {
  mnemonic: string;
  operands: Operand[];
}

/** Forms whose operand shapes and sizes fit what was written. */
export function formsFitting(forms: OpcodeForm[], written: Written): OpcodeForm[] {
  const { operands } = written;
  return forms.filter((form) => {
    if (form.explicit.length !== operands.length) return false;
    if (form.operands.some((k) => BRANCH16_KINDS.has(k)) && !operands.some((o) => o.kind === 'immediate' && o.size === 2)) return false;
    const farMemory = /_m16(16|32)$/.test(form.name) && /^(jmp|call)$/.test(written.mnemonic);
    for (let i = 0; i < operands.length; i++) {
      const operand = operands[i]!;
      const kind = form.operands[form.explicit[i]!]!;
      if (!shapeFits(kind, operand)) return false;
      if (operand.kind === 'memory') {
        if (operand.far !== farMemory) return false;
        if (!farMemory && operand.size !== 0 && form.memorySize !== 0 && operand.size !== form.memorySize) return false;
      }
      if (operand.kind === 'immediate' && operand.size !== 0 && IMMEDIATE_KINDS.has(kind)) {
        const bits = IMMEDIATE_KINDS.get(kind)!.bits;
        if (operand.size === 1 && bits !== 8) return false;
        if (operand.size > 1 && form.operandSize !== 0 && form.operandSize !== operand.size * 8) return false;
        // `mov [eax], dword 5`: the immediate's size is the size of the memory it goes to.
        if (operand.size > 1 && form.memorySize !== 0 && form.memorySize !== operand.size) return false;
        if (operand.strict && bits !== operand.size * 8) return false;
      }
    }
    return true;
  });
}

/** Forms whose immediates can hold the written values. */
export function formsInRange(forms: OpcodeForm[], operands: Operand[]): OpcodeForm[] {
  return forms.filter((form) =>
    operands.every((operand, i) => {
      if (operand.kind !== 'immediate') return true;
      const imm = IMMEDIATE_KINDS.get(form.operands[form.explicit[i]!]!);
      return imm === undefined || imm.fits(operand.value);
    }),
  );
}

/**
 * When a memory operand has no size and the forms disagree on it, NASM refuses ("operation size
 * not specified") except for near jmp/call, which default to a dword.
 */
export function memorySizeAmbiguity(forms: OpcodeForm[], written: Written): { sizes: number[]; forms: OpcodeForm[] } | undefined {
  const memory = written.operands.find((o) => o.kind === 'memory');
  if (memory === undefined || memory.kind !== 'memory' || memory.size !== 0) return undefined;
  if (written.operands.some((o) => o.kind === 'immediate' && o.size !== 0)) return undefined;
  const sizes = [...new Set(forms.map((f) => f.memorySize))];
  if (sizes.length <= 1) return undefined;
  if (/^(jmp|call)$/.test(written.mnemonic)) return { sizes, forms: forms.filter((f) => f.memorySize === (memory.far ? 6 : 4)) };
  return { sizes, forms: [] };
}
