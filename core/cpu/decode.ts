// iced-x86 decodes each instruction once; this file turns its answer into a plain Op (operand
// kinds, register numbers, memory operand parts, immediates) and picks the handler from the
// instruction table. The hot loop never calls into WebAssembly.
import { CpuidFeature, Decoder, DecoderError, DecoderOptions, MemorySizeExt, Mnemonic, OpKind, Register, type Instruction } from 'iced-x86';
import { EmulatorError, GuestFault, Vector } from './faults.js';
import { K, Op, type Handler } from './op.js';
import { INSTRUCTION_TABLE } from './table.js';
import { CR0_EM, CR0_TS, type CpuModel } from './cpu.js';

const PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);

const raiseUD: Handler = () => {
  throw new GuestFault(Vector.UD);
};

/**
 * What this CPU model has, as iced-x86 names the CPUID features an instruction needs: the integer
 * instruction set of the 8086 to the 486, CPUID, and the Pentium / P6 additions CPUID leaf 1
 * reports here (TSC, MSR, CX8, CMOV; SEP on the sysenter model) or that every P6 has (RDPMC, the
 * multi-byte NOPs, RSM's system-management mode, PAUSE = REP NOP). Anything else — MMX, SSE and
 * later, 3DNow!, AMD and VIA extensions — raises #UD (see the CPUID comment in ops/system.ts).
 */
const FEATURES = new Set<number>([
  CpuidFeature.INTEL8086, CpuidFeature.INTEL186, CpuidFeature.INTEL286, CpuidFeature.INTEL386,
  CpuidFeature.INTEL486, CpuidFeature.CPUID, CpuidFeature.TSC, CpuidFeature.MSR, CpuidFeature.CX8,
  CpuidFeature.CMOV, CpuidFeature.RDPMC, CpuidFeature.MULTIBYTENOP, CpuidFeature.SMM, CpuidFeature.PAUSE,
]);
/** x87 escapes (D8-DF), whatever other feature they also need (FCMOVcc: CMOV, FISTTP: SSE3). */
const X87 = new Set<number>([
  CpuidFeature.FPU, CpuidFeature.FPU287, CpuidFeature.FPU287XL_ONLY, CpuidFeature.FPU387, CpuidFeature.FPU387SL_ONLY,
]);

/** What the CPU does with an instruction before looking at its mnemonic: run it, #UD, or the x87 rule. */
function featureClass(instr: Instruction, model: CpuModel): 'run' | 'ud' | 'x87' {
  let missing = false;
  for (const f of instr.cpuidFeatures()) {
    if (X87.has(f)) return 'x87';
    if (!FEATURES.has(f) && !(f === CpuidFeature.SEP && model === 'sysenter')) missing = true;
  }
  return missing ? 'ud' : 'run';
}

function hexBytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

/** Decode the instruction at `eip` from `bytes` (up to 15 of them) into an Op. */
export function decodeAt(bytes: Uint8Array, eip: number, model: CpuModel): Op {
  const decoder = new Decoder(32, bytes, DecoderOptions.None);
  decoder.ip = BigInt(eip >>> 0);
  const instr = decoder.decode();
  try {
    if (instr.isInvalid) {
      const op = new Op(raiseUD);
      // Too few bytes means the instruction runs into an unmapped page: report the length the
      // caller needs so it raises #PF for that page; otherwise the bytes are not an instruction.
      op.len = decoder.lastError === DecoderError.NoMoreBytes ? bytes.length + 1 : 1;
      op.bytes = bytes.slice(0, Math.min(op.len, bytes.length));
      return op;
    }
    // NASM's FSTCW, FSTSW, FINIT, FCLEX, FSTENV, FSAVE (and the 287's FENI, FDISI, FSETPM) are
    // FWAIT followed by the FN form; iced-x86 decodes the pair as one instruction. The CPU sees two,
    // and so does this one: FWAIT alone first (its own #NM rule, its own EIP), then the rest.
    if (bytes[0] === 0x9b && instr.length > 1) return decodeAt(bytes.subarray(0, 1), eip, model);
    return resolve(instr, bytes.slice(0, instr.length), eip, model);
  } finally {
    instr.free();
    decoder.free();
  }
}

function resolve(instr: Instruction, bytes: Uint8Array, eip: number, model: CpuModel): Op {
  const op = new Op(raiseUD);
  op.len = instr.length;
  op.bytes = bytes;
  op.code = instr.code;
  op.mnemonic = instr.mnemonic;
  let opsize16 = false;
  let addr16 = false;
  for (const b of bytes) {
    if (!PREFIXES.has(b)) break;
    if (b === 0x66) opsize16 = true;
    if (b === 0x67) addr16 = true;
  }
  // With 0x67, memory operands use 16-bit addressing (CPU.ea) and the string, loop, jcxz and xlat
  // instructions use SI, DI, CX and BX instead of ESI, EDI, ECX and EBX (their handlers read addr16).
  op.addr16 = addr16;
  const cls = featureClass(instr, model);
  if (cls === 'ud') return op; // exec is raiseUD: this CPU does not have the feature
  if (cls === 'x87') {
    op.exec = x87(bytes, eip, Mnemonic[instr.mnemonic].toLowerCase());
    return op;
  }
  op.size = opsize16 ? 2 : 4;
  op.size1 = op.size;
  op.rep = instr.hasRepePrefix || instr.hasRepPrefix ? 1 : instr.hasRepnePrefix ? 2 : 0;
  op.cond = instr.conditionCode;
  const count = instr.opCount;
  for (let i = 0; i < count; i++) {
    const kind = instr.opKind(i);
    let k = K.NONE;
    let r = 0;
    let size = 0;
    switch (kind) {
      case OpKind.Register: {
        const reg = instr.opRegister(i);
        if (reg >= Register.AL && reg <= Register.BH) (k = K.REG), (r = reg - Register.AL), (size = 1);
        else if (reg >= Register.AX && reg <= Register.DI) (k = K.REG), (r = reg - Register.AX), (size = 2);
        else if (reg >= Register.EAX && reg <= Register.EDI) (k = K.REG), (r = reg - Register.EAX), (size = 4);
        // A segment register does not size the instruction (push ds pushes a dword in 32-bit code).
        else if (reg >= Register.ES && reg <= Register.GS) (k = K.SREG), (r = reg - Register.ES);
        else if (reg >= Register.CR0 && reg <= Register.CR0 + 15) (k = K.CR), (r = reg - Register.CR0), (size = 4);
        else if (reg >= Register.DR0 && reg <= Register.DR0 + 15) (k = K.DR), (r = reg - Register.DR0), (size = 4);
        else return gap(op, eip, `register ${Register[reg]} is not emulated`);
        break;
      }
      case OpKind.Memory:
      case OpKind.MemorySegESI:
      case OpKind.MemorySegEDI:
      case OpKind.MemoryESEDI:
      case OpKind.MemorySegSI:
      case OpKind.MemorySegDI:
      case OpKind.MemoryESDI: {
        k = K.MEM;
        size = MemorySizeExt.size(instr.memorySize);
        // The destination of a string op is always ES:[E]DI; op.seg keeps the source (or only) segment.
        const esDestination = kind === OpKind.MemoryESEDI || kind === OpKind.MemoryESDI;
        if (!esDestination || op.k0 === K.NONE) op.seg = instr.memorySegment - Register.ES;
        if (kind === OpKind.Memory && instr.mnemonic !== Mnemonic.Xlatb) {
          const base = instr.memoryBase;
          const index = instr.memoryIndex;
          // 16-bit addressing (0x67): BX/BP/SI/DI, offset wraps at 64 KiB (see CPU.ea).
          const first = addr16 ? Register.AX : Register.EAX;
          op.base = base === Register.None ? -1 : base - first;
          op.index = index === Register.None ? -1 : index - first;
          op.scale = [0, 0, 1, 1, 2, 2, 2, 2, 3][instr.memoryIndexScale];
          op.disp = addr16 ? Number(instr.memoryDisplacement & 0xffffn) : Number(BigInt.asIntN(32, instr.memoryDisplacement));
          if ((op.base > 7 || op.index > 7) && (base !== Register.None || index !== Register.None)) {
            return gap(op, eip, 'this addressing form is not emulated');
          }
        }
        break;
      }
      case OpKind.Immediate8:
      case OpKind.Immediate16:
      case OpKind.Immediate32:
      case OpKind.Immediate8to16:
      case OpKind.Immediate8to32:
        k = K.IMM;
        if (i === 0 || (op.k0 !== K.IMM && op.k1 !== K.IMM)) op.imm = immediate(instr, kind);
        else op.imm2 = immediate(instr, kind);
        break;
      case OpKind.Immediate8_2nd:
        k = K.IMM;
        op.imm2 = instr.immediate8_2nd;
        break;
      case OpKind.NearBranch32:
        op.rel = (instr.nearBranch32 - (eip + instr.length)) | 0;
        break;
      case OpKind.NearBranch16:
        op.rel = (instr.nearBranch16 - ((eip + instr.length) & 0xffff)) | 0;
        break;
      case OpKind.FarBranch32:
        op.target = instr.farBranch32 | 0;
        op.selector = instr.farBranchSelector;
        break;
      case OpKind.FarBranch16:
        op.target = instr.farBranch16;
        op.selector = instr.farBranchSelector;
        break;
      default:
        return gap(op, eip, `operand kind ${OpKind[kind]} is not emulated`);
    }
    if (i === 0) (op.k0 = k), (op.r0 = r), size && (op.size = size);
    else if (i === 1) (op.k1 = k), (op.r1 = r), size && (op.size1 = size);
    else if (i === 2) (op.k2 = k), (op.r2 = r);
  }
  // Instructions without a sized first operand (movsd, pushfd, ret, ...) keep the prefix-derived size;
  // memory-only string forms take the element size from the memory operand.
  if (count === 0 || (op.k0 !== K.REG && op.k0 !== K.MEM)) {
    op.size = opsize16 ? 2 : 4;
  }
  const entry = INSTRUCTION_TABLE.get(instr.mnemonic);
  if (entry === undefined) return gap(op, eip, `instruction '${Mnemonic[instr.mnemonic].toLowerCase()}' is not emulated`);
  const handler = entry.resolve(op, instr);
  if (handler === null) return gap(op, eip, `this form of '${Mnemonic[instr.mnemonic].toLowerCase()}' is not emulated`);
  op.exec = handler;
  return op;
}

function immediate(instr: Instruction, kind: OpKind): number {
  switch (kind) {
    case OpKind.Immediate8: return instr.immediate8;
    case OpKind.Immediate16: return instr.immediate16;
    case OpKind.Immediate32: return instr.immediate32 | 0;
    case OpKind.Immediate8to16: return instr.immediate8to16 & 0xffff;
    default: return instr.immediate8to32 | 0;
  }
}

/**
 * An x87 instruction on this FPU-less CPU (SDM vol. 3 table 2-2, "Action Taken By x87 FPU
 * Instructions for Different Combinations of EM, MP, and TS"): #NM when CR0.EM or CR0.TS is set —
 * the device-not-available fault an OS emulates the FPU from. With both clear the instruction
 * would need an FPU, which the machine does not emulate: an emulator gap naming the instruction
 * (the kernel should have set CR0.EM, as CPUID reports no FPU).
 */
function x87(bytes: Uint8Array, eip: number, mnemonic: string): Handler {
  return (cpu) => {
    if (cpu.cr0 & (CR0_EM | CR0_TS)) throw new GuestFault(Vector.NM);
    throw new EmulatorError(
      `x87 instruction '${mnemonic}' with CR0.EM = 0 and CR0.TS = 0 (this CPU has no FPU and ntflow does not emulate one; an OS sets CR0.EM): bytes ${hexBytes(bytes)} at ${(eip >>> 0).toString(16).padStart(8, '0')}`,
    );
  };
}

/** An Op that stops the machine with a clear emulator error when executed (never at decode time:
 * the guest may never reach it). */
function gap(op: Op, eip: number, what: string): Op {
  const bytes = op.bytes;
  op.exec = () => {
    throw new EmulatorError(`${what}: bytes ${hexBytes(bytes)} at ${(eip >>> 0).toString(16).padStart(8, '0')}`);
  };
  return op;
}
