// The Chrome JSON export on recorded scenarios: valid JSON, B/E balanced and nested per thread
// (a child inside its parent), timestamps non-decreasing per thread, every flow start with its
// end, every pid and tid named by an M event, every system call and instant of the trace present.
import t, { type Test } from 'tap';
import { syscallLaneTid } from '../export/index.js';
import { exportToBuffer, queryTrace, recordExportTrace } from './util/export.js';

const dir = t.testdir();
let trace = '';
t.before(async () => {
  trace = await recordExportTrace(dir);
});

interface Ev {
  ph: string;
  name?: string;
  cat?: string;
  pid: number;
  tid: number;
  ts: number;
  id?: number;
  bp?: string;
  s?: string;
  args?: Record<string, unknown>;
}

function parse(bytes: Buffer): { traceEvents: Ev[]; displayTimeUnit?: string; otherData?: Record<string, unknown> } {
  return JSON.parse(bytes.toString('utf8'));
}

function checkEvents(t: Test, events: Ev[]): void {
  const problems: string[] = [];
  const stacks = new Map<string, { name: string; ts: number }[]>();
  const lastTs = new Map<string, number>();
  const named = new Set<string>();
  const namedPids = new Set<number>();
  for (const e of events) {
    if (e.ph === 'M') {
      if (e.name === 'process_name') namedPids.add(e.pid);
      if (e.name === 'thread_name') named.add(`${e.pid}/${e.tid}`);
    }
  }
  const flows = new Map<number, string[]>();
  events.forEach((e, i) => {
    if (e.ph === 'M') return;
    const key = `${e.pid}/${e.tid}`;
    if (!named.has(key)) problems.push(`event ${i}: thread ${key} has no thread_name`);
    if (!namedPids.has(e.pid)) problems.push(`event ${i}: pid ${e.pid} has no process_name`);
    if (typeof e.ts !== 'number') problems.push(`event ${i}: no ts`);
    if ((lastTs.get(key) ?? -1) > e.ts) problems.push(`event ${i}: ts goes back on ${key}`);
    lastTs.set(key, e.ts);
    const st = stacks.get(key) ?? [];
    stacks.set(key, st);
    if (e.ph === 'B') st.push({ name: e.name!, ts: e.ts });
    else if (e.ph === 'E') {
      const top = st.pop();
      if (!top) problems.push(`event ${i}: E on ${key} with nothing open`);
      else if (top.ts > e.ts) problems.push(`event ${i}: ${top.name} ends before it begins`);
    } else if (e.ph === 's' || e.ph === 't' || e.ph === 'f') {
      flows.set(e.id!, [...(flows.get(e.id!) ?? []), e.ph]);
      // A flow event binds to the slice open at its ts on its thread: there must be one.
      if (st.length === 0 && e.ph !== 'f') problems.push(`event ${i}: flow ${e.ph} ${e.id} with no enclosing slice`);
    } else if (e.ph !== 'i') problems.push(`event ${i}: phase ${e.ph}`);
  });
  for (const [key, st] of stacks) if (st.length) problems.push(`${key}: ${st.map((s) => s.name).join(', ')} never ended`);
  for (const [id, phs] of flows) if (phs[0] !== 's' || phs[phs.length - 1] !== 'f' || phs.filter((p) => p === 's').length !== 1 || phs.filter((p) => p === 'f').length !== 1) problems.push(`flow ${id}: ${phs.join(' ')}`);
  t.same(problems, [], 'named threads and processes, B/E nested and balanced per thread, ts non-decreasing, flows s … f');
  t.ok(flows.size > 0, 'there are flows');
}

t.test('osr-log-user-handle: a valid trace with every call, frame and instant', async (t) => {
  const { bytes, stats } = exportToBuffer(trace, 'chrome-json', 'osr-log-user-handle');
  const doc = parse(bytes);
  t.equal(stats.items, doc.traceEvents.length, 'items = events written');
  t.match(String(doc.otherData?.ts_unit), /instructions retired/, 'otherData says ts is instructions');
  checkEvents(t, doc.traceEvents);

  const ev = doc.traceEvents;
  t.same(ev.filter((e) => e.ph === 'M' && e.name === 'process_name').map((e) => (e.args as { name: string }).name).sort(), ['System', 'osr-log-user.exe']);
  const syscalls = queryTrace<{ id: number; name: string; entry: string; status_name: string | null; thread_id: number }>(trace, 'SELECT id, name, entry, status_name, thread_id FROM syscalls WHERE session_id = 1 ORDER BY id');
  const begins = ev.filter((e) => e.ph === 'B' && e.cat?.endsWith(',syscalls'));
  t.same(
    begins.map((e) => [e.args?.syscall_id, e.name, e.args?.status_name, e.tid]),
    syscalls.map((s) => [s.id, `${s.name} (${s.entry})`, s.status_name ?? 'never returned', syscallLaneTid(s.thread_id)]),
    'every system call, in order, with its status, on its thread\'s system-call lane',
  );
  const calls = queryTrace<{ n: number }>(trace, 'SELECT count(*) AS n FROM calls WHERE session_id = 1')[0].n;
  t.equal(ev.filter((e) => e.ph === 'B' && e.cat?.endsWith(',calls')).length, calls, 'one B per call frame');
  const instants = queryTrace<{ n: number }>(trace, 'SELECT (SELECT count(*) FROM msr_reads WHERE session_id = 1) + (SELECT count(*) FROM ssdt_lookups WHERE session_id = 1) + (SELECT count(*) FROM apc_checks WHERE session_id = 1) AS n')[0].n;
  const returns = syscalls.filter((s) => s.status_name !== null).length;
  t.equal(ev.filter((e) => e.ph === 'i').length, instants + returns, 'an instant per MSR read, SSDT lookup and APC check, and per return');
  // The work item's calls run on the System thread, inside the program's NtDelayExecution.
  t.ok(ev.some((e) => e.ph === 'B' && e.tid === 8 && e.name === 'osr-log-user-handle!WorkItemRoutine'), 'the work item on the System thread');
});

t.test('user-apc and kernel-zw-readfile are valid too', async (t) => {
  for (const s of ['user-apc', 'kernel-zw-readfile']) {
    const doc = parse(exportToBuffer(trace, 'chrome-json', s).bytes);
    t.test(s, async (t) => checkEvents(t, doc.traceEvents));
  }
});

t.test('--syscall: only that call', async (t) => {
  const doc = parse(exportToBuffer(trace, 'chrome-json', 'kernel-zw-readfile', 3).bytes);
  checkEvents(t, doc.traceEvents);
  const names = doc.traceEvents.filter((e) => e.ph === 'B' && e.cat?.endsWith(',syscalls')).map((e) => e.name);
  t.same(names, ['NtReadFile (sysenter)', 'NtReadFile (zw-kernel)'], 'the call and the Zw call inside it');
  t.equal(doc.otherData?.syscall_id, 3);
});
