// The flame chart and the call graph of real sessions, checked geometrically (issue I §2): in the
// call graph of osr-log-user-handle and user-apc no edge's polyline crosses a node other than its
// own two, no edge label overlaps a node or another label, everything lies inside the drawing; in the flame chart
// each thread has its own track, the tracks' y ranges are disjoint, every frame lies inside its
// track, a work item lines up in time with the wait it ran in, and failed calls are marked.
//   npx tsc -p tsconfig.json && npx tap dist/test/viz-charts-geometry.test.js
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { record } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';
import { flameInput, graphInput, layoutCallGraph, layoutFlame, type FlameLayout, type GraphLayout } from '../viz/index.js';

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}
interface Point {
  x: number;
  y: number;
}

/** Whether the segment a–b passes through the box's interior (the box shrunk by eps: touching a border is not crossing). */
function crossesInterior(a: Point, b: Point, box: Box, eps = 0.5): boolean {
  const [x0, x1, y0, y1] = [box.x + eps, box.x + box.width - eps, box.y + eps, box.y + box.height - eps];
  // Liang–Barsky: clip the segment to the box; a piece of positive length left means it crosses.
  let t0 = 0;
  let t1 = 1;
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  for (const [p, q] of [
    [-dx, a.x - x0],
    [dx, x1 - a.x],
    [-dy, a.y - y0],
    [dy, y1 - a.y],
  ]) {
    if (p === 0) {
      if (q < 0) return false;
      continue;
    }
    const r = q / p;
    if (p < 0) t0 = Math.max(t0, r);
    else t1 = Math.min(t1, r);
    if (t0 > t1) return false;
  }
  return t1 - t0 > 1e-9;
}

const overlaps = (a: Box, b: Box) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
const inside = (a: Box, w: number, h: number) => a.x >= 0 && a.y >= 0 && a.x + a.width <= w && a.y + a.height <= h;

function checkGraph(t: Test, name: string, l: GraphLayout): void {
  const crossings: string[] = [];
  const labelOnNode: string[] = [];
  for (const e of l.edges) {
    for (const n of l.nodes) {
      if (n.id === e.from || n.id === e.to) continue;
      for (let i = 1; i < e.points.length; i++) if (crossesInterior(e.points[i - 1], e.points[i], n)) crossings.push(`${e.from} → ${e.to} crosses ${n.id}`);
    }
    for (const n of l.nodes) if (overlaps(e.labelBox, n)) labelOnNode.push(`label ${e.label} of ${e.from} → ${e.to} on ${n.id}`);
  }
  t.same(crossings, [], `${name}: no edge runs through a node (${l.edges.length} edges, ${l.nodes.length} nodes)`);
  t.same(labelOnNode, [], `${name}: no edge label overlaps a node`);
  const labelsOverlap = l.edges.flatMap((a, i) => l.edges.slice(i + 1).filter((b) => overlaps(a.labelBox, b.labelBox)).map((b) => `${a.label} / ${b.label}`));
  t.same(labelsOverlap, [], `${name}: edge labels do not overlap each other`);
  const nodeOverlaps = l.nodes.flatMap((a, i) => l.nodes.slice(i + 1).filter((b) => overlaps(a, b)).map((b) => `${a.id} / ${b.id}`));
  t.same(nodeOverlaps, [], `${name}: nodes do not overlap`);
  const outside = [...l.nodes.filter((n) => !inside(n, l.width, l.height)).map((n) => n.id), ...l.edges.filter((e) => !inside(e.labelBox, l.width, l.height)).map((e) => e.label)];
  t.same(outside, [], `${name}: nodes and labels inside the ${l.width} × ${l.height} drawing`);
  // Each label sits beside its own edge: one of the edge's points within 12 px of the label's box.
  const distance = (p: Point, b: Box) => Math.hypot(Math.max(b.x - p.x, 0, p.x - b.x - b.width), Math.max(b.y - p.y, 0, p.y - b.y - b.height));
  const far = l.edges.filter((e) => !e.points.some((p) => distance(p, e.labelBox) <= 12));
  t.same(
    far.map((e) => `${e.from} → ${e.to}`),
    [],
    `${name}: each label next to its edge`,
  );
}

function checkFlame(t: Test, name: string, l: FlameLayout): void {
  const tracks = [...l.tracks].sort((a, b) => a.y0 - b.y0);
  for (let i = 1; i < tracks.length; i++) t.ok(tracks[i - 1].y1 <= tracks[i].y0, `${name}: ${tracks[i - 1].label} ends before ${tracks[i].label} starts`);
  const track = new Map(l.tracks.map((x) => [x.threadId, x]));
  const strays = l.rects.filter((r) => {
    const tr = track.get(r.threadId);
    return !tr || r.y < tr.y0 || r.y + r.height > tr.y1 || r.x < l.x0 - 0.01 || r.x + r.width > l.width - l.x0 + 0.01;
  });
  t.same(
    strays.map((r) => `${r.label} #${r.id}`),
    [],
    `${name}: each of ${l.rects.length} frames inside its thread's track`,
  );
  t.ok(l.height >= tracks[tracks.length - 1].y1, `${name}: the drawing holds the last track`);
}

const dir = mkdtempSync(join(tmpdir(), 'ntflow-charts-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function trace(scenario: string): Promise<Database.Database> {
  const file = join(dir, `${scenario}.db`);
  await record({ scenario }, { output: file });
  replayFile(file);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  return db;
}

t.test('osr-log-user-handle: a track per thread, the work item under the wait, failures marked', async (t) => {
  const db = await trace('osr-log-user-handle');
  const input = flameInput(db, 1);
  const l = layoutFlame(input);
  t.same(
    l.tracks.map((x) => x.label),
    ['thread 0x7CC (osr-log-user.exe)', 'thread 8 (System)'],
    'the program thread, then the System thread (DriverEntry, then the work item)',
  );
  checkFlame(t, 'flame', l);

  const wait = l.rects.find((r) => r.threadId === 1996 && r.label === 'nt!NtDelayExecution')!;
  const work = l.rects.find((r) => r.threadId === 8 && r.label.endsWith('!WorkItemRoutine'))!;
  t.ok(wait && work, 'the wait and the work item are drawn');
  t.ok(work.x >= wait.x && work.x + work.width <= wait.x + wait.width, `the work item (x ${work.x}–${work.x + work.width}) lies inside NtDelayExecution (x ${wait.x}–${wait.x + wait.width})`);

  // The failed calls: NtWriteFile called directly (program thread, in NtReadFile; System thread)
  // and through ZwWriteFile (System thread: its KiSystemService frame).
  const own = l.rects.filter((r) => r.failure?.own).map((r) => [r.threadId, r.label, r.failure!.status]);
  t.same(own, [
    [1996, 'nt!NtWriteFile', 'STATUS_ACCESS_VIOLATION'],
    [8, 'nt!NtWriteFile', 'STATUS_INVALID_HANDLE'],
    [8, 'nt!KiSystemService', 'STATUS_INVALID_HANDLE'],
  ]);
  const inner = l.rects.filter((r) => r.failure && !r.failure.own);
  t.ok(inner.length >= 1 && inner.every((r) => r.failure!.syscallId === 9), 'the frame inside the failed ZwWriteFile is marked too');
  t.notOk(
    l.rects.some((r) => r.label === 'nt!NtReadFile' && r.failure),
    'NtReadFile succeeded: not marked, though a failed call ran inside it',
  );

  // --syscall: NtDelayExecution alone holds the work item the System thread ran meanwhile.
  const delay = db.prepare("SELECT id FROM syscalls WHERE session_id = 1 AND name = 'NtDelayExecution'").pluck().get() as number;
  const one = layoutFlame(flameInput(db, 1, { syscallIds: [delay] }));
  checkFlame(t, 'flame of NtDelayExecution', one);
  t.same(
    one.tracks.map((x) => x.label),
    ['thread 0x7CC (osr-log-user.exe)', 'thread 8 (System)'],
  );
  t.equal(one.rects.filter((r) => r.threadId === 1996)[0].label, 'nt!KiFastCallEntry', "the call's own frame is its track's first");
  t.ok(
    one.rects.some((r) => r.threadId === 8 && r.label.endsWith('!WorkItemRoutine')),
    'the work item run inside it',
  );
  t.throws(() => flameInput(db, 1, { syscallIds: [99] }), /no syscall 99 in session 1/);

  const graph = graphInput(db, 1);
  const write = graph.nodes.find((n) => n.id === 'nt!NtWriteFile')!;
  t.same(write.failed, [
    { status: 'STATUS_ACCESS_VIOLATION', count: 1 },
    { status: 'STATUS_INVALID_HANDLE', count: 2 },
  ]);
  t.same(
    graph.nodes.filter((n) => n.failed).map((n) => n.id),
    ['nt!NtWriteFile'],
    'only the failed service routine is marked',
  );
  checkGraph(t, 'graph', layoutCallGraph(graph));

  // --kind graph --syscall: the calls made inside NtDelayExecution — its own path and the work item
  // the System thread ran meanwhile, with the failed writes the work item made — and nothing else.
  const inDelay = graphInput(db, 1, { syscallIds: [delay] });
  const ids = inDelay.nodes.map((n) => n.id);
  t.equal(ids[0], 'nt!KiFastCallEntry', "the call's own frame is the first node");
  t.ok(ids.includes('nt!NtDelayExecution') && ids.some((id) => id.endsWith('!WorkItemRoutine')), 'its service routine and the work item');
  t.notOk(ids.includes('ntdll!NtDelayExecution') || ids.includes('nt!NtReadFile') || ids.includes('nt!NtCreateFile'), 'not the caller above it, nor the other calls');
  t.notOk(inDelay.edges.some((e) => e.to === 'nt!KiFastCallEntry'), 'no edge into the chosen call (its caller is not drawn)');
  const failedInside = db
    .prepare("SELECT status_name FROM syscalls WHERE session_id = 1 AND thread_id = 8 AND status >= 3221225472 AND enter_seq > (SELECT enter_seq FROM syscalls WHERE session_id = 1 AND id = ?) AND exit_seq < (SELECT exit_seq FROM syscalls WHERE session_id = 1 AND id = ?)")
    .pluck()
    .all(delay, delay) as string[];
  t.ok(failedInside.length >= 1, 'the work item made failed calls while the program waited');
  t.same(
    inDelay.nodes.find((n) => n.id === 'nt!NtWriteFile')?.failed,
    [{ status: 'STATUS_INVALID_HANDLE', count: failedInside.length }],
    "only the failures inside the wait mark NtWriteFile (the program's own access violation is outside it)",
  );
  t.match(inDelay.title, /#\d+ NtDelayExecution: call graph/);
  checkGraph(t, 'graph of NtDelayExecution', layoutCallGraph(inDelay));
  t.throws(() => graphInput(db, 1, { syscallIds: [99] }), /no syscall 99 in session 1/);
});

t.test('user-apc: one thread, no failures; the call graph is clean', async (t) => {
  const db = await trace('user-apc');
  const l = layoutFlame(flameInput(db, 1));
  t.same(
    l.tracks.map((x) => x.label),
    ['thread 0x7CC (user-apc.exe)'],
  );
  checkFlame(t, 'flame', l);
  t.notOk(l.rects.some((r) => r.failure), 'nothing failed');
  const graph = graphInput(db, 1);
  t.notOk(graph.nodes.some((n) => n.failed));
  checkGraph(t, 'graph', layoutCallGraph(graph));
});
