// The timeline model every export format shares: its one-pass icount agrees with the trace's own
// `instructions` view (the definition) at every frame's entry and exit, instants carry their
// table's icount, slices nest per thread and lane, and a --syscall window keeps what started in it.
import t from 'tap';
import { chooseSession, openForQuery } from '../analyzer/index.js';
import { InstructionRuns } from '../recorder/index.js';
import { readTimeline, type TimelineEvent } from '../export/index.js';
import { recordExportTrace } from './util/export.js';

const dir = t.testdir();
let trace = '';
t.before(async () => {
  trace = await recordExportTrace(dir);
});

t.test("icount in one pass = the instructions view's, for every frame and instant", async (t) => {
  const db = openForQuery(trace);
  t.teardown(() => db.close());
  for (const name of ['osr-log-user-handle', 'user-apc', 'kernel-zw-readfile']) {
    const session = chooseSession(db, name)!;
    const runs = new InstructionRuns(db, session);
    const markIcount = db.prepare('SELECT icount FROM event_marks WHERE session_id = :s AND seq = :q').pluck();
    // icount of an event: its mark's, or an instruction's from its run.
    const icountAt = {
      get: ({ s, q }: { s: number; q: number }) => {
        const m = markIcount.get({ s, q }) as number | undefined;
        if (m !== undefined) return m;
        const r = runs.runAt(q);
        return r && q < r.seq + r.count ? r.icount + (q - r.seq) : undefined;
      },
    };
    const isInstruction = { get: (_s: number, seq: number) => (runs.at(seq) ? 1 : undefined) };
    const frames = new Map((db.prepare('SELECT id, enter_seq, exit_seq FROM calls WHERE session_id = ?').all(session) as { id: number; enter_seq: number; exit_seq: number | null }[]).map((f) => [f.id, f]));
    const total = db.prepare('SELECT instructions FROM sessions WHERE id = ?').pluck().get(session) as number;
    const events: TimelineEvent[] = [...readTimeline(db, session).events()];
    const wrong: string[] = [];
    let last = 0;
    for (const e of events) {
      if (e.ts < last) wrong.push(`ts goes back at ${e.ts}`);
      last = e.ts;
      if (e.type === 'instant' || e.slice.lane !== 'calls') continue;
      const f = frames.get(e.slice.id)!;
      if (e.type === 'begin' && e.ts !== icountAt.get({ s: session, q: f.enter_seq })) wrong.push(`frame ${f.id} begins at ${e.ts}`);
      if (e.type === 'end') {
        const expected = f.exit_seq === null ? total : (icountAt.get({ s: session, q: f.exit_seq }) as number) + (isInstruction.get(session, f.exit_seq) ? 1 : 0);
        if (e.ts !== expected) wrong.push(`frame ${f.id} ends at ${e.ts}, not ${expected}`);
      }
    }
    t.same(wrong, [], `${name}: frame begins and ends at the view's icount (ends: after the leaving instruction)`);
    t.equal(events.filter((e) => e.type === 'begin' && e.slice.lane === 'calls').length, frames.size, `${name}: every frame`);
    const instantTs = events.flatMap((e) => (e.type === 'instant' && typeof e.args.seq === 'number' && !('syscall_id' in e.args) ? [[e.args.seq, e.ts]] : []));
    const tableTs = db.prepare('SELECT seq, icount FROM msr_reads WHERE session_id = ? UNION ALL SELECT seq, icount FROM ssdt_lookups WHERE session_id = ? UNION ALL SELECT seq, icount FROM apc_checks WHERE session_id = ? ORDER BY seq').raw().all(session, session, session);
    t.same(instantTs, tableTs, `${name}: each instant at its row's icount`);
  }
});

t.test('slices nest per thread and lane; frames still open close at the end', async (t) => {
  const db = openForQuery(trace);
  t.teardown(() => db.close());
  const session = chooseSession(db, 'osr-log-user-handle')!;
  const tl = readTimeline(db, session);
  const stacks = new Map<string, number[]>();
  const wrong: string[] = [];
  let ends = 0;
  for (const e of tl.events()) {
    if (e.type === 'instant') continue;
    const key = `${e.slice.lane}:${e.slice.tid}`;
    const st = stacks.get(key) ?? [];
    stacks.set(key, st);
    if (e.type === 'begin') st.push(e.slice.id);
    else if (st.pop() !== e.slice.id) wrong.push(`${key}: ${e.slice.name} ends out of order`);
    if (e.type === 'end' && e.ts === tl.end) ends++;
  }
  t.same(wrong, [], 'every end closes the innermost open slice');
  t.ok([...stacks.values()].every((s) => s.length === 0), 'nothing left open');
  const openAtEnd = db.prepare('SELECT count(*) FROM calls WHERE session_id = ? AND exit_seq IS NULL').pluck().get(session) as number;
  t.ok(openAtEnd > 0 && ends >= openAtEnd, `the ${openAtEnd} frames never left (NtTerminateProcess) end at the session's end`);
  t.same(tl.processes.map((p) => p.name), ['System', 'osr-log-user.exe']);
  t.same(tl.threads.map((th) => [th.tid, th.pid]), [[8, 8], [1996, 1996]], "a process's pid is its lowest thread id");
});

t.test('--syscall window: what started inside it, clipped at its end', async (t) => {
  const db = openForQuery(trace);
  t.teardown(() => db.close());
  const session = chooseSession(db, 'osr-log-user-handle')!;
  // NtDelayExecution: the System thread's work item runs inside it.
  const id = db.prepare("SELECT id FROM syscalls WHERE session_id = ? AND name = 'NtDelayExecution'").pluck().get(session) as number;
  const tl = readTimeline(db, session, id);
  const events = [...tl.events()];
  t.ok(events.every((e) => e.ts >= tl.start && e.ts <= tl.end), 'every event inside [start, end]');
  const frames = events.filter((e) => e.type === 'begin' && e.slice.lane === 'calls').map((e) => (e.type === 'begin' ? `${e.slice.tid} ${e.slice.name}` : ''));
  t.ok(frames.includes('8 osr-log-user-handle!WorkItemRoutine'), "the work item on the System thread, run during the call, is in");
  t.equal(frames[0], '1996 nt!KiFastCallEntry', 'the first frame is the call itself');
  t.same(tl.threads.map((th) => th.tid), [8, 1996]);
});
