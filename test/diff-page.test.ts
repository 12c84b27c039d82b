// The comparison page of `ntflow diff A B -o diff.html` (issue H), without a browser: the rows of the
// two diagrams aligned by viz/diff-layout.ts, with exact numbers on hand-made layouts (a pair starts
// on the same row on both sides, a call only in B leaves a gap of its height on A, where the paths
// part and join again sit on one row, a note inside a call only on one side does not pull the rows
// beside that call, an anchor that would cross the others is left out); the
// comparison's notes at their events on both sides; and the CLI — -o writes the page as well as the
// text, and a name not ending in .html is one line, exit 1. (What the page does in Chromium is
// browser-diff.test.ts.) Deterministic: no timing.
//   npx tsc -p tsconfig.json && npx tap dist/test/diff-page.test.js
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import { record } from '../recorder/index.js';
import { diffSessions, replayFile } from '../analyzer/index.js';
import { alignLayouts, describeDiff, diffLayouts, diffNotes, layoutSequence, type FlowStep, type SequenceInput, type SequenceLayout } from '../viz/index.js';
import { ntflow } from './util/cli.js';

// ---- hand-made layouts -------------------------------------------------------------------------

const LANES: SequenceInput['lanes'] = [
  { id: 'program', label: 'p.exe', ring: 3 },
  { id: 'nt-entry', label: 'KiSystemService', ring: 0 },
];

type Row = string | { mark: 'diverge' | 'join' };

/** Bands of steps (each row a step: a call, or a comparison's note), laid out by layoutSequence (header 88, rows 24). */
function layout(side: 'a' | 'b', bands: { id: number; rows: Row[] }[]): SequenceLayout {
  const steps: FlowStep[] = [];
  const laid: SequenceInput['bands'] = [];
  let seq = 0;
  for (const b of bands) {
    const first = seq;
    for (const r of b.rows) {
      const step: FlowStep = { seq: seq++, kind: 'call', from: 'program', to: 'nt-entry', label: String(r), detail: {}, syscallId: b.id };
      if (typeof r !== 'string') Object.assign(step, { kind: 'note', to: 'program', label: r.mark, diff: { kind: r.mark, pair: 0, index: 0, side } });
      steps.push(step);
    }
    laid.push({ syscallId: b.id, name: `NtCall${b.id}`, entry: 'sysenter', previousMode: 'UserMode', status: null, parentId: null, firstSeq: first, lastSeq: seq - 1 });
  }
  return layoutSequence({ title: side, lanes: LANES, steps, bands: laid });
}

const rows = (l: SequenceLayout) => l.steps.map((s) => s.y);
const bandsOf = (l: SequenceLayout) => l.bands.map((b) => [b.syscallId, b.y0, b.y1]);

t.test('a call only in B: the pairs start on one row, A gets a gap as tall as the call', async (t) => {
  const a = layout('a', [
    { id: 1, rows: ['x', 'y'] },
    { id: 2, rows: ['x', 'y', 'z'] },
  ]);
  const b = layout('b', [
    { id: 1, rows: ['x', 'y', 'z', 'w'] },
    { id: 9, rows: ['x', 'y'] },
    { id: 2, rows: ['x', 'y'] },
  ]);
  t.same(bandsOf(a), [[1, 88, 160], [2, 160, 256]], 'A before: a title row and a row per step');
  t.same(bandsOf(b), [[1, 88, 208], [9, 208, 280], [2, 280, 352]]);
  const r = alignLayouts(a, b, [{ a: 1, b: 1 }, { a: null, b: 9 }, { a: 2, b: 2 }]);
  t.same(bandsOf(r.a), [[1, 88, 160], [2, 280, 376]], "A's #2 starts on the row of B's #2");
  t.same(bandsOf(r.b), [[1, 88, 208], [9, 208, 280], [2, 280, 352]], 'B stays where it was');
  t.same(rows(r.a), [124, 148, 316, 340, 364]);
  t.same(r.a.gaps, [{ y0: 160, y1: 280, label: 'only in B: #9 NtCall9', others: [9] }], "the gap on A: the rest of B's #1 and B's #9");
  t.same(r.b.gaps, [{ y0: 352, y1: 376, label: 'A: 1 more step here', others: [] }], "B's #2 is a row shorter");
  t.equal(r.a.height, 396);
  t.equal(r.b.height, 396, 'both as tall');
  t.same(bandsOf(a), [[1, 88, 160], [2, 160, 256]], 'the inputs are not changed');
});

t.test('where the paths part and join again: one row on both sides, the shorter path padded between', async (t) => {
  const a = layout('a', [{ id: 1, rows: ['s', { mark: 'diverge' }, 'x', { mark: 'join' }, 'y'] }]);
  const b = layout('b', [{ id: 1, rows: ['s', { mark: 'diverge' }, 'x1', 'x2', 'x3', { mark: 'join' }, 'y'] }]);
  const r = alignLayouts(a, b, [{ a: 1, b: 1 }]);
  t.same(rows(r.a), [124, 148, 172, 244, 268]);
  t.same(rows(r.b), [124, 148, 172, 196, 220, 244, 268]);
  t.same(r.a.gaps, [{ y0: 184, y1: 232, label: 'B: 2 more steps here', others: [] }]);
  t.same(bandsOf(r.a), [[1, 88, 280]], "A's band grows around its gap");
  t.same(r.b.gaps, []);
});

t.test('a note inside a call only in B is no anchor: the call keeps its whole gap on A', async (t) => {
  const a = layout('a', [{ id: 1, rows: ['s', { mark: 'diverge' }, 'x', { mark: 'join' }, 'y'] }]);
  const b = layout('b', [
    { id: 1, rows: ['s', { mark: 'diverge' }, 'q'] },
    { id: 9, rows: ['p', { mark: 'join' }, 'r'] },
  ]);
  const r = alignLayouts(a, b, [{ a: 1, b: 1 }, { a: null, b: 9 }]);
  t.same(rows(r.a), [124, 148, 172, 196, 220], 'A as it was');
  t.same(bandsOf(r.b), [[1, 88, 184], [9, 232, 328]], "B's #9 after the rest of A's #1");
  t.same(r.a.gaps, [{ y0: 232, y1: 328, label: 'only in B: #9 NtCall9', others: [9] }], 'beside it, on A, nothing');
  t.same(r.b.gaps, [{ y0: 184, y1: 232, label: 'A: 2 more steps here', others: [] }]);
  t.equal(r.a.height, 348);
  t.equal(r.b.height, 348);
});

t.test('pairs that cross (A 1↔B 2, A 2↔B 1): the second anchor is left out, nothing overlaps', async (t) => {
  const a = layout('a', [
    { id: 1, rows: ['x', 'y'] },
    { id: 2, rows: ['x', 'y'] },
  ]);
  const b = layout('b', [
    { id: 1, rows: ['x', 'y', 'z'] },
    { id: 2, rows: ['x', 'y'] },
  ]);
  const r = alignLayouts(a, b, [{ a: 1, b: 2 }, { a: 2, b: 1 }]);
  t.equal(r.a.bands[0].y0, r.b.bands[1].y0, "A's #1 and B's #2 start on one row");
  const ys = rows(r.a);
  t.same([...ys].sort((x, y) => x - y), ys, 'rows stay in order');
  t.ok(ys.every((y, i) => i === 0 || y - ys[i - 1] >= 24), 'one row apart at least');
});

// ---- a real comparison: the notes, the aligned layouts, the CLI ------------------------------------

const dir = t.testdir();
const trace = join(dir, 'pairs.db');
const ids = new Map<string, number>();

t.before(async () => {
  for (const s of ['user-nt-readfile', 'int2e-readfile', 'kernel-zw-readfile']) ids.set(s, (await record({ scenario: s }, { output: trace, name: s })).sessionId);
  replayFile(trace);
});

t.test('user-nt-readfile vs int2e-readfile: the notes on both sides, the pairs on one row', async (t) => {
  const db = new Database(trace, { readonly: true });
  t.teardown(() => db.close());
  const A = { db, file: trace, sessionId: ids.get('user-nt-readfile')! };
  const B = { db, file: trace, sessionId: ids.get('int2e-readfile')! };
  const r = diffSessions(A, B);
  const notesA = diffNotes(r, 'a');
  const first = notesA.find((n) => n.diff?.kind === 'diverge' && n.diff.pair === 0 && n.diff.index === 0)!;
  t.equal(first.seq, r.pairs[0].divergence!.a!.seq, "the first divergence at A's instruction");
  t.match(first.label, /^≠ paths part: SharedUserData!SystemCallStub {2}mov edx,esp {2}↔ B: lea edx,\[esp\+8\]$/);
  const joinB = diffNotes(r, 'b').find((n) => n.diff?.kind === 'join' && n.diff.pair === 0 && n.diff.index === 0)!;
  t.equal(joinB.seq, r.pairs[0].divergence!.join!.b.seq);
  t.match(joinB.label, /^= paths join again: nt!KiSystemService\+0x5c {2}/);

  // What the page says is generated from the result: change the result, the sentences follow.
  const said = describeDiff(r).join('\n');
  t.match(said, /In all 4 pairs \(#1 NtCreateFile, #2 NtReadFile, #3 NtClose and #4 NtTerminateProcess\) the paths first part at SharedUserData!SystemCallStub `mov edx,esp` in user-nt-readfile against SharedUserData!KiIntSystemCall `lea edx,\[esp\+8\]` in int2e-readfile, and join again at nt!KiSystemService\+0x5c\./);
  const changed = structuredClone(r);
  changed.pairs[3].divergence!.join!.a.location = changed.pairs[3].divergence!.join!.b.location = 'nt!Elsewhere';
  t.match(describeDiff(changed).join('\n'), /In #4 NtTerminateProcess the paths first part .*, and join again at nt!Elsewhere \(user-nt-readfile seq \d+–\d+, int2e-readfile seq \d+–\d+\)\./, 'a pair that joins elsewhere is said apart');

  const { a, b, keys } = diffLayouts(r, A, B, { registerSteps: 0 });
  for (const [k, p] of r.pairs.entries()) {
    const ba = a.bands.find((x) => x.syscallId === p.a!.id)!;
    const bb = b.bands.find((x) => x.syscallId === p.b!.id)!;
    t.equal(ba.y0, bb.y0, `${p.a!.service}: one row on both sides`);
    t.equal(keys.a[p.a!.id], `pair ${k}`);
    t.equal(keys.b[p.b!.id], `pair ${k}`);
    for (const kind of ['diverge', 'join'] as const) {
      const y = (l: SequenceLayout) => l.steps.find((s) => s.diff?.kind === kind && s.diff.pair === k && s.diff.index === 0)?.y;
      t.ok(y(a) !== undefined && y(a) === y(b), `${p.a!.service}: the ${kind} note on one row`);
    }
  }
  t.equal(a.height, b.height);
});

t.test('the CLI: -o writes the page and prints the text; a name not ending in .html is one line, exit 1', async (t) => {
  const page = join(dir, 'int2e.html');
  const r = await ntflow(['diff', `${trace}:user-nt-readfile`, `${trace}:int2e-readfile`, '-o', page]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^A .*'user-nt-readfile'.*\nB .*'int2e-readfile'/, 'the text as without -o');
  t.ok(existsSync(page));
  const html = readFileSync(page, 'utf8');
  t.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'sha256-[^']+' 'sha256-[^']+';/, 'scripts by hash only');
  t.notMatch(html, /<script[^>]*\ssrc=/i, 'no script from a file');
  t.notMatch(html, /\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i, 'no src= or href= to another place');
  t.equal((html.match(/class="ntflow-diagram ntflow-sequence"/g) ?? []).length, 2, 'two diagrams');
  const json = await ntflow(['diff', `${trace}:1`, `${trace}:2`, '--json', '--output', join(dir, 'j.html')]);
  t.equal(json.code, 0);
  t.equal(JSON.parse(json.stdout).pairs.length, 4, '--json and -o together');
  t.ok(existsSync(join(dir, 'j.html')));
  for (const name of ['diff.svg', 'diff', 'diff.html.txt']) {
    const e = await ntflow(['diff', `${trace}:1`, `${trace}:2`, '-o', join(dir, name)]);
    t.equal(e.code, 1, `-o ${name}: exit 1`);
    t.equal(e.stdout, '', 'nothing compared');
    t.match(e.stderr, /^ntflow: -o .*: the comparison page is HTML; give a name ending in \.html \(e\.g\. -o diff\.html\)\n$/, 'one line');
    t.notOk(existsSync(join(dir, name)));
  }
  const nowhere = await ntflow(['diff', `${trace}:1`, `${trace}:2`, '-o', join(dir, 'no', 'such', 'dir', 'x.html')]);
  t.equal(nowhere.code, 1);
  t.match(nowhere.stderr, /^ntflow: cannot write .*x\.html: ENOENT[^\n]*\n$/);
});
