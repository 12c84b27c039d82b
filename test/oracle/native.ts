// The hardware oracle: run IA-32 cases natively on this machine's CPU (Linux IA-32 compatibility
// mode) through test/oracle/native/runner.asm, a static 32-bit ELF built with nasm + `ld -m
// elf_i386` into a temporary directory. It answers in the Unicorn oracle's result shape, so the
// same comparison code serves both, and settles what Unicorn gets wrong.
//
// Limits (fixed by the runner): the code is at most CODE_MAX bytes and runs at NATIVE_CODE_BASE;
// memory exists only in the data page NATIVE_DATA_PAGE and the stack page NATIVE_STACK_PAGE
// (every other "mem" region is an error); only CF PF AF ZF SF OF DF of the input EFLAGS are
// loaded and IF is always 1. A fault is caught by the runner's signal handler and reported as
// `exception: {vector, eip, signal, error_code, cr2}` with the registers at the faulting
// instruction; the CPU's trap number is the vector (0 #DE, 6 #UD, 13 #GP, 14 #PF ...), and for a
// page fault the error code and the fault address are the CPU's (from the signal's context). `writes` is always empty: the
// hardware does not tell.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OracleCase, OracleResult } from './unicorn.js';
import { repoPath } from '../util/paths.js';

export const NATIVE_CODE_BASE = 0x0040_1000;
export const NATIVE_DATA_PAGE = 0x1000_0000;
export const NATIVE_STACK_PAGE = 0x1000_f000;
export const NATIVE_DEFAULT_ESP = 0x1000_ff00;
const PAGE = 0x1000;
/** The runner's code buffer is 256 bytes and it appends a 5-byte jump. */
export const CODE_MAX = 250;
const IN_SIZE = 40 + 256 + 2 * PAGE;
const OUT_SIZE = 64 + 2 * PAGE;
const MAGIC = 0x5246544e; // 'NTFR'
const REGS = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'] as const;
const FLAG_BITS = { CF: 0, PF: 2, AF: 4, ZF: 6, SF: 7, TF: 8, IF: 9, DF: 10, OF: 11 } as const;

export const RUNNER_SOURCE = repoPath('test', 'oracle', 'native', 'runner.asm');

export interface NativeResult extends OracleResult {
  /** cr2 only for a page fault (#PF, vector 14). */
  exception: { vector: number; eip: number; signal: number; error_code: number; cr2?: number } | null;
}

/** A case the runner cannot take (code too long, memory outside its pages, base elsewhere). */
export class NativeCaseError extends Error {
  override name = 'NativeCaseError';
}

const num = (v: number | string): number => (typeof v === 'string' ? Number(BigInt.asUintN(32, BigInt(v))) : v >>> 0);
const hexBytes = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Lay a case out as one runner input record (throws NativeCaseError when it does not fit). */
export function encodeCase(c: OracleCase): Buffer {
  const code = hexBytes(c.code);
  if (code.length > CODE_MAX) throw new NativeCaseError(`code is ${code.length} bytes; the native runner takes at most ${CODE_MAX}`);
  if (c.base !== undefined && num(c.base) !== NATIVE_CODE_BASE) {
    throw new NativeCaseError(`base ${num(c.base).toString(16)}: the native runner runs code at ${NATIVE_CODE_BASE.toString(16)}`);
  }
  const rec = Buffer.alloc(IN_SIZE);
  const regs = Object.fromEntries(Object.entries(c.regs ?? {}).map(([k, v]) => [k.toLowerCase(), num(v as number | string)]));
  REGS.forEach((r, i) => rec.writeUInt32LE((regs[r] ?? (r === 'esp' ? NATIVE_DEFAULT_ESP : 0)) >>> 0, 4 * i));
  rec.writeUInt32LE((regs.eflags ?? 0x202) >>> 0, 32);
  rec.writeUInt32LE(code.length, 36);
  code.copy(rec, 40);
  for (const m of c.mem ?? []) {
    const addr = num(m.addr);
    const data = hexBytes(m.data);
    const page = addr >= NATIVE_DATA_PAGE && addr + data.length <= NATIVE_DATA_PAGE + PAGE ? 0
      : addr >= NATIVE_STACK_PAGE && addr + data.length <= NATIVE_STACK_PAGE + PAGE ? 1 : -1;
    if (page < 0) throw new NativeCaseError(`mem at ${addr.toString(16)} (+${data.length}) is outside the runner's data and stack pages`);
    data.copy(rec, 296 + page * PAGE + (addr - (page ? NATIVE_STACK_PAGE : NATIVE_DATA_PAGE)));
  }
  for (const [a, s] of c.map ?? []) {
    const addr = num(a);
    const inside = (p: number): boolean => addr >= p && addr + s <= p + PAGE;
    if (!inside(NATIVE_DATA_PAGE) && !inside(NATIVE_STACK_PAGE)) throw new NativeCaseError(`map at ${addr.toString(16)} is outside the runner's pages`);
  }
  if (c.fs_base !== undefined) throw new NativeCaseError('fs_base: the native runner has no segment set-up');
  return rec;
}

/** Turn one runner output record into the oracle's result shape. */
export function decodeResult(out: Buffer, c: OracleCase): NativeResult {
  if (out.length !== OUT_SIZE || out.readUInt32LE(12) !== MAGIC) throw new Error('native runner: malformed output record');
  const signal = out.readUInt32LE(0);
  const regs = Object.fromEntries(REGS.map((r, i) => [r, out.readUInt32LE(16 + 4 * i)])) as NativeResult['regs'];
  regs.eip = out.readUInt32LE(48);
  const eflags = out.readUInt32LE(52);
  const pages: [number, Buffer][] = [[NATIVE_DATA_PAGE, out.subarray(64, 64 + PAGE)], [NATIVE_STACK_PAGE, out.subarray(64 + PAGE)]];
  const reads = c.read ?? (c.mem ?? []).map((m) => [m.addr, hexBytes(m.data).length] as [number | string, number]);
  return {
    regs,
    eflags,
    flags: Object.fromEntries(Object.entries(FLAG_BITS).map(([k, b]) => [k, (eflags >>> b) & 1])),
    mem: reads.map(([a, size]) => {
      const addr = num(a);
      const hit = pages.find(([p]) => addr >= p && addr + size <= p + PAGE);
      if (!hit) return { addr, data: null, error: "outside the runner's pages" };
      return { addr, data: hit[1].subarray(addr - hit[0], addr - hit[0] + size).toString('hex') };
    }),
    writes: [],
    exception: signal === 0 ? null : {
      vector: out.readUInt32LE(4), eip: regs.eip, signal, error_code: out.readUInt32LE(8),
      ...(out.readUInt32LE(4) === 14 ? { cr2: out.readUInt32LE(56) } : {}),
    },
    error: null,
    automapped: [],
  };
}

/** Assemble and link the runner into `dir`; returns the binary's path or throws with the tool's message. */
export function buildRunner(dir: string): string {
  const obj = join(dir, 'runner.o');
  const bin = join(dir, 'runner');
  for (const [cmd, args] of [['nasm', ['-f', 'elf32', '-o', obj, RUNNER_SOURCE]], ['ld', ['-m', 'elf_i386', '-static', '-o', bin, obj]]] as const) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr.trim()}`);
  }
  return bin;
}

/**
 * The host cannot run 32-bit code: a kernel without IA-32 emulation (or a VM that turns it off)
 * refuses the runner with ENOEXEC, and glibc's execvp then hands it to /bin/sh, which exits 2.
 * Nothing an install step can fix, unlike missing tools: the tests skip with this reason.
 */
export class Ia32Unavailable extends Error {
  override name = 'Ia32Unavailable';
}

/** One built runner binary; run() feeds it batches of cases. */
export class NativeRunner {
  private readonly dir: string;
  readonly binary: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'ntflow-native-'));
    try {
      this.binary = buildRunner(this.dir);
    } catch (e) {
      this.dispose();
      throw e;
    }
    // No input: a runner that starts reads EOF between records and exits 0.
    const r = spawnSync(this.binary, [], { input: Buffer.alloc(0), timeout: 20_000 });
    if (r.error || r.status !== 0) {
      this.dispose();
      throw new Ia32Unavailable(`32-bit binaries do not run here (IA-32 emulation off?): the runner ${r.error ? `failed: ${r.error.message}` : `exited with ${r.status ?? r.signal}`}`);
    }
  }

  /**
   * Run the cases in order. The runner survives faults (it catches the signal), so one process
   * takes a whole batch; should it die anyway, the case it was on is reported with `error` and
   * a fresh process carries on with the next one.
   */
  run(cases: readonly OracleCase[], opts: { batch?: number; timeoutMs?: number } = {}): NativeResult[] {
    const batch = opts.batch ?? 512;
    const records = cases.map((c) => encodeCase(c));
    const results: NativeResult[] = [];
    let i = 0;
    while (i < cases.length) {
      const end = Math.min(cases.length, i + batch);
      const r = spawnSync(this.binary, [], {
        input: Buffer.concat(records.slice(i, end)),
        maxBuffer: (end - i) * OUT_SIZE + 1024,
        timeout: opts.timeoutMs ?? 20_000,
        killSignal: 'SIGKILL',
      });
      // ETIMEDOUT: killed on the case it hung on; EPIPE: it stopped reading its input (died on a
      // case). Either way its results so far count and the case it was on is reported below.
      if (r.error && !['ETIMEDOUT', 'EPIPE'].includes((r.error as NodeJS.ErrnoException).code ?? '')) throw r.error;
      const out = r.stdout ?? Buffer.alloc(0);
      const n = Math.floor(out.length / OUT_SIZE);
      for (let k = 0; k < n; k++) results.push(decodeResult(out.subarray(k * OUT_SIZE, (k + 1) * OUT_SIZE), cases[i + k]!));
      i += n;
      if (i < end) {
        const why = r.signal ? `killed by ${r.signal}${r.error ? ' (timeout)' : ''}` : `exit status ${r.status}`;
        if (r.status === 2 || r.status === 3) throw new Error(`native runner failed to start or read its input (${why})`);
        results.push({
          regs: { eax: 0, ecx: 0, edx: 0, ebx: 0, esp: 0, ebp: 0, esi: 0, edi: 0, eip: 0 },
          eflags: 0, flags: {}, mem: [], writes: [], exception: null, automapped: [],
          error: `native runner died on this case: ${why}`,
        });
        i++;
      }
    }
    return results;
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Build a runner, run the cases on the real CPU, clean up. */
export function runNative(cases: readonly OracleCase[]): NativeResult[] {
  const runner = new NativeRunner();
  try {
    return runner.run(cases);
  } finally {
    runner.dispose();
  }
}
