// SVG rendering (viz/svg.ts) and `ntflow flow` (bin/flow.ts), issue E §1–§3: the diagram of a real
// recording names every step of the seed path (ntdll!NtReadFile → SystemCallStub → SYSENTER →
// KiFastCallEntry → KiSystemService → SSDT[0xB7] → nt!NtReadFile → KiServiceExit → SYSEXIT) and
// its labels (EAX, MSR[176], PreviousMode, the APC check, the status); every SVG is well-formed
// XML; text from the trace is escaped; failures are red; bad command lines are one-line errors.
//   npx tsc -p tsconfig.json && npx tap dist/test/viz-svg.test.js
import { ensureProjections } from '../analyzer/index.js';
import t from 'tap';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DOMParser } from 'linkedom';
import {
  COLORS,
  flameInput,
  graphInput,
  layoutCallGraph,
  layoutFlame,
  layoutSequence,
  renderFlameSvg,
  renderGraphSvg,
  renderSequenceSvg,
  sequenceInput,
  type SequenceInput,
} from '../viz/index.js';
import { textWidth } from '../viz/layout.js';
import { flowCommand, type FlowOptions } from '../bin/flow.js';
import { repoPath } from './util/paths.js';
import { wellFormed } from './util/xml.js';

const NTFLOW = repoPath('bin', 'ntflow');
const run = (args: string[]) => spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, NTFLOW, ...args], { encoding: 'utf8' });
const HOSTILE = '<img src=x onerror=alert(1)>';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-viz-svg-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const TRACE = join(dir, 'readfile.db');
const rec = run(['record', 'user-nt-readfile', '-o', TRACE]);
if (rec.status !== 0) throw new Error(`recording failed: ${rec.stderr}`);
// `record` leaves the projections to the first reader; these tests read the file read-only.
ensureProjections(TRACE);

function texts(svg: string): string[] {
  const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
  return [...doc.querySelectorAll('text')].map((n: { textContent: string | null }) => n.textContent ?? '');
}

t.test('the NtReadFile call of user-nt-readfile: every step of the seed path, in order', async (t) => {
  const db = new Database(TRACE, { readonly: true });
  t.teardown(() => db.close());
  const input = sequenceInput(db, 1, { syscallIds: [2] });
  const svg = renderSequenceSvg(layoutSequence(input));
  t.equal(wellFormed(svg), null, 'well-formed XML');
  t.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  const all = texts(svg).join('\n');
  for (const name of ['ntdll!NtReadFile', 'SystemCallStub', 'sysenter', 'KiFastCallEntry', 'KiSystemService', 'SSDT[0xB7] → nt!NtReadFile', 'KiServiceExit', 'sysexit']) {
    t.ok(all.includes(name), `names ${name}`);
  }
  // The labels, in trace order (each the first step that carries it).
  const order = [
    'call ntdll!NtReadFile',
    'EAX = 0B7h',
    'sysenter: MSR[176] = 8053A270 → KiFastCallEntry',
    'jmp nt!KiSystemService',
    'SSDT[0xB7] → nt!NtReadFile',
    'PreviousMode = UserMode',
    'NtReadFile: STATUS_SUCCESS',
    'APC check: user APC pending = no',
    'sysexit → SharedUserData!SystemCallStub+0x4',
    'ret → ntdll!NtReadFile',
  ];
  const at = order.map((label) => input.steps.findIndex((s) => s.label.includes(label)));
  t.same(
    at.map((i) => i >= 0),
    order.map(() => true),
    'every label is there',
  );
  t.same(
    [...at].sort((a, b) => a - b),
    at,
    'in trace order',
  );
  t.same(
    input.lanes.map((l) => l.id),
    ['program', 'ntdll', 'SharedUserData', 'nt-entry', 'nt-service', 'nt-exit', 'nt'],
  );
  t.equal(input.lanes[0].label, 'user-nt-readfile.exe');
  const sysenter = input.steps.find((s) => s.kind === 'sysenter')!;
  t.same([sysenter.from, sysenter.to], ['SharedUserData', 'nt-entry']);
  t.equal(sysenter.detail.EAX, '000000B7', 'registers from time travel in the tooltip');
  t.match(svg, /class="step sysenter transition"/, 'ring transitions are marked');
  t.match(svg, /<title>sysenter: MSR\[176\]/, 'tooltips as <title>');
  t.same(
    input.bands.map((b) => [b.syscallId, b.name, b.entry, b.previousMode, b.status?.name]),
    [[2, 'NtReadFile', 'sysenter', 'UserMode', 'STATUS_SUCCESS']],
  );
  t.ok(input.steps.every((s) => s.syscallId === 2), 'every step belongs to the call');
});

t.test('a note stays inside the drawing; a label longer than two lanes is shortened, whole in its tooltip', async (t) => {
  const db = new Database(TRACE, { readonly: true });
  t.teardown(() => db.close());
  const layout = layoutSequence(sequenceInput(db, 1, { registerSteps: 0 }));
  const notes = layout.steps.filter((s) => s.kind === 'note');
  t.ok(notes.length >= 2, 'the session has notes');
  const long = 'thread 1996 → 8 (System): ' + 'a very long reason '.repeat(8);
  // Move one note to the first lane and one to the last, the places a centred box would overflow.
  notes[0].x1 = notes[0].x2 = layout.lanes[0].x;
  notes[0].label = long;
  notes[1].x1 = notes[1].x2 = layout.lanes[layout.lanes.length - 1].x;
  const svg = renderSequenceSvg(layout);
  t.equal(wellFormed(svg), null);
  const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
  const width = Number(doc.querySelector('svg')!.getAttribute('width'));
  const outside = [...doc.querySelectorAll('rect')]
    .map((r: { getAttribute(n: string): string | null }) => [Number(r.getAttribute('x') ?? 0), Number(r.getAttribute('width') ?? 0)])
    .filter(([x, w]: number[]) => x < 0 || x + w > width);
  t.same(outside, [], `every box lies within 0 … ${width}`);
  const shown = texts(svg).find((x) => x.startsWith('thread 1996 → 8 (System): a very'));
  t.ok(shown && shown.endsWith('…') && shown.length < long.length, 'the long label is shortened with an ellipsis');
  t.ok([...doc.querySelectorAll('title')].some((n: { textContent: string | null }) => (n.textContent ?? '').includes(long.trim())), 'the tooltip has it whole');
});

t.test("a loop's label on the last lane is cut at the drawing's edge (by layout.ts's width estimate), whole in its tooltip", async (t) => {
  const db = new Database(TRACE, { readonly: true });
  t.teardown(() => db.close());
  const input = sequenceInput(db, 1, { registerSteps: 0 });
  const loop = input.steps.find((s) => s.kind === 'jump' && s.from === s.to)!;
  t.ok(loop, 'the session has a jump within a lane');
  // On the last lane, with a label far longer than the 560 px a label may add to the drawing.
  const long = 'jmp nt!' + 'SomeVeryLongRoutineName'.repeat(12);
  loop.from = loop.to = input.lanes[input.lanes.length - 1].id;
  loop.label = long;
  const layout = layoutSequence(input);
  const laid = layout.steps.find((s) => s.label === long)!;
  t.equal(layout.width, Math.ceil(laid.x1 + 560 + 20), 'the drawing reaches 560 px past the lane, then the margin');
  const svg = renderSequenceSvg(layout);
  t.equal(wellFormed(svg), null);
  const shown = texts(svg).find((x) => x.startsWith('jmp nt!SomeVeryLong'))!;
  t.ok(shown.endsWith('…') && shown.length < long.length, `cut: ${shown.length} of ${long.length} characters`);
  t.ok(laid.x1 + 34 + textWidth(shown, 11) <= layout.width - 4, 'its estimated extent ends inside the drawing');
  const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
  t.ok([...doc.querySelectorAll('title')].some((n: { textContent: string | null }) => (n.textContent ?? '').startsWith(long)), 'the tooltip has it whole');
});

t.test('whole session, flame chart and call graph are well-formed', async (t) => {
  const db = new Database(TRACE, { readonly: true });
  t.teardown(() => db.close());
  const input = sequenceInput(db, 1, { registerSteps: 0 });
  t.same(
    input.bands.map((b) => b.name),
    ['NtCreateFile', 'NtReadFile', 'NtClose', 'NtTerminateProcess'],
  );
  t.equal(input.steps.filter((s) => s.kind === 'sysenter').length, 4);
  const seq = renderSequenceSvg(layoutSequence(input));
  t.equal(wellFormed(seq), null, 'sequence');
  const flame = renderFlameSvg(layoutFlame(flameInput(db, 1)));
  t.equal(wellFormed(flame), null, 'flame');
  t.ok(texts(flame).some((x) => x.startsWith('nt!KiFastCallEntry')), 'flame names KiFastCallEntry');
  const graph = graphInput(db, 1);
  t.ok(graph.edges.some((e) => e.from === 'SharedUserData!SystemCallStub' && e.to === 'nt!KiFastCallEntry' && e.kind === 'sysenter' && e.count === 4), 'graph: 4 sysenters');
  const gsvg = renderGraphSvg(layoutCallGraph(graph));
  t.equal(wellFormed(gsvg), null, 'graph');
  // Readable: no text below 11 px (the root's font-size), none shrunk to fit.
  for (const [what, svg] of [
    ['flame', flame],
    ['graph', gsvg],
  ]) {
    const sizes = [...svg.matchAll(/font-size="([\d.]+)"/g)].map((m) => Number(m[1]));
    t.ok(sizes.length > 0 && Math.min(...sizes) >= 11, `${what}: font sizes ${[...new Set(sizes)].join(', ')} px, none below 11`);
  }
  t.match(flame, /<g (?=[^>]*class="track")(?=[^>]*data-thread="1996")/, 'the flame chart has the program thread\'s track');
  t.ok(texts(flame).some((x) => /^thread 0x7CC \(/.test(x)), 'labelled with the thread id and its process');
});

t.test('text from the trace is escaped; failures are red', async (t) => {
  const input: SequenceInput = {
    title: `title ${HOSTILE}`,
    lanes: [
      { id: 'program', label: HOSTILE, ring: 3 },
      { id: 'nt-service', label: 'SSDT target', ring: 0 },
    ],
    steps: [
      { seq: 1, kind: 'call', from: 'program', to: 'nt-service', label: `call ${HOSTILE}`, detail: { [HOSTILE]: `"${HOSTILE}" & more` }, syscallId: 7 },
      {
        seq: 2,
        kind: 'note',
        from: 'nt-service',
        to: 'nt-service',
        label: 'NtClose: STATUS_INVALID_HANDLE',
        detail: {},
        status: { code: 0xc0000008, name: 'STATUS_INVALID_HANDLE', failed: true },
        syscallId: 7,
      },
    ],
    bands: [
      {
        syscallId: 7,
        name: HOSTILE,
        entry: 'sysenter',
        previousMode: 'UserMode',
        status: { code: 0xc0000008, name: 'STATUS_INVALID_HANDLE', failed: true },
        parentId: null,
        firstSeq: 1,
        lastSeq: 2,
      },
    ],
  };
  const svg = renderSequenceSvg(layoutSequence(input));
  t.equal(wellFormed(svg), null, 'well-formed');
  t.notMatch(svg, /<img/i, 'no element made of a label');
  t.match(svg, '&lt;img src=x onerror=alert(1)&gt;');
  t.ok(texts(svg).includes(HOSTILE), 'shown as text');
  t.match(svg, /class="step note failed"/);
  t.match(svg, new RegExp(`fill="${COLORS.fail}"[^>]*>NtClose: STATUS_INVALID_HANDLE<`), 'the failing status is red');
  t.match(svg, /class="band failed"/);
  const flame = renderFlameSvg(
    layoutFlame({
      title: HOSTILE,
      totalIcount: 10,
      threads: [{ id: 1, label: `thread 1 (${HOSTILE})` }],
      calls: [{ id: 1, parentId: null, depth: 0, threadId: 1, startIcount: 0, endIcount: 10, symbol: HOSTILE, module: HOSTILE, cpl: 3 }],
    }),
  );
  t.equal(wellFormed(flame), null);
  t.notMatch(flame, /<img/i);
  const graph = renderGraphSvg(layoutCallGraph({ title: HOSTILE, nodes: [{ id: HOSTILE, module: 'm', ring: 3 }], edges: [{ from: HOSTILE, to: HOSTILE, count: 2, kind: 'call' }] }));
  t.equal(wellFormed(graph), null);
  t.notMatch(graph, /<img/i);
});

// ---- ntflow flow --------------------------------------------------------------------------

class TestUserError extends Error {}
const userError = (m: string) => new TestUserError(m);
const flow = (file: string, opts: FlowOptions) => flowCommand(file, { progress: false, ...opts }, userError);

t.test('flow writes SVG for each kind, --syscall and --query choose calls', async (t) => {
  const out = join(dir, 'out.svg');
  const r = await flow(TRACE, { output: out, syscall: [2] });
  t.same([r.format, r.kind, r.sessionId], ['svg', 'sequence', 1]);
  t.equal(wellFormed(readFileSync(out, 'utf8')), null);
  t.ok(readFileSync(out, 'utf8').includes('SSDT[0xB7] → nt!NtReadFile'));
  const q = await flow(TRACE, { output: out, query: "SELECT id FROM syscalls WHERE session_id = :session AND name = 'NtClose'" });
  t.ok(readFileSync(out, 'utf8').includes('SSDT[0x19] → nt!NtClose'), '--query chose NtClose');
  t.ok(q.items > 5);
  for (const kind of ['flame', 'graph'] as const) {
    const k = await flow(TRACE, { output: join(dir, `${kind}.svg`), kind });
    t.equal(k.kind, kind);
    t.equal(wellFormed(readFileSync(join(dir, `${kind}.svg`), 'utf8')), null, kind);
  }
  // --kind flame --syscall: that call's frames only, from its entry, as SVG and as a page.
  const whole = await flow(TRACE, { output: join(dir, 'whole.svg'), kind: 'flame' });
  const one = await flow(TRACE, { output: join(dir, 'one.svg'), kind: 'flame', syscall: [2] });
  const oneSvg = readFileSync(join(dir, 'one.svg'), 'utf8');
  t.equal(wellFormed(oneSvg), null, 'flame of one call');
  t.ok(one.items > 3 && one.items < whole.items, `${one.items} of the session's ${whole.items} frames`);
  t.match(oneSvg, /#2 NtReadFile over time/, 'the title names the call');
  t.ok(texts(oneSvg).some((x) => x.startsWith('nt!KiFastCallEntry')), 'its SYSENTER frame');
  t.notOk(texts(oneSvg).some((x) => x.startsWith('ntdll!NtCreateFile')), 'no other call');
  const page = await flow(TRACE, { output: join(dir, 'one.html'), kind: 'flame', syscall: [2] });
  t.same([page.format, page.items], ['html', one.items]);
});

t.test('flow rebuilds missing projections', async (t) => {
  const copy = join(dir, 'noproj.db');
  copyFileSync(TRACE, copy);
  const db = new Database(copy);
  db.exec('DELETE FROM projections; DELETE FROM calls; DELETE FROM syscalls');
  db.close();
  const r = await flow(copy, { output: join(dir, 'noproj.svg') });
  t.ok(r.items > 40, 'drawn after a replay');
});

t.test('flow: bad input is one line naming what was wrong', async (t) => {
  const cases: [string, FlowOptions, RegExp, string?][] = [
    ['unknown syscall', { output: join(dir, 'x.svg'), syscall: [99] }, /^no syscall 99 in session 1 \(its ids run 1 … 4; see --named syscalls\)/],
    ['not a SELECT', { output: join(dir, 'x.svg'), query: 'DELETE FROM syscalls' }, /would change the trace/],
    ['not ids', { output: join(dir, 'x.svg'), query: 'SELECT name FROM syscalls' }, /--query must return syscall ids in its first column/],
    ['no rows', { output: join(dir, 'x.svg'), query: 'SELECT id FROM syscalls WHERE 0' }, /--query returned no syscall ids/],
    ['bad SQL', { output: join(dir, 'x.svg'), query: 'SELEC id' }, /^SQL error/],
    ['extension', { output: join(dir, 'x.png') }, /unknown extension '\.png'; use \.svg or \.html/],
    ['no output', {}, /needs -o/],
    ['missing file', { output: join(dir, 'x.svg') }, /does not exist/, join(dir, 'missing.db')],
    ['graph, unknown syscall', { output: join(dir, 'x.svg'), kind: 'graph', syscall: [99] }, /^no syscall 99 in session 1 \(its ids run 1 … 4; see --named syscalls\)/],
    ['flame, unknown syscall', { output: join(dir, 'x.svg'), kind: 'flame', syscall: [99] }, /^no syscall 99 in session 1 \(its ids run 1 … 4; see --named syscalls\)/],
    ['unknown session', { output: join(dir, 'x.svg'), session: 'nope' }, /no session 'nope'/],
  ];
  for (const [what, opts, re, file] of cases) {
    const e = await flow(file ?? TRACE, opts).then(
      () => null,
      (x: unknown) => x,
    );
    t.ok(e instanceof TestUserError, `${what}: a user error`);
    t.match((e as Error).message, re, what);
    t.notOk((e as Error).message.includes('\n'), `${what}: one line`);
  }
  t.notOk(existsSync(join(dir, 'x.png')));
});

t.test('the CLI: ntflow flow (once wired into bin/cli.ts)', async (t) => {
  const help = run(['flow', '--help']);
  if (help.status !== 0 || !help.stdout.includes('--syscall')) {
    t.pass("'ntflow flow' is not wired into bin/cli.ts yet: flowCommand is tested above");
    return;
  }
  const ok = run(['flow', TRACE, '--syscall', '2', '-o', join(dir, 'cli.svg')]);
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /sequence diagram of session 1/);
  const flame = run(['flow', TRACE, '--kind', 'flame', '--syscall', '2', '-o', join(dir, 'cli-flame.html')]);
  t.equal(flame.status, 0, flame.stderr);
  t.match(flame.stdout, /flame diagram of session 1, \d+ frames/, '--kind flame --syscall works from the command line');
  const graph = run(['flow', TRACE, '--kind', 'graph', '--syscall', '2', '-o', join(dir, 'cli-graph.svg')]);
  t.equal(graph.status, 0, graph.stderr);
  t.match(graph.stdout, /graph diagram of session 1, \d+ functions/, '--kind graph --syscall works from the command line');
  t.match(readFileSync(join(dir, 'cli-graph.svg'), 'utf8'), /#2 \w+: call graph/, "the drawing names the call it is about");
  for (const [args, re] of [
    [['flow', TRACE, '--kind', 'flame', '--syscall', '99', '-o', join(dir, 'cli.svg')], /^ntflow: no syscall 99/],
    [['flow', TRACE, '--kind', 'graph', '--syscall', '99', '-o', join(dir, 'cli.svg')], /^ntflow: no syscall 99/],
    [['flow', TRACE, '--syscall', '99', '-o', join(dir, 'cli.svg')], /^ntflow: no syscall 99/],
    [['flow', TRACE, '--syscall', 'x', '-o', join(dir, 'cli.svg')], /not a syscall reference \(ID or SESSION:ID/],
    [['flow', TRACE, '-o', join(dir, 'cli.txt')], /unknown extension/],
    [['flow', join(dir, 'missing.db'), '-o', join(dir, 'cli.svg')], /does not exist/],
    [['flow', TRACE, '--query', 'DROP TABLE syscalls', '-o', join(dir, 'cli.svg')], /would change the trace/],
  ] as [string[], RegExp][]) {
    const r = run(args);
    t.equal(r.status, 1, `${args.join(' ')}: exit 1`);
    t.match(r.stderr, re);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
});

t.test("a driver's ZwReadFile: the path starts at the driver's call of nt!ZwReadFile and returns to it", async (t) => {
  const file = join(dir, 'zw.db');
  const r = run(['record', 'kernel-zw-readfile', '-o', file]);
  t.equal(r.status, 0, r.stderr);
  ensureProjections(file);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  const id = db.prepare("SELECT id FROM syscalls WHERE name = 'NtReadFile' AND entry = 'zw-kernel'").pluck().get() as number;
  const input = sequenceInput(db, 1, { syscallIds: [id], registerSteps: 0 });
  const arrows = input.steps.filter((s) => s.kind !== 'note');
  t.same(
    input.lanes.map((l) => l.id),
    ['nt-entry', 'nt-service', 'nt-exit', 'nt', 'driver:zw-reader'],
    'ring 0 only, the driver lane after nt',
  );
  t.same([arrows[0].kind, arrows[0].from, arrows[0].to, arrows[0].label], ['call', 'driver:zw-reader', 'nt', 'call nt!ZwReadFile'], "the driver's call opens the band");
  t.same([arrows[1].kind, arrows[1].from, arrows[1].to, arrows[1].label], ['call', 'nt', 'nt-entry', 'call nt!KiSystemService · EAX = 0B7h'], 'then the stub calls KiSystemService');
  const last = arrows.at(-1)!;
  t.same([last.kind, last.from, last.to], ['return', 'nt', 'driver:zw-reader'], 'and the band ends back in the driver');
  t.match(last.label, /^ret → zw-reader!DispatchRead\+0x[0-9a-f]+ · STATUS_SUCCESS$/);
});
