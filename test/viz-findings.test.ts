// The findings on the sequence diagram (issue G part 3): each failure-cause finding is a red note at
// its decisive event inside the failing call's band, its <title> the finding's explanation; a hook's
// note is amber, where the hook first ran; a band whose call failed, or holds a call that failed,
// is marked (red bar, '✗ STATUS_…') even collapsed to one row; a clean session has none of these.
// The pure parts (bandFailures, findingNotes, mergeNotes, layoutFindings) are checked exactly.
//   npx tsc -p tsconfig.json && npx tap dist/test/viz-findings.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DOMParser } from 'linkedom';
import { record } from '../recorder/index.js';
import { readFindings, replayFile } from '../analyzer/index.js';
import { COLORS, layoutSequence, renderSequenceSvg, sequenceInput, type FlowStep, type LaidStep, type SessionFinding } from '../viz/index.js';
import { bandFailures, findingNotes, mergeNotes } from '../viz/findings.js';
import { layoutFindings } from '../viz/layout.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-viz-findings-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** A scenario recorded into its own file, projections built, opened read-only. */
async function recorded(scenario: string): Promise<{ db: Database.Database; sessionId: number }> {
  const file = join(dir, `${scenario}.db`);
  const { sessionId } = await record({ scenario }, { output: file });
  replayFile(file);
  return { db: new Database(file, { readonly: true }), sessionId };
}

type El = { getAttribute(n: string): string | null; querySelector(s: string): El | null; querySelectorAll(s: string): El[]; textContent: string | null };
const parse = (svg: string) => new DOMParser().parseFromString(svg, 'image/svg+xml') as unknown as El;
const num = (el: El | null, attr: string) => Number(el?.getAttribute(attr));

// ---- pure parts ------------------------------------------------------------------------------------

t.test("bandFailures: a band marked by its call's own status, else by the first failing call inside it", async (t) => {
  const ok = { name: 'STATUS_SUCCESS', failed: false };
  const av = { name: 'STATUS_ACCESS_VIOLATION', failed: true };
  const ih = { name: 'STATUS_INVALID_HANDLE', failed: true };
  const call = (id: number, parentId: number | null, name: string, status: typeof ok | null, enterSeq: number, exitSeq: number | null) => ({ id, parentId, name, status, enterSeq, exitSeq });
  const calls = [
    call(1, null, 'NtReadFile', ok, 10, 100),
    call(2, 1, 'NtDeviceIoControlFile', ok, 20, 90),
    call(3, 2, 'NtWriteFile', av, 30, 40),
    call(4, 2, 'NtWriteFile', ih, 50, 60),
    call(5, null, 'NtDelayExecution', ok, 110, 200),
    call(6, null, 'NtWriteFile', ih, 120, 130), // another thread's call while #5 waits
    call(7, null, 'NtClose', ih, 210, 250),
    call(8, 7, 'NtClose', ih, 220, 230),
    call(9, null, 'NtTerminateProcess', null, 260, null),
    call(10, null, 'NtReadFile', ok, 270, 280),
  ];
  const band = (syscallId: number, firstSeq: number, lastSeq: number) => ({ syscallId, firstSeq, lastSeq });
  // #2 is not drawn: #1 is marked by its descendant #3 all the same.
  const marks = bandFailures(calls, [band(1, 5, 105), band(3, 28, 42), band(4, 48, 62), band(5, 108, 202), band(6, 118, 132), band(7, 205, 255), band(9, 258, 300)]);
  t.same(Object.fromEntries(marks), {
    1: { syscallId: 3, own: false, status: 'STATUS_ACCESS_VIOLATION', label: '✗ inside: #3 NtWriteFile → STATUS_ACCESS_VIOLATION' },
    3: { syscallId: 3, own: true, status: 'STATUS_ACCESS_VIOLATION', label: '✗ STATUS_ACCESS_VIOLATION' },
    4: { syscallId: 4, own: true, status: 'STATUS_INVALID_HANDLE', label: '✗ STATUS_INVALID_HANDLE' },
    5: { syscallId: 6, own: false, status: 'STATUS_INVALID_HANDLE', label: '✗ inside: #6 NtWriteFile → STATUS_INVALID_HANDLE' },
    6: { syscallId: 6, own: true, status: 'STATUS_INVALID_HANDLE', label: '✗ STATUS_INVALID_HANDLE' },
    7: { syscallId: 7, own: true, status: 'STATUS_INVALID_HANDLE', label: '✗ STATUS_INVALID_HANDLE' },
  });
});

t.test('findingNotes and mergeNotes: which findings are listed and drawn, and where', async (t) => {
  const finding = (id: number, syscallId: number | null, noteSeq: number | null, severity: SessionFinding['severity'] = 'error'): SessionFinding => ({
    id,
    kind: severity === 'warning' ? 'hook' : 'failure-cause',
    severity,
    cause: 'x',
    title: `t${id}`,
    detail: `d${id}`,
    syscallId,
    seq: noteSeq ?? 1,
    noteSeq,
    evidence: [noteSeq ?? 1, 2],
  });
  const findings = [finding(1, 2, 25), finding(2, 3, 45), finding(3, null, 12, 'warning'), finding(4, 2, 99), finding(5, null, null, 'warning')];
  const bands = [
    { syscallId: 1, firstSeq: 10, lastSeq: 40 },
    { syscallId: 2, firstSeq: 20, lastSeq: 30 },
  ];
  const place = (seq: number) => ({ lane: seq < 20 ? 'nt-entry' : 'nt-service', thread: 7 });
  const chosen = findingNotes(findings, bands, place, false);
  t.same(
    chosen.listed.map((f) => f.id),
    [1, 3, 4, 5],
    'chosen calls: the findings about them, and those about no call',
  );
  t.same(
    chosen.notes.map((s) => [s.seq, s.from, s.to, s.syscallId, s.label, s.finding?.id, s.detail.evidence]),
    [
      [25, 'nt-service', 'nt-service', 2, '✗ t1', 1, 'seq 25, seq 2'],
      [12, 'nt-entry', 'nt-entry', 1, '⚠ t3', 3, 'seq 12, seq 2'],
    ],
    "a note inside its call's band; one about no call in the innermost band holding it; none outside the drawn bands or without a place",
  );
  const whole = findingNotes(findings, bands, place, true);
  t.same(
    whole.notes.map((s) => [s.seq, s.syscallId ?? null, s.finding?.id]),
    [
      [25, 2, 1],
      [45, null, 2],
      [12, 1, 3],
      [99, null, 4],
    ],
    'the whole session: every finding with a place has its note',
  );
  const step = (seq: number, label: string): FlowStep => ({ seq, kind: 'call', from: 'a', to: 'b', label, detail: {} });
  t.same(
    mergeNotes([step(10, 'a'), step(12, 'b'), step(30, 'c')], whole.notes).map((s) => s.label),
    ['a', '⚠ t3', 'b', '✗ t1', 'c', '✗ t2', '✗ t4'],
    'in seq order, a note before the step of its own seq',
  );
  const laid = mergeNotes([step(10, 'a')], chosen.notes).map((s, index) => ({ ...s, index, y: index, x1: 0, x2: 0 }) as LaidStep);
  t.same(
    layoutFindings(chosen.listed, laid).map((f) => [f.id, f.stepIndex]),
    [
      [1, 2],
      [3, 1],
      [4, null],
      [5, null],
    ],
  );
});

// ---- recorded scenarios -------------------------------------------------------------------------------

t.test("osr-log-user-handle: #5 NtWriteFile's band has a red note at the probe, with the finding's sentence", async (t) => {
  const { db, sessionId } = await recorded('osr-log-user-handle');
  t.teardown(() => db.close());
  const findings = readFindings(db, sessionId);
  const cause = findings.find((f) => f.kind === 'failure-cause' && f.syscall_id === 5)!;
  t.ok(cause, 'the findings explain #5');
  t.equal(db.prepare('SELECT type FROM events WHERE session_id = ? AND seq = ?').pluck().get(sessionId, cause.seq), 'probe', 'its decisive event is the probe');
  t.match(cause.title, /^#5 NtWriteFile → STATUS_ACCESS_VIOLATION/);

  const input = sequenceInput(db, sessionId, { registerSteps: 0 });
  t.same(
    input.findings?.map((f) => [f.id, f.kind, f.severity, f.title]),
    findings.map((f) => [f.id, f.kind, f.severity, f.title]),
    'every finding of the session is listed',
  );
  const layout = layoutSequence(input);
  const doc = parse(renderSequenceSvg(layout));
  const band = doc.querySelector('g.band[data-syscall="5"]');
  t.match(band?.getAttribute('class'), /\bfailed\b/, 'the band is marked failed');
  const note = doc.querySelector(`g.step.finding[data-finding="${cause.id}"]`);
  t.ok(note, 'the note is drawn');
  t.match(note!.getAttribute('class'), /\bseverity-error\b/);
  t.equal(note!.getAttribute('data-seq'), String(cause.seq), 'at the decisive event');
  t.equal(note!.getAttribute('data-syscall'), '5', "in #5's band");
  const rect = note!.querySelector('rect');
  t.equal(rect?.getAttribute('fill'), COLORS.failFill, 'red');
  t.equal(rect?.getAttribute('stroke'), COLORS.fail);
  t.ok(note!.querySelector('title')?.textContent?.includes(cause.detail), "its tooltip is the finding's explanation");
  // Inside the band, on the row of its event: after the steps before the probe, before those after it.
  const bandRect = band!.querySelector('rect');
  const y = num(rect, 'y') + 9;
  t.ok(y > num(bandRect, 'y') && y < num(bandRect, 'y') + num(bandRect, 'height'), "within #5's band");
  const laid = layout.findings.find((f) => f.id === cause.id)!;
  const i = laid.stepIndex!;
  t.ok(layout.steps[i - 1].seq < cause.seq && layout.steps[i + 1].seq > cause.seq, 'between the steps of the events around it');
  t.same(
    layout.steps.filter((s) => s.finding?.severity === 'error').map((s) => [s.finding?.id, s.syscallId, s.seq]),
    findings.filter((f) => f.kind === 'failure-cause').map((f) => [f.id, f.syscall_id, f.seq]),
    'one red note per failure-cause finding, in its call, at its event',
  );
  t.same(
    input.bands.filter((b) => b.failure).map((b) => [b.syscallId, b.failure!.label]),
    [
      [4, '✗ inside: #5 NtWriteFile → STATUS_ACCESS_VIOLATION'],
      [5, '✗ STATUS_ACCESS_VIOLATION'],
      [7, '✗ inside: #8 NtWriteFile → STATUS_INVALID_HANDLE'],
      [8, '✗ STATUS_INVALID_HANDLE'],
      [9, '✗ STATUS_INVALID_HANDLE'],
    ],
    "the failed calls, the driver's call holding one, and the wait during which the work item's failed",
  );
});

t.test('a collapsed failing band is still marked', async (t) => {
  const { db, sessionId } = await recorded('osr-log-user-handle');
  t.teardown(() => db.close());
  const input = sequenceInput(db, sessionId, { registerSteps: 0 });
  const layout = layoutSequence(input, { collapsed: [4, 5, 7, 8] });
  for (const [id, mark] of [
    [4, '✗ inside: #5 NtWriteFile → STATUS_ACCESS_VIOLATION'],
    [7, '✗ inside: #8 NtWriteFile → STATUS_INVALID_HANDLE'],
  ] as const) {
    const laid = layout.bands.find((b) => b.syscallId === id)!;
    t.equal(laid.y1 - laid.y0, layout.rowHeight, `#${id} is one row`);
    const band = parse(renderSequenceSvg(layout)).querySelector(`g.band[data-syscall="${id}"]`)!;
    t.match(band.getAttribute('class'), /\bfailed\b/, `#${id} marked failed`);
    t.equal(band.querySelector('text.fail-mark')?.textContent, mark, `#${id}: ${mark}`);
    t.equal(band.querySelector('rect.fail-bar')?.getAttribute('fill'), COLORS.fail, `#${id}: the red bar`);
    t.equal(band.querySelector('rect')?.getAttribute('stroke'), COLORS.fail, `#${id}: the red border`);
  }
  t.equal(layout.findings.find((f) => f.syscallId === 8 && f.kind === 'failure-cause')?.stepIndex, null, "a collapsed band's note is not drawn");
  t.notOk(layout.bands.some((b) => b.syscallId === 8), '#8 is folded into #7');

  // Many calls drawn one row each (the default past 40 calls): every band a single row, still marked.
  const rows = layoutSequence(sequenceInput(db, sessionId, { registerSteps: 0, expandLimit: 0 }));
  const doc = parse(renderSequenceSvg(rows));
  t.same(
    doc.querySelectorAll('g.band.failed').map((g) => [g.getAttribute('data-syscall'), g.querySelector('text.fail-mark')?.textContent]),
    [
      ['4', '✗ inside: #5 NtWriteFile → STATUS_ACCESS_VIOLATION'],
      ['5', '✗ STATUS_ACCESS_VIOLATION'],
      ['7', '✗ inside: #8 NtWriteFile → STATUS_INVALID_HANDLE'],
      ['8', '✗ STATUS_INVALID_HANDLE'],
      ['9', '✗ STATUS_INVALID_HANDLE'],
    ],
  );
  t.equal(doc.querySelectorAll('g.step.finding.severity-error').length, 3, 'and the red notes');
});

t.test('a clean session (user-nt-readfile): no red note, no failed mark', async (t) => {
  const { db, sessionId } = await recorded('user-nt-readfile');
  t.teardown(() => db.close());
  const input = sequenceInput(db, sessionId, { registerSteps: 0 });
  t.same(input.findings, [], 'no findings');
  t.equal(input.bands.filter((b) => b.failure).length, 0);
  const doc = parse(renderSequenceSvg(layoutSequence(input)));
  t.equal(doc.querySelectorAll('g.step.finding').length, 0, 'no finding note');
  t.equal(doc.querySelectorAll('g.band.failed').length, 0, 'no failed band');
  t.equal(doc.querySelectorAll('.fail-mark').length + doc.querySelectorAll('.fail-bar').length, 0, 'no failure mark');
  t.equal(doc.querySelectorAll(`rect[stroke="${COLORS.fail}"]`).length, 0, 'nothing red');
});

t.test('ssdt-hook: an amber note where the hook first ran, its explanation in the tooltip', async (t) => {
  const { db, sessionId } = await recorded('ssdt-hook');
  t.teardown(() => db.close());
  const [hook] = readFindings(db, sessionId).filter((f) => f.kind === 'hook');
  t.ok(hook, 'the hook is found');
  const firstRun = hook.hook!.first_run_seq as number;
  t.not(firstRun, hook.seq, 'it first ran after the write that installed it');
  const input = sequenceInput(db, sessionId, { registerSteps: 0 });
  const doc = parse(renderSequenceSvg(layoutSequence(input)));
  const note = doc.querySelector(`g.step.finding[data-finding="${hook.id}"]`)!;
  t.ok(note, 'drawn');
  t.match(note.getAttribute('class'), /\bseverity-warning\b/);
  t.equal(note.getAttribute('data-seq'), String(firstRun), 'at its first run');
  t.equal(note.getAttribute('data-syscall'), String(hook.syscall_id), 'in the band of the first call through it');
  const rect = note.querySelector('rect');
  t.equal(rect?.getAttribute('stroke'), COLORS.warn, 'amber');
  t.equal(rect?.getAttribute('fill'), COLORS.warnFill);
  t.match(note.querySelector('text')?.textContent, /^⚠ SSDT hook/);
  t.ok(note.querySelector('title')?.textContent?.includes(hook.detail), 'the tooltip explains it');
  t.equal(doc.querySelectorAll('g.band.failed').length, 0, 'a hook is no failure');
});

t.test('calls chosen: only their findings, each in its band', async (t) => {
  const { db, sessionId } = await recorded('kernel-nt-readfile');
  t.teardown(() => db.close());
  const findings = readFindings(db, sessionId);
  const inner = findings.find((f) => f.kind === 'failure-cause' && f.syscall_id === 4)!;
  const input = sequenceInput(db, sessionId, { registerSteps: 0, syscallIds: [4] });
  t.same(
    input.findings?.map((f) => f.id),
    [inner.id],
    "#4's finding; not #3's (the call around it, not drawn) nor the leak of #1's handle",
  );
  t.same(
    input.steps.filter((s) => s.finding).map((s) => [s.finding?.id, s.syscallId, s.seq]),
    [[inner.id, 4, inner.seq]],
  );
  t.equal(input.bands[0].failure?.label, '✗ STATUS_INVALID_HANDLE');
  // The whole session: #3's finding (a nested call failed) and #4's sit at the same event, #3's first.
  const all = sequenceInput(db, sessionId, { registerSteps: 0 });
  const both = all.steps.filter((s) => s.finding?.kind === 'failure-cause');
  t.same(
    both.map((s) => [s.syscallId, s.seq]),
    [
      [3, inner.seq],
      [4, inner.seq],
    ],
  );
});
