// The fuzzer's programs: mostly randprog's block programs (system calls by every route, odd
// instructions, crafted frames, instruction mixes), and one in ten a string of random bytes run
// as they decode — the class that finds decoder and emulator gaps (an opcode ntflow does not
// implement must end the run as a recorded 'unsupported' machine stop, never a JavaScript error).
// The same (seed, index) always gives the same program.
import type { CpuModel } from '../../core/index.js';
import { FOOTER, HEADER, Rng, generateProgram, programSeed, randomInt, randomPointer, type RandProgram } from './randprog.js';

export type ProgramClass = 'blocks' | 'bytes';

export interface FuzzProgram extends RandProgram {
  kind: ProgramClass;
}

/** Share of programs that are random byte strings. */
const BYTES_SHARE = 0.1;
/** Bytes per `db` line: lines are what the shrinker drops. */
const BYTES_PER_LINE = 8;

const hex = (n: number): string => '0x' + (n >>> 0).toString(16).toUpperCase();
const REGS = ['eax', 'ebx', 'ecx', 'edx', 'esi', 'edi', 'ebp'];

/**
 * A random byte string after random register values (pointers into every region, integers at the
 * edges), so that bytes which decode to a memory access, a system call or a far transfer meet
 * interesting operands.
 */
export function bytesProgram(seed: number, index: number): FuzzProgram {
  // A stream apart from generateProgram's (xor): the class choice does not shift its draws.
  const r = new Rng(programSeed(seed, index) ^ 0x6b79_7465);
  const cpu: CpuModel = r.chance(0.75) ? 'sysenter' : 'int2e';
  const lines = [...HEADER, `; seed ${seed} program ${index} cpu ${cpu} (random bytes)`];
  for (const reg of REGS) if (r.chance(0.6)) lines.push(`    mov ${reg}, ${hex(r.chance(0.5) ? randomPointer(r) : randomInt(r))}`);
  const n = r.range(4, 256);
  const bytes = Array.from({ length: n }, () => r.int(256));
  for (let i = 0; i < n; i += BYTES_PER_LINE) lines.push(`    db ${bytes.slice(i, i + BYTES_PER_LINE).map(hex).join(', ')}`);
  lines.push(...FOOTER);
  return { seed, index, cpu, lines, kind: 'bytes' };
}

/** Program `index` of a fuzz run seeded with `seed`. */
export function fuzzProgram(seed: number, index: number): FuzzProgram {
  const r = new Rng(programSeed(seed, index) ^ 0x636c_6173);
  return r.chance(BYTES_SHARE) ? bytesProgram(seed, index) : { ...generateProgram(seed, index), kind: 'blocks' };
}
