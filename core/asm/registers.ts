// The registers a 32-bit program can name, grouped into the classes that operand matching needs.
import { Register } from 'iced-x86';

export type RegisterClass = 'gpr8' | 'gpr16' | 'gpr32' | 'segment' | 'control' | 'debug' | 'test' | 'fpu' | 'mmx' | 'xmm' | 'ymm' | 'zmm' | 'mask' | 'bound';

export interface RegisterInfo {
  name: string;
  register: Register;
  cls: RegisterClass;
  /** Width in bytes for general-purpose registers, 0 otherwise. */
  size: number;
}

const CLASSES: [RegisterClass, number, string[]][] = [
  ['gpr8', 1, ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh']],
  ['gpr16', 2, ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di']],
  ['gpr32', 4, ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi']],
  ['segment', 0, ['es', 'cs', 'ss', 'ds', 'fs', 'gs']],
  ['control', 0, numbered('cr', 8)],
  ['debug', 0, numbered('dr', 8)],
  ['test', 0, numbered('tr', 8)],
  ['fpu', 0, numbered('st', 8)],
  ['mmx', 0, numbered('mm', 8)],
  ['xmm', 0, numbered('xmm', 8)],
  ['ymm', 0, numbered('ymm', 8)],
  ['zmm', 0, numbered('zmm', 8)],
  ['mask', 0, numbered('k', 8)],
  ['bound', 0, numbered('bnd', 4)],
];

function numbered(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

const REGISTERS = new Map<string, RegisterInfo>();
for (const [cls, size, names] of CLASSES) {
  for (const name of names) {
    const register = (Register as unknown as Record<string, Register>)[name.toUpperCase()];
    if (register === undefined) throw new Error(`iced-x86 has no register ${name}`);
    REGISTERS.set(name, { name, register, cls, size });
  }
}

/** Looks a register up by its lowercase name. */
export function registerNamed(name: string): RegisterInfo | undefined {
  return REGISTERS.get(name.toLowerCase());
}

export function isRegisterName(name: string): boolean {
  return REGISTERS.has(name.toLowerCase());
}

export const SIZE_KEYWORDS: Record<string, number> = { byte: 1, word: 2, dword: 4, fword: 6, qword: 8, tword: 10, oword: 16, yword: 32, zword: 64 };

export function sizeName(size: number): string {
  return Object.entries(SIZE_KEYWORDS).find(([, s]) => s === size)?.[0] ?? `${size}-byte`;
}
