// One instruction: NASM's mnemonic spellings mapped onto iced's, the forms that fit, and the
// encoding NASM would pick — the shortest, and among equally short ones the lowest opcode (which
// is NASM's `89 /r` for reg,reg moves and ALU ops).
import { OpCodeOperandKind as K, Register } from 'iced-x86';
import { fail, type SourcePos } from './errors.js';
import { nearestName } from '../names.js';
import { encodeForm, type Prefixes } from './encode.js';
import { formsFitting, formsInRange, immediateKind, memorySizeAmbiguity, NEAR_BRANCH_KINDS } from './match.js';
import { formsByMnemonic, type OpcodeForm } from './opcodes.js';
import type { Operand } from './operands.js';
import { registerNamed, sizeName } from './registers.js';

const CONDITION_ALIASES: Record<string, string> = {
  c: 'b', nae: 'b', nc: 'ae', nb: 'ae', z: 'e', nz: 'ne', na: 'be', nbe: 'a',
  pe: 'p', po: 'np', nge: 'l', nl: 'ge', ng: 'le', nle: 'g',
};

// NASM's names that iced spells differently; in 32-bit code the plain forms mean the 32-bit ones.
const MNEMONIC_ALIASES: Record<string, string> = {
  sal: 'shl', pushf: 'pushfd', popf: 'popfd', pusha: 'pushad', popa: 'popad', iret: 'iretd',
  pushfw: 'pushf', popfw: 'popf', pushaw: 'pusha', popaw: 'popa', iretw: 'iret',
  retn: 'ret', xlat: 'xlatb', fwait: 'wait', icebp: 'int1', int01: 'int1', int03: 'int3',
  loopz: 'loope', loopnz: 'loopne',
};

export function canonicalMnemonic(mnemonic: string): string {
  const alias = MNEMONIC_ALIASES[mnemonic];
  if (alias !== undefined) return alias;
  const cc = /^(j|set|cmov)(.+)$/.exec(mnemonic);
  if (cc && CONDITION_ALIASES[cc[2]!] !== undefined) return cc[1]! + CONDITION_ALIASES[cc[2]!]!;
  return mnemonic;
}

export function knownMnemonics(): string[] {
  return [...formsByMnemonic().keys(), ...Object.keys(MNEMONIC_ALIASES)];
}

export interface InstructionRequest {
  mnemonic: string;
  mnemonicPos: SourcePos;
  operands: Operand[];
  prefixes: Prefixes;
  address: number;
  /** Operands whose value is provisional this pass (a label not yet placed). */
  provisional: boolean[];
  final: boolean;
  direction?: 'load' | 'store';
  /** Encodings shorter than this are not taken (keeps late passes from oscillating). */
  minimumLength: number;
}

export function encodeInstruction(request: InstructionRequest): { bytes: Uint8Array; form: OpcodeForm } {
  const mnemonic = canonicalMnemonic(request.mnemonic);
  const forms = formsByMnemonic().get(mnemonic);
  if (forms === undefined) {
    const suggestion = nearestName(request.mnemonic, knownMnemonics());
    // Nothing near it: say what a line may hold instead (iced-x86 knows every IA-32 mnemonic, so this is rarely a real instruction).
    const instead = "; a line holds an x86 instruction in NASM syntax (mov eax,[ebx+4]; call ntdll!NtClose; int 2Eh), data (db, dw, dd, times N db 0), a label, equ, org or align";
    fail(request.mnemonicPos, `unknown instruction '${request.mnemonic}'` + (suggestion ? `; did you mean '${suggestion}'?` : instead));
  }
  let operands = nasmOperandRewrites(mnemonic, request.operands);
  let fitting = formsFitting(forms, { mnemonic, operands });
  for (const alternative of alternativeOperands(mnemonic, operands)) {
    if (fitting.length > 0) break;
    fitting = formsFitting(forms, { mnemonic, operands: alternative });
    if (fitting.length > 0) operands = alternative;
  }
  if (fitting.length === 0) fail(firstOperandPos(request), badCombination(request.mnemonic, request.operands, forms));
  const allSizes = memorySizeAmbiguity(fitting, { mnemonic, operands })?.sizes ?? [];
  fitting = preferOperandSize(fitting, operands);
  const ambiguity = memorySizeAmbiguity(fitting, { mnemonic, operands });
  if (ambiguity) {
    if (ambiguity.forms.length === 0) {
      const memory = operands.find((o) => o.kind === 'memory')!;
      const names = allSizes.filter((s) => s > 0).sort((a, b) => a - b).map(sizeName);
      const choices = names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}` : names.join('');
      fail(memory.pos, `operation size not specified; write ${choices} before the memory operand (e.g. 'dword [eax]')`);
    }
    fitting = ambiguity.forms;
  }
  let inRange = formsInRange(fitting, operands);
  if (inRange.length === 0) {
    if (request.final) fail(rangeErrorPos(operands, fitting), rangeError(operands, fitting));
    inRange = fitting;
  }
  if (request.direction) inRange = preferDirection(inRange, request.direction);
  if (request.prefixes.lock && !inRange.some((f) => f.canLock)) fail(request.mnemonicPos, `'lock' cannot be used with '${request.mnemonic}' in this form; lock works with read-modify-write instructions on memory`);

  let best: { bytes: Uint8Array; form: OpcodeForm } | undefined;
  let fallback: { bytes: Uint8Array; form: OpcodeForm } | undefined;
  let firstError: string | undefined;
  for (const form of inRange) {
    // A provisional value is optimistic (0, and a branch target within short reach) so that
    // NASM's short forms are tried first; later passes grow what does not fit.
    const valued = operands.map((o, i) =>
      request.provisional[i] && o.kind === 'immediate' && NEAR_BRANCH_KINDS.has(form.operands[form.explicit[i]!]!) ? { ...o, value: BigInt(request.address) } : o,
    );
    const result = encodeForm(form, valued, request.prefixes, request.address);
    if ('error' in result) {
      firstError ??= result.error;
      continue;
    }
    const candidate = { bytes: result.bytes, form };
    if (!fallback || candidate.bytes.length > fallback.bytes.length) fallback = candidate;
    if (candidate.bytes.length < request.minimumLength) continue;
    if (!best || candidate.bytes.length < best.bytes.length || (candidate.bytes.length === best.bytes.length && form.code < best.form.code)) best = candidate;
  }
  best ??= fallback;
  if (!best) fail(firstOperandPos(request), explainEncoderError(request.mnemonic, firstError ?? 'no encoding'));
  return best;
}

const REG_FIELD = new Set<K>([K.r8_reg, K.r16_reg, K.r32_reg]);
const RM_FIELD = new Set<K>([K.r8_or_mem, K.r16_or_mem, K.r32_or_mem]);

/** {load}: the form whose destination is the ModRM reg field; {store}: the one whose source is. */
function preferDirection(forms: OpcodeForm[], direction: 'load' | 'store'): OpcodeForm[] {
  const [destination, source] = direction === 'load' ? [REG_FIELD, RM_FIELD] : [RM_FIELD, REG_FIELD];
  const preferred = forms.filter((f) => destination.has(f.operands[0]!) && source.has(f.operands[1]!));
  return preferred.length > 0 ? preferred : forms;
}

/**
 * A 16-bit form (66h prefix) is taken only when an operand asks for 16 bits: `push 80h` is the
 * dword push 68 80 00 00 00, not the shorter 66 68 80 00.
 */
function preferOperandSize(forms: OpcodeForm[], operands: Operand[]): OpcodeForm[] {
  const asksFor16 = operands.some(
    (o) => (o.kind === 'register' && o.info.cls === 'gpr16') || ((o.kind === 'memory' || o.kind === 'immediate') && o.size === 2),
  );
  if (asksFor16) return forms;
  const wide = forms.filter((f) => f.operandSize !== 16);
  return wide.length > 0 ? wide : forms;
}

/** Other ways NASM reads the same operands, tried in order when the written ones fit no form. */
function alternativeOperands(mnemonic: string, operands: Operand[]): Operand[][] {
  // Both operand orders of xchg and test mean the same; iced lists one of them.
  if ((mnemonic === 'xchg' || mnemonic === 'test') && operands.length === 2) return [[operands[1]!, operands[0]!]];
  if (!mnemonic.startsWith('f')) return [];
  const st = (n: number, pos: SourcePos): Operand => ({ kind: 'register', info: registerNamed(`st${n}`)!, pos });
  // x87 shorthands: `fadd st1` is fadd st0, st1 (or st1, st0 for the popping forms), `fxch` is
  // fxch st1, `faddp` is faddp st1, st0.
  if (operands.length === 1 && operands[0]!.kind === 'register' && operands[0]!.info.cls === 'fpu') {
    const pos = operands[0]!.pos;
    return [[st(0, pos), operands[0]!], [operands[0]!, st(0, pos)]];
  }
  if (operands.length === 0) {
    const pos = { line: 0, column: 0 };
    return [[st(1, pos), st(0, pos)], [st(0, pos), st(1, pos)], [st(1, pos)]];
  }
  return [];
}

/** NASM conveniences that iced's table does not list as forms. */
function nasmOperandRewrites(mnemonic: string, operands: Operand[]): Operand[] {
  // aam and aad without an operand work in base 10.
  if ((mnemonic === 'aam' || mnemonic === 'aad') && operands.length === 0) {
    return [{ kind: 'immediate', value: 10n, size: 0, strict: false, absolute: true, pos: { line: 0, column: 0 } }];
  }
  // imul eax, 5 is imul eax, eax, 5.
  if (mnemonic === 'imul' && operands.length === 2 && operands[1]!.kind === 'immediate') return [operands[0]!, operands[0]!, operands[1]!];
  // xchg eax, ebx uses the one-byte 90+r form, which iced lists as xchg r32, eax.
  if (mnemonic === 'xchg' && operands.length === 2) {
    const [a, b] = operands as [Operand, Operand];
    const accumulator = (o: Operand) => o.kind === 'register' && (o.info.name === 'eax' || o.info.name === 'ax');
    // Otherwise NASM puts the first register in the ModRM reg field: xchg al, bl is 86 C3.
    if (a.kind === 'register' && b.kind === 'register' && !accumulator(b)) return [b, a];
  }
  // A 16-bit register that only supplies a selector or a 16-bit value is encoded without the 66h
  // prefix, as its 32-bit register: mov ds, ax is 8E D8; lldt ax is 0F 00 D0; lar eax, bx 0F 02 C3.
  const widen = (o: Operand): Operand => (o.kind === 'register' && o.info.cls === 'gpr16' ? { ...o, info: registerNamed('e' + o.info.name)! } : o);
  const first = operands[0];
  if (mnemonic === 'mov' && operands.length === 2 && first?.kind === 'register' && first.info.cls === 'segment') return [first, widen(operands[1]!)];
  if (['lldt', 'ltr', 'verr', 'verw', 'lmsw', 'arpl'].includes(mnemonic)) return operands.map(widen);
  if ((mnemonic === 'lar' || mnemonic === 'lsl') && operands.length === 2 && first?.kind === 'register' && first.info.cls === 'gpr32') {
    return [first, widen(operands[1]!)];
  }
  return operands;
}

function firstOperandPos(request: InstructionRequest): SourcePos {
  return request.operands[0]?.pos ?? request.mnemonicPos;
}

function describeOperand(operand: Operand): string {
  switch (operand.kind) {
    case 'register':
      return operand.info.name;
    case 'memory':
      return operand.size ? `${sizeName(operand.size)} memory` : 'memory';
    case 'immediate':
      return 'immediate';
    case 'farPointer':
      return 'far pointer';
  }
}

function badCombination(mnemonic: string, operands: Operand[], forms: OpcodeForm[]): string {
  const sameCount = forms.filter((f) => f.explicit.length === operands.length);
  const shown = (sameCount.length > 0 ? sameCount : forms).slice(0, 8).map((f) => f.syntax.toLowerCase());
  const written = operands.length === 0 ? 'no operands' : operands.map(describeOperand).join(', ');
  const more = (sameCount.length > 0 ? sameCount : forms).length > shown.length ? ' …' : '';
  return `'${mnemonic}' cannot take ${written}; accepted forms: ${[...new Set(shown)].join(' | ')}${more}`;
}

function rangeErrorPos(operands: Operand[], forms: OpcodeForm[]): SourcePos {
  return operands.find((o, i) => o.kind === 'immediate' && forms.some((f) => immediateKind(f.operands[f.explicit[i]!]!)))?.pos ?? operands[0]!.pos;
}

function rangeError(operands: Operand[], forms: OpcodeForm[]): string {
  for (let i = 0; i < operands.length; i++) {
    const operand = operands[i]!;
    if (operand.kind !== 'immediate') continue;
    const widest = Math.max(0, ...forms.map((f) => immediateKind(f.operands[f.explicit[i]!]!)?.bits ?? 0));
    if (widest === 0) continue;
    const hex = (operand.value < 0n ? -operand.value : operand.value).toString(16);
    // A generated 100,000-digit literal is named by its start and length, keeping the error one short line.
    const shown = `${operand.value < 0n ? '-' : ''}0x${hex.length > 20 ? `${hex.slice(0, 16)}… (${hex.length} hex digits)` : hex}`;
    if (forms.every((f) => !immediateKind(f.operands[f.explicit[i]!]!)?.fits(operand.value))) {
      return `value ${shown} is out of range: this operand holds ${widest} bits (${-(2 ** (widest - 1))} to ${2 ** widest - 1})`;
    }
  }
  return 'value out of range';
}

function explainEncoderError(mnemonic: string, error: string): string {
  if (/Branch distance is too far/i.test(error)) return `short jump target is out of range for '${mnemonic}'; remove 'short' (or bring the target within 127 bytes)`;
  return `'${mnemonic}' cannot be encoded with these operands (${error.replace(/\s+/g, ' ')})`;
}

export const NO_PREFIXES: Prefixes = { lock: false, rep: false, repe: false, repne: false, segment: Register.None };
