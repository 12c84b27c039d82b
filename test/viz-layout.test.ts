// The pure layouts of viz/layout.ts with exact coordinates on tiny hand-made inputs (issue E §1):
// lanes grouped by ring with a gap between the groups, one row per step and a title row per band,
// collapsed bands as a single row; flame rectangles from icounts; call-graph layers and edge paths.
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

t.test('flame: x from icount, y from depth, slivers left out', async (t) => {
  const input: FlameInput = {
    title: 'flame',
    totalIcount: 100,
    calls: [
      { id: 1, parentId: null, depth: 0, startIcount: 0, endIcount: 100, symbol: 'tiny!start', module: 'tiny', cpl: 3 },
      { id: 2, parentId: 1, depth: 1, startIcount: 10, endIcount: 60, symbol: 'ntdll!NtClose', module: 'ntdll', cpl: 3 },
      { id: 3, parentId: 1, depth: 1, startIcount: 60, endIcount: 60.1, symbol: 'nt!Tiny', module: 'nt', cpl: 0 },
    ],
  };
  const l = layoutFlame(input, { width: 220, margin: 10, headerHeight: 30, rowHeight: 20 });
  t.same(l.rects, [
    { id: 1, x: 10, y: 30, width: 200, height: 19, label: 'tiny!start', module: 'tiny', cpl: 3 },
    { id: 2, x: 30, y: 50, width: 100, height: 19, label: 'ntdll!NtClose', module: 'ntdll', cpl: 3 },
  ]);
  t.same([l.width, l.height, l.title], [220, 80, 'flame']);
});

t.test('call graph: layers from the roots, curves, a loop for recursion, an arc back', async (t) => {
  const input: GraphInput = {
    title: 'graph',
    nodes: [
      { id: 'a', module: 'tiny', ring: 3 },
      { id: 'b', module: 'ntdll', ring: 3 },
      { id: 'c', module: 'nt', ring: 0 },
    ],
    edges: [
      { from: 'a', to: 'b', count: 3, kind: 'call' },
      { from: 'b', to: 'c', count: 1, kind: 'sysenter' },
      { from: 'c', to: 'a', count: 1, kind: 'call' },
      { from: 'b', to: 'b', count: 2, kind: 'call' },
    ],
  };
  const l = layoutCallGraph(input, { nodeWidth: 100, nodeHeight: 20, colGap: 50, rowGap: 10, margin: 10, headerHeight: 30 });
  t.same(
    l.nodes.map((n) => [n.id, n.x, n.y, n.width, n.height]),
    [
      ['a', 10, 30, 100, 20],
      ['b', 160, 30, 100, 20],
      ['c', 310, 30, 100, 20],
    ],
  );
  t.same(
    l.edges.map((e) => [e.from, e.to, e.path, e.labelX, e.labelY]),
    [
      ['a', 'b', 'M110,40C135,40 135,40 160,40', 135, 40],
      ['b', 'c', 'M260,40C285,40 285,40 310,40', 285, 40],
      ['c', 'a', 'M360,50C360,90 60,90 60,50', 210, 80],
      ['b', 'b', 'M260,38C300,22 300,58 260,42', 294, 40],
    ],
  );
  t.same([l.width, l.height], [460, 100]);

  // Two callees of one root share a layer, in input order.
  const fan = layoutCallGraph(
    {
      title: 'fan',
      nodes: [
        { id: 'r', module: 'm', ring: 3 },
        { id: 'x', module: 'm', ring: 3 },
        { id: 'y', module: 'm', ring: 3 },
      ],
      edges: [
        { from: 'r', to: 'y', count: 1, kind: 'call' },
        { from: 'r', to: 'x', count: 1, kind: 'call' },
      ],
    },
    { nodeWidth: 100, nodeHeight: 20, colGap: 50, rowGap: 10, margin: 10, headerHeight: 30 },
  );
  t.same(
    fan.nodes.map((n) => [n.id, n.x, n.y]),
    [
      ['r', 10, 30],
      ['x', 160, 30],
      ['y', 160, 60],
    ],
  );
  t.throws(() => layoutCallGraph({ title: '', nodes: [], edges: [{ from: 'p', to: 'q', count: 1, kind: 'call' }] }), /names a node/);
});
