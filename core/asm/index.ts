// The assembler's public API: NASM-syntax 32-bit Intel assembly encoded through iced-x86.
export { assemble, type AsmLine, type AsmOptions, type AsmResult } from './assemble.js';
export { AsmError } from './errors.js';
