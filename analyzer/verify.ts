// Verification (rr-style determinism check): re-execute a recorded session from what the trace
// stores about it — the program's source, the drivers' sources, the CPU model and the instruction
// limit — on a fresh Guest, and compare the new event stream with the recorded rows, seq by seq.
//
// Both sides are compared in one representation, the recorder's: a new instruction event is turned
// into its instruction run and code row (seq, eip, cpl, bytes, and its effects packed exactly as the
// recorder packs them), any other event into the row of its typed table (the common columns, then
// EVENT_TABLES[…].values(event), which is what the writer stores). An incomplete (killed) session is
// compared over the prefix it recorded.
import type Database from 'better-sqlite3';
import { Guest, REG_ID_NAMES, formatBytes, type GuestOutcome, type TraceEvent } from '../core/index.js';
import { COMMON_COLUMNS, EVENT_TABLES, InstructionRuns, packEffects, unpackEffects } from '../recorder/index.js';

/** A session that cannot be re-executed (its program no longer builds, bad stored options): one line. */
export class VerifyError extends Error {
  override name = 'VerifyError';
}

/** One event in the comparison's form: its row's columns, named. */
export interface CanonicalEvent {
  seq: number;
  type: string;
  /** Column name → value (numbers, bigints, strings, Uint8Arrays, null), in the table's order. */
  fields: [string, unknown][];
  /** The disassembly, for instructions. */
  asm?: string;
}

export interface Divergence {
  seq: number;
  /** Why, in a few words: 'different events', 'the re-run stopped early', … */
  reason: string;
  recorded: CanonicalEvent | null;
  rerun: CanonicalEvent | null;
  /** Names of the fields that differ. */
  differing: string[];
}

export interface VerifyResult {
  sessionId: number;
  name: string;
  status: string;
  /** Events found identical (seq 0 … compared-1). */
  compared: number;
  /** Events the trace holds for the session. */
  recorded: number;
  identical: boolean;
  divergence: Divergence | null;
  /** The last identical event before the divergence (context). */
  lastIdentical: CanonicalEvent | null;
  /** The re-run's outcome, when it ran to its end. */
  outcome: GuestOutcome | null;
  /** The recording's outcome column. */
  recordedOutcome: string | null;
  /** A remark: the prefix of an incomplete session, a re-run that failed like the recording. */
  note: string | null;
}

export interface VerifyOptions {
  /** Called after each slice of the re-run. */
  onProgress?: (p: { compared: number; recorded: number }) => void;
}

interface SessionRow {
  id: number;
  name: string;
  status: string;
  outcome: string | null;
  outcome_detail: string | null;
  events: number;
  options: string;
  cpu: string;
  program_file: string;
  program_source: string;
  program_image: Buffer | null;
  drivers: string;
}

const SLICE = 1 << 16;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Values as both sides hold them: integers as numbers when they fit, undefined as null. */
function norm(v: unknown): unknown {
  if (typeof v === 'bigint') return v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v;
  if (v === undefined) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v;
}

function bytesEqual(a: Uint8Array | null, b: Uint8Array | null): boolean {
  const an = a === null || a.length === 0;
  const bn = b === null || b.length === 0;
  if (an || bn) return an && bn;
  return Buffer.compare(Buffer.from(a!.buffer, a!.byteOffset, a!.byteLength), Buffer.from(b!.buffer, b!.byteOffset, b!.byteLength)) === 0;
}

function same(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return (a === null || a instanceof Uint8Array) && (b === null || b instanceof Uint8Array) && bytesEqual(a as Uint8Array | null, b as Uint8Array | null);
  }
  return a === b;
}

// ---- the recorded side: rows in seq order, merged from the instruction runs and the typed tables ----

type RecordedRow =
  | { kind: 'instruction'; seq: number; eip: number; cpl: number; bytes: Uint8Array; effects: Uint8Array | null; asm: string }
  | { kind: 'event'; seq: number; table: (typeof EVENT_TABLES)[number]; values: unknown[] };

/** Reads one table of the session in seq order, a chunk at a time (one connection, no open iterators). */
class Cursor<T extends { seq: number }> {
  private rows: T[] = [];
  private at = 0;
  private from = 0;
  private done = false;
  /** `fetch(from)`: the next rows from seq `from` on; fewer than `chunk` means the end. */
  constructor(
    private readonly fetch: (from: number) => T[],
    private readonly chunk: number,
  ) {}
  peek(): T | null {
    if (this.at < this.rows.length) return this.rows[this.at];
    if (this.done) return null;
    this.rows = this.fetch(this.from);
    this.at = 0;
    if (this.rows.length < this.chunk) this.done = true;
    if (this.rows.length === 0) return null;
    this.from = this.rows[this.rows.length - 1].seq + 1;
    return this.rows[0];
  }
  take(): T | null {
    const r = this.peek();
    if (r) this.at++;
    return r;
  }
}

class RecordedLog {
  private readonly instructions: Cursor<Extract<RecordedRow, { kind: 'instruction' }>>;
  private readonly others: Cursor<Extract<RecordedRow, { kind: 'event' }>>[];

  constructor(db: Database.Database, sessionId: number) {
    const runs = new InstructionRuns(db, sessionId);
    const code = new Map(
      (db.prepare('SELECT id, eip, cpl, bytes, asm FROM code WHERE session_id = ?').raw().all(sessionId) as [number, number, number, Uint8Array, string][]).map((r) => [r[0], r]),
    );
    // Four runs at a time (4 to 16 384 instructions); only an empty page means the end.
    this.instructions = new Cursor(
      (from) =>
        runs.page(from, 4).map((i) => {
          const c = code.get(i.code)!;
          return { kind: 'instruction' as const, seq: i.seq, eip: c[1], cpl: c[2], bytes: c[3], effects: i.effects, asm: c[4] };
        }),
      1,
    );
    this.others = EVENT_TABLES.map((t) => {
      const cols = [...COMMON_COLUMNS.slice(1), ...t.columns].map((c) => c.name);
      const stmt = db.prepare(`SELECT ${cols.join(', ')} FROM ${t.name} WHERE session_id = ? AND seq >= ? ORDER BY seq LIMIT ?`).raw(true).safeIntegers(true);
      return new Cursor((from) => (stmt.all(sessionId, from, 2048) as unknown[][]).map((r) => ({ kind: 'event' as const, seq: Number(r[0]), table: t, values: r.slice(1).map(norm) })), 2048);
    });
  }

  /** The next recorded row (lowest seq among the tables), or null at the end. */
  next(): RecordedRow | null {
    let best: Cursor<Extract<RecordedRow, { kind: 'event' }>> | null = null;
    let bestSeq = Infinity;
    for (const c of this.others) {
      const h = c.peek();
      if (h && h.seq < bestSeq) {
        bestSeq = h.seq;
        best = c;
      }
    }
    const i = this.instructions.peek();
    if (i && i.seq < bestSeq) return this.instructions.take();
    return best ? best.take() : null;
  }
}

// ---- canonical forms ----------------------------------------------------------------------

const COMMON_NAMES = COMMON_COLUMNS.slice(2).map((c) => c.name); // icount, cpl, eip, thread_id
const TABLE_BY_EVENT = new Map(EVENT_TABLES.map((t) => [t.event as string, t]));

function recordedCanonical(r: RecordedRow): CanonicalEvent {
  if (r.kind === 'instruction') {
    return {
      seq: r.seq,
      type: 'instruction',
      fields: [
        ['eip', r.eip],
        ['cpl', r.cpl],
        ['bytes', r.bytes],
        ['effects', r.effects],
      ],
      asm: r.asm,
    };
  }
  const names = [...COMMON_NAMES, ...r.table.columns.map((c) => c.name)];
  return { seq: r.seq, type: r.table.event, fields: names.map((n, i) => [n, r.values[i]]) };
}

/** Packs effects the way the recorder does, into a reusable buffer. */
class EffectsPacker {
  private buf = new Uint8Array(1 << 16);
  pack(e: { regs: readonly number[]; writes: readonly number[]; tableWrites: readonly number[] }): Uint8Array | null {
    if (e.regs.length === 0 && e.writes.length === 0 && e.tableWrites.length === 0) return null;
    let bound = (e.regs.length / 2) * 5 + (e.tableWrites.length / 2) * 9;
    for (let i = 1; i < e.writes.length; i += 3) bound += 5 + e.writes[i];
    if (bound > this.buf.length) this.buf = new Uint8Array(bound * 2);
    const n = packEffects(e, this.buf, 0);
    return n === 0 ? null : this.buf.subarray(0, n);
  }
}

/** The row the recorder would store for a non-instruction event (values normalized). */
function eventValues(e: TraceEvent, packer: EffectsPacker): unknown[] {
  const t = TABLE_BY_EVENT.get(e.type)!;
  const values = t.values(e);
  if (e.type === 'exception') {
    const p = packer.pack(e);
    values[values.length - 1] = p ? p.slice() : null;
  }
  return [e.icount, e.cpl, e.eip, e.thread, ...values].map(norm);
}

function rerunCanonical(e: TraceEvent, packer: EffectsPacker, asm?: (bytes: Uint8Array, eip: number) => string): CanonicalEvent {
  if (e.type === 'instruction') {
    const eff = packer.pack(e);
    return {
      seq: e.seq,
      type: 'instruction',
      fields: [
        ['eip', e.eip],
        ['cpl', e.cpl],
        ['bytes', e.bytes.slice()],
        ['effects', eff ? eff.slice() : null],
      ],
      asm: asm?.(e.bytes, e.eip),
    };
  }
  const t = TABLE_BY_EVENT.get(e.type);
  if (!t) return { seq: e.seq, type: e.type, fields: [] };
  const names = [...COMMON_NAMES, ...t.columns.map((c) => c.name)];
  const values = eventValues(e, packer);
  return { seq: e.seq, type: e.type, fields: names.map((n, i) => [n, values[i]]) };
}

function differingFields(a: CanonicalEvent, b: CanonicalEvent): string[] {
  if (a.type !== b.type) return ['type'];
  const out: string[] = [];
  a.fields.forEach(([n, v], i) => {
    if (!same(v, b.fields[i]?.[1])) out.push(n);
  });
  return out;
}

// ---- the check ----------------------------------------------------------------------------

function parseJson<T>(text: string, what: string, sessionId: number): T {
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new VerifyError(`session ${sessionId}'s ${what} is not valid JSON (${(e as Error).message}); it cannot be re-executed`);
  }
}

/** Re-execute session `sessionId` of an open trace and compare its events with the recorded ones. */
export async function verifySession(db: Database.Database, sessionId: number, options: VerifyOptions = {}): Promise<VerifyResult> {
  const s = db
    .prepare('SELECT id, name, status, outcome, outcome_detail, events, options, cpu, program_file, program_source, program_image, drivers FROM sessions WHERE id = ?')
    .get(sessionId) as SessionRow | undefined;
  if (!s) throw new VerifyError(`no session ${sessionId} in this trace`);
  const opts = parseJson<{ cpu?: string; maxInstructions?: number }>(s.options, 'options', sessionId);
  const drivers = parseJson<{ file: string; source?: string; image?: string }[]>(s.drivers, 'drivers', sessionId);
  const cpu = (opts.cpu ?? s.cpu) as 'sysenter' | 'int2e';
  const maxInstructions = opts.maxInstructions ?? 50_000_000;
  if (cpu !== 'sysenter' && cpu !== 'int2e') throw new VerifyError(`session ${sessionId} names an unknown CPU model '${cpu}'`);
  if (!Array.isArray(drivers) || drivers.some((d) => typeof d?.file !== 'string' || (typeof d?.source !== 'string' && typeof d?.image !== 'string'))) {
    throw new VerifyError(`session ${sessionId}'s drivers are not a list of {file, source} or {file, image}; it cannot be re-executed`);
  }
  let guest: Guest;
  try {
    const program = { fileName: s.program_file, source: s.program_source, ...(s.program_image ? { image: new Uint8Array(s.program_image) } : {}) };
    const driverSources = drivers.map((d) => (d.image !== undefined ? { fileName: d.file, source: '', image: new Uint8Array(Buffer.from(d.image, 'base64')) } : { fileName: d.file, source: d.source! }));
    guest = Guest.boot({ cpu, program, drivers: driverSources });
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    throw new VerifyError(`session ${sessionId}'s program does not build with this ntflow, so it cannot be re-executed: ${msg}`);
  }

  const recordedCount = (db.prepare('SELECT count(*) FROM event_marks WHERE session_id = ?').pluck().get(sessionId) as number) +
    new InstructionRuns(db, sessionId).count();
  const log = new RecordedLog(db, sessionId);
  const packer = new EffectsPacker();
  const asm = (bytes: Uint8Array, eip: number) => formatBytes(bytes, eip, { symbols: guest.symbols });
  const result: VerifyResult = {
    sessionId,
    name: s.name,
    status: s.status,
    compared: 0,
    recorded: recordedCount,
    identical: false,
    divergence: null,
    lastIdentical: null,
    outcome: null,
    recordedOutcome: s.outcome_detail ?? s.outcome,
    note: null,
  };
  let last: RecordedRow | null = null;
  let done = false;
  let recordedEnded = false;

  const diverge = (d: Divergence) => {
    result.divergence = d;
    if (last) result.lastIdentical = recordedCanonical(last);
    done = true;
  };

  const onEvent = (e: TraceEvent) => {
    if (done) return;
    const r = log.next();
    if (r === null) {
      // The recording ends here: a complete one should not; an incomplete one is a prefix.
      recordedEnded = true;
      if (s.status === 'complete') {
        diverge({ seq: e.seq, reason: `the re-run goes on past the recording's last event (seq ${result.compared - 1})`, recorded: null, rerun: rerunCanonical(e, packer, asm), differing: ['type'] });
      } else done = true;
      return;
    }
    let equal = r.seq === e.seq;
    if (equal) {
      if (r.kind === 'instruction') {
        equal = e.type === 'instruction' && r.eip === e.eip && r.cpl === e.cpl && bytesEqual(r.bytes, e.bytes) && bytesEqual(r.effects, packer.pack(e));
      } else if (e.type === r.table.event) {
        const v = eventValues(e, packer);
        equal = v.length === r.values.length && v.every((x, i) => same(x, r.values[i]));
      } else equal = false;
    }
    if (!equal) {
      const rc = recordedCanonical(r);
      const nc = rerunCanonical(e, packer, asm);
      if (r.seq !== e.seq) {
        // A gap or a duplicate in the recorded rows.
        const reason = r.seq > e.seq ? `the recording has no event with seq ${e.seq} (its next is seq ${r.seq})` : `the recording repeats seq ${r.seq}`;
        diverge({ seq: e.seq, reason, recorded: r.seq > e.seq ? null : rc, rerun: nc, differing: ['seq'] });
      } else {
        const differing = differingFields(rc, nc);
        diverge({ seq: e.seq, reason: rc.type === nc.type ? `different ${rc.type} events` : `a ${rc.type} event was recorded, the re-run has a ${nc.type}`, recorded: rc, rerun: nc, differing });
      }
      return;
    }
    last = r;
    result.compared++;
  };

  const sub = guest.events$.subscribe(onEvent);
  try {
    let outcome: GuestOutcome | null = null;
    try {
      guest.start(maxInstructions);
      while (!done) {
        outcome = guest.slice(SLICE);
        options.onProgress?.({ compared: result.compared, recorded: recordedCount });
        if (outcome !== null) break;
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      // ntflow itself failed while re-running: the same as the recording, or a divergence.
      const msg = (e as Error).message.split('\n')[0];
      const atEnd = log.next();
      if (s.status === 'failed' && atEnd === null && !done) {
        result.identical = true;
        result.note = `the re-run failed like the recording: ${msg}`;
        return result;
      }
      if (!done) diverge({ seq: result.compared, reason: `the re-run failed: ${msg}`, recorded: atEnd ? recordedCanonical(atEnd) : null, rerun: null, differing: [] });
      return result;
    }
    result.outcome = outcome;
    if (!done) {
      // The re-run stopped: the recording must stop here too.
      const more = log.next();
      if (more) {
        diverge({ seq: more.seq, reason: `the re-run stopped here (${outcome?.description ?? 'no outcome'}); the recording goes on`, recorded: recordedCanonical(more), rerun: null, differing: ['type'] });
      }
    }
    if (!result.divergence) {
      result.identical = true;
      if (s.status !== 'complete') {
        result.note = `session ${sessionId} is ${s.status}: compared the ${result.compared} events it recorded${recordedEnded ? ' (the re-run goes on past them)' : ''}`;
      }
    }
    return result;
  } finally {
    sub.unsubscribe();
  }
}

// ---- the report ---------------------------------------------------------------------------

const HEXY = /eip|esp|address|target|base|irp|device|object|caller|^value$|^status$|cr2|error_code/;

function show(name: string, v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  if (typeof v === 'number' || typeof v === 'bigint') {
    if (HEXY.test(name)) {
      const n = typeof v === 'bigint' ? BigInt.asUintN(64, v) : BigInt(v < 0 ? v >>> 0 : v);
      return `${n.toString(16).padStart(8, '0')}`;
    }
    return String(v);
  }
  return String(v);
}

/** Decoded effects: `eax=00000001 esp=f8907dc8 [f8907dc8]=00000000/4`. */
export function describeEffects(buf: Uint8Array | null): string {
  if (!buf || buf.length === 0) return '(none)';
  const u = unpackEffects(buf);
  const parts: string[] = [];
  for (const [id, v] of u.regs) parts.push(`${REG_ID_NAMES[id] ?? `r${id}`}=${(v >>> 0).toString(16).padStart(8, '0')}`);
  for (const [addr, size, v] of u.writes) parts.push(`[${(addr >>> 0).toString(16).padStart(8, '0')}]=${v.toString(16).padStart(size * 2, '0')}`);
  for (const [phys, v] of u.tableWrites) parts.push(`pte@${(phys >>> 0).toString(16)}=${(v >>> 0).toString(16).padStart(8, '0')}`);
  return parts.join(' ');
}

function rowsOf(e: CanonicalEvent | null): Map<string, string> {
  const m = new Map<string, string>();
  if (!e) return m;
  m.set('seq', String(e.seq));
  m.set('type', e.type);
  if (e.asm !== undefined) m.set('asm', e.asm);
  for (const [n, v] of e.fields) m.set(n, n === 'effects' ? describeEffects(v as Uint8Array | null) : show(n, v));
  return m;
}

function oneLineEvent(e: CanonicalEvent): string {
  const f = new Map(e.fields);
  if (e.type === 'instruction') return `seq ${e.seq}: instruction ${show('eip', f.get('eip'))} ${e.asm ?? ''}`.trimEnd();
  return `seq ${e.seq}: ${e.type} at ${show('eip', f.get('eip'))}`;
}

const CELL = 48;
const cut = (s: string) => (s.length > CELL ? `${s.slice(0, CELL - 1)}…` : s);

/** The report: "identical (N events)", or the divergence with both events side by side. */
export function formatVerifyResult(r: VerifyResult): string {
  const head = `session ${r.sessionId} '${r.name}'`;
  if (r.identical) {
    const lines = [`${head}: identical (${r.compared.toLocaleString('en-US')} events)`];
    if (r.outcome) {
      const rec = r.recordedOutcome === null ? ' (the recording has none)' : r.recordedOutcome === r.outcome.description ? ' (as recorded)' : ` (recorded: ${r.recordedOutcome})`;
      lines.push(`  outcome  ${r.outcome.description}${rec}`);
    }
    if (r.note) lines.push(`  note     ${r.note}`);
    return lines.join('\n') + '\n';
  }
  const d = r.divergence!;
  const lines = [`${head}: diverges at seq ${d.seq} after ${r.compared.toLocaleString('en-US')} identical events: ${d.reason}`];
  if (r.lastIdentical) lines.push(`  last identical  ${oneLineEvent(r.lastIdentical)}`);
  const a = rowsOf(d.recorded);
  const b = rowsOf(d.rerun);
  const names = [...new Set([...a.keys(), ...b.keys()])];
  if (names.length) {
    const w = Math.max(5, ...names.map((n) => n.length));
    const left = (n: string) => a.get(n) ?? (d.recorded ? '' : '(none)');
    const cw = Math.min(CELL, Math.max('recorded'.length, ...names.map((n) => left(n).length)));
    lines.push('');
    lines.push(`  ${''.padEnd(w)}    ${'recorded'.padEnd(cw)}  re-run`);
    for (const n of names) {
      const x = left(n);
      const y = b.get(n) ?? (d.rerun ? '' : '(none)');
      const mark = x !== y ? '≠' : ' ';
      lines.push(`  ${n.padEnd(w)} ${mark}  ${cut(x).padEnd(cw)}  ${cut(y)}`.trimEnd());
    }
    // Long values that differ, in full.
    for (const n of names) {
      const x = a.get(n) ?? '';
      const y = b.get(n) ?? '';
      if (x !== y && (x.length > CELL || y.length > CELL)) {
        lines.push('', `  ${n}, recorded: ${x}`, `  ${n}, re-run:   ${y}`);
      }
    }
  }
  return lines.join('\n') + '\n';
}
