// The failure-cause programs (test/programs/findings/, table in cases.ts): each one is recorded
// with the real CLI and its trace must show exactly the failure the table describes — the one
// failing system call (service, NTSTATUS, entry, PreviousMode, process), the one decisive event
// inside it, the earlier context a rule needs, and no other failing call than those listed.
// Nothing here depends on timing: the guest is deterministic and every check reads the trace
// (`ntflow record`, then `ntflow replay` to put the projections in the file).
//   npx tsc -p tsconfig.json && npx tap dist/test/failure-programs.test.js
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { FAILURE_CASES, type FailureCase, type TraceRow } from './programs/findings/cases.js';
import { ntflow } from './util/cli.js';
import { repoPath } from './util/paths.js';

const FINDINGS = repoPath('test', 'programs', 'findings');
const NOT_SUCCESS = 0x80000000;

type Row = Record<string, unknown>;

interface Syscall {
  id: number;
  parent_id: number | null;
  enter_seq: number;
  exit_seq: number | null;
  thread_id: number;
  process: string;
  service_number: number;
  name: string | null;
  entry: string;
  previous_mode: string;
  status: number | null;
}

const hex = (v: number) => '0x' + (v >>> 0).toString(16).toUpperCase();

/** The rows of a trace table that fail, by that table's meaning of failing. */
const FAILING: Record<TraceRow['table'], string> = {
  probes: 'status <> 0',
  handle_lookups: 'status <> 0',
  exception_dispatches: '1',
  ssdt_lookups: 'in_range = 0',
  syscalls: `status >= ${NOT_SUCCESS}`,
};

const matches = (row: Row, fields: TraceRow['fields']) => Object.entries(fields).every(([k, v]) => row[k] === v);

async function record(t: Test, c: FailureCase, file: string): Promise<void> {
  const args = ['record', join(FINDINGS, c.program), ...c.drivers.flatMap((d) => ['--driver', join(FINDINGS, d)]), '--cpu', c.cpu, '-o', file];
  const r = await ntflow(args);
  t.equal(r.code, 0, `ntflow ${args.join(' ')}: ${r.stderr}`);
  // The projections (syscalls, …) go into the file with `ntflow replay`.
  const p = await ntflow(['replay', file]);
  t.equal(p.code, 0, `ntflow replay: ${p.stderr}`);
}

for (const c of FAILURE_CASES) {
  t.test(`${c.cause}: ${c.program}${c.drivers.length ? ' + ' + c.drivers.join(', ') : ''} (${c.cpu})`, async (t) => {
    const dir = t.testdir();
    const file = join(dir, 'trace.db');
    await record(t, c, file);
    const db = new Database(file, { readonly: true, fileMustExist: true });
    t.teardown(() => db.close());
    const session = db.prepare('SELECT id, status, outcome, outcome_code FROM sessions ORDER BY id DESC LIMIT 1').get() as Row;
    t.same(session, { id: session.id, status: 'complete', outcome: 'exited', outcome_code: c.status }, 'the program exits with the failing status');
    const sid = session.id as number;

    const syscalls = db.prepare('SELECT * FROM syscalls WHERE session_id = ? ORDER BY enter_seq, id').all(sid) as Syscall[];
    const failing = syscalls.filter((s) => s.status !== null && s.status >= NOT_SUCCESS);
    const main = failing.filter((s) => s.name === c.service && s.status === c.status && s.entry === c.entry && s.previous_mode === c.previousMode && s.process === c.process);
    t.equal(main.length, 1, `exactly one ${c.service ?? '(rejected number)'} → ${hex(c.status)} (${c.entry}, ${c.previousMode}, ${c.process})`);
    const call = main[0];
    if (!call) return;
    t.not(call.exit_seq, null, 'the failing call returned');

    // Every other failing call is listed, with its relation to the case's call.
    const others = failing.filter((s) => s !== call);
    t.same(
      others.map((s) => ({ service: s.name, status: s.status, entry: s.entry, previousMode: s.previous_mode, childOfFailing: s.parent_id === call.id })),
      c.alsoFailing.map((o) => ({ service: o.service, status: o.status, entry: o.entry, previousMode: o.previousMode, childOfFailing: o.childOfFailing })),
      'the other failing calls, exactly',
    );
    t.ok(syscalls.every((s) => s.status !== null || s.name === 'NtTerminateProcess'), 'every call but the exit returned');

    // The decisive event: inside the failing call, on its thread, outside its child calls.
    const children = syscalls.filter((s) => s.parent_id === call.id);
    const inChild = (seq: number) => children.some((ch) => seq >= ch.enter_seq && seq <= (ch.exit_seq ?? Infinity));
    const e = c.evidence;
    let candidates: Row[];
    if (e.table === 'syscalls') {
      candidates = children.filter((s) => s.status !== null && s.status >= NOT_SUCCESS) as unknown as Row[];
    } else {
      candidates = (db.prepare(`SELECT * FROM ${e.table} WHERE session_id = ? AND thread_id = ? AND seq BETWEEN ? AND ? AND ${FAILING[e.table]} ORDER BY seq`).all(sid, call.thread_id, call.enter_seq, call.exit_seq) as Row[]).filter(
        (r) => !inChild(r.seq as number),
      );
    }
    t.equal(candidates.length, 1, `one failing ${e.table} row in the call`);
    t.ok(candidates[0] && matches(candidates[0], e.fields), `${e.table} ${JSON.stringify(e.fields)}`, { found: candidates[0] });

    // No other failure inside the call (outside its children): the decisive event is the only one.
    for (const table of ['probes', 'handle_lookups', 'exception_dispatches', 'ssdt_lookups'] as const) {
      if (table === e.table) continue;
      const rows = (db.prepare(`SELECT seq FROM ${table} WHERE session_id = ? AND thread_id = ? AND seq BETWEEN ? AND ? AND ${FAILING[table]}`).all(sid, call.thread_id, call.enter_seq, call.exit_seq) as Row[]).filter(
        (r) => !inChild(r.seq as number),
      );
      t.equal(rows.length, 0, `no failing ${table} row in the call besides the evidence`);
    }

    // The earlier rows a rule may need.
    for (const ctx of c.context) {
      let rows: Row[];
      if (ctx.table === 'syscalls') {
        rows = syscalls.filter((s) => s.enter_seq < call.enter_seq) as unknown as Row[];
      } else {
        rows = db.prepare(`SELECT * FROM ${ctx.table} WHERE session_id = ? AND seq < ?`).all(sid, call.enter_seq) as Row[];
        if (ctx.inCall !== undefined) {
          const within = syscalls.filter((s) => s.name === ctx.inCall);
          rows = rows.filter((r) => within.some((s) => s.thread_id === r.thread_id && (r.seq as number) >= s.enter_seq && (r.seq as number) <= (s.exit_seq ?? Infinity)));
        }
      }
      t.ok(rows.some((r) => matches(r, ctx.fields)), `before the call: ${ctx.table}${ctx.inCall ? ` in ${ctx.inCall}` : ''} ${JSON.stringify(ctx.fields)}`);
    }
  });
}
