// The writer thread: owns the SQLite connection, writes each batch in one transaction with
// prepared statements, keeps the session row's counters current, and formats the disassembly of
// each new instruction off the machine's thread.
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
import { parentPort } from 'node:worker_threads';
import { SymbolTable, formatBytes } from '../core/index.js';
import type { BatchMessage, OtherEvent } from './batch.js';
import { openTraceForWriting, TraceFileError } from './file.js';
import { BlockEncoder, type NewBlock } from './blocks.js';
import { encodeRunEffects, MAX_RUN } from './runs.js';
import { COMMON_COLUMNS, EVENT_TABLES } from './schema.js';

export interface SessionRow {
  name: string;
  program: string;
  options: string;
  cpu: string;
  scenario: string | null;
  ntflowVersion: string;
  programFile: string;
  /** A PE program's image (null for assembly). */
  programImage: Uint8Array | null;
  programSource: string;
  drivers: string;
  startedAt: string;
  firstThread: number;
}

export interface SymbolRow {
  address: number;
  module: string;
  name: string;
  size: number;
}

/** The machine's state at a point: registers as JSON, pages packed in one buffer. */
export interface CheckpointMessage {
  type: 'checkpoint';
  seq: number;
  icount: number;
  cpu: string;
  threadId: number;
  pages: Uint32Array;
  data: Uint8Array;
}

export type ToWriter =
  | { type: 'open'; path: string; session: SessionRow; symbols: SymbolRow[] }
  | BatchMessage
  | CheckpointMessage
  | { type: 'finish'; outcome: string; code: number | null; detail: string; finishedAt: string; status: 'complete' | 'failed'; fold?: boolean }
  | { type: 'close-file' }
  | { type: 'close' };

export type FromWriter =
  | { type: 'opened'; sessionId: number }
  | { type: 'ack'; events: number; instructions: number }
  | { type: 'finished'; bytes: number }
  | { type: 'closed' }
  | { type: 'error'; message: string; userError: boolean };

/**
 * How long a batch waits for another connection's write to end before the recording stops with a
 * one-line error. Other writers hold the file briefly: another recording's batch, or a reader
 * storing a finished session's projections (folded beforehand, copied in one short transaction);
 * a reader of a session still recording writes nothing (issue K §5). So a minute is a wide bound.
 */
export const RECORDER_BUSY_MS = 60_000;

class Writer {
  private db: Database.Database | null = null;
  private sessionId = 0;
  private path = '';
  private symbols = new SymbolTable();
  private insertRun!: Database.Statement;
  private insertCode!: Database.Statement;
  private insertBlock!: Database.Statement;
  /** The session's blocks (instruction_runs.blocks, recorder/blocks.ts). */
  private blocks = new BlockEncoder();
  private insertMark!: Database.Statement;
  private insertOther = new Map<string, Database.Statement>();
  private updateCounts!: Database.Statement;
  private insertCheckpoint!: Database.Statement;
  private insertPage!: Database.Statement;
  private checkpointId = 0;
  private tables = new Map<string, (typeof EVENT_TABLES)[number]>();

  open(msg: Extract<ToWriter, { type: 'open' }>): FromWriter {
    // A writer kept for many sessions (openRecordWriter) keeps its connection to the same file.
    if (this.db && this.path !== msg.path) this.close();
    this.path = msg.path;
    const db = (this.db ??= openTraceForWriting(msg.path, { busyTimeoutMs: RECORDER_BUSY_MS }));
    // Per session: the symbols of its guest, its checkpoint ids from 0.
    this.symbols = new SymbolTable();
    this.checkpointId = 0;
    const s = msg.session;
    this.sessionId = Number(
      db
        .prepare(
          `INSERT INTO sessions (name, program, status, instructions, events, started_at, options, first_thread, cpu, scenario, ntflow_version, program_file, program_source, drivers, program_image)
           VALUES (?, ?, 'incomplete', 0, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(s.name, s.program, s.startedAt, s.options, s.firstThread, s.cpu, s.scenario, s.ntflowVersion, s.programFile, s.programSource, s.drivers, s.programImage ? Buffer.from(s.programImage) : null).lastInsertRowid,
    );
    const byModule = new Map<string, Map<string, number>>();
    const insertSymbol = db.prepare('INSERT OR IGNORE INTO guest_symbols (session_id, address, module, name, size) VALUES (?, ?, ?, ?, ?)');
    db.transaction(() => {
      for (const sym of msg.symbols) {
        insertSymbol.run(this.sessionId, sym.address, sym.module, sym.name, sym.size);
        if (!byModule.has(sym.module)) byModule.set(sym.module, new Map());
        byModule.get(sym.module)!.set(sym.name, sym.address);
      }
    })();
    for (const [module, syms] of byModule) {
      const last = msg.symbols.filter((x) => x.module === module).reduce((m, x) => Math.max(m, x.address + x.size), 0);
      this.symbols.addModule(module, syms, last);
    }
    this.insertRun = db.prepare('INSERT INTO instruction_runs (session_id, seq, count, icount, thread_id, blocks, effects) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.insertBlock = db.prepare('INSERT INTO code_blocks (session_id, id, codes, length) VALUES (?, ?, ?, ?)');
    this.blocks = new BlockEncoder();
    this.insertCode = db.prepare('INSERT INTO code (session_id, id, eip, cpl, bytes, asm, symbol) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.insertMark = db.prepare('INSERT INTO event_marks (session_id, seq, icount, thread_id) VALUES (?, ?, ?, ?)');
    for (const t of EVENT_TABLES) {
      const names = [...COMMON_COLUMNS, ...t.columns].map((c) => c.name);
      this.insertOther.set(t.event, db.prepare(`INSERT INTO ${t.name} (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`));
      this.tables.set(t.event, t);
    }
    this.updateCounts = db.prepare('UPDATE sessions SET events = ?, instructions = ? WHERE id = ?');
    this.insertCheckpoint = db.prepare('INSERT INTO checkpoints (session_id, id, seq, icount, cpu, thread_id) VALUES (?, ?, ?, ?, ?, ?)');
    this.insertPage = db.prepare('INSERT INTO checkpoint_pages (session_id, page, checkpoint_id, data) VALUES (?, ?, ?, ?)');
    return { type: 'opened', sessionId: this.sessionId };
  }

  batch(b: BatchMessage): FromWriter {
    const db = this.db!;
    const sid = this.sessionId;
    db.transaction(() => {
      for (const c of b.newCode) {
        this.blocks.addCode(c.id, c.eip, c.bytes.length);
        const bytes = Buffer.from(c.bytes);
        this.insertCode.run(sid, c.id, c.eip, c.cpl, bytes, formatBytes(c.bytes, c.eip, { symbols: this.symbols }), this.symbols.format(c.eip));
      }
      // Runs: consecutive seqs (no other event between) up to MAX_RUN; a batch ends its last run.
      for (let i = 0; i < b.count; ) {
        let n = 1;
        while (i + n < b.count && n < MAX_RUN && b.seq[i + n] === b.seq[i] + n && b.icount[i + n] === b.icount[i] + n && b.thread[i + n] === b.thread[i]) n++;
        const start = i === 0 ? 0 : b.effectsEnd[i - 1];
        const fresh: NewBlock[] = [];
        const items = this.blocks.encode(b.code, i, n, fresh);
        for (const k of fresh) this.insertBlock.run(sid, k.id, k.codes, k.length);
        this.insertRun.run(sid, b.seq[i], n, b.icount[i], b.thread[i], items, encodeRunEffects(b.effects, b.effectsEnd, i, n, start));
        i += n;
      }
      for (const e of b.others) this.insertEvent(e);
      this.updateCounts.run(b.events, b.instructions, sid);
    })();
    return { type: 'ack', events: b.events, instructions: b.instructions };
  }

  checkpoint(c: CheckpointMessage): FromWriter {
    const db = this.db!;
    const id = this.checkpointId++;
    db.transaction(() => {
      this.insertCheckpoint.run(this.sessionId, id, c.seq, c.icount, c.cpu, c.threadId);
      for (let i = 0; i < c.pages.length; i++) {
        const page = c.data.subarray(i * 4096, (i + 1) * 4096);
        this.insertPage.run(this.sessionId, c.pages[i], id, deflateRawSync(page, { level: 1 }));
      }
    })();
    return { type: 'ack', events: -1, instructions: -1 };
  }

  private insertEvent(e: OtherEvent): void {
    const t = this.tables.get(e.type);
    const stmt = this.insertOther.get(e.type);
    if (!t || !stmt) throw new Error(`no table for event type ${e.type}`);
    const values = t.values(e.type === 'msr-read' || e.type === 'msr-write' ? { ...e, value: BigInt(e.value as string) } : e);
    if (e.type === 'exception') values[values.length - 1] = e.effects ? Buffer.from(e.effects as Uint8Array) : null;
    stmt.run(this.sessionId, e.seq, e.icount, e.cpl, e.eip, e.thread, ...values);
    this.insertMark.run(this.sessionId, e.seq, e.icount, e.thread);
  }

  finish(msg: Extract<ToWriter, { type: 'finish' }>): FromWriter {
    const db = this.db!;
    db.prepare('UPDATE sessions SET status = ?, outcome = ?, outcome_code = ?, outcome_detail = ?, finished_at = ? WHERE id = ?').run(
      msg.status,
      msg.outcome,
      msg.code,
      msg.detail,
      msg.finishedAt,
      this.sessionId,
    );
    // Fold the WAL into the file: a finished trace is one self-contained file. A writer kept for
    // many sessions folds once, when it closes the file (closing the last connection does it). A
    // reader still reading keeps the log's end in use; then the checkpoint stops at once (busy
    // timeout 0) and the last connection to close folds in the rest — the recording does not wait
    // for readers.
    if (msg.fold !== false) {
      db.pragma('busy_timeout = 0');
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.pragma(`busy_timeout = ${RECORDER_BUSY_MS}`);
    }
    return { type: 'finished', bytes: statSync(this.path).size };
  }

  /** The trace file being written (for messages). */
  file(): string {
    return this.path;
  }

  close(): void {
    this.db?.close();
    this.db = null;
  }
}

const writer = new Writer();
const port = parentPort!;
port.on('message', (msg: ToWriter) => {
  try {
    let reply: FromWriter | null = null;
    if (msg.type === 'open') reply = writer.open(msg);
    else if (msg.type === 'batch') reply = writer.batch(msg);
    else if (msg.type === 'checkpoint') reply = writer.checkpoint(msg);
    else if (msg.type === 'finish') reply = writer.finish(msg);
    else if (msg.type === 'close-file') {
      writer.close();
      reply = { type: 'closed' };
    } else {
      writer.close();
      port.close();
      return;
    }
    port.postMessage(reply);
  } catch (e) {
    const err = e as Error & { code?: string };
    const full = err.code === 'SQLITE_FULL' || /disk is full|database or disk is full/i.test(err.message);
    const busy = /^SQLITE_(BUSY|LOCKED)/.test(err.code ?? '');
    const message = full
      ? `the disk is full; the trace keeps every batch written before this one`
      : busy
        ? `${writer.file()} stayed locked by another program for ${RECORDER_BUSY_MS / 1000} s (${err.message.split('\n')[0]}); the session stays 'incomplete' with every batch written before this one`
        : err.message.split('\n')[0];
    port.postMessage({ type: 'error', message, userError: e instanceof TraceFileError || full || busy || /readonly|permission|SQLITE_CANTOPEN|SQLITE_IOERR/.test(err.code ?? err.message) });
  }
});
