// The sequence diagram as Mermaid `sequenceDiagram` text: the same lanes, steps and bands that
// viz/svg.ts draws, for a renderer we do not control (GitHub, GitLab, mermaid.live, a wiki).
// Three things Mermaid imposes shape this file:
// - its lexer ends a message at `#` or `;` and reads `%%{…}%%` anywhere as configuration, so
//   every text from the trace goes through mermaidText (Mermaid's own `#…;` entity codes);
// - `deactivate` on a participant with no open activation is a parse error, so activations are
//   only drawn for arrow pairs matched beforehand (an entering arrow and its return);
// - a text over maxTextSize (50,000 characters by default) renders as an error message instead
//   of the diagram, so a large session is elided level by level until it fits, and a note says
//   what was left out.
import { SEVERITY_MARKS } from './findings.js';
import type { FlowStep, LaneSpec, SequenceInput, SyscallBand } from './types.js';

/** Mermaid's default maxTextSize (mermaidAPI.ts): a longer text renders as an error message. */
export const MERMAID_MAX_TEXT = 50_000;

export interface MermaidOptions {
  /** The largest text to produce (default MERMAID_MAX_TEXT); a larger diagram is elided. */
  maxChars?: number;
}

export interface MermaidDiagram {
  text: string;
  /** Messages drawn: arrows and notes. */
  items: number;
  /** What was left out to stay under maxChars, one sentence each; empty when nothing was. */
  notes: string[];
}

// Named colours: Mermaid reads a box's colour with a greedy `rgb(…)` match that would swallow
// the parenthesised title, and `#rrggbb` starts a comment. aliceblue and linen are the SVG
// diagram's ring tints (COLORS.ring3 / ring0) as near as CSS names get.
const BOX = { 3: 'box aliceblue Ring 3 (user mode)', 0: 'box linen Ring 0 (kernel mode)' } as const;
/** Around the ring-0 part of each path: COLORS.ring0Box, translucent so the notes stay legible. */
const RING0_RECT = 'rect rgba(248, 217, 187, 0.35)';
/** Longest label kept whole: a hostile or huge name must not eat the character budget. */
const MAX_LABEL = 160;

const ENTITIES: Record<string, string> = {
  '#': '#35;',
  ';': '#59;',
  '<': '#lt;',
  '>': '#gt;',
  '"': '#quot;',
  '%': '#37;',
  '&': '#amp;',
  '`': '#96;',
  '{': '#123;',
  '}': '#125;',
  '\\': '#92;',
};

/**
 * Text from the trace made inert for Mermaid: one line, and the characters its lexer or its
 * entity pre-pass would read as syntax written as Mermaid entity codes (`#lt;`, `#59;` …), which
 * it turns back into the characters when it draws them as text. Also neutralised: the bare word
 * `end` (closes a block), `style`/`classDef` (Mermaid's pre-pass drops a `;` after them, breaking
 * the next entity) and a leading `wrap`/`nowrap` (a message's wrapping flag).
 */
export function mermaidText(raw: string): string {
  let s = raw.replace(/[\r\n\u2028\u2029]+/g, ' ').replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
  if (s.length > MAX_LABEL) s = `${s.slice(0, MAX_LABEL - 1)}…`;
  s = s.replace(/[#;<>"%&`{}\\]/g, (c) => ENTITIES[c]);
  s = s.replace(/\bend\b/gi, (w) => `#${w.charCodeAt(0)};${w.slice(1)}`);
  s = s.replace(/style|classDef/g, (w) => `${w.slice(0, 2)}#${w.charCodeAt(2)};${w.slice(3)}`);
  s = s.replace(/^(no)?wrap/i, (w) => `#${w.charCodeAt(0)};${w.slice(1)}`);
  return s === '' ? '…' : s;
}

const plain = (n: number) => n.toLocaleString('en-US');
const ARROWS: Record<FlowStep['kind'], string> = {
  call: '->>',
  sysenter: '->>',
  int: '->>',
  return: '-->>',
  sysexit: '-->>',
  iret: '-->>',
  jump: '-)',
  exception: '-x',
  note: '',
};
const ENTERING = new Set<FlowStep['kind']>(['call', 'sysenter', 'int']);
const LEAVING = new Set<FlowStep['kind']>(['return', 'sysexit', 'iret']);
const TRANSITIONS = new Set<FlowStep['kind']>(['sysenter', 'sysexit', 'int', 'iret', 'exception']);

/**
 * The activation pairs: each leaving arrow (return, sysexit, iret) matched to the entering arrow
 * (call, sysenter, int) it ends, innermost first. Both carry the callee's frame (callId) when the
 * input has one; without it a return ends the call into its own lane, sysexit ends sysenter and
 * iret ends int. Unmatched arrows (a callback, a one-row-per-call summary) get no activation.
 */
function activationPairs(steps: readonly FlowStep[]): Map<number, number> {
  const exitOf = new Map<number, number>();
  const open: number[] = [];
  steps.forEach((s, j) => {
    if (ENTERING.has(s.kind)) open.push(j);
    if (!LEAVING.has(s.kind)) return;
    for (let k = open.length - 1; k >= 0; k--) {
      const e = steps[open[k]];
      const match =
        e.callId !== undefined && s.callId !== undefined
          ? e.callId === s.callId
          : s.kind === 'return'
            ? e.kind === 'call' && e.to === s.from
            : (s.kind === 'sysexit' && e.kind === 'sysenter') || (s.kind === 'iret' && e.kind === 'int');
      if (match) {
        exitOf.set(open[k], j);
        open.length = k;
        return;
      }
    }
  });
  return exitOf;
}

/** How much a step matters when a diagram must be cut: 2 always kept, 1 kept while it fits, 0 first to go. */
function weight(s: FlowStep, boundary: boolean): 0 | 1 | 2 {
  if (boundary || s.finding || s.status?.failed) return 2;
  if (TRANSITIONS.has(s.kind) || s.label.startsWith('SSDT[') || s.status) return 1;
  if (s.kind === 'note' && /^(PreviousMode|APC check)/.test(s.label)) return 1;
  return 0;
}

/** A diagram's plan: which steps to draw, notes in place of what is left out. */
interface Plan {
  keep: boolean[];
  /** Notes drawn before step i (a run of calls left out there), or after the last step (key steps.length). */
  gaps: Map<number, string>;
  /** The sentence for the top note and `notes`; null when nothing is left out. */
  summary: string | null;
}

/** The facts about an input the renderer and the elision levels share. */
interface Facts {
  input: SequenceInput;
  lanes: LaneSpec[];
  ids: Map<string, string>;
  ring: Map<string, 0 | 3>;
  exitOf: Map<number, number>;
  bands: Map<number, SyscallBand>;
  /** Each band's first and last step. */
  span: Map<number, [number, number]>;
  /** Each band's arrows (a one-row-per-call summary has one). */
  arrows: Map<number, number>;
  weights: (0 | 1 | 2)[];
  /** Each step's outermost band (following parentId), undefined outside every call. */
  root: (number | undefined)[];
}

function factsOf(input: SequenceInput): Facts {
  const lanes = [...input.lanes];
  for (const s of input.steps) {
    for (const id of [s.from, s.to]) if (!lanes.some((l) => l.id === id)) lanes.push({ id, label: id, ring: 0 });
  }
  // Ring 3 first, so each ring is one box (the input's order within a ring is kept).
  lanes.sort((a, b) => b.ring - a.ring);
  const ids = new Map(lanes.map((l, i) => [l.id, `P${i + 1}`]));
  const ring = new Map(lanes.map((l) => [l.id, l.ring]));
  const bands = new Map(input.bands.map((b) => [b.syscallId, b]));
  const span = new Map<number, [number, number]>();
  const arrows = new Map<number, number>();
  input.steps.forEach((s, i) => {
    if (s.syscallId === undefined) return;
    if (s.kind !== 'note') arrows.set(s.syscallId, (arrows.get(s.syscallId) ?? 0) + 1);
    const sp = span.get(s.syscallId);
    if (sp) sp[1] = i;
    else span.set(s.syscallId, [i, i]);
  });
  const rootOf = (id: number): number => {
    let b = bands.get(id);
    const seen = new Set<number>();
    while (b && b.parentId !== null && bands.has(b.parentId) && !seen.has(b.parentId)) {
      seen.add(b.syscallId);
      b = bands.get(b.parentId);
    }
    return b?.syscallId ?? id;
  };
  const weights = input.steps.map((s, i) => {
    const sp = s.syscallId === undefined ? undefined : span.get(s.syscallId);
    return weight(s, sp !== undefined && (sp[0] === i || sp[1] === i));
  });
  const root = input.steps.map((s) => (s.syscallId === undefined ? undefined : rootOf(s.syscallId)));
  return { input, lanes, ids, ring, exitOf: activationPairs(input.steps), bands, span, arrows, weights, root };
}

const bandFailed = (b: SyscallBand | undefined) => !!b && (b.failure !== undefined || !!b.status?.failed);

/** The header note of a call: what it is, how it entered, its mode and outcome. */
function bandHeader(b: SyscallBand, leftOut: number): string {
  const outcome = b.failure ? b.failure.label : b.status ? `→ ${b.status.name}` : '→ never returned'; // failure labels start with ✗
  const mode = b.previousMode ? `, ${b.previousMode}` : '';
  const cut = leftOut ? ` (${plain(leftOut)} step${leftOut === 1 ? '' : 's'} left out)` : '';
  return `#${b.syscallId} ${b.name} via ${b.entry}${mode} ${outcome}${cut}`;
}

/** The text of a plan (and how many messages it draws). */
function renderPlan(f: Facts, plan: Plan): { text: string; items: number } {
  const { input, lanes, ids, ring } = f;
  const steps = input.steps;
  const out: string[] = ['sequenceDiagram', `title ${mermaidText(input.title)}`];
  let boxRing: 0 | 3 | null = null;
  for (const l of lanes) {
    if (l.ring !== boxRing) {
      if (boxRing !== null) out.push('end');
      out.push(BOX[l.ring]);
      boxRing = l.ring;
    }
    out.push(`participant ${ids.get(l.id)} as ${mermaidText(l.label)}`);
  }
  if (boxRing !== null) out.push('end');
  const all = lanes.length > 1 ? `${ids.get(lanes[0].id)},${ids.get(lanes[lanes.length - 1].id)}` : `${ids.get(lanes[0]?.id ?? '') ?? 'P1'}`;
  let items = 0;
  const noteAll = (text: string) => {
    out.push(`Note over ${all}: ${mermaidText(text)}`);
    items++;
  };
  if (lanes.length === 0) {
    // Nothing ran (an empty session): a diagram needs one participant to carry the note.
    out.push('participant P1 as (no steps)');
  }
  if (plan.summary) noteAll(plan.summary);

  // Steps left out per band, for its header.
  const cut = new Map<number, number>();
  steps.forEach((s, i) => {
    if (!plan.keep[i] && s.syscallId !== undefined) cut.set(s.syscallId, (cut.get(s.syscallId) ?? 0) + 1);
  });
  const headed = new Set<number>();
  let inRect = false;
  const setRing = (r: 0 | 3) => {
    if (r === 0 && !inRect) out.push(RING0_RECT);
    if (r === 3 && inRect) out.push('end');
    inRect = r === 0;
  };
  const activated = new Map<number, string>(); // exit step → the lane its entry activated

  for (let i = 0; i <= steps.length; i++) {
    const gap = plan.gaps.get(i);
    if (gap) noteAll(gap);
    if (i === steps.length || !plan.keep[i]) continue;
    const s = steps[i];
    const band = s.syscallId === undefined ? undefined : f.bands.get(s.syscallId);
    // The ring first, so a call's header sits in the same rect as its first step.
    setRing(s.kind === 'note' ? (ring.get(s.from) ?? 0) : ring.get(s.from) === 0 || ring.get(s.to) === 0 ? 0 : 3);
    // A call drawn step by step gets a header; a one-row-per-call summary's row says it all.
    if (band && !headed.has(band.syscallId)) {
      headed.add(band.syscallId);
      if ((f.arrows.get(band.syscallId) ?? 0) > 1) noteAll(bandHeader(band, cut.get(band.syscallId) ?? 0));
    }
    const from = ids.get(s.from)!;
    const to = ids.get(s.to)!;
    if (s.kind === 'note') {
      out.push(`Note over ${from}: ${mermaidText(s.label)}`);
      items++;
      continue;
    }
    let label = s.label;
    if (s.kind === 'call' && label.startsWith('SSDT[')) {
      // The lookup is the dispatcher's own step: a note on its lane, the arrow the call it made.
      out.push(`Note over ${from}: ${mermaidText(label)}`);
      items++;
      const target = label.slice(label.indexOf('→') + 1).trim();
      label = `${s.detail.instruction ?? 'call'} → ${target}`;
    }
    if (s.status?.failed && !label.startsWith('✗')) label = `✗ ${label}`;
    const exit = f.exitOf.get(i);
    const opens = exit !== undefined && plan.keep[exit];
    if (opens) activated.set(exit, s.to);
    const closes = activated.get(i);
    // Shorthand (+/-) when the arrow starts or ends at the lane concerned; else an explicit line.
    // (Entering and leaving arrows are different kinds: one arrow never does both.)
    const shorthand = opens ? '+' : closes !== undefined && closes === s.from ? '-' : '';
    out.push(`${from}${ARROWS[s.kind]}${shorthand}${to}: ${mermaidText(label)}`);
    items++;
    if (closes !== undefined && shorthand !== '-') out.push(`deactivate ${ids.get(closes)}`);
  }
  if (inRect) out.push('end');
  // Findings with no place among the steps (a hook that never ran) still belong to the diagram.
  const placed = new Set(steps.flatMap((s) => (s.finding ? [s.finding.id] : [])));
  for (const x of input.findings ?? []) if (!placed.has(x.id)) noteAll(`${SEVERITY_MARKS[x.severity] ?? '•'} ${x.title} (no step of it drawn)`);
  return { text: `${out.join('\n')}\n`, items };
}

/** The sentence saying what a plan leaves out. */
function summaryOf(f: Facts, keep: boolean[], maxChars: number, calls?: number): string | null {
  const dropped = keep.reduce((n, k) => n + (k ? 0 : 1), 0);
  if (dropped === 0 && !calls) return null;
  const touched = new Set<number>();
  f.input.steps.forEach((s, i) => {
    if (!keep[i] && f.root[i] !== undefined) touched.add(f.root[i]!);
  });
  const inCalls = touched.size ? ` in ${plain(touched.size)} call${touched.size === 1 ? '' : 's'}` : '';
  return `… ${plain(dropped)} step${dropped === 1 ? '' : 's'}${inCalls} left out (limit ${plain(maxChars)} chars)`;
}

/** Level 1 and 2: drop the steps under a weight (level 2: also the kernel details of calls that succeeded). */
function byWeight(f: Facts, level: 1 | 2): boolean[] {
  return f.input.steps.map((s, i) => {
    const w = f.weights[i];
    if (w === 2) return true;
    if (w === 0) return false;
    if (level === 1) return true;
    return bandFailed(s.syscallId === undefined ? undefined : f.bands.get(s.syscallId)) || bandFailed(f.root[i] === undefined ? undefined : f.bands.get(f.root[i]!));
  });
}

/**
 * Level 3: runs of consecutive calls alike (name, entry, outcome) keep their first `k` calls;
 * a note stands for the rest of each run. The calls' own steps are level 2's.
 */
function collapseRuns(f: Facts, k: number): { keep: boolean[]; gaps: Map<number, string>; calls: number } {
  const keep = byWeight(f, 2);
  const gaps = new Map<number, string>();
  const roots: number[] = [];
  f.root.forEach((r) => {
    if (r !== undefined && roots[roots.length - 1] !== r && !roots.includes(r)) roots.push(r);
  });
  const sig = (id: number) => {
    const b = f.bands.get(id);
    return b ? `${b.name}|${b.entry}|${b.previousMode}|${b.status?.name}|${b.failure?.status}|${b.failure?.own}` : String(id);
  };
  const dropRoots = new Set<number>();
  let calls = 0;
  for (let a = 0; a < roots.length; ) {
    let z = a + 1;
    while (z < roots.length && sig(roots[z]) === sig(roots[a])) z++;
    if (z - a > k) {
      const left = roots.slice(a + k, z);
      for (const r of left) dropRoots.add(r);
      calls += left.length;
      const b = f.bands.get(roots[a]);
      const first = f.span.get(left[0]);
      const outcome = b?.status ? b.status.name : 'never returned';
      const range = left.length > 1 ? `#${left[0]}–#${left[left.length - 1]}` : `#${left[0]}`;
      if (first) gaps.set(first[0], `… ${plain(left.length)} more call${left.length === 1 ? '' : 's'} like #${roots[a]} left out: ${range} ${b?.name ?? ''} → ${outcome}`);
    }
    a = z;
  }
  f.root.forEach((r, i) => {
    if (r !== undefined && dropRoots.has(r)) keep[i] = false;
  });
  return { keep, gaps, calls };
}

/**
 * Mermaid text for a sequence input (one call, some calls, or a session's calls one row each):
 * participants boxed by ring, an arrow per step with balanced activations, notes for PreviousMode,
 * the SSDT lookup, the APC check, statuses and findings, the ring-0 part of each path on a tinted
 * rect. Over maxChars it is elided: first the minor steps (jumps, calls inside a ring), then the
 * kernel details of calls that succeeded, then runs of alike calls, finally the tail — calls'
 * boundaries and failures go last — with a note saying what was left out.
 */
export function renderSequenceMermaid(input: SequenceInput, opts: MermaidOptions = {}): MermaidDiagram {
  const maxChars = opts.maxChars ?? MERMAID_MAX_TEXT;
  const f = factsOf(input);
  const n = input.steps.length;
  const done = (plan: Plan) => {
    const r = renderPlan(f, plan);
    return { ...r, notes: plan.summary ? [plan.summary] : [] };
  };
  const fits = (plan: Plan) => renderPlan(f, plan).text.length <= maxChars;

  const full: Plan = { keep: new Array<boolean>(n).fill(true), gaps: new Map(), summary: null };
  if (fits(full)) return done(full);
  for (const level of [1, 2] as const) {
    const keep = byWeight(f, level);
    const plan: Plan = { keep, gaps: new Map(), summary: summaryOf(f, keep, maxChars) };
    if (fits(plan)) return done(plan);
  }
  // Level 3: the most calls of each run that fit (binary search on how many each run keeps).
  const runPlan = (k: number): Plan => {
    const { keep, gaps, calls } = collapseRuns(f, k);
    return { keep, gaps, summary: summaryOf(f, keep, maxChars, calls) };
  };
  if (fits(runPlan(1))) {
    let lo = 1;
    let hi = n;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (fits(runPlan(mid))) lo = mid;
      else hi = mid - 1;
    }
    return done(runPlan(lo));
  }
  // Last: level 3's first steps that fit, a note for the rest.
  const base = runPlan(1);
  const kept = base.keep.flatMap((k, i) => (k ? [i] : []));
  const prefix = (m: number): Plan => {
    const keep = new Array<boolean>(n).fill(false);
    for (const i of kept.slice(0, m)) keep[i] = true;
    const gaps = new Map([...base.gaps].filter(([i]) => m > 0 && i <= kept[m - 1]));
    const rest = kept.length - m;
    if (rest > 0) gaps.set(n, `… the last ${plain(rest)} step${rest === 1 ? '' : 's'} left out`);
    return { keep, gaps, summary: summaryOf(f, keep, maxChars) };
  };
  let lo = 0;
  let hi = kept.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(prefix(mid))) lo = mid;
    else hi = mid - 1;
  }
  return done(prefix(lo));
}
