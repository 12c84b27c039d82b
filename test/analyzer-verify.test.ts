// `ntflow replay FILE --verify`: a recorded session re-executed from the program, drivers and
// options stored with it is identical to its recording, event for event; a divergence injected into
// a copy of the trace (one service_exits status, one instruction's effects, a missing row, a cut
// recording) is found at exactly its seq and shown side by side; an incomplete session is compared
// over the prefix it recorded.
//   npx tsc -p tsconfig.json && npx tap dist/test/analyzer-verify.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { record } from '../recorder/index.js';
import { verifyCommand } from '../bin/verify.js';
import { VerifyError } from '../analyzer/verify.js';
import { rewriteInstructions } from './util/runs-edit.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-verify-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function collect(): { write(s: string): boolean; text: () => string } {
  const chunks: string[] = [];
  return { write: (s: string) => (chunks.push(s), true), text: () => chunks.join('') };
}

async function verify(file: string, session?: string) {
  const out = collect();
  const result = await verifyCommand(file, { session, out, exitCode: false });
  return { result, text: out.text() };
}

const trace = join(dir, 'trace.db'); // 1 user-nt-readfile, 2 osr-log-user-handle, 3 int2e-readfile
let copies = 0;
/** A writable copy of the trace with `edit` applied. */
function tampered(edit: (db: Database.Database) => void): string {
  const file = join(dir, `tampered-${++copies}.db`);
  copyFileSync(trace, file);
  const db = new Database(file);
  edit(db);
  db.close();
  return file;
}
/** The recording's tables keyed by seq (not the projections' enter_seq, exit_seq, …). */
const eventTables = (db: Database.Database) =>
  (db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all() as { name: string; sql: string }[])
    .filter((t) => /[(,\s]seq INTEGER NOT NULL/.test(t.sql))
    .map((t) => t.name);

t.before(async () => {
  await record({ scenario: 'user-nt-readfile' }, { output: trace });
  await record({ scenario: 'osr-log-user-handle' }, { output: trace });
  await record({ scenario: 'int2e-readfile' }, { output: trace });
});

t.test('recorded sessions re-execute identically', async (t) => {
  const db = new Database(trace, { readonly: true });
  const events = db.prepare('SELECT id, events FROM sessions ORDER BY id').all() as { id: number; events: number }[];
  db.close();
  for (const s of events) {
    const { result, text } = await verify(trace, String(s.id));
    t.ok(result.identical, `session ${s.id} identical`);
    t.equal(result.compared, s.events, 'every event compared');
    t.equal(result.recorded, s.events);
    t.equal(result.divergence, null);
    t.match(text, new RegExp(`^session ${s.id} '[^']+': identical \\(${s.events.toLocaleString('en-US')} events\\)\\n  outcome  exited with \\S+ \\(as recorded\\)\\n$`));
  }
  // By name, and the latest by default.
  t.match((await verify(trace, 'osr-log-user-handle')).text, /^session 2 'osr-log-user-handle': identical/);
  t.match((await verify(trace)).text, /^session 3 'int2e-readfile': identical/);
});

t.test('a changed service_exits status is found at exactly its seq', async (t) => {
  let seq = 0;
  const file = tampered((db) => {
    seq = db.prepare('SELECT seq FROM service_exits WHERE session_id = 2 AND status >= 3221225472 ORDER BY seq LIMIT 1').pluck().get() as number;
    db.prepare('UPDATE service_exits SET status = 0 WHERE session_id = 2 AND seq = ?').run(seq);
  });
  const { result, text } = await verify(file, '2');
  t.notOk(result.identical);
  t.equal(result.compared, seq, 'every event before it is identical');
  t.equal(result.divergence?.seq, seq);
  t.same(result.divergence?.differing, ['status']);
  t.equal(result.divergence?.recorded?.type, 'service-exit');
  t.match(text, new RegExp(`^session 2 'osr-log-user-handle': diverges at seq ${seq} after [\\d,]+ identical events: different service-exit events\\n`));
  t.match(text, new RegExp(`  last identical  seq ${seq - 1}: `));
  t.match(text, /\n {2}status\s+≠ {2}00000000 +c0000005\n/, 'both values side by side, marked');
  t.match(text, /\n {2}service +NtWriteFile +NtWriteFile\n/);
  // The other sessions of the file are untouched.
  t.ok((await verify(file, '1')).result.identical);
});

t.test("a changed instruction's effects are found at exactly its seq", async (t) => {
  let seq = 0;
  const file = tampered((db) => {
    rewriteInstructions(db, 1, (list) => {
      const i = list.find((x) => x.effects !== null && x.seq > 100)!;
      seq = i.seq;
      i.effects = Uint8Array.of(0x40, 5); // eax = 5
      return list;
    });
  });
  const { result, text } = await verify(file, '1');
  t.equal(result.divergence?.seq, seq);
  t.equal(result.compared, seq);
  t.same(result.divergence?.differing, ['effects']);
  t.match(text, new RegExp(`diverges at seq ${seq} after .*: different instruction events`));
  t.match(text, /\n {2}effects ≠ {2}eax=00000005 /);
  t.match(text, /\n {2}asm +(\S.*\S) {2,}\1\n/, 'the same instruction on both sides');
});

t.test('a changed instruction address or a missing row is a divergence too', async (t) => {
  const gap = tampered((db) => rewriteInstructions(db, 3, (list) => list.filter((x) => x.seq !== 40)));
  const g = await verify(gap, '3');
  t.equal(g.result.divergence?.seq, 40);
  t.match(g.text, /the recording has no event with seq 40 \(its next is seq 41\)/);
  t.match(g.text, /\n {2}seq +≠ {2}\(none\) +40\n/);
  const moved = tampered((db) => {
    rewriteInstructions(db, 3, (list) => {
      const i = list.find((x) => x.seq === 10)!;
      i.code = db.prepare('SELECT min(id) FROM code WHERE session_id = 3 AND id <> ?').pluck().get(i.code) as number;
      return list;
    });
  });
  const m = await verify(moved, '3');
  t.equal(m.result.divergence?.seq, 10);
  t.ok(m.result.divergence?.differing.includes('eip'));
  const retyped = tampered((db) => {
    const seq = db.prepare('SELECT seq FROM ring_transitions WHERE session_id = 3 ORDER BY seq LIMIT 1').pluck().get();
    db.prepare("UPDATE ring_transitions SET mechanism = 'sysenter' WHERE session_id = 3 AND seq = ?").run(seq);
  });
  const r = await verify(retyped, '3');
  t.same(r.result.divergence?.differing, ['mechanism'], 'int2e-readfile enters by int, not sysenter');
});

t.test('an incomplete session is compared over its recorded prefix', async (t) => {
  const cut = (status: string) =>
    tampered((db) => {
      for (const table of eventTables(db)) db.prepare(`DELETE FROM ${table} WHERE session_id = 2 AND seq >= 700`).run();
      rewriteInstructions(db, 2, (list) => list.filter((x) => x.seq < 700));
      db.prepare('UPDATE sessions SET status = ?, events = 700, outcome = NULL, outcome_detail = NULL, finished_at = NULL WHERE id = 2').run(status);
    });
  const incomplete = await verify(cut('incomplete'), '2');
  t.ok(incomplete.result.identical);
  t.equal(incomplete.result.compared, 700);
  t.match(incomplete.text, /^session 2 'osr-log-user-handle': identical \(700 events\)\n/);
  t.match(incomplete.text, /note +session 2 is incomplete: compared the 700 events it recorded \(the re-run goes on past them\)/);
  // The same rows marked complete: the re-run does not stop where the recording did.
  const complete = await verify(cut('complete'), '2');
  t.notOk(complete.result.identical);
  t.equal(complete.result.divergence?.seq, 700);
  t.match(complete.text, /diverges at seq 700 after 700 identical events: the re-run goes on past the recording's last event \(seq 699\)/);
  // A recording that goes on after the re-run stopped.
  const longer = tampered((db) => {
    const last = db.prepare('SELECT events FROM sessions WHERE id = 3').pluck().get() as number;
    rewriteInstructions(db, 3, (list) => {
      const fifth = list.find((x) => x.seq === 5)!;
      return [...list, { ...fifth, seq: last, icount: list.length }];
    });
  });
  const l = await verify(longer, '3');
  t.notOk(l.result.identical);
  t.match(l.text, /the re-run stopped here \(exited with STATUS_SUCCESS\); the recording goes on/);
});

t.test('the exit status is 1 on a divergence; user errors are one line', async (t) => {
  const file = tampered((db) => db.prepare("UPDATE service_exits SET status_name = 'X' WHERE session_id = 1").run());
  const saved = process.exitCode;
  try {
    await verifyCommand(file, { session: '1', out: collect() });
    t.equal(process.exitCode, 1);
  } finally {
    process.exitCode = saved;
  }
  await t.rejects(verifyCommand(trace, { session: '9', out: collect() }), new VerifyError("no session '9' in this trace (sessions: 1 user-nt-readfile, 2 osr-log-user-handle, 3 int2e-readfile)"));
  const missing = join(dir, 'missing.db');
  await t.rejects(verifyCommand(missing, { out: collect() }), { message: `${missing} does not exist; record one with 'ntflow record <scenario> -o ${missing}'` });
  const broken = tampered((db) => db.prepare("UPDATE sessions SET program_source = 'mov eax,' WHERE id = 1").run());
  await t.rejects(verifyCommand(broken, { session: '1', out: collect() }), /^session 1's program does not build with this ntflow, so it cannot be re-executed: /);
  const badOptions = tampered((db) => db.prepare("UPDATE sessions SET options = '{' WHERE id = 1").run());
  await t.rejects(verifyCommand(badOptions, { session: '1', out: collect() }), /session 1's options is not valid JSON/);
});
