// Round trip: what record() writes is what the machine said. Every built-in scenario is recorded
// into one trace file (sessions 1, 2, …) and compared, row by row, with a second, independent run
// of the same scenario through Guest (determinism makes the two streams identical): the events
// view (gapless seq, type, icount, cpl, eip, thread), the instructions view (eip, cpl, bytes), and
// every contract column of ring_transitions, msr_reads, ssdt_lookups, apc_checks, service_enters
// and service_exits; the sessions row's counters, status and outcome; and that appending sessions
// never touches the earlier ones. Reads only the documented contract (tables, views, columns).
//   npx tsc -p tsconfig.json && npx tap dist/test/recorder-roundtrip.test.js
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Guest, type GuestOutcome, type TraceEvent } from '../core/index.js';
import { SCENARIOS, findScenario, scenarioSource } from '../core/guest/scenarios.js';
import { EVENT_TABLES, record, type SessionSummary } from '../recorder/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-roundtrip-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

type Ev<T extends TraceEvent['type']> = Extract<TraceEvent, { type: T }>;

/** The independent run: boot the scenario, collect its events, run to the end. */
function runGuest(name: string): { events: TraceEvent[]; outcome: GuestOutcome } {
  const s = findScenario(name)!;
  const g = Guest.boot({ cpu: s.cpu, program: scenarioSource(s.program), drivers: s.drivers.map(scenarioSource) });
  const events: TraceEvent[] = [];
  const sub = g.events$.subscribe((e) => events.push(e));
  try {
    return { outcome: g.run(), events };
  } finally {
    sub.unsubscribe();
  }
}

interface SessionRow {
  id: number;
  name: string;
  program: string;
  status: string;
  outcome: string | null;
  outcome_code: number | null;
  instructions: number;
  events: number;
  started_at: string;
  finished_at: string | null;
  options: string;
}

const open = (file: string) => {
  const db = new Database(file, { readonly: true });
  return db;
};

/** Everything stored for one session, digested: the sessions row and every event column. */
function sessionDigest(db: Database.Database, id: number): string {
  const h = createHash('sha256');
  h.update(JSON.stringify(db.prepare('SELECT * FROM sessions WHERE id = ?').get(id)));
  for (const r of db.prepare('SELECT * FROM events WHERE session_id = ? ORDER BY seq').iterate(id)) h.update(JSON.stringify(r));
  for (const r of db.prepare('SELECT seq, eip, cpl, hex(bytes) AS b, asm FROM instructions WHERE session_id = ? ORDER BY seq').iterate(id)) h.update(JSON.stringify(r));
  for (const x of EVENT_TABLES) {
    const stmt = db.prepare(`SELECT * FROM ${x.name} WHERE session_id = ? ORDER BY seq`).safeIntegers(true);
    for (const r of stmt.iterate(id)) h.update(JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? v.toString() : v)));
  }
  return h.digest('hex');
}

/** Compare one session's rows with the events of the independent run. */
function compareSession(t: Test, db: Database.Database, id: number, events: TraceEvent[]): void {
  const of = <T extends TraceEvent['type']>(type: T) => events.filter((e): e is Ev<T> => e.type === type);
  const instrEvents = of('instruction');

  // events: gapless seq 0 … n-1, one row per event, with the right type and common columns.
  const rows = db.prepare('SELECT seq, type, icount, cpl, eip, thread_id FROM events WHERE session_id = ? ORDER BY seq').all(id) as {
    seq: number;
    type: string;
    icount: number;
    cpl: number;
    eip: number;
    thread_id: number;
  }[];
  t.equal(rows.length, events.length, 'one events row per event');
  let gapless = true;
  let mismatch: string | null = null;
  rows.forEach((r, i) => {
    if (r.seq !== i) gapless = false;
    const e = events[i];
    if (!mismatch && e && (r.type !== e.type || r.icount !== e.icount || r.cpl !== e.cpl || r.eip !== e.eip >>> 0 || r.thread_id !== e.thread)) {
      mismatch = `seq ${i}: row ${JSON.stringify(r)} vs event ${JSON.stringify({ type: e.type, icount: e.icount, cpl: e.cpl, eip: e.eip, thread: e.thread })}`;
    }
  });
  t.ok(gapless, 'seq runs 0 … events-1 without a gap');
  t.equal(mismatch, null, 'type, icount, cpl, eip and thread_id equal the events');

  // Per type counts.
  const counts = Object.fromEntries((db.prepare('SELECT type, count(*) AS n FROM events WHERE session_id = ? GROUP BY type').all(id) as { type: string; n: number }[]).map((r) => [r.type, r.n]));
  const want: Record<string, number> = {};
  for (const e of events) want[e.type] = (want[e.type] ?? 0) + 1;
  t.same(counts, want, 'events per type');
  for (const x of EVENT_TABLES) {
    const n = (db.prepare(`SELECT count(*) AS n FROM ${x.name} WHERE session_id = ?`).get(id) as { n: number }).n;
    t.equal(n, want[x.event] ?? 0, `${x.name}: one row per '${x.event}' event`);
  }

  // instructions: one row per instruction event, eip, cpl and bytes equal.
  const instr = db.prepare('SELECT seq, eip, cpl, bytes, asm FROM instructions WHERE session_id = ? ORDER BY seq').all(id) as { seq: number; eip: number; cpl: number; bytes: Buffer; asm: string }[];
  t.equal(instr.length, instrEvents.length, 'one instructions row per retired instruction');
  const badInstr = instr.findIndex((r, i) => {
    const e = instrEvents[i];
    return !e || r.seq !== e.seq || r.eip !== e.eip >>> 0 || r.cpl !== e.cpl || !Buffer.from(e.bytes).equals(r.bytes) || !r.asm;
  });
  t.equal(badInstr, -1, 'instructions rows: seq, eip, cpl, bytes equal the events, asm present');

  // The typed tables, column by column.
  const table = (name: string) => db.prepare(`SELECT * FROM ${name} WHERE session_id = ? ORDER BY seq`).safeIntegers(true).all(id) as Record<string, bigint | string | null | Buffer>[];
  const num = (v: unknown) => (typeof v === 'bigint' ? Number(v) : v);
  const u32 = (v: unknown) => (v === null || v === undefined ? null : Number(v) >>> 0);
  const common = (r: Record<string, unknown>, e: TraceEvent) => ({ seq: num(r.seq), icount: num(r.icount), cpl: num(r.cpl), eip: u32(r.eip), thread_id: num(r.thread_id) });
  const commonOf = (e: TraceEvent) => ({ seq: e.seq, icount: e.icount, cpl: e.cpl, eip: e.eip >>> 0, thread_id: e.thread });

  const check = <T extends TraceEvent['type']>(name: string, type: T, row: (r: Record<string, unknown>) => object, ev: (e: Ev<T>) => object) => {
    const rs = table(name);
    const es = of(type);
    t.equal(rs.length, es.length, `${name}: ${es.length} rows`);
    const got = rs.map((r) => ({ ...common(r, es[0] as TraceEvent), ...row(r) }));
    const exp = es.map((e) => ({ ...commonOf(e), ...ev(e) }));
    t.same(got, exp, `${name}: every column equals the event's field`);
  };

  check(
    'ring_transitions',
    'ring-transition',
    (r) => ({ from_cpl: num(r.from_cpl), to_cpl: num(r.to_cpl), mechanism: r.mechanism, from_eip: u32(r.from_eip), to_eip: u32(r.to_eip), from_esp: u32(r.from_esp), to_esp: u32(r.to_esp), vector: num(r.vector) }),
    (e) => ({ from_cpl: e.fromCpl, to_cpl: e.toCpl, mechanism: e.mechanism, from_eip: e.fromEip >>> 0, to_eip: e.toEip >>> 0, from_esp: e.fromEsp >>> 0, to_esp: e.toEsp >>> 0, vector: e.vector }),
  );
  check(
    'msr_reads',
    'msr-read',
    (r) => ({ msr: num(r.msr), value: BigInt.asUintN(64, r.value as bigint), source: r.source }),
    (e) => ({ msr: e.msr, value: e.value, source: e.source }),
  );
  check(
    'ssdt_lookups',
    'ssdt-lookup',
    (r) => ({
      service_number: num(r.service_number),
      table_index: num(r.table_index),
      service_index: num(r.service_index),
      table_base: u32(r.table_base),
      target: u32(r.target),
      target_symbol: r.target_symbol,
      arg_bytes: num(r.arg_bytes),
      in_range: num(r.in_range),
    }),
    (e) => ({
      service_number: e.serviceNumber,
      table_index: e.tableIndex,
      service_index: e.serviceIndex,
      table_base: e.tableBase >>> 0,
      target: e.target === null ? null : e.target >>> 0,
      target_symbol: e.targetSymbol,
      arg_bytes: e.argBytes,
      in_range: e.inRange ? 1 : 0,
    }),
  );
  check(
    'apc_checks',
    'apc-check',
    (r) => ({ apc_thread: num(r.thread_id), returning_to_cpl: num(r.returning_to_cpl), user_apc_pending: num(r.user_apc_pending), kernel_apc_pending: num(r.kernel_apc_pending), delivered: num(r.delivered) }),
    (e) => ({ apc_thread: e.threadId, returning_to_cpl: e.returningToCpl, user_apc_pending: e.userApcPending ? 1 : 0, kernel_apc_pending: e.kernelApcPending ? 1 : 0, delivered: e.delivered ? 1 : 0 }),
  );
  check(
    'service_enters',
    'service-enter',
    (r) => ({ service: r.service, service_number: num(r.service_number), previous_mode: r.previous_mode, caller: u32(r.caller), args: JSON.parse(r.args as string) }),
    (e) => ({ service: e.service, service_number: e.serviceNumber, previous_mode: e.previousMode, caller: e.caller >>> 0, args: e.args.map((a) => a >>> 0) }),
  );
  check(
    'service_exits',
    'service-exit',
    (r) => ({ service: r.service, service_number: num(r.service_number), status: u32(r.status), status_name: r.status_name }),
    (e) => ({ service: e.service, service_number: e.serviceNumber, status: e.status >>> 0, status_name: e.statusName }),
  );
}

// ---- every scenario, into one file --------------------------------------------------------------

const shared = join(dir, 'all.db');
const recorded: { name: string; summary: SessionSummary }[] = [];
let firstDigest = '';
let firstRow: SessionRow | undefined;

t.test('record every built-in scenario into one file: sessions 1, 2, …, each complete', async (t) => {
  for (const [i, s] of SCENARIOS.entries()) {
    const summary = await record({ scenario: s.name }, { output: shared });
    recorded.push({ name: s.name, summary });
    t.equal(summary.sessionId, i + 1, `${s.name} is session ${i + 1}`);
    t.equal(summary.status, 'complete', `${s.name} recorded complete (${summary.outcome?.description})`);
    if (i === 0) {
      const db = open(shared);
      firstDigest = sessionDigest(db, 1);
      firstRow = db.prepare('SELECT * FROM sessions WHERE id = 1').get() as SessionRow;
      db.close();
    }
  }
});

for (const s of SCENARIOS) {
  t.test(`round trip: ${s.name}`, async (t) => {
    const rec = recorded.find((r) => r.name === s.name);
    if (!rec) return t.fail('not recorded');
    const { events, outcome } = runGuest(s.name);
    const db = open(shared);
    t.teardown(() => db.close());
    const id = rec.summary.sessionId;
    const row = db.prepare('SELECT * FROM sessions WHERE id = ?').get(id) as SessionRow;
    t.equal(row.name, s.name, 'sessions.name');
    t.equal(row.program, s.name, 'sessions.program is the scenario');
    t.equal(row.status, 'complete', "status 'complete'");
    t.equal(row.outcome, outcome.kind, `outcome '${outcome.kind}' as the independent run`);
    t.same(rec.summary.outcome, outcome, "the summary's outcome");
    t.ok(row.finished_at && row.finished_at >= row.started_at, 'finished_at set, not before started_at');
    const options = JSON.parse(row.options);
    t.equal(options.cpu, s.cpu, 'options: the CPU model');
    t.equal(options.scenario, s.name, 'options: the scenario');
    const nInstr = events.filter((e) => e.type === 'instruction').length;
    const nRows = (db.prepare('SELECT count(*) AS n FROM instructions WHERE session_id = ?').get(id) as { n: number }).n;
    const nEvents = (db.prepare('SELECT count(*) AS n FROM events WHERE session_id = ?').get(id) as { n: number }).n;
    t.equal(row.instructions, nRows, 'sessions.instructions = instruction rows');
    t.equal(row.instructions, nInstr, 'sessions.instructions = instructions retired');
    t.equal(rec.summary.instructions, nInstr, "= the summary's");
    t.equal(row.events, nEvents, 'sessions.events = count(*) of events');
    t.equal(rec.summary.events, events.length, "the summary's events");
    // The summary's syscalls and failures are the syscalls projection's rows: checked against it in
    // test/analyzer-projections.test.ts ('the built-in scenarios through SQL').
    compareSession(t, db, id, events);
  });
}

t.test('outcomes: user-nt-readfile exited 0; zw-protect-virtual-memory died of 0xC0000005', async (t) => {
  const db = open(shared);
  t.teardown(() => db.close());
  const idOf = (n: string) => recorded.find((r) => r.name === n)!.summary.sessionId;
  const a = db.prepare('SELECT status, outcome, outcome_code FROM sessions WHERE id = ?').get(idOf('user-nt-readfile'));
  t.same(a, { status: 'complete', outcome: 'exited', outcome_code: 0 });
  const b = db.prepare('SELECT status, outcome, outcome_code FROM sessions WHERE id = ?').get(idOf('zw-protect-virtual-memory'));
  t.same(b, { status: 'complete', outcome: 'exception', outcome_code: 0xc0000005 });
});

t.test('appending sessions leaves the first one untouched', async (t) => {
  const db = open(shared);
  t.teardown(() => db.close());
  t.ok(firstDigest, 'session 1 was digested right after it was recorded');
  t.equal(sessionDigest(db, 1), firstDigest, 'session 1: the same row and the same events after 12 more sessions');
  t.same(db.prepare('SELECT * FROM sessions WHERE id = 1').get(), firstRow);
  const ids = (db.prepare('SELECT id FROM sessions ORDER BY id').all() as { id: number }[]).map((r) => r.id);
  t.same(ids, SCENARIOS.map((_, i) => i + 1), 'ids 1 … n');
  t.equal(db.pragma('integrity_check', { simple: true }), 'ok');
});

// ---- a program file, the instruction limit, an abort ---------------------------------------------

const LOOP = `; ntflow: user
start:
    mov ecx, 1000000
.again:
    dec ecx
    jnz .again
    xor eax, eax
    ret
`;

t.test('a program that hits the instruction limit is a complete session', async (t) => {
  const file = join(dir, 'limit.db');
  const s = await record({ program: { fileName: 'loop.asm', source: LOOP } }, { output: file, maxInstructions: 100_000, name: 'limited' });
  t.equal(s.status, 'complete');
  t.equal(s.outcome?.kind, 'instruction-limit');
  t.equal(s.instructions, 100_000);
  const db = open(file);
  t.teardown(() => db.close());
  const row = db.prepare('SELECT name, program, status, outcome, instructions, events FROM sessions').get();
  t.same(row, { name: 'limited', program: 'loop.asm', status: 'complete', outcome: 'instruction-limit', instructions: 100_000, events: s.events });
  t.equal((db.prepare('SELECT count(*) AS n FROM instructions').get() as { n: number }).n, 100_000, '100 000 instruction rows');
  const seq = db.prepare('SELECT min(seq) AS lo, max(seq) AS hi, count(*) AS n FROM events WHERE session_id = 1').get();
  t.same(seq, { lo: 0, hi: s.events - 1, n: s.events }, 'gapless seq');
  const stop = db.prepare("SELECT type FROM events WHERE seq = ?").get(s.events - 1) as { type: string };
  t.equal(stop.type, 'machine-stop', 'the last event is the machine stop');
});

t.test('an aborted recording stops after the current slice and stays incomplete', async (t) => {
  const file = join(dir, 'abort.db');
  const controller = new AbortController();
  let calls = 0;
  const s = await record(
    { program: { fileName: 'loop.asm', source: LOOP } },
    {
      output: file,
      maxInstructions: 50_000_000,
      signal: controller.signal,
      onProgress: (p) => {
        calls++;
        if (p.instructions >= 200_000) controller.abort();
      },
    },
  );
  t.ok(calls >= 1, 'progress was reported');
  t.equal(s.status, 'incomplete');
  t.equal(s.outcome, null);
  t.ok(s.instructions >= 200_000 && s.instructions < 2_000_000, `stopped soon after the abort (${s.instructions})`);
  const db = open(file);
  t.teardown(() => db.close());
  const row = db.prepare('SELECT status, outcome, instructions, events, finished_at FROM sessions').get() as Record<string, unknown>;
  t.same(row, { status: 'incomplete', outcome: null, instructions: s.instructions, events: s.events, finished_at: null });
  const seq = db.prepare('SELECT min(seq) AS lo, max(seq) AS hi, count(*) AS n FROM events').get();
  t.same(seq, { lo: 0, hi: s.events - 1, n: s.events }, 'every event up to the abort, gapless');
  t.equal(db.pragma('integrity_check', { simple: true }), 'ok');
});
