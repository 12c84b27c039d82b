// Instruction runs: how the trace stores instructions (schema 5; schema 6 lists a run's
// instructions as straight-line blocks with repeat counts, blocks.ts). A run is up to MAX_RUN
// consecutive instruction events with no other event between them — so one thread, seq and icount
// both counting up by one — stored as one row of instruction_runs: its instructions as block items
// (core SQLite's json_each expands them: the `instructions` view needs no extension) and every
// instruction's effects in one encoded blob, which only ntflow decodes (run_effects in
// `ntflow query`). Writing one row per run instead of one per instruction is what lets recording
// keep up with the machine.
//
// The effects blob: byte 0 is the encoding — 0 stored, 1 raw deflate of what follows — then the
// instructions' packed effects (core/effects.ts) in columns (effect-columns.ts): a structure column
// (per instruction its number of items and their tags) and a value column (register values as
// differences from the register's previous value, addresses from the previous write's end).
import type Database from 'better-sqlite3';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { BlockFormatError, expandRunsSql, RUN_CODE_SQL, RUN_INDEX_SQL, expandBlocks } from './blocks.js';
import { ColumnsError, fromColumns, toColumns } from './effect-columns.js';
import { TraceFileError } from './errors.js';

/** The longest run (SQL finds the runs overlapping seq range [lo, hi] as those starting in (lo - MAX_RUN, hi]). */
export const MAX_RUN = 4096;

const STORED = 0;
const DEFLATED = 1;
/** Runs whose columns are shorter than this are stored as they are (deflate cannot win much there). */
const DEFLATE_FROM = 64;
/**
 * zlib's level: on the 2 M-instruction loop's columns level 3 takes 0.6 of level 6's time for 3 %
 * more bytes (level 1 is slower than 3 on them, and larger); the writer's thread is the recorder's
 * bottleneck.
 */
const DEFLATE_LEVEL = 3;

/**
 * Encode the effects of `count` instructions: `ends[i]` is the end offset of instruction i's
 * packed effects within `effects` (starting at `start`). Returns null when none changed anything.
 */
export function encodeRunEffects(effects: Uint8Array, ends: Uint32Array, from: number, count: number, start: number): Buffer | null {
  if (ends[from + count - 1] === start) return null;
  const columns = toColumns(effects, ends, from, count, start);
  if (columns.length >= DEFLATE_FROM) {
    const packed = deflateRawSync(columns, { level: DEFLATE_LEVEL });
    if (packed.length < columns.length) {
      const out = Buffer.allocUnsafe(packed.length + 1);
      out[0] = DEFLATED;
      out.set(packed, 1);
      return out;
    }
  }
  const out = Buffer.allocUnsafe(columns.length + 1);
  out[0] = STORED;
  out.set(columns, 1);
  return out;
}

/** Encode a run from each instruction's packed effects (null or empty: it changed nothing but EIP). */
export function encodeEffectsList(list: (Uint8Array | null)[]): Buffer | null {
  const ends = new Uint32Array(list.length);
  let total = 0;
  list.forEach((e, i) => (ends[i] = total += e?.length ?? 0));
  const bytes = new Uint8Array(total);
  list.forEach((e, i) => e && bytes.set(e, ends[i] - e.length));
  return encodeRunEffects(bytes, ends, 0, list.length, 0);
}

/** One run's effects decoded: instruction i's packed effects are bytes[starts[i] … starts[i+1]). */
export interface RunEffects {
  bytes: Uint8Array;
  /** count + 1 offsets. */
  starts: Uint32Array;
}

/** A run's effects blob or block list that is not what ntflow writes: the file is damaged (a one-line error, like any damaged trace). */
export class RunFormatError extends TraceFileError {
  constructor(what: string, part: 'effects' | 'list' = 'effects') {
    super(`an instruction run's ${part === 'effects' ? 'effects are' : 'instruction list is'} damaged (${what}); the trace file is damaged: restore it from a copy or record it again`);
  }
}

/** Decode a run's effects blob (null: nothing changed) for `count` instructions. */
export function decodeRunEffects(blob: Uint8Array | null, count: number): RunEffects | null {
  if (blob === null) return null;
  if (blob.length === 0) throw new RunFormatError('an empty effects blob');
  let payload: Uint8Array;
  if (blob[0] === STORED) payload = blob.subarray(1);
  else if (blob[0] === DEFLATED) {
    try {
      payload = inflateRawSync(blob.subarray(1));
    } catch (e) {
      throw new RunFormatError((e as Error).message);
    }
  }
  else throw new RunFormatError(`effects encoding ${blob[0]} is not one ntflow writes`);
  try {
    return fromColumns(payload, count);
  } catch (e) {
    if (e instanceof ColumnsError) throw new RunFormatError(e.message);
    throw e;
  }
}

/** Instruction i's packed effects in a decoded run (null when it changed nothing but EIP). */
export function effectsAt(run: RunEffects | null, i: number): Uint8Array | null {
  if (run === null) return null;
  const s = run.starts[i];
  const e = run.starts[i + 1];
  return e > s ? run.bytes.subarray(s, e) : null;
}

interface RunRow {
  seq: number;
  count: number;
  blocks: string;
  effects: Uint8Array | null;
}

/**
 * Reads one session's instructions from its runs: the code ids and effects of a seq range, the
 * first instruction matching a test, the log's extent. All of ntflow's readers go through here.
 */
export class InstructionRuns {
  private readonly holding: Database.Statement;
  private readonly overlapping: Database.Statement;
  private readonly overlappingDesc: Database.Statement;
  private readonly after: Database.Statement;
  private readonly lastStmt: Database.Statement;
  private readonly countStmt: Database.Statement;
  private readonly runAtStmt: Database.Statement;
  private readonly blockStmt: Database.Statement;
  /** The session's blocks read so far: id → code ids. */
  private readonly blocks = new Map<number, number[]>();

  constructor(
    db: Database.Database,
    readonly sessionId: number,
  ) {
    const cols = 'seq, count, blocks, effects';
    this.blockStmt = db.prepare('SELECT codes FROM code_blocks WHERE session_id = ? AND id = ?').pluck();
    this.holding = db.prepare(`SELECT ${cols} FROM instruction_runs WHERE session_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1`);
    this.overlapping = db.prepare(`SELECT ${cols} FROM instruction_runs WHERE session_id = ? AND seq > ? AND seq <= ? ORDER BY seq`);
    this.overlappingDesc = db.prepare(`SELECT ${cols} FROM instruction_runs WHERE session_id = ? AND seq > ? AND seq <= ? ORDER BY seq DESC`);
    this.after = db.prepare(`SELECT ${cols} FROM instruction_runs WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?`);
    this.lastStmt = db.prepare('SELECT seq + count - 1 FROM instruction_runs WHERE session_id = ? ORDER BY seq DESC LIMIT 1').pluck();
    this.countStmt = db.prepare('SELECT coalesce(sum(count), 0) FROM instruction_runs WHERE session_id = ?').pluck();
    this.runAtStmt = db.prepare('SELECT seq, count, icount, thread_id AS thread FROM instruction_runs WHERE session_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1');
  }

  /** A run's code ids, one per instruction (its blocks expanded). */
  private codesOf(r: RunRow): number[] {
    try {
      return expandBlocks(r.blocks, r.count, (id) => this.block(id));
    } catch (e) {
      if (e instanceof BlockFormatError) throw new RunFormatError(`the run at seq ${r.seq}: ${e.message}`, 'list');
      throw e;
    }
  }

  private block(id: number): number[] | undefined {
    let codes = this.blocks.get(id);
    if (codes === undefined) {
      const text = this.blockStmt.get(this.sessionId, id) as string | undefined;
      if (text === undefined) return undefined;
      try {
        codes = JSON.parse(text) as number[];
      } catch {
        throw new BlockFormatError(`block ${id}'s codes are not JSON`);
      }
      if (!Array.isArray(codes) || codes.length === 0) throw new BlockFormatError(`block ${id}'s codes are not a non-empty JSON array`);
      this.blocks.set(id, codes);
    }
    return codes;
  }

  /** The last run starting at or before seq (it holds seq when seq < its seq + count). */
  runAt(seq: number): { seq: number; count: number; icount: number; thread: number } | undefined {
    return this.runAtStmt.get(this.sessionId, seq) as { seq: number; count: number; icount: number; thread: number } | undefined;
  }

  /** The last instruction's seq (null: none). */
  lastSeq(): number | null {
    return (this.lastStmt.get(this.sessionId) as number | undefined) ?? null;
  }

  /** Instructions recorded. */
  count(): number {
    return this.countStmt.get(this.sessionId) as number;
  }

  /** The runs holding instructions with lo <= seq <= hi: the one holding lo (if any), then those starting after it. */
  private rows(lo: number, hi: number, descending = false): RunRow[] {
    const first = this.holding.get(this.sessionId, lo) as RunRow | undefined;
    const head = first && first.seq + first.count > lo ? [first] : [];
    if (hi <= lo) return head;
    const rest = (descending ? this.overlappingDesc : this.overlapping).all(this.sessionId, lo, hi) as RunRow[];
    return descending ? [...rest, ...head] : [...head, ...rest];
  }

  /**
   * The instructions with lo <= seq <= hi as runs of consecutive seqs, in order: each the first
   * seq and the code ids (no array entry per seq: the fast path for readers of the whole log).
   */
  segments(lo: number, hi: number): { seq: number; codes: number[] }[] {
    const out: { seq: number; codes: number[] }[] = [];
    for (const r of this.rows(lo, hi)) {
      const from = Math.max(0, lo - r.seq);
      const to = Math.min(r.count, hi - r.seq + 1);
      if (from >= to) continue;
      const ids = this.codesOf(r);
      out.push({ seq: r.seq + from, codes: from === 0 && to === r.count ? ids : ids.slice(from, to) });
    }
    return out;
  }

  /** The instructions with lo <= seq <= hi, in order: their seqs and code ids. */
  codes(lo: number, hi: number): { seqs: number[]; codes: number[] } {
    const seqs: number[] = [];
    const codes: number[] = [];
    for (const r of this.rows(lo, hi)) {
      const ids = this.codesOf(r);
      const from = Math.max(0, lo - r.seq);
      const to = Math.min(r.count - 1, hi - r.seq);
      for (let i = from; i <= to; i++) {
        seqs.push(r.seq + i);
        codes.push(ids[i]);
      }
    }
    return { seqs, codes };
  }

  /** The instruction at seq: its code id and packed effects (undefined: no instruction there). */
  at(seq: number): { code: number; effects: Uint8Array | null } | undefined {
    const r = this.rows(seq, seq, true)[0]; // the last run starting at or before seq
    if (!r || seq >= r.seq + r.count) return undefined;
    const i = seq - r.seq;
    return { code: this.codesOf(r)[i], effects: effectsAt(decodeRunEffects(r.effects, r.count), i) };
  }

  /**
   * The instructions with lo <= seq <= hi that changed more than EIP, with their packed effects:
   * ascending, or newest first with `descending`.
   */
  *effects(lo: number, hi: number, descending = false): Generator<[number, Uint8Array]> {
    for (const r of this.rows(lo, hi, descending)) {
      if (r.effects === null) continue;
      const run = decodeRunEffects(r.effects, r.count)!;
      const from = Math.max(0, lo - r.seq);
      const to = Math.min(r.count - 1, hi - r.seq);
      if (descending) {
        for (let i = to; i >= from; i--) {
          const e = effectsAt(run, i);
          if (e) yield [r.seq + i, e];
        }
      } else {
        for (let i = from; i <= to; i++) {
          const e = effectsAt(run, i);
          if (e) yield [r.seq + i, e];
        }
      }
    }
  }

  /**
   * The instructions from seq `from` on, `runs` runs at a time, decoded: for readers that walk the
   * whole log in order (replay --verify).
   */
  page(from: number, runs: number): { seq: number; code: number; effects: Uint8Array | null }[] {
    const out: { seq: number; code: number; effects: Uint8Array | null }[] = [];
    const rows = [...this.rows(from, from), ...(this.after.all(this.sessionId, from, runs) as RunRow[])];
    for (const r of rows) {
      const ids = this.codesOf(r);
      const effects = decodeRunEffects(r.effects, r.count);
      for (let i = Math.max(0, from - r.seq); i < r.count; i++) out.push({ seq: r.seq + i, code: ids[i], effects: effectsAt(effects, i) });
    }
    return out;
  }

  /** The first instruction after seq `after` (exclusive) whose code id passes `test`, up to seq `limit` (exclusive): its seq, else null. */
  first(after: number, test: (code: number) => boolean, limit = Infinity): number | null {
    // The run holding `after`, then the following runs a batch at a time.
    for (const r of this.rows(after + 1, after + 1)) {
      const ids = this.codesOf(r);
      for (let i = Math.max(0, after + 1 - r.seq); i < r.count; i++) {
        if (r.seq + i >= limit) return null;
        if (test(ids[i])) return r.seq + i;
      }
    }
    let from = after;
    for (;;) {
      const rows = this.after.all(this.sessionId, from, 256) as RunRow[];
      if (rows.length === 0) return null;
      for (const r of rows) {
        if (r.seq <= after) continue;
        const ids = this.codesOf(r);
        for (let i = 0; i < r.count; i++) {
          if (r.seq + i >= limit) return null;
          if (test(ids[i])) return r.seq + i;
        }
      }
      from = rows[rows.length - 1].seq;
    }
  }
}

/** SQL for the instructions of one session in a seq range, as (seq, code_id) rows: for ntflow's own queries. */
export function instructionsInRangeSql(session: string, lo: string, hi: string): string {
  return `(SELECT r.seq + ${RUN_INDEX_SQL} AS seq, ${RUN_CODE_SQL} AS code_id FROM instruction_runs r ${expandRunsSql()}
      WHERE r.session_id = ${session} AND r.seq > (${lo}) - ${MAX_RUN} AND r.seq <= (${hi}) AND r.seq + ${RUN_INDEX_SQL} BETWEEN (${lo}) AND (${hi}))`;
}
