// The instruction streams of two sessions, compared: each instruction becomes a key — where it is
// (module!Name+0xOffset, or its address outside every module) and what it is (its disassembly with
// absolute addresses dropped) — so a relocated image still aligns; then the two key sequences are
// walked in lockstep. At a mismatch the first divergence is recorded, and the streams are
// resynchronised at the nearest pair of positions (fewest instructions skipped on both sides) from
// which the next JOIN_RUN instructions agree: where they join again. When nothing joins within the
// search window, the walk goes on from the next pair of aligned system calls (the anchors).
//
// Memory: one Int32Array of keys per side (4 bytes per instruction), the event marks' seqs and the
// code tables; the log is read in windows (group_concat of code ids, as the replay reader does).
import type Database from 'better-sqlite3';
import { InstructionRuns } from '../../recorder/index.js';

const SYSTEM_MODULES = new Set(['nt', 'ntdll', 'kernel32', 'SharedUserData', 'win32k', 'hal']);

/** Instructions that must agree after a join. */
export const JOIN_RUN = 3;
const WINDOW = 1 << 16;
const MAX_SEARCH = 1 << 18;

export interface Stream {
  /** Key id of each instruction, in execution order (index = icount): 4 bytes per instruction. */
  keys: Int32Array;
  /** seq of the non-instruction events, ascending (an instruction's seq is its icount plus the marks before it). */
  marks: Int32Array;
  /** By key id, as this session shows it: the location (module!Name+0xOffset), the disassembly, the location by role. */
  location: string[];
  asm: string[];
  aligned: string[];
}

/** An instruction's location as shown: the symbol (module!Name+0xOffset) or its address. */
export const where = (symbol: string | null, eip: number) => symbol ?? (eip >>> 0).toString(16).padStart(8, '0');

const DRIVER_BASE = 0xf8a00000;
const DRIVER_SLOT = 0x10000;

/**
 * An instruction's location as it aligns: system modules by name; the program's and the drivers'
 * by their role — the program, the driver in load slot N — so two builds of a driver under other
 * file names (osr-log-user-handle.sys, osr-log-kernel-handle.sys) still align function by function.
 */
export function alignedWhere(symbol: string | null, eip: number): string {
  if (!symbol) return where(symbol, eip);
  const bang = symbol.indexOf('!');
  const module = bang > 0 ? symbol.slice(0, bang) : '';
  if (SYSTEM_MODULES.has(module)) return symbol;
  const e = eip >>> 0;
  const role = e >= DRIVER_BASE && e < DRIVER_BASE + 64 * DRIVER_SLOT ? `<driver ${Math.floor((e - DRIVER_BASE) / DRIVER_SLOT)}>` : e < 0x80000000 ? '<program>' : module;
  return role + symbol.slice(bang);
}

/**
 * The disassembly as it aligns: without absolute addresses (a relocated image's `call x (00401050)`
 * matches) and with the program's and drivers' module names dropped from operands (`call
 * drv!CompleteIrp` matches whatever the driver file was called).
 */
export const normalAsm = (asm: string) =>
  asm
    .replace(/\s*\([0-9a-f]{8}\)/g, '')
    .replace(/([A-Za-z0-9_.-]+)!/g, (m, module: string) => (SYSTEM_MODULES.has(module) ? m : '<module>!'))
    .trim();

/** Reads a session's instructions as keys, interning each distinct instruction into `intern`. */
export function readStream(db: Database.Database, sessionId: number, intern: Map<string, number>): Stream {
  const rows = db.prepare('SELECT id, eip, symbol, asm FROM code WHERE session_id = ? ORDER BY id').raw().all(sessionId) as [number, number, string | null, string][];
  const size = rows.length ? rows[rows.length - 1][0] + 1 : 0;
  const keyOf = new Int32Array(size).fill(-1);
  const location: string[] = [];
  const asm: string[] = [];
  const aligned: string[] = [];
  for (const [id, e, symbol, text] of rows) {
    const role = alignedWhere(symbol, e);
    const k = `${role}\u0000${normalAsm(text)}`;
    let key = intern.get(k);
    if (key === undefined) {
      key = intern.size;
      intern.set(k, key);
    }
    keyOf[id] = key;
    // Within one session a key names one instruction (roles map one to one onto its modules).
    location[key] ??= where(symbol, e);
    asm[key] ??= text;
    aligned[key] ??= role;
  }
  const s = db.prepare('SELECT instructions, events FROM sessions WHERE id = ?').get(sessionId) as { instructions: number; events: number };
  const marks = Int32Array.from(db.prepare('SELECT seq FROM event_marks WHERE session_id = ? ORDER BY seq').pluck().all(sessionId) as number[]);
  const runs = new InstructionRuns(db, sessionId);
  const lastSeq = Math.max(s.events, (runs.lastSeq() ?? -1) + 1);
  const count = lastSeq - marks.length;
  const keys = new Int32Array(Math.max(0, count));
  let n = 0;
  for (let lo = 0; lo < lastSeq; lo += WINDOW) {
    for (const code of runs.codes(lo, lo + WINDOW - 1).codes) {
      if (n < keys.length) keys[n] = keyOf[code];
      n++;
    }
  }
  return { keys: keys.subarray(0, Math.min(n, keys.length)), marks, location, asm, aligned };
}

/** The seq of the instruction at `icount`. */
export function seqOf(s: Stream, icount: number): number {
  // seq = icount + the marks before it: the smallest m with marks[m] - m > icount is that count.
  let lo = 0;
  let hi = s.marks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (s.marks[mid] - mid <= icount) lo = mid + 1;
    else hi = mid;
  }
  return icount + lo;
}

/** The icount of the first instruction at or after `seq`. */
export function icountAt(s: Stream, seq: number): number {
  let lo = 0;
  let hi = s.marks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (s.marks[mid] < seq) lo = mid + 1;
    else hi = mid;
  }
  return seq - lo;
}

export interface StreamDivergence {
  /** Instruction indexes (icounts) where the streams part; one may be past its end. */
  a: number;
  b: number;
  /** Where they agree again for JOIN_RUN instructions; null when they do not within the window. */
  joinA: number | null;
  joinB: number | null;
}

/** The nearest pair (i', j') ≥ (i, j) from which JOIN_RUN keys agree (or both streams end together). */
function resync(A: Int32Array, B: Int32Array, i: number, j: number): [number, number] | null {
  for (let span = 4096; ; span *= 8) {
    const limitA = Math.min(A.length, i + span);
    const limitB = Math.min(B.length, j + span);
    const at = new Map<number, number[]>();
    for (let q = j; q < limitB; q++) {
      const list = at.get(B[q]);
      if (list) list.push(q);
      else at.set(B[q], [q]);
    }
    let best: [number, number] | null = null;
    let bestCost = Infinity;
    for (let p = i; p < limitA && p - i < bestCost; p++) {
      const list = at.get(A[p]);
      if (!list) continue;
      for (const q of list) {
        const cost = p - i + (q - j);
        if (cost >= bestCost) break;
        let t = 0;
        while (t < JOIN_RUN && p + t < A.length && q + t < B.length && A[p + t] === B[q + t]) t++;
        if (t === JOIN_RUN || (p + t === A.length && q + t === B.length)) {
          best = [p, q];
          bestCost = cost;
          break;
        }
      }
    }
    if (best) return best;
    // Both stretches end without agreeing again: they join where the next thing begins.
    if (limitA === A.length && limitB === B.length) return [A.length, B.length];
    if (span >= MAX_SEARCH) return null;
  }
}

/**
 * Every place the two streams part (up to `max`), with where they join again. `anchors` are
 * pairs of icounts known to correspond (the aligned calls' entries), ascending, to restart from
 * when a divergence does not join within the search window.
 */
export function compareStreams(A: Int32Array, B: Int32Array, anchors: [number, number][], max = 1000): StreamDivergence[] {
  const out: StreamDivergence[] = [];
  let i = 0;
  let j = 0;
  while (out.length < max) {
    while (i < A.length && j < B.length && A[i] === B[j]) {
      i++;
      j++;
    }
    if (i >= A.length && j >= B.length) break;
    if (i >= A.length || j >= B.length) {
      out.push({ a: i, b: j, joinA: null, joinB: null });
      break;
    }
    const join = resync(A, B, i, j);
    out.push({ a: i, b: j, joinA: join?.[0] ?? null, joinB: join?.[1] ?? null });
    if (join) {
      [i, j] = join;
      continue;
    }
    const next = anchors.find(([x, y]) => x > i && y > j);
    if (!next) break;
    [i, j] = next;
  }
  return out;
}
