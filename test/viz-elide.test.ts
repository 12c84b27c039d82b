// A large session's sequence diagram (issue I item 3): past a size nobody reads row by row, runs of
// identical system calls are folded into one "×N more … like #ID" row (first and last kept), long
// runs of steps are capped with "… N steps elided", failures and findings always stay, and the
// drawing says so. The pure parts (viz/elide.ts) are checked with exact outputs on hand-made
// inputs; a recorded program (300 reads around one failing NtClose) checks the numbers the drawing
// states against the trace's syscalls table.
//   npx tsc -p tsconfig.json && npx tap dist/test/viz-elide.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scenarioSource } from '../core/index.js';
import { record } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';
import {
  aggregateLabel,
  capSteps,
  elideCalls,
  elisionNotice,
  idRange,
  layoutSequence,
  renderSequenceHtml,
  renderSequenceSvg,
  sequenceInput,
  wrapNotice,
  type ElisionCall,
  type FlowStep,
} from '../viz/index.js';

// ---- pure: calls ------------------------------------------------------------------------------

/** A successful top-level NtReadFile of thread 1996 unless told otherwise. */
function call(id: number, over: Partial<ElisionCall> = {}): ElisionCall {
  return { id, parentId: null, threadId: 1996, name: 'NtReadFile', entry: 'sysenter', previousMode: 'UserMode', status: 'STATUS_SUCCESS', failed: false, events: 176, ...over };
}
const reads = (from: number, to: number, over: Partial<ElisionCall> = {}) => Array.from({ length: to - from + 1 }, (_, k) => call(from + k, over));
const small = { maxCalls: 5 };

t.test('elideCalls: at or below maxCalls nothing is folded', async (t) => {
  const calls = reads(1, 5);
  t.same(elideCalls(calls, new Set(), small), { keep: [1, 2, 3, 4, 5], aggregates: [] });
  t.same(elideCalls(reads(1, 1000)).aggregates, [], 'the default maxCalls is 1,000: a 1,000-call session is drawn whole');
  t.equal(elideCalls(reads(1, 1001)).aggregates.length, 1, '1,001 identical calls are folded');
});

t.test('elideCalls: a run of identical calls keeps its first and last, one aggregate between', async (t) => {
  const calls = [call(1, { name: 'NtCreateFile', events: 135 }), ...reads(2, 9), call(10, { name: 'NtClose', events: 131 })];
  const r = elideCalls(calls, new Set(), small);
  t.same(r.keep, [1, 2, 9, 10]);
  t.same(r.aggregates, [{ like: 2, last: 9, period: 1, block: [2], name: 'NtReadFile', status: 'STATUS_SUCCESS', ids: [3, 4, 5, 6, 7, 8], nested: [], events: [176, 176] }]);
  t.equal(aggregateLabel(r.aggregates[0]), '×6 more NtReadFile calls like #2 → STATUS_SUCCESS (ids 3–8)');
});

t.test('elideCalls: boundary lengths — a run of 3 stays, a run of 4 folds two', async (t) => {
  const three = [call(1, { name: 'NtCreateFile' }), ...reads(2, 4), call(5, { name: 'NtClose' }), call(6, { name: 'NtClose', threadId: 8 })];
  t.same(elideCalls(three, new Set(), small), { keep: [1, 2, 3, 4, 5, 6], aggregates: [] }, 'three identical calls: nothing to fold');
  const four = [call(1, { name: 'NtCreateFile' }), ...reads(2, 5), call(6, { name: 'NtClose' })];
  const r = elideCalls(four, new Set(), small);
  t.same(r.keep, [1, 2, 5, 6]);
  t.same(r.aggregates.map((a) => a.ids), [[3, 4]]);
  t.same(elideCalls(four, new Set(), { ...small, minRun: 5 }).aggregates, [], 'minRun 5: a run of four stays');
});

t.test('elideCalls: different calls are not alike (name, status, PreviousMode, entry, thread)', async (t) => {
  const calls = [
    ...reads(1, 2),
    call(3, { status: 'STATUS_END_OF_FILE', failed: false }),
    call(4, { previousMode: 'KernelMode' }),
    call(5, { entry: 'int2e' }),
    call(6, { threadId: 8 }),
    call(7, { name: 'NtWriteFile' }),
    ...reads(8, 9),
  ];
  t.same(elideCalls(calls, new Set(), small), { keep: [1, 2, 3, 4, 5, 6, 7, 8, 9], aggregates: [] });
  const lengths = [call(1, { name: 'NtCreateFile' }), call(2, { events: 170 }), call(3, { events: 180 }), call(4, { events: 176 }), call(5, { events: 190 }), call(6, { name: 'NtClose' })];
  const r = elideCalls(lengths, new Set(), small);
  t.same(r.aggregates.map((a) => [a.ids, a.events]), [[[3, 4], [176, 180]]], 'a different length is still alike; the aggregate reports the range');
});

t.test('elideCalls: a failed call among identical ones stays and splits the run', async (t) => {
  const calls = [...reads(1, 6), call(7, { status: 'STATUS_INVALID_HANDLE', failed: true }), ...reads(8, 13)];
  const r = elideCalls(calls, new Set(), small);
  t.same(r.keep, [1, 6, 7, 8, 13]);
  t.same(r.aggregates.map((a) => [a.like, a.ids, a.last]), [
    [1, [2, 3, 4, 5], 6],
    [8, [9, 10, 11, 12], 13],
  ]);
  // Identical failures are not folded either: every failed call is drawn.
  const failures = reads(1, 8, { status: 'STATUS_INVALID_HANDLE', failed: true });
  t.same(elideCalls(failures, new Set(), small), { keep: [1, 2, 3, 4, 5, 6, 7, 8], aggregates: [] });
});

t.test('elideCalls: a call with a finding, or holding a failed nested call, stays; nested calls go with their parent', async (t) => {
  const pinned = elideCalls(reads(1, 10), new Set([5]), small);
  t.same(pinned.keep, [1, 4, 5, 6, 10], 'call 5 has a finding: it stays and splits the run');
  t.same(pinned.aggregates.map((a) => a.ids), [[2, 3], [7, 8, 9]]);

  // Top-level NtDeviceIoControlFile calls (ids 1, 3, 5, …), each with a driver's NtWriteFile nested (2, 4, 6, …).
  const tree: ElisionCall[] = [];
  for (let k = 0; k < 6; k++) {
    tree.push(call(2 * k + 1, { name: 'NtDeviceIoControlFile' }));
    tree.push(call(2 * k + 2, { name: 'NtWriteFile', parentId: 2 * k + 1, previousMode: 'KernelMode', entry: 'int2e' }));
  }
  const r = elideCalls(tree, new Set(), small);
  t.same(r.keep, [1, 2, 11, 12]);
  t.same(r.aggregates, [{ like: 1, last: 11, period: 1, block: [1], name: 'NtDeviceIoControlFile', status: 'STATUS_SUCCESS', ids: [3, 5, 7, 9], nested: [4, 6, 8, 10], events: [176, 176] }]);
  t.equal(aggregateLabel(r.aggregates[0]), '×4 more NtDeviceIoControlFile calls like #1 → STATUS_SUCCESS (ids 3, …, 9, with 4 nested)');

  tree[7] = { ...tree[7], status: 'STATUS_ACCESS_VIOLATION', failed: true }; // call 8, nested in 7
  const split = elideCalls(tree, new Set(), small);
  t.same(split, { keep: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], aggregates: [] }, 'call 7 holds a failed call: it stays, and the runs around it (3 and 2 calls) are too short to fold');
});

t.test('elideCalls: a repeated block of calls (write, then read) folds like a run', async (t) => {
  const loop: ElisionCall[] = [call(1, { name: 'NtCreateFile' })];
  for (let k = 0; k < 6; k++) loop.push(call(2 + 2 * k, { name: 'NtWriteFile' }), call(3 + 2 * k));
  loop.push(call(14, { name: 'NtClose' }));
  const r = elideCalls(loop, new Set(), small);
  t.same(r.keep, [1, 2, 3, 12, 13, 14], 'the first and last write-read pair stay');
  t.same(r.aggregates, [{ like: 2, last: 12, period: 2, block: [2, 3], name: 'NtWriteFile, NtReadFile', status: 'STATUS_SUCCESS', ids: [4, 5, 6, 7, 8, 9, 10, 11], nested: [], events: [176, 176] }]);
  t.equal(aggregateLabel(r.aggregates[0]), '×4 more repetitions of NtWriteFile, NtReadFile like #2, #3 → STATUS_SUCCESS (8 calls, ids 4–11)');
  t.same(elideCalls(loop, new Set(), { ...small, maxPeriod: 1 }).aggregates, [], 'maxPeriod 1: only runs of one call fold');
  // Ten identical calls are a run of one call (not five pairs); a failure inside a block's run splits it.
  t.same(elideCalls(reads(1, 10), new Set(), small).aggregates.map((a) => [a.period, a.ids]), [[1, [2, 3, 4, 5, 6, 7, 8, 9]]]);
  const broken = loop.map((c) => (c.id === 7 ? { ...c, status: 'STATUS_INVALID_HANDLE', failed: true } : c));
  t.same(elideCalls(broken, new Set(), small).keep, loop.map((c) => c.id), 'write 6 / read 7 failed: two short runs of pairs on either side, nothing folded');
});

t.test('idRange, wrapNotice', async (t) => {
  t.equal(idRange([7]), '#7');
  t.equal(idRange([4, 5, 6]), '4–6');
  t.equal(idRange([1000, 1001, 4001]), '1,000, …, 4,001');
  t.same(wrapNotice(['one two three four', 'five'], 9), ['one two', 'three', 'four', 'five']);
  t.same(wrapNotice(['averyveryverylongword x'], 5), ['averyveryverylongword', 'x']);
});

// ---- pure: steps ------------------------------------------------------------------------------

function step(seq: number, syscallId: number | undefined, over: Partial<FlowStep> = {}): FlowStep {
  const s: FlowStep = { seq, kind: 'call', from: 'program', to: 'ntdll', label: `step ${seq}`, detail: {} };
  if (syscallId !== undefined) s.syscallId = syscallId;
  return { ...s, ...over };
}

t.test('capSteps: runs up to maxSteps stay; a longer run keeps its head and tail and one note for the middle', async (t) => {
  const steps = [...Array.from({ length: 4 }, (_, k) => step(k, 1)), ...Array.from({ length: 10 }, (_, k) => step(10 + k, 2, { from: 'nt-entry' })), step(30, undefined)];
  t.same(capSteps(steps, { maxSteps: 10 }), { steps, elided: [] }, 'no run longer than 10');
  const r = capSteps(steps, { maxSteps: 4 }, 'x.db');
  t.same(r.elided, [{ syscallId: 2, steps: 6, firstSeq: 12, lastSeq: 17 }], 'call 2: 10 steps, 2 + 2 kept');
  t.same(r.steps.map((s) => s.label), ['step 0', 'step 1', 'step 2', 'step 3', 'step 10', 'step 11', '… 6 steps elided (events 12–17)', 'step 18', 'step 19', 'step 30']);
  const note = r.steps[6];
  t.same({ seq: note.seq, kind: note.kind, from: note.from, to: note.to, syscallId: note.syscallId }, { seq: 12, kind: 'note', from: 'nt-entry', to: 'nt-entry', syscallId: 2 });
  t.equal(note.detail.query, 'ntflow query x.db "SELECT seq, asm, symbol FROM instructions WHERE session_id = :session AND seq BETWEEN 12 AND 17"');
});

t.test('capSteps: a failing step and a finding in the middle stay, splitting the elided part', async (t) => {
  const steps = Array.from({ length: 12 }, (_, k) => step(k, 1));
  steps[5] = step(5, 1, { label: 'ret · STATUS_INVALID_HANDLE', status: { code: 0xc0000008, name: 'STATUS_INVALID_HANDLE', failed: true } });
  steps[8] = step(8, 1, { kind: 'note', label: 'finding', finding: { id: 1, kind: 'failure-cause', severity: 'error', title: 't', detail: 'd' } });
  const r = capSteps(steps, { maxSteps: 2 });
  t.same(r.steps.map((s) => s.label), ['step 0', '… 4 steps elided (events 1–4)', 'ret · STATUS_INVALID_HANDLE', '… 2 steps elided (events 6–7)', 'finding', '… 2 steps elided (events 9–10)', 'step 11']);
  t.same(r.elided.map((e) => e.steps), [4, 2, 2]);
});

t.test('elisionNotice: nothing left out, nothing said; else the counts and how to see them', async (t) => {
  t.same(elisionNotice({ keep: [1, 2], aggregates: [] }, [], 2, 'x.db'), []);
  const calls = elideCalls([call(1, { name: 'NtCreateFile' }), ...reads(2, 9), call(10, { name: 'NtClose' })], new Set(), small);
  t.same(elisionNotice(calls, [{ syscallId: 1, steps: 2500, firstSeq: 10, lastSeq: 9000 }], 10, 'x.db'), [
    'Aggregated: 6 of 10 system calls drawn as 1 row "×N more … like #ID" (a run of identical calls keeps its first and last). Failed calls and calls with findings are always drawn.',
    'Elided: 2,500 steps in 1 place ("… N steps elided"); failures and findings stay.',
    'To see them: ntflow flow x.db --syscall ID, or ntflow query x.db "SELECT * FROM syscalls WHERE id = 3".',
    'The elided steps\' instructions: ntflow query x.db "SELECT seq, asm, symbol FROM instructions WHERE session_id = :session AND seq BETWEEN 10 AND 9000".',
  ]);
  t.same(elisionNotice({ keep: [1], aggregates: [] }, [{ syscallId: undefined, steps: 5, firstSeq: 1, lastSeq: 9 }, { syscallId: 1, steps: 3, firstSeq: 20, lastSeq: 30 }], 1, 'x.db'), [
    'Elided: 8 steps in 2 places ("… N steps elided"); failures and findings stay.',
    'The elided steps\' instructions: ntflow query x.db "SELECT seq, asm, symbol FROM instructions WHERE session_id = :session AND seq BETWEEN 1 AND 9" (the first place; each "… elided" note says its own).',
  ]);
});

// ---- a recorded program -----------------------------------------------------------------------

/** user-nt-readfile with 150 reads, one NtClose(0) (it fails), 150 more reads, then the handle closed. */
function readsAroundAFailure(): { fileName: string; source: string } {
  let source = scenarioSource('user-nt-readfile.asm').source;
  const readStart = '    push 0                                  ; Key';
  const keep = '    mov ebx, eax                            ; keep the status';
  if (!source.includes(readStart) || !source.includes(keep)) throw new Error('user-nt-readfile.asm changed');
  const body = source.slice(source.indexOf(readStart), source.indexOf(keep) + keep.length);
  const loop = (label: string) => `    mov esi, 150\n${label}:\n${body}\n    dec esi\n    jnz ${label}\n`;
  source = source.replace(body, `${loop('.first')}    push 0\n    call ntdll!NtClose\n${loop('.second')}`);
  return { fileName: 'reads-around-a-failure.asm', source };
}

t.test('a recorded session: the drawing states what the syscalls table says', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-viz-elide-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'reads.db');
  const { sessionId } = await record({ program: readsAroundAFailure() }, { output: file });
  replayFile(file);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());

  const all = db.prepare('SELECT id, name, status_name FROM syscalls WHERE session_id = ? ORDER BY id').all(sessionId) as { id: number; name: string; status_name: string | null }[];
  const failed = all.filter((r) => r.status_name !== null && r.status_name !== 'STATUS_SUCCESS');
  t.same(failed.map((r) => r.name), ['NtClose'], 'the trace: one failed call, NtClose(0)');
  const closeId = failed[0].id;
  const readIds = all.filter((r) => r.name === 'NtReadFile' && r.status_name === 'STATUS_SUCCESS').map((r) => r.id);
  t.equal(readIds.length, 300, 'the trace: 300 successful reads');
  const before = readIds.filter((id) => id < closeId);
  const after = readIds.filter((id) => id > closeId);

  // Default limits: 304 calls is below 1,000, so the one-row-per-call diagram is drawn whole.
  const whole = sequenceInput(db, sessionId, { registerSteps: 0 });
  t.equal(whole.notice, undefined, 'no notice when nothing is left out');
  t.same(whole.steps.filter((s) => s.kind === 'call').map((s) => s.syscallId), all.map((r) => r.id), 'a row per call');

  // With maxCalls 100: each run of reads keeps its first and last; the failed NtClose stays between.
  const input = sequenceInput(db, sessionId, { registerSteps: 0, elision: { maxCalls: 100 } });
  const rows = input.steps.filter((s) => s.kind === 'call');
  const aggregates = rows.filter((s) => s.syscallId === undefined);
  const range = (ids: number[]) => `${ids[0].toLocaleString('en')}–${ids[ids.length - 1].toLocaleString('en')}`;
  t.same(
    aggregates.map((s) => s.label),
    [
      `×${before.length - 2} more NtReadFile calls like #${before[0]} → STATUS_SUCCESS (ids ${range(before.slice(1, -1))})`,
      `×${after.length - 2} more NtReadFile calls like #${after[0]} → STATUS_SUCCESS (ids ${range(after.slice(1, -1))})`,
    ],
  );
  t.same(
    input.bands.map((b) => b.syscallId),
    all.map((r) => r.id).filter((id) => !before.slice(1, -1).includes(id) && !after.slice(1, -1).includes(id)),
    'bands: every call but the folded reads',
  );
  t.ok(input.bands.some((b) => b.syscallId === closeId && b.status?.failed), 'the failed NtClose is drawn, marked failed');
  const folded = before.length - 2 + after.length - 2;
  t.same(input.notice, [
    `Aggregated: ${folded} of ${all.length} system calls drawn as 2 rows "×N more … like #ID" (a run of identical calls keeps its first and last). Failed calls and calls with findings are always drawn.`,
    `To see them: ntflow flow ${file} --syscall ID, or ntflow query ${file} "SELECT * FROM syscalls WHERE id = ${before[1]}".`,
  ]);
  const findingIds = (input.findings ?? []).filter((f) => f.syscallId === closeId);
  t.ok(findingIds.length >= 1, "the failed call's finding is listed");

  // The drawings say so: the SVG under its title, the page above the diagram.
  const layout = layoutSequence(input);
  t.same(layout.notice, input.notice, 'the layout carries the notice');
  const svg = renderSequenceSvg(layout);
  t.match(svg, `<g class="notice">`);
  t.match(svg, `Aggregated: ${folded} of ${all.length} system calls`);
  t.match(svg, /<g [^>]*transform="translate\(0,\d+\)"/, 'the diagram moved down under the notice');
  const html = renderSequenceHtml(layout);
  t.match(html, `<div class="ntflow-notice" role="note">\n<p>Aggregated: ${folded} of ${all.length} system calls drawn as 2 rows &quot;×N more … like #ID&quot;`);

  // Every call chosen step by step (--query): the same folding; only the kept calls are read.
  const chosen = sequenceInput(db, sessionId, { registerSteps: 0, syscallIds: all.map((r) => r.id), elision: { maxCalls: 100 } });
  t.same(chosen.bands.map((b) => b.syscallId), input.bands.map((b) => b.syscallId), 'the same calls drawn as bands');
  t.same(chosen.steps.filter((s) => s.syscallId === undefined && s.kind === 'call').map((s) => s.label), aggregates.map((s) => s.label), 'the same aggregate rows');
  const firstRead = chosen.steps.filter((s) => s.syscallId === before[0]);
  t.ok(firstRead.some((s) => s.kind === 'sysenter') && firstRead.some((s) => s.kind === 'sysexit'), 'the kept first read is drawn step by step');
  t.match(chosen.title, `${all.length} chosen calls, ${input.bands.length} drawn step by step, runs of identical calls aggregated`);

  // Steps capped per band: each drawn read has more steps than 6, so each gets an elision note.
  const capped = sequenceInput(db, sessionId, { registerSteps: 0, syscallIds: [before[0], closeId], elision: { maxSteps: 6 } });
  const notes = capped.steps.filter((s) => s.label.startsWith('… '));
  t.equal(notes.length >= 2, true, 'a note in each capped band');
  t.ok(capped.steps.some((s) => s.syscallId === closeId && s.status?.failed), "the failed call's failing step stays");
  t.match(capped.notice?.[0] ?? '', /^Elided: [\d,]+ steps in \d+ places/);
});

t.test('a recorded session drawn whole: a long run of steps outside every call is capped, the failed call stays', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-viz-elide-steps-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'rtl.db');
  const source = `; ntflow: user
; 1,500 calls of ntdll!RtlNtStatusToDosError (no system call), then NtClose(0), which fails.
start:
    mov esi, 1500
l:  push 0
    call ntdll!RtlNtStatusToDosError
    dec esi
    jnz l
    push 0
    call ntdll!NtClose
    xor eax, eax
    ret
`;
  const { sessionId } = await record({ program: { fileName: 'rtl.asm', source } }, { output: file });
  replayFile(file);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  const rtlCalls = db.prepare("SELECT count(*) FROM calls WHERE session_id = ? AND symbol = 'ntdll!RtlNtStatusToDosError'").pluck().get(sessionId) as number;
  t.equal(rtlCalls, 1500, 'the trace: 1,500 calls of RtlNtStatusToDosError');

  const full = sequenceInput(db, sessionId, { registerSteps: 0, elision: { maxSteps: Number.POSITIVE_INFINITY } });
  t.equal(full.notice, undefined, 'uncapped: nothing said');
  // The longest run of steps outside every call: the loop's call and return arrows, and more.
  let run = 0;
  for (let i = 0, k = 0; i < full.steps.length; i = k) {
    for (k = i; k < full.steps.length && full.steps[k].syscallId === full.steps[i].syscallId; k++);
    if (full.steps[i].syscallId === undefined) run = Math.max(run, k - i);
  }
  t.ok(run >= 2 * rtlCalls, `a call and a return a loop iteration: ${run} steps in a row`);

  const capped = sequenceInput(db, sessionId, { registerSteps: 0 });
  const elided = run - 2000;
  t.equal(capped.notice?.[0], `Elided: ${elided.toLocaleString('en')} steps in 1 place ("… N steps elided"); failures and findings stay.`);
  t.equal(capped.steps.length, full.steps.length - elided + 1, 'the middle replaced by one note');
  const note = capped.steps.filter((s) => s.label.startsWith('… '));
  t.equal(note.length, 1);
  t.match(note[0].label, `… ${elided.toLocaleString('en')} steps elided (events `);
  const failed = (s: FlowStep) => s.status?.failed === true;
  t.equal(capped.steps.filter(failed).length, full.steps.filter(failed).length, 'every failing step of NtClose(0) stays');
  t.same(capped.bands.map((b) => b.syscallId), full.bands.map((b) => b.syscallId), 'every call still a band');
});

t.test('small scenarios are drawn exactly as before: nothing folded, nothing elided', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-viz-elide-small-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const scenario of ['osr-log-user-handle', 'user-nt-readfile']) {
    const file = join(dir, `${scenario}.db`);
    const { sessionId } = await record({ scenario }, { output: file });
    replayFile(file);
    const db = new Database(file, { readonly: true });
    const input = sequenceInput(db, sessionId, { registerSteps: 0 });
    const calls = db.prepare('SELECT count(*) FROM syscalls WHERE session_id = ?').pluck().get(sessionId) as number;
    db.close();
    t.equal(input.notice, undefined, `${scenario}: no notice`);
    t.equal(input.bands.length, calls, `${scenario}: every call a band`);
    t.notOk(input.steps.some((s) => s.label.startsWith('… ') || s.label.startsWith('×')), `${scenario}: no aggregate row, no elision note`);
  }
});
