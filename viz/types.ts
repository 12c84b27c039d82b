// The shapes that flow through viz/: rows from a trace → flow steps → pure layouts (numbers) →
// d3 rendering (SVG in Node, or the self-contained interactive HTML page). Layout is pure and
// tested with exact numbers; rendering only draws what a layout says.

/** Where a step happens: a module lane (program, ntdll, SharedUserData, nt:KiFastCallEntry, …). */
export interface LaneSpec {
  /** Stable id, e.g. 'program', 'ntdll', 'SharedUserData', 'nt-entry', 'nt-service', 'nt-exit', 'driver:osr-log'. */
  id: string;
  /** What the lane header shows: 'user-nt-readfile.exe', 'ntdll', 'KiFastCallEntry / KiSystemService', … */
  label: string;
  /** The privilege level the lane's code runs at. */
  ring: 0 | 3;
}

/** One arrow or note of a sequence diagram, in trace order. */
export interface FlowStep {
  /** The trace event it comes from. */
  seq: number;
  kind: 'call' | 'return' | 'jump' | 'sysenter' | 'sysexit' | 'int' | 'iret' | 'exception' | 'note';
  /** Lane ids; a note has from === to. */
  from: string;
  to: string;
  /** What the arrow says: 'call ntdll!NtReadFile', 'EAX = 0B7h', 'MSR[176] → KiFastCallEntry', 'SSDT[0xB7] → nt!NtReadFile',
   * 'PreviousMode = UserMode', 'APC check: none pending', 'STATUS_INVALID_HANDLE'. */
  label: string;
  /** Shown on hover: registers (from time travel), arguments, status… (already formatted text). */
  detail: Record<string, string>;
  /** A failing NTSTATUS on this step (drawn in red). */
  status?: { code: number; name: string; failed: boolean };
  /** The system call this step belongs to (syscalls.id), for bands and collapsing. */
  syscallId?: number;
  /** The function body this step is inside (calls.id), for collapse/expand. */
  callId?: number;
  /** A finding's note (kind 'note'): drawn by severity, its tooltip the finding's explanation. */
  finding?: FindingNote;
  /** A comparison's note (kind 'note'): where two sessions' paths part or join again (viz/diff-page.ts). */
  diff?: DiffMark;
}

/** Where a note of a two-session comparison sits: a divergence of the paths, or where they join again. */
export interface DiffMark {
  kind: 'diverge' | 'join';
  /** The pair of calls it belongs to (its index in the diff's pairs), or null: outside the paired calls. */
  pair: number | null;
  /** Which of the pair's divergences (0: the first), or of those outside the pairs. */
  index: number;
  /** The diagram it is drawn on: session A's or B's. */
  side: 'a' | 'b';
}

export type FindingSeverity = 'error' | 'warning' | 'info';

/** What a finding's note on the diagram carries (findings row; see analyzer/findings/tables.ts). */
export interface FindingNote {
  /** findings.id */
  id: number;
  /** 'failure-cause', 'handle-leak' or 'hook'. */
  kind: string;
  severity: FindingSeverity;
  /** One line (findings.title). */
  title: string;
  /** The explanation in sentences (findings.detail). */
  detail: string;
}

/** A finding of the session as the diagram lists it beside the drawing. */
export interface SessionFinding extends FindingNote {
  /** findings.cause: the rule that fired. */
  cause: string;
  /** The call it is about (syscalls.id), null when none. */
  syscallId: number | null;
  /** The decisive event (findings.seq). */
  seq: number;
  /** Where its note goes: findings.seq, or for a hook the first event that ran through it (hooks.first_run_seq); null when it has no place (a hook that never ran). */
  noteSeq: number | null;
  /** The seqs that prove it, the decisive one first. */
  evidence: number[];
}

/**
 * Why a band is marked failed: its own call's NTSTATUS is not NT_SUCCESS, or a call inside it
 * failed — nested in it (a driver's call made while serving this one) or run within its events
 * (another thread's call while this one waited).
 */
export interface BandFailure {
  /** The failing call: the band's own, or the first failing call inside it. */
  syscallId: number;
  own: boolean;
  /** The failing status's name (STATUS_ACCESS_VIOLATION). */
  status: string;
  /** The mark the band shows: '✗ STATUS_ACCESS_VIOLATION', or '✗ inside: #5 NtWriteFile → STATUS_ACCESS_VIOLATION'. */
  label: string;
}

/** One system call, a band across the diagram; collapsed it is a single row. */
export interface SyscallBand {
  syscallId: number;
  name: string;
  entry: string;
  previousMode: string;
  status: { code: number; name: string; failed: boolean } | null;
  parentId: number | null;
  firstSeq: number;
  lastSeq: number;
  /** Set when the call failed or a call inside it did (drawn even when the band is collapsed). */
  failure?: BandFailure;
}

export interface SequenceInput {
  title: string;
  lanes: LaneSpec[];
  steps: FlowStep[];
  bands: SyscallBand[];
  /** The findings about the calls drawn (all of them when the whole session is drawn), by id. */
  findings?: SessionFinding[];
  /** What a large session's drawing leaves out and how to see it (viz/elide.ts), a line each; absent when nothing is left out. */
  notice?: string[];
}

// ---- layout output (numbers only) ----------------------------------------------------------

export interface LaidLane extends LaneSpec {
  x: number; // centre line
  width: number;
}

export interface LaidStep extends FlowStep {
  index: number;
  y: number;
  x1: number;
  x2: number;
}

export interface LaidBand extends SyscallBand {
  y0: number;
  y1: number;
}

export interface RingGroup {
  ring: 0 | 3;
  label: string; // 'ring 3 (user mode)', 'ring 0 (kernel mode)'
  x0: number;
  x1: number;
}

export interface SequenceLayout {
  title: string;
  width: number;
  height: number;
  headerHeight: number;
  rowHeight: number;
  lanes: LaidLane[];
  rings: RingGroup[];
  steps: LaidStep[];
  bands: LaidBand[];
  /** The input's findings, each with the step that draws its note. */
  findings: LaidFinding[];
  /** Space left where the other diagram of a comparison has rows this one lacks (viz/diff-layout.ts). */
  gaps?: LaidGap[];
  /** The input's notice: what was aggregated or elided, drawn above the diagram. */
  notice?: string[];
}

/** A gap in one diagram of a comparison: rows the other diagram has here (a call only there, a longer path). */
export interface LaidGap {
  y0: number;
  y1: number;
  /** What the other side has there: 'only in B: #1 NtCreateFile', 'B: 5 more steps'. */
  label: string;
  /** The calls only on the other side that the gap stands for (syscalls.id there). */
  others: number[];
}

export interface LaidFinding extends SessionFinding {
  /** The index of its note in `steps`; null when not drawn (not in the calls drawn, or inside a collapsed band). */
  stepIndex: number | null;
}

/** Flame chart: one rectangle per call (calls projection), x = icount, y = depth on its thread's track. */
export interface FlameCall {
  id: number;
  parentId: number | null;
  /** Depth on its thread's track, 0 the track's top row. */
  depth: number;
  threadId: number;
  startIcount: number;
  endIcount: number;
  symbol: string;
  module: string;
  cpl: 0 | 3;
  /** Set when the frame is a failed system call's own frame (own) or runs inside one. */
  failure?: FlameFailure;
}
export interface FlameFailure {
  syscallId: number;
  /** The service's Nt name. */
  name: string;
  /** STATUS_… of the call. */
  status: string;
  /** The call's own frame (true) or a frame inside it. */
  own: boolean;
}
export interface FlameThread {
  id: number;
  /** "thread 0x7CC (osr-log-user.exe)". */
  label: string;
}
export interface FlameInput {
  title: string;
  /** The tracks, top to bottom. */
  threads: FlameThread[];
  calls: FlameCall[];
  /** The x axis runs from fromIcount (default 0) to totalIcount. */
  fromIcount?: number;
  totalIcount: number;
}
export interface FlameRect {
  id: number;
  threadId: number;
  x: number;
  y: number;
  width: number;
  height: number;
  label: string;
  module: string;
  cpl: 0 | 3;
  failure?: FlameFailure;
}
/** A thread's horizontal band: its label row from y0, its frames below, down to y1. */
export interface FlameTrack {
  threadId: number;
  label: string;
  y0: number;
  y1: number;
}
export interface FlameLayout {
  title: string;
  width: number;
  height: number;
  /** Where x = fromIcount is drawn, and pixels per instruction: the axis the tracks share. */
  x0: number;
  scale: number;
  fromIcount: number;
  totalIcount: number;
  tracks: FlameTrack[];
  rects: FlameRect[];
}

/** Aggregated call graph: nodes are functions, edges how often each call ran. */
export interface GraphInput {
  title: string;
  edges: { from: string; to: string; count: number; kind: FlowStep['kind'] }[];
  nodes: GraphNode[];
}
export interface GraphNode {
  id: string;
  module: string;
  ring: 0 | 3;
  /** Failed system calls whose service routine this is, by status. */
  failed?: { status: string; count: number }[];
}
export interface GraphLayout {
  title: string;
  width: number;
  height: number;
  /** x, y: a node's top-left corner. */
  nodes: (GraphNode & { x: number; y: number; width: number; height: number })[];
  /**
   * An edge's polyline (dagre's points, the first on the caller's border, the last on the
   * callee's), its path (a basis curve through them) and its label's box (x, y its top-left).
   */
  edges: {
    from: string;
    to: string;
    count: number;
    kind: FlowStep['kind'];
    points: { x: number; y: number }[];
    path: string;
    label: string;
    labelBox: { x: number; y: number; width: number; height: number };
  }[];
}
