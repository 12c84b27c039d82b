// Editing a session's instructions in a trace file, for tests that tamper with the log: the runs
// (recorder/runs.ts) read as one list of instructions, changed, and written back regrouped.
import type Database from 'better-sqlite3';
import { BlockEncoder, InstructionRuns, MAX_RUN, encodeEffectsList, type NewBlock } from '../../recorder/index.js';

export interface LoggedInstruction {
  seq: number;
  icount: number;
  thread: number;
  code: number;
  effects: Uint8Array | null;
}

/** Every instruction of the session, in seq order. */
export function loggedInstructions(db: Database.Database, sessionId: number): LoggedInstruction[] {
  const runs = db.prepare('SELECT seq, count, icount, thread_id FROM instruction_runs WHERE session_id = ? ORDER BY seq').all(sessionId) as { seq: number; count: number; icount: number; thread_id: number }[];
  const reader = new InstructionRuns(db, sessionId);
  const out: LoggedInstruction[] = [];
  for (const r of runs) {
    for (const i of reader.page(r.seq, 0).filter((x) => x.seq < r.seq + r.count)) {
      out.push({ seq: i.seq, icount: r.icount + (i.seq - r.seq), thread: r.thread_id, code: i.code, effects: i.effects });
    }
  }
  return out;
}

/** Replace the session's instructions with `edit`'s list (kept in seq order, regrouped into runs). */
export function rewriteInstructions(db: Database.Database, sessionId: number, edit: (list: LoggedInstruction[]) => LoggedInstruction[]): void {
  const list = edit(loggedInstructions(db, sessionId)).sort((a, b) => a.seq - b.seq);
  const insert = db.prepare('INSERT INTO instruction_runs (session_id, seq, count, icount, thread_id, blocks, effects) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const insertBlock = db.prepare('INSERT INTO code_blocks (session_id, id, codes, length) VALUES (?, ?, ?, ?)');
  const blocks = new BlockEncoder();
  for (const [id, eip, length] of db.prepare('SELECT id, eip, length(bytes) FROM code WHERE session_id = ?').raw().all(sessionId) as [number, number, number][]) blocks.addCode(id, eip, length);
  db.transaction(() => {
    db.prepare('DELETE FROM instruction_runs WHERE session_id = ?').run(sessionId);
    db.prepare('DELETE FROM code_blocks WHERE session_id = ?').run(sessionId);
    for (let i = 0; i < list.length; ) {
      let n = 1;
      while (i + n < list.length && n < MAX_RUN && list[i + n].seq === list[i].seq + n && list[i + n].thread === list[i].thread && list[i + n].icount === list[i].icount + n) n++;
      const part = list.slice(i, i + n);
      const fresh: NewBlock[] = [];
      const items = blocks.encode(part.map((x) => x.code), 0, n, fresh);
      for (const b of fresh) insertBlock.run(sessionId, b.id, b.codes, b.length);
      insert.run(sessionId, list[i].seq, n, list[i].icount, list[i].thread, items, encodeEffectsList(part.map((x) => x.effects)));
      i += n;
    }
  })();
}
