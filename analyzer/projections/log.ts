// The log as a stream: one session's events in `seq` order, as the rows the recorder wrote —
// instruction runs merged with the typed event tables — for the projections to fold.
//
// Speed matters here (the goal is ≥ 2 M events/s replayed), so the reader works in windows of
// seq: per window it takes the instructions' code ids from their runs (one JSON array per up to
// 4096 instructions) and the few other events table by table, merges them
// by seq and emits ONE mutable LogEvent object, refilled for every event. Subscribers are
// synchronous and must not keep it (copy what they need). The instruction rows' effects are not
// read: the projections ask for a register at the few points they need one (registerAfter).
import type Database from 'better-sqlite3';
import { Observable } from 'rxjs';
import { COMMON_COLUMNS, EVENT_TABLES, InstructionRuns, unpackEffects, type UnpackedEffects } from '../../recorder/index.js';

/** The event types, as in the trace (`events.type`). */
export type LogEventType = 'instruction' | (typeof EVENT_TABLES)[number]['event'];

/**
 * One event of the log. The object is reused for every event: read it in `next`, copy what you keep.
 * `row` holds a typed event's own columns (after the common ones) in the order of its table in
 * recorder/schema.ts; use `col(e, 'name')`-style indexes from `COLUMN` for readability.
 */
export interface LogEvent {
  seq: number;
  type: LogEventType;
  /** Instructions retired before this event. */
  icount: number;
  /** Privilege level when it happened (an instruction: the level it ran at). */
  cpl: number;
  eip: number;
  /** The guest thread (after a thread switch: the new one). */
  thread: number;
  /** The instruction's code id (code.id), -1 for other events. */
  code: number;
  /** A typed event's own columns, in its table's column order; null for instructions. */
  row: unknown[] | null;
  /**
   * With readLog's `stretches`: true for a stretch of `count` instructions each of which is quiet
   * after the one before it (quietCodes) — the folds only count them and take the last (whose seq,
   * icount, eip and code these are) as the thread's previous instruction. False for every other event.
   */
  stretch: boolean;
  /** Instructions this event stands for (1 unless a stretch). */
  count: number;
}

/** Where a typed table's own columns sit in `LogEvent.row`: COLUMN['ssdt-lookup'].in_range → 8. */
export const COLUMN: Record<string, Record<string, number>> = Object.fromEntries(
  EVENT_TABLES.map((t) => [t.event, Object.fromEntries(t.columns.map((c, i) => [c.name, i]))]),
);

/** What an instruction does to control flow, from its mnemonic. */
export enum Flow {
  /** Falls through to the next instruction. */
  Next = 0,
  /** jmp, jcc, loop: may go anywhere, within the same frame. */
  Jump,
  Call,
  Ret,
  /** int n, int3, into. */
  Int,
  Iret,
  Sysenter,
  Sysexit,
}

const FLOW_OF: Record<string, Flow> = {
  call: Flow.Call,
  ret: Flow.Ret,
  retf: Flow.Ret,
  int: Flow.Int,
  int3: Flow.Int,
  into: Flow.Int,
  iret: Flow.Iret,
  iretd: Flow.Iret,
  sysenter: Flow.Sysenter,
  sysexit: Flow.Sysexit,
  jmp: Flow.Jump,
  loop: Flow.Jump,
  loope: Flow.Jump,
  loopne: Flow.Jump,
  jcxz: Flow.Jump,
  jecxz: Flow.Jump,
};

/** The control-flow class of a WinDbg-style disassembly line ('call nt!KiSystemService (8053a2fb)'). */
export function flowOf(asm: string): Flow {
  const words = asm.trim().split(/\s+/);
  let m = words[0] ?? '';
  if ((m === 'rep' || m === 'repe' || m === 'repne' || m === 'lock') && words.length > 1) m = words[1];
  const f = FLOW_OF[m];
  if (f !== undefined) return f;
  return /^j[a-z]+$/.test(m) ? Flow.Jump : Flow.Next;
}

/** The session's distinct instructions (the code table), by code id, in typed arrays. */
export interface CodeTable {
  size: number;
  eip: Uint32Array;
  cpl: Uint8Array;
  length: Uint8Array;
  flow: Uint8Array;
  /** `int n`'s vector (0 for other instructions). */
  vector: Uint8Array;
  /** code.symbol (module!Name+0xOffset) or null. */
  symbol: (string | null)[];
  asm: string[];
}

export function readCodeTable(db: Database.Database, sessionId: number): CodeTable {
  const rows = db.prepare('SELECT id, eip, cpl, length(bytes), asm, symbol FROM code WHERE session_id = ? ORDER BY id').raw().all(sessionId) as [number, number, number, number, string, string | null][];
  const size = rows.length === 0 ? 0 : rows[rows.length - 1][0] + 1;
  const t: CodeTable = {
    size,
    eip: new Uint32Array(size),
    cpl: new Uint8Array(size),
    length: new Uint8Array(size),
    flow: new Uint8Array(size),
    vector: new Uint8Array(size),
    symbol: new Array(size).fill(null),
    asm: new Array(size).fill(''),
  };
  for (const [id, eip, cpl, len, asm, symbol] of rows) {
    t.eip[id] = eip;
    t.cpl[id] = cpl;
    t.length[id] = len;
    const f = flowOf(asm);
    t.flow[id] = f;
    if (f === Flow.Int) {
      const m = /^int\s+([0-9A-F]+)h?\b/i.exec(asm.trim());
      t.vector[id] = asm.trim().startsWith('int3') ? 3 : m ? parseInt(m[1], 16) : 0;
    }
    t.symbol[id] = symbol;
    t.asm[id] = asm;
  }
  return t;
}

/** What a projection knows about the session besides the stream. */
export interface LogContext {
  db: Database.Database;
  sessionId: number;
  code: CodeTable;
  /** The thread running when recording started. */
  firstThread: number;
  /** Events in the session (seq runs 0 … events-1). */
  events: number;
  /** Address of module!name in the session's guest symbols (undefined when absent). */
  symbolAddress(module: string, name: string): number | undefined;
  /**
   * A register's value after event `seq` (0 EAX … 7 EDI, see core/effects.ts), from the
   * recorded effects: the last write at or before `seq`, else the nearest checkpoint's CPU state.
   */
  registerAfter(seq: number, reg: number): number | null;
}

export function makeContext(db: Database.Database, sessionId: number): LogContext {
  const s = db.prepare('SELECT first_thread, events FROM sessions WHERE id = ?').get(sessionId) as { first_thread: number; events: number } | undefined;
  if (!s) throw new RangeError(`no session ${sessionId}`);
  // The true extent of the log (a killed recording's counters may lag the rows by a batch).
  const last = db.prepare('SELECT max(seq) FROM event_marks WHERE session_id = ?').pluck().get(sessionId) as number | null;
  const lastInstr = new InstructionRuns(db, sessionId).lastSeq();
  const events = Math.max(s.events, (last ?? -1) + 1, (lastInstr ?? -1) + 1);
  const symbolStmt = db.prepare('SELECT address FROM guest_symbols WHERE session_id = ? AND module = ? AND name = ?').pluck();
  const back = effectsBackward(db, sessionId);
  const checkpoint = db.prepare('SELECT seq, cpu FROM checkpoints WHERE session_id = ? AND seq <= ? + 1 ORDER BY seq DESC LIMIT 1').raw();
  return {
    db,
    sessionId,
    code: readCodeTable(db, sessionId),
    firstThread: s.first_thread,
    events,
    symbolAddress: (module, name) => symbolStmt.get(sessionId, module, name) as number | undefined,
    registerAfter(seq, reg) {
      const cp = checkpoint.get(sessionId, seq) as [number, string] | undefined;
      const floor = cp ? cp[0] - 1 : -1; // a checkpoint at seq k holds the state after event k-1
      let value: number | null = null;
      const wrote = back(seq, floor, (effects) => {
        for (const [id, v] of effects.regs) if (id === reg) value = v; // the last write of the event wins
        return value !== null;
      });
      if (wrote !== null) return value! >>> 0;
      if (!cp) return null;
      const regs = (JSON.parse(cp[1]) as { regs?: number[] }).regs;
      return regs && reg < regs.length ? regs[reg] >>> 0 : null;
    },
  };
}

/**
 * A reader of the recorded effects (instructions' and exception deliveries') newest first: from
 * event `from` down to `floor` (exclusive), in growing windows (16, 64, … 4096 events) since what
 * is looked for is nearly always close; returns the first seq whose effects `match`, else null.
 * The register a projection needs after a call (registerAfter) and the write that installed a
 * hook (findings) are both found this way.
 */
export function effectsBackward(db: Database.Database, sessionId: number): (from: number, floor: number, match: (effects: UnpackedEffects) => boolean) => number | null {
  const runs = new InstructionRuns(db, sessionId);
  const backExceptions = db.prepare('SELECT seq, effects FROM exceptions WHERE session_id = ? AND seq <= ? AND seq > ? AND effects IS NOT NULL ORDER BY seq DESC').raw();
  return (from, floor, match) => {
    for (let hi = from, span = 16; hi > floor; hi -= span, span = Math.min(span * 4, 4096)) {
      const lo = Math.max(floor, hi - span);
      const rows = [...runs.effects(lo + 1, hi, true), ...(backExceptions.all(sessionId, hi, lo) as [number, Uint8Array][])];
      rows.sort((a, b) => b[0] - a[0]);
      for (const [seq, eff] of rows) if (match(unpackEffects(eff))) return seq;
    }
    return null;
  };
}

const WINDOW = 1 << 16;
const COMMON = COMMON_COLUMNS.slice(1).map((c) => c.name); // seq, icount, cpl, eip, thread_id

/**
 * Which instructions may join the stretch before them (readLog's `stretches`): the projections'
 * folds (syscalls, calls, ring_spans) do nothing for such an instruction but count it and remember
 * it as the thread's previous one. An instruction is quiet after its predecessor, in the same run
 * (same thread, no event between), when both are plain or jumps (no call, return, interrupt,
 * SYSENTER or SYSEXIT), they run at the same privilege level, and it was reached either by falling
 * through from a plain instruction at an address no call returns to (no kernel caller's call ends
 * there, nor any service-enter's caller), or — at CPL 3, where no system call is open — by a jump.
 * Returns, per code id: 1 when quiet after falling through, 2 when also quiet after a jump (CPL 3).
 * test/log-stretches.test.ts folds every scenario both ways and compares the projections.
 */
function quietCodes(code: CodeTable, callers: Iterable<number>): Uint8Array {
  // Where a system call can end at CPL 0: after an entering instruction, or at an Nt routine's caller.
  const returnPoints = new Set<number>(callers);
  for (let id = 0; id < code.size; id++) {
    const f = code.flow[id];
    if (f === Flow.Call || f === Flow.Int || f === Flow.Sysenter) returnPoints.add((code.eip[id] + code.length[id]) >>> 0);
  }
  const quiet = new Uint8Array(code.size);
  for (let id = 0; id < code.size; id++) {
    const f = code.flow[id];
    if ((f === Flow.Next || f === Flow.Jump) && !returnPoints.has(code.eip[id])) quiet[id] = code.cpl[id] === 3 ? 2 : 1;
  }
  return quiet;
}

/**
 * The session's events in seq order. Cold: every subscription reads the log again. Emits one
 * reused LogEvent; `onWindow(eventsDone)` is called after each window (progress bars). With
 * `stretches`, quiet instructions (quietCodes) come as one event per stretch (LogEvent.count):
 * what the projections' folds read, a loop's millions of instructions in a few events.
 */
export function readLog(ctx: LogContext, onWindow?: (done: number) => void, options: { stretches?: boolean } = {}): Observable<LogEvent> {
  return new Observable<LogEvent>((subscriber) => {
    const { db, sessionId, code } = ctx;
    const runs = new InstructionRuns(db, sessionId);
    const others = EVENT_TABLES.map((t) => ({
      type: t.event,
      stmt: db.prepare(`SELECT ${[...COMMON, ...t.columns.map((c) => c.name)].join(', ')} FROM ${t.name} WHERE session_id = ? AND seq >= ? AND seq < ? ORDER BY seq`).raw(),
    }));
    const e: LogEvent = { seq: 0, type: 'instruction', icount: 0, cpl: 0, eip: 0, thread: ctx.firstThread, code: -1, row: null, stretch: false, count: 1 };
    const quiet = options.stretches ? quietCodes(code, db.prepare('SELECT DISTINCT caller FROM service_enters WHERE session_id = ?').pluck().all(sessionId) as number[]) : null;
    const flow = code.flow;
    const eipOf = code.eip;
    const cplOf = code.cpl;
    const lengthOf = code.length;
    /** May instruction `id` join the stretch of `prev`, the instruction just before it in the same run? */
    const joins = (prev: number, id: number): boolean => {
      const q = quiet![id];
      if (q === 0 || quiet![prev] === 0 || cplOf[prev] !== cplOf[id]) return false;
      if (flow[prev] === Flow.Next) return eipOf[id] === ((eipOf[prev] + lengthOf[prev]) >>> 0);
      return q === 2; // after a jump: at CPL 3 only
    };
    let icount = 0;
    let thread = ctx.firstThread;
    for (let lo = 0; lo < ctx.events && !subscriber.closed; lo += WINDOW) {
      const hi = Math.min(ctx.events, lo + WINDOW);
      // The other events of the window, merged by seq (few: sort them).
      const rest: { type: LogEventType; row: unknown[] }[] = [];
      for (const o of others) for (const row of o.stmt.all(sessionId, lo, hi) as unknown[][]) rest.push({ type: o.type, row });
      if (rest.length > 1) rest.sort((a, b) => (a.row[0] as number) - (b.row[0] as number));
      const segments = runs.segments(lo, hi - 1);
      let g = 0; // the segment
      let i = 0; // the instruction within it
      let r = 0;
      while ((g < segments.length || r < rest.length) && !subscriber.closed) {
        const nextOther = r < rest.length ? (rest[r].row[0] as number) : Infinity;
        const nextInstr = g < segments.length ? segments[g].seq + i : Infinity;
        if (nextInstr < nextOther) {
          const codes = segments[g].codes;
          // A stretch: from an instruction quiet after the one before it in its segment (a run's
          // part: same thread, no event between), as far as each next one is quiet after its own.
          let last = codes[i];
          let count = 1;
          const stretch = quiet !== null && i > 0 && joins(codes[i - 1], last);
          i++;
          if (stretch) {
            while (i < codes.length && joins(last, codes[i])) {
              last = codes[i++];
              count++;
            }
          }
          if (i === codes.length) {
            g++;
            i = 0;
          }
          e.seq = nextInstr + count - 1;
          e.type = 'instruction';
          icount += count;
          e.icount = icount - 1;
          e.cpl = cplOf[last];
          e.eip = eipOf[last];
          e.thread = thread;
          e.code = last;
          e.row = null;
          e.stretch = stretch;
          e.count = count;
        } else {
          const { type, row } = rest[r++];
          e.seq = nextOther;
          e.type = type;
          e.icount = icount = row[1] as number;
          e.cpl = row[2] as number;
          e.eip = row[3] as number;
          e.thread = thread = row[4] as number;
          e.code = -1;
          e.row = row.slice(5);
          e.stretch = false;
          e.count = 1;
        }
        subscriber.next(e);
      }
      onWindow?.(hi);
    }
    subscriber.complete();
  });
}
