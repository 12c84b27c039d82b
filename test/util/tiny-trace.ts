// Tiny hand-made traces (Perfetto-style tests: a few rows, a query, the expected rows). A trace
// file with the real schema (openTraceForWriting), one session, and events added one by one with
// gapless seq: instructions (code rows made on demand, effects packed like the recorder's) and
// typed events (columns from recorder/schema.ts's EVENT_TABLES, plus their event_marks row).
import type Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EVENT_TABLES, encodeRunEffects, openTraceForWriting, packEffects } from '../../recorder/index.js';

export interface InstructionSpec {
  /** Byte length (the next sequential instruction is at eip + len); default 2. */
  len?: number;
  /** Privilege level it runs at; default the builder's current one. */
  cpl?: number;
  /** code.symbol (module!Name+0xN). */
  symbol?: string;
  /** Register values it leaves (RegId → value), e.g. { 0: 0xC0000008 } for EAX. */
  regs?: Record<number, number>;
}

export class TinyTrace {
  readonly path: string;
  readonly db: Database.Database;
  readonly sessionId: number;
  private seq = 0;
  private icount = 0;
  /** The current thread and privilege level (events default to them). */
  thread: number;
  cpl = 3;
  private readonly codeIds = new Map<string, number>();
  private readonly insertLog: Database.Statement;
  private readonly insertBlock: Database.Statement;
  private readonly insertCode: Database.Statement;
  private readonly insertMark: Database.Statement;

  constructor(options: { firstThread?: number; name?: string; path?: string } = {}) {
    this.path = options.path ?? join(mkdtempSync(join(tmpdir(), 'ntflow-tiny-')), 'tiny.db');
    this.db = openTraceForWriting(this.path);
    this.thread = options.firstThread ?? 1996;
    this.sessionId = Number(
      this.db
        .prepare(
          `INSERT INTO sessions (name, program, status, instructions, events, started_at, options, first_thread, cpu, scenario, ntflow_version, program_file, program_source, drivers)
           VALUES (?, 'tiny.asm', 'incomplete', 0, 0, '2020-01-01T00:00:00.000Z', '{}', ?, 'sysenter', NULL, 'test', 'tiny.asm', '', '[]')`,
        )
        .run(options.name ?? 'tiny', this.thread).lastInsertRowid,
    );
    // Each instruction a run of its own (valid: a run holds 1 to 4096), its block the code alone.
    this.insertLog = this.db.prepare('INSERT INTO instruction_runs (session_id, seq, count, icount, thread_id, blocks, effects) VALUES (?, ?, 1, ?, ?, ?, ?)');
    this.insertBlock = this.db.prepare('INSERT INTO code_blocks (session_id, id, codes, length) VALUES (?, ?, ?, 1)');
    this.insertCode = this.db.prepare('INSERT INTO code (session_id, id, eip, bytes, cpl, asm, symbol) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.insertMark = this.db.prepare('INSERT INTO event_marks (session_id, seq, icount, thread_id) VALUES (?, ?, ?, ?)');
  }

  /** The next event's seq. */
  get next(): number {
    return this.seq;
  }

  /** An instruction retired at `eip`; returns its seq. */
  ins(eip: number, asm: string, spec: InstructionSpec = {}): number {
    const cpl = spec.cpl ?? this.cpl;
    const len = spec.len ?? 2;
    const key = `${eip}:${cpl}:${asm}`;
    let id = this.codeIds.get(key);
    if (id === undefined) {
      id = this.codeIds.size;
      this.codeIds.set(key, id);
      this.insertCode.run(this.sessionId, id, eip >>> 0, Buffer.alloc(len, 0x90), cpl, asm, spec.symbol ?? null);
      this.insertBlock.run(this.sessionId, id, `[${id}]`);
    }
    let effects: Buffer | null = null;
    if (spec.regs) {
      const regs = Object.entries(spec.regs).flatMap(([r, v]) => [Number(r), v >>> 0]);
      const out = new Uint8Array(regs.length * 3);
      const end = packEffects({ regs, writes: [], tableWrites: [] }, out, 0);
      effects = encodeRunEffects(out, Uint32Array.of(end), 0, 1, 0);
    }
    this.insertLog.run(this.sessionId, this.seq, this.icount, this.thread, `[[0,${id},1]]`, effects);
    this.icount++;
    return this.seq++;
  }

  /**
   * A typed event: `fields` as the TraceEvent's own fields (camelCase, as core/events.ts names
   * them); `at` overrides the common columns. Returns its seq.
   */
  ev(type: (typeof EVENT_TABLES)[number]['event'], fields: Record<string, unknown>, at: { cpl?: number; eip?: number; thread?: number } = {}): number {
    const t = EVENT_TABLES.find((x) => x.event === type);
    if (!t) throw new Error(`no event table for ${type}`);
    if (type === 'thread-switch') this.thread = fields.toThread as number;
    const thread = at.thread ?? this.thread;
    const values = t.values({ ...fields, value: typeof fields.value === 'number' ? BigInt(fields.value) : fields.value });
    const cols = ['session_id', 'seq', 'icount', 'cpl', 'eip', 'thread_id', ...t.columns.map((c) => c.name)];
    this.db
      .prepare(`INSERT INTO ${t.name} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`)
      .run(this.sessionId, this.seq, this.icount, at.cpl ?? this.cpl, (at.eip ?? 0) >>> 0, thread, ...values);
    this.insertMark.run(this.sessionId, this.seq, this.icount, thread);
    return this.seq++;
  }

  symbol(module: string, name: string, address: number, size: number): void {
    this.db.prepare('INSERT INTO guest_symbols (session_id, address, module, name, size) VALUES (?, ?, ?, ?, ?)').run(this.sessionId, address >>> 0, module, name, size);
  }

  /** Mark the session complete with its counters. */
  finish(): this {
    this.db.prepare("UPDATE sessions SET status = 'complete', outcome = 'exited', events = ?, instructions = ?, finished_at = '2020-01-01T00:00:01.000Z' WHERE id = ?").run(this.seq, this.icount, this.sessionId);
    return this;
  }

  close(): void {
    this.db.close();
  }
}
