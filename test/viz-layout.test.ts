// The pure layouts of viz/layout.ts with exact coordinates on tiny hand-made inputs (issue E §1):
// lanes grouped by ring with a gap between the groups, one row per step and a title row per band,
// collapsed bands as a single row; flame rectangles from icounts on a track per thread; the call
// graph laid out by dagre (node sizes, edge points, label boxes).
// Since issue 13 a sequence diagram has no fixed lane pitch: each lane is as wide as its header
// label (between laneWidth and maxLaneWidth), the gap between two lanes as wide as the labels of
// the arrows between them, and the drawing as wide as the notes and band titles reach (widths
// estimated by textWidth from DejaVu Sans's character widths) — the numbers below are worked out
// from those rules in the comments.
//   npx tsc -p tsconfig.json && npx tap dist/test/viz-layout.test.js
import t from 'tap';
import { layoutCallGraph, layoutFlame, layoutSequence, textWidth } from '../viz/layout.js';
import type { FlameInput, GraphInput, SequenceInput } from '../viz/types.js';

const SEQ: SequenceInput = {
  title: 'tiny',
  lanes: [
    { id: 'program', label: 'tiny.exe', ring: 3 },
    { id: 'ntdll', label: 'ntdll', ring: 3 },
    { id: 'nt-entry', label: 'KiFastCallEntry / KiSystemService', ring: 0 },
  ],
  steps: [
    { seq: 10, kind: 'call', from: 'program', to: 'ntdll', label: 'call ntdll!NtClose', detail: {}, syscallId: 1 },
    { seq: 12, kind: 'sysenter', from: 'ntdll', to: 'nt-entry', label: 'sysenter', detail: {}, syscallId: 1 },
    { seq: 14, kind: 'note', from: 'nt-entry', to: 'nt-entry', label: 'PreviousMode = UserMode', detail: {}, syscallId: 1 },
    { seq: 20, kind: 'return', from: 'ntdll', to: 'program', label: 'ret', detail: {} },
  ],
  bands: [
    {
      syscallId: 1,
      name: 'NtClose',
      entry: 'sysenter',
      previousMode: 'UserMode',
      status: { code: 0xc0000008, name: 'STATUS_INVALID_HANDLE', failed: true },
      parentId: null,
      firstSeq: 10,
      lastSeq: 16,
    },
  ],
};
const SEQ_OPTS = { laneWidth: 100, ringGap: 20, margin: 10, headerHeight: 50, rowHeight: 20 };

t.test('sequence: lanes by ring, a title row per band, one row per step', async (t) => {
  const l = layoutSequence(SEQ, SEQ_OPTS);
  // The header labels, 11 px bold: 'tiny.exe' 51 px, 'ntdll' 29 px, 'KiFastCallEntry / KiSystemService' 219 px.
  t.same(
    ['tiny.exe', 'ntdll', 'KiFastCallEntry / KiSystemService'].map((x) => textWidth(x, 11, true)),
    [51, 29, 219],
  );
  // Lane widths: label + 16, at least laneWidth (100), at most maxLaneWidth (200): 100, 100, 200.
  // Centres: program at margin + 50 = 60. program → ntdll: half of each lane (100), but the label
  // 'call ntdll!NtClose' (104 px) + 24 for the arrowhead needs 128: ntdll at 188. ntdll → nt-entry:
  // 50 + 100 + ringGap 20 = 170 (more than 'sysenter' needs, 57 + 24): nt-entry at 358.
  t.same(
    l.lanes.map((x) => [x.id, x.x, x.width, x.ring]),
    [
      ['program', 60, 100, 3],
      ['ntdll', 188, 100, 3],
      ['nt-entry', 358, 200, 0],
    ],
  );
  // The groups meet in the middle of the ring change's gap ((188 + 358) / 2 = 273), ringGap apart.
  t.same(l.rings, [
    { ring: 3, label: 'ring 3 (user mode)', x0: 10, x1: 263 },
    { ring: 0, label: 'ring 0 (kernel mode)', x0: 283, x1: 458 },
  ]);
  t.same(
    l.steps.map((s) => [s.index, s.seq, s.y, s.x1, s.x2]),
    [
      [0, 10, 80, 60, 188],
      [1, 12, 100, 188, 358],
      [2, 14, 120, 358, 358],
      [3, 20, 140, 188, 60],
    ],
  );
  t.same(
    l.bands.map((b) => [b.syscallId, b.y0, b.y1]),
    [[1, 50, 130]],
  );
  // Width: the band's title ('▾ #1 · NtClose · sysenter · UserMode · STATUS_INVALID_HANDLE  (3 steps)',
  // 533 px bold) from the margin reaches 543, past the note (358 + 8 + 157 = 523) and the ring 0
  // group (458); + margin = 553.
  t.equal(textWidth('▾ #1 · NtClose · sysenter · UserMode · STATUS_INVALID_HANDLE  (3 steps)', 11.5, true), 533);
  t.same([l.width, l.height, l.headerHeight, l.rowHeight, l.title], [553, 160, 50, 20, 'tiny']);
  t.equal(l.steps[1].label, 'sysenter', 'steps keep their fields');
});

t.test('sequence: a collapsed band is one summary row, with no title row', async (t) => {
  const l = layoutSequence(SEQ, { ...SEQ_OPTS, collapsed: [1] });
  // The summary arrow program → nt-entry says 'NtClose → STATUS_INVALID_HANDLE (3 steps collapsed)'
  // (385 px bold) and needs 409 over two gaps of 100 + 170 = 270: each gets half of the 139 missing
  // (rounded up: 170, 240), so ntdll is at 230 and nt-entry at 470.
  t.same(
    l.steps.map((s) => [s.index, s.seq, s.kind, s.from, s.to, s.y, s.x1, s.x2, s.syscallId ?? null]),
    [
      [0, 10, 'call', 'program', 'nt-entry', 60, 60, 470, 1],
      [1, 20, 'return', 'ntdll', 'program', 80, 230, 60, null],
    ],
  );
  t.equal(l.steps[0].label, 'NtClose → STATUS_INVALID_HANDLE (3 steps collapsed)');
  t.same(l.steps[0].status, { code: 0xc0000008, name: 'STATUS_INVALID_HANDLE', failed: true });
  t.same(
    l.bands.map((b) => [b.y0, b.y1]),
    [[50, 70]],
  );
  t.equal(l.height, 100);
});

t.test('sequence: a long arrow label widens only the gaps it spans; a long note adds at most maxLabelWidth', async (t) => {
  const input: SequenceInput = {
    title: 'wide',
    lanes: [
      { id: 'a', label: 'a', ring: 3 },
      { id: 'b', label: 'b', ring: 3 },
      { id: 'c', label: 'c', ring: 3 },
      { id: 'd', label: 'd', ring: 3 },
    ],
    steps: [
      // 'x' × 50 = 50 × 0.62 em × 11.5 px = 357 px (+ 24) over a → c: the two gaps of 100 get 90.5 more each (191, rounded up).
      { seq: 1, kind: 'call', from: 'a', to: 'c', label: 'x'.repeat(50), detail: {} },
      // A note of 'x' × 200 (1,426 px) on d adds 8 + 100 = 108 at most (maxLabelWidth 100).
      { seq: 2, kind: 'note', from: 'd', to: 'd', label: 'x'.repeat(200), detail: {} },
    ],
    bands: [],
  };
  t.equal(textWidth('x'.repeat(50)), 357);
  const l = layoutSequence(input, { laneWidth: 100, margin: 10, maxLabelWidth: 100 });
  t.same(
    l.lanes.map((x) => x.x),
    [60, 251, 442, 542],
    'a → b and b → c widened to 191 each, c → d stays at 100',
  );
  t.equal(l.width, 542 + 100 + 10, 'the note reaches lane d + maxLabelWidth, then the margin');
  // A header label longer than maxLaneWidth keeps the lane at that width (the header wraps it).
  const long = layoutSequence({ ...input, lanes: input.lanes.map((x) => (x.id === 'a' ? { ...x, label: 'K'.repeat(60) } : x)) }, { laneWidth: 100, maxLaneWidth: 180 });
  t.equal(long.lanes[0].width, 180);
});

t.test('sequence: defaults, and a step on an unknown lane is a clear error', async (t) => {
  const l = layoutSequence(SEQ);
  // Defaults: lanes at least 120 wide, margin 20, ringGap 24. program at 20 + 60 = 80; ntdll 128
  // further ('call ntdll!NtClose' needs more than the lanes' 120); nt-entry 60 + 100 + 24 = 184 further.
  t.same(
    l.lanes.map((x) => [x.x, x.width]),
    [
      [80, 120],
      [208, 120],
      [392, 200],
    ],
  );
  // Width: the note reaches 392 + 8 + 157 = 557 (past the band title's 20 + 533), + margin 20.
  t.same([l.width, l.height, l.headerHeight, l.rowHeight], [577, 228, 88, 24]);
  t.same(layoutSequence(SEQ), l, 'deterministic');
  t.throws(
    () => layoutSequence({ ...SEQ, steps: [{ seq: 1, kind: 'call', from: 'program', to: 'nowhere', label: '', detail: {} }] }),
    /lane 'nowhere'/,
  );
});

t.test('flame: a track per thread, x from icount shared by the tracks, y from depth, slivers left out', async (t) => {
  const input: FlameInput = {
    title: 'flame',
    totalIcount: 100,
    threads: [
      { id: 1996, label: 'thread 0x7CC (tiny.exe)' },
      { id: 8, label: 'thread 8 (System)' },
    ],
    calls: [
      { id: 1, parentId: null, depth: 0, threadId: 1996, startIcount: 0, endIcount: 100, symbol: 'tiny!start', module: 'tiny', cpl: 3 },
      { id: 2, parentId: 1, depth: 1, threadId: 1996, startIcount: 10, endIcount: 60, symbol: 'nt!NtDelayExecution', module: 'nt', cpl: 0 },
      { id: 3, parentId: 1, depth: 1, threadId: 1996, startIcount: 60, endIcount: 60.1, symbol: 'nt!Tiny', module: 'nt', cpl: 0 },
      // A work item on the System thread, run while thread 0x7CC waits in NtDelayExecution.
      { id: 4, parentId: null, depth: 0, threadId: 8, startIcount: 20, endIcount: 50, symbol: 'drv!WorkItem', module: 'drv', cpl: 0 },
      {
        id: 5,
        parentId: 4,
        depth: 1,
        threadId: 8,
        startIcount: 30,
        endIcount: 40,
        symbol: 'nt!NtWriteFile',
        module: 'nt',
        cpl: 0,
        failure: { syscallId: 3, name: 'NtWriteFile', status: 'STATUS_INVALID_HANDLE', own: true },
      },
    ],
  };
  const l = layoutFlame(input, { width: 220, margin: 10, headerHeight: 30, rowHeight: 20, trackLabelHeight: 16, trackGap: 10 });
  t.same(l.tracks, [
    { threadId: 1996, label: 'thread 0x7CC (tiny.exe)', y0: 30, y1: 86 },
    { threadId: 8, label: 'thread 8 (System)', y0: 96, y1: 152 },
  ]);
  t.same(l.rects, [
    { id: 1, threadId: 1996, x: 10, y: 46, width: 200, height: 19, label: 'tiny!start', module: 'tiny', cpl: 3 },
    { id: 2, threadId: 1996, x: 30, y: 66, width: 100, height: 19, label: 'nt!NtDelayExecution', module: 'nt', cpl: 0 },
    { id: 4, threadId: 8, x: 50, y: 112, width: 60, height: 19, label: 'drv!WorkItem', module: 'drv', cpl: 0 },
    {
      id: 5,
      threadId: 8,
      x: 70,
      y: 132,
      width: 20,
      height: 19,
      label: 'nt!NtWriteFile',
      module: 'nt',
      cpl: 0,
      failure: { syscallId: 3, name: 'NtWriteFile', status: 'STATUS_INVALID_HANDLE', own: true },
    },
  ]);
  t.same([l.width, l.height, l.title, l.x0, l.scale, l.fromIcount, l.totalIcount], [220, 162, 'flame', 10, 2, 0, 100]);
  // The work item lies inside the wait it ran in, on the shared x axis.
  const wait = l.rects.find((r) => r.id === 2)!;
  const work = l.rects.find((r) => r.id === 4)!;
  t.ok(work.x >= wait.x && work.x + work.width <= wait.x + wait.width, 'the work item lines up inside NtDelayExecution');

  // fromIcount: the axis starts there (a --syscall chart); a thread not in threads gets a track anyway.
  const part = layoutFlame(
    { title: 'part', fromIcount: 50, totalIcount: 150, threads: [], calls: [{ ...input.calls[0], threadId: 5, startIcount: 50, endIcount: 100 }] },
    { width: 220, margin: 10, headerHeight: 30, rowHeight: 20, trackLabelHeight: 16 },
  );
  t.same(part.tracks, [{ threadId: 5, label: 'thread 5', y0: 30, y1: 66 }]);
  t.same([part.rects[0].x, part.rects[0].width], [10, 100]);
});

t.test('call graph: dagre, top to bottom; nodes sized to their labels, labels beside the lines, a loop for recursion', async (t) => {
  const input: GraphInput = {
    title: 'graph',
    nodes: [
      { id: 'a', module: 'tiny', ring: 3 },
      { id: 'b', module: 'ntdll', ring: 3 },
      { id: 'c', module: 'nt', ring: 0, failed: [{ status: 'STATUS_X', count: 2 }] },
    ],
    edges: [
      { from: 'a', to: 'b', count: 3, kind: 'call' },
      { from: 'b', to: 'c', count: 1, kind: 'sysenter' },
      { from: 'c', to: 'a', count: 1, kind: 'call' },
      { from: 'b', to: 'b', count: 2, kind: 'call' },
    ],
  };
  const l = layoutCallGraph(input, { margin: 10, headerHeight: 30 });
  // Widths: the label's width in DejaVu Sans at 11 px + 20, at least 60; the failed node is as wide
  // as '✗ STATUS_X ×2' and 16 px taller.
  t.same(
    l.nodes.map((n) => [n.id, n.x, n.y, n.width, n.height]),
    [
      ['a', 82, 30, 60, 28],
      ['b', 153, 118, 60, 28],
      ['c', 53.5, 206, 117, 44],
    ],
  );
  t.same(textWidth('×3', 11), Math.ceil((0.9 + 0.64) * 11), 'a count label: × (beyond ASCII) and a digit');
  const box = (x: number, y: number, width: number) => ({ x, y, width, height: 16 });
  t.same(
    l.edges.map((e) => [e.from, e.to, e.label, e.points.map((p) => [p.x, p.y]), e.labelBox]),
    [
      // Each label 6 px right of where dagre put the edge's label point, the line on its left.
      ['a', 'b', '×3', [[134, 58], [183, 88], [183, 118]], box(189, 80, 25)],
      ['b', 'c', 'sysenter ×1', [[183, 146], [183, 176], [162.5, 206]], box(189, 168, 78)],
      ['c', 'a', '×1', [[61.5, 206], [41, 176], [41, 132], [41, 88], [90, 58]], box(47, 124, 25)],
      // b calls itself: a loop on its right, the label beyond it.
      ['b', 'b', '×2', [[213, 125], [239, 118], [239, 146], [213, 139]], box(243, 124, 25)],
    ],
  );
  // The path is d3's basis curve through the points: it starts and ends where the polyline does.
  t.equal(l.edges[0].path, 'M134,58L142.17,63C150.33,68,166.67,78,174.83,88C183,98,183,108,183,113L183,118');
  for (const e of l.edges) {
    const [first, last] = [e.points[0], e.points[e.points.length - 1]];
    t.match(e.path, new RegExp(`^M${first.x},${first.y}.*L${last.x},${last.y}$`), `${e.from} → ${e.to}: the curve runs from the first point to the last`);
  }
  t.same([l.width, l.height], [320, 260]);
  // The edges end on their nodes' borders: leaving through the bottom and entering through the
  // top (or the reverse for a call back up), never through a side into the nodes beside them.
  const node = new Map(l.nodes.map((n) => [n.id, n]));
  const onBorder = (p: { x: number; y: number }, id: string) => {
    const n = node.get(id)!;
    const eps = 0.02;
    const inside = p.x >= n.x - eps && p.x <= n.x + n.width + eps && p.y >= n.y - eps && p.y <= n.y + n.height + eps;
    const edge = Math.abs(p.x - n.x) < eps || Math.abs(p.x - n.x - n.width) < eps || Math.abs(p.y - n.y) < eps || Math.abs(p.y - n.y - n.height) < eps;
    return inside && edge;
  };
  for (const e of l.edges) t.ok(onBorder(e.points[0], e.from) && onBorder(e.points[e.points.length - 1], e.to), `${e.from} → ${e.to} ends on the borders`);

  t.throws(() => layoutCallGraph({ title: '', nodes: [], edges: [{ from: 'p', to: 'q', count: 1, kind: 'call' }] }), /names a node/);
  t.same(layoutCallGraph(input, { margin: 10, headerHeight: 30 }), l, 'the same input, the same numbers');
  const empty = layoutCallGraph({ title: 'empty', nodes: [], edges: [] }, { margin: 10, headerHeight: 30 });
  t.same([empty.width, empty.height, empty.nodes, empty.edges], [320, 40, [], []], 'no calls: an empty drawing of finite size');
});
