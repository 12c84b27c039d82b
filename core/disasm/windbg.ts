// WinDbg's rendering of 32-bit code, on iced-x86's MASM formatter: `mov eax,0B7h`,
// `mov dword ptr [ebp-1Ch],edi`, `mov eax,dword ptr fs:[00000124h]`, near branch targets as
// `call nt!_SEH_prolog (805352d8)` or a bare `jmp 8053a357`, and a memory operand at an absolute
// address a symbol covers as WinDbg shows a data reference, the name and the address in parentheses
// instead of `ds:[…h]`: `cmp esi,dword ptr [nt!MmUserProbeAddress (8053a4f0)]`,
// `mov dword ptr [nt!KeServiceDescriptorTable+0x10 (…)],eax`. The symbol table's sizes run to the
// next symbol, as for branch targets; addresses below 0x10000, other segments (fs:) and operands
// with a base or index register stay numbers (an immediate, `push 804E0458h`, stays one too).
import { Formatter, FormatterSyntax, MemorySizeOptions, OpKind, Register, type Instruction } from 'iced-x86';

/** A symbol covering an address: `offset` bytes past the start of module!name. */
export interface SymbolInfo {
  module: string;
  name: string;
  offset: number;
}

export interface SymbolLookup {
  lookup(address: number): SymbolInfo | undefined;
}

export class WinDbgFormatter {
  private readonly plain: Formatter;
  // WinDbg writes an absolute address in brackets with all eight digits (fs:[00000124h]) but a
  // displacement from a register without leading zeros ([ebp-1Ch]).
  private readonly absolute: Formatter;

  constructor() {
    this.plain = configure(new Formatter(FormatterSyntax.Masm), false);
    this.absolute = configure(new Formatter(FormatterSyntax.Masm), true);
  }

  free(): void {
    this.plain.free();
    this.absolute.free();
  }

  format(instruction: Instruction, symbols?: SymbolLookup): string {
    if (instruction.isInvalid) return '???';
    const target = nearBranchTarget(instruction);
    if (target !== undefined) return `${this.plain.formatMnemonic(instruction)} ${branchTarget(target, symbols)}`;
    if (instruction.opCount === 1 && instruction.op0Kind === OpKind.FarBranch32) {
      // WinDbg: jmp 0008:8053a270
      const selector = instruction.farBranchSelector.toString(16).padStart(4, '0');
      return `${this.plain.formatMnemonic(instruction)} ${selector}:${hex8(instruction.farBranch32)}`;
    }
    const absolute = absoluteMemory(instruction);
    if (absolute === undefined) return this.plain.format(instruction);
    const text = this.absolute.format(instruction);
    // A data reference WinDbg resolves: `cmp esi,dword ptr [nt!MmUserProbeAddress (8053a4f0)]`.
    const name = absolute >= MIN_SYMBOLIZED && flatSegment(instruction) ? symbols?.lookup(absolute) : undefined;
    return name ? text.replace(/(?:ds:)?\[[0-9A-F]+h\]/, `[${symbolText(name, absolute)}]`) : text;
  }
}

/**
 * Absolute addresses below this are left as numbers: small constants and offsets (fs:[00000124h])
 * are not data references worth a name.
 */
const MIN_SYMBOLIZED = 0x10000;

function configure(formatter: Formatter, displacementLeadingZeros: boolean): Formatter {
  formatter.memorySizeOptions = MemorySizeOptions.Always;
  formatter.uppercaseHex = true;
  formatter.hexSuffix = 'h';
  formatter.hexPrefix = '';
  formatter.addLeadingZeroToHexNumbers = true;
  formatter.smallHexNumbersInDecimal = true; // push 8, int 3
  formatter.spaceAfterOperandSeparator = false;
  formatter.displacementLeadingZeros = displacementLeadingZeros;
  formatter.showBranchSize = false;
  return formatter;
}

function nearBranchTarget(instruction: Instruction): number | undefined {
  for (let i = 0; i < instruction.opCount; i++) {
    if (instruction.opKind(i) === OpKind.NearBranch32) return instruction.nearBranch32 >>> 0;
  }
  return undefined;
}

/** The address of a memory operand with neither base nor index register ([8053A4F0h]), if any. */
function absoluteMemory(instruction: Instruction): number | undefined {
  for (let i = 0; i < instruction.opCount; i++) {
    if (instruction.opKind(i) === OpKind.Memory && instruction.memoryBase === Register.None && instruction.memoryIndex === Register.None) {
      return Number(BigInt.asUintN(32, BigInt(instruction.memoryDisplacement)));
    }
  }
  return undefined;
}

/** The operand goes through DS (no override, or ds:): its address is the linear one (flat DS). */
function flatSegment(instruction: Instruction): boolean {
  return instruction.segmentPrefix === Register.None || instruction.segmentPrefix === Register.DS;
}

const hex8 = (value: number) => (value >>> 0).toString(16).padStart(8, '0');

/** `nt!KiSystemService+0x5c (8053a357)`, `nt!_SEH_prolog (805352d8)` or `8053a357`. */
export function branchTarget(address: number, symbols?: SymbolLookup): string {
  const symbol = symbols?.lookup(address >>> 0);
  return symbol === undefined ? hex8(address) : symbolText(symbol, address);
}

/** WinDbg's name for an address it has a symbol for: module!name[+0xoffset] (eight lowercase digits). */
function symbolText(symbol: SymbolInfo, address: number): string {
  const offset = symbol.offset === 0 ? '' : `+0x${symbol.offset.toString(16)}`;
  return `${symbol.name === '' ? `${symbol.module}${offset || '+0x0'}` : `${symbol.module}!${symbol.name}${offset}`} (${hex8(address)})`;
}
