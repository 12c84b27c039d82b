// core/ public API: the machine, its events, the bare `exec` runner, the assembler and disassembler.
export { Machine, type MachineOptions, type RunOptions } from './machine.js';
export { CPU, R, Seg, REG_NAMES, SEG_NAMES, type CpuModel, type CpuSnapshot, type StopReason, type IoPorts } from './cpu/cpu.js';
export { GuestFault, EmulatorError, Vector, VECTOR_NAMES } from './cpu/faults.js';
export { F as EFLAGS } from './cpu/flags.js';
export { PhysicalMemory, Mmu, PageFault, PTE_P, PTE_RW, PTE_US, PTE_A, PTE_D, PDE_PS, hex } from './mmu.js';
export { FAMILIES, INSTRUCTION_TABLE } from './cpu/table.js';
export type * from './events.js';
export { REG_ID_NAMES } from './events.js';
export { BATCH_INSTRUCTIONS, type EventBatch, type CodeEntry } from './batches.js';
export { packEffects, packedSize, unpackEffects, MEMORY_WRITE, TABLE_WRITE, type UnpackedEffects } from './effects.js';
export { runCase, validateCase, ExecInputError, type ExecCase, type ExecResult } from './exec.js';
export { assemble, AsmError, type AsmLine, type AsmOptions, type AsmResult } from './asm/index.js';
export { disassemble, formatBytes, type DisasmLine, type SymbolInfo, type SymbolLookup } from './disasm/index.js';
export { Guest, ProgramError, nearestSymbol, SymbolTable, formatSymbol, splitSymbol, NTSTATUS, statusName, ntSuccess, BUGCHECK, bugCheckName, NT_SERVICES, WIN32K_SERVICES, serviceByName, serviceByNumber, layout, SCENARIOS, findScenario, scenarioOptions, scenarioSource, type Scenario, type GuestOptions, type GuestOutcome, type ProgramSource } from './guest/index.js';
export { parsePe, PeError, undecorate, type PeImage } from './pe/index.js';
