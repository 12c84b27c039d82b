// iced-x86's opcode table, indexed once by mnemonic: every instruction form iced can encode in
// 32-bit mode, with its operand kinds, so the assembler describes no opcode by hand.
import { Code, CodeExt, EncodingKind, MandatoryPrefix, MemorySize, MemorySizeExt, Mnemonic, OpCodeOperandKind as K } from 'iced-x86';

export interface OpcodeForm {
  code: Code;
  /** iced's Code name, e.g. "Add_rm32_imm8" (used in messages and tie-breaks). */
  name: string;
  /** All operand kinds of the form, in iced's order. */
  operands: K[];
  /** Indexes into `operands` that the programmer writes (string instructions write none). */
  explicit: number[];
  /** Size in bytes of the memory operand, 0 when unknown or none. */
  memorySize: number;
  operandSize: number;
  addressSize: number;
  canLock: boolean;
  canRep: boolean;
  canRepne: boolean;
  /** A 66/F2/F3 byte that is part of the opcode (SSE), not a prefix the programmer chose. */
  hasMandatoryPrefix: boolean;
  /** The form as Intel's manual writes it, e.g. "ADD r/m32, imm8". */
  syntax: string;
}

// Memory operands addressed by ESI/EDI/EBX implicitly: the programmer does not write them.
const IMPLICIT_MEMORY = new Set<K>([K.seg_rSI, K.es_rDI, K.seg_rDI, K.seg_rBX_al]);
// Mnemonics whose register operands (al/ax/eax/dx) are implicit too, as NASM writes `lodsb`, `outsd`.
const STRING_FAMILIES = /^(movs|cmps|lods|stos|scas|ins|outs)[bwdq]?$|^xlatb?$/;

let index: Map<string, OpcodeForm[]> | undefined;

/** The lowercase mnemonic of every form, as iced names it (e.g. "add", "movsd", "iretd"). */
export function formsByMnemonic(): Map<string, OpcodeForm[]> {
  if (index) return index;
  index = new Map();
  for (const [name, value] of Object.entries(Code)) {
    if (typeof value !== 'number' || value === Code.INVALID) continue;
    const info = CodeExt.opCode(value);
    try {
      if (!info.isInstruction || !info.isAvailableInMode(32)) continue;
      // Forms that need a special decoder option (Cyrix, old MPX/KNC variants) are not what an
      // assembler means by the mnemonic.
      if (info.decoderOption !== 0 || info.encoding === EncodingKind.MVEX) continue;
      const mnemonic = Mnemonic[info.mnemonic]!.toLowerCase();
      const operands: K[] = [];
      for (let i = 0; i < info.opCount; i++) operands.push(info.opKind(i));
      const stringLike = STRING_FAMILIES.test(mnemonic) && operands.some((k) => IMPLICIT_MEMORY.has(k));
      const explicit = operands.map((_, i) => i).filter((i) => !stringLike && !IMPLICIT_MEMORY.has(operands[i]!));
      const form: OpcodeForm = {
        code: value,
        name,
        operands,
        explicit,
        memorySize: info.memorySize === MemorySize.Unknown ? 0 : MemorySizeExt.size(info.memorySize),
        operandSize: info.operandSize,
        addressSize: info.addressSize,
        canLock: info.canUseLockPrefix,
        canRep: info.canUseRepPrefix,
        canRepne: info.canUseRepnePrefix,
        hasMandatoryPrefix: info.mandatoryPrefix !== MandatoryPrefix.None && info.mandatoryPrefix !== MandatoryPrefix.PNP,
        syntax: info.instructionString,
      };
      const list = index.get(mnemonic);
      if (list) list.push(form);
      else index.set(mnemonic, [form]);
    } finally {
      info.free();
    }
  }
  return index;
}
