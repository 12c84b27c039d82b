// What a sequence diagram leaves out when a session is too large to see at once, and the note that
// says so. Pure: calls and steps in, what to draw out; no database, no clock (tested exactly).
//
// Two reductions, each only past a size nobody reads row by row:
// - calls: past `maxCalls` calls to draw, a run of identical consecutive top-level calls (the same
//   service, entry, PreviousMode, status, thread and the same nested calls — 4,000 NtReadFile of
//   a read loop) keeps its first and last call and stands for the ones between with one row,
//   "×3,998 more NtReadFile calls like #3 (ids 4–4,001)". A call that failed, holds a failed
//   call, or has a finding is never folded into a run: it breaks the run and stays drawn.
// - steps: a run of more than `maxSteps` consecutive steps of one band (or outside every band)
//   keeps its first and last `maxSteps / 2` steps and one note for the rest, "… 5,000 steps
//   elided"; failing steps, findings' notes and a comparison's marks in the middle stay.
import type { FlowStep } from './types.js';

/** One system call as the call reduction sees it (from a syscalls row). */
export interface ElisionCall {
  id: number;
  parentId: number | null;
  threadId: number;
  name: string;
  entry: string;
  previousMode: string;
  /** Its NTSTATUS name, null when it never returned. */
  status: string | null;
  /** Its own status is not NT_SUCCESS. */
  failed: boolean;
  /** Events from its entering to its returning instruction (null: never returned); reported, not compared. */
  events: number | null;
}

export interface ElisionLimits {
  /** Calls drawn without any folding (default 1,000). */
  maxCalls?: number;
  /** The shortest run of identical calls that is folded (default 4: first, two or more folded, last). */
  minRun?: number;
  /** Consecutive steps of one band drawn before the middle is elided (default 2,000). */
  maxSteps?: number;
  /** The longest block of calls whose repetitions are folded too (default 4: a loop that writes, then reads, …). */
  maxPeriod?: number;
}

export const ELISION_DEFAULTS = { maxCalls: 1000, minRun: 4, maxSteps: 2000, maxPeriod: 4 } as const;

/** Calls folded into one row: they came after call `like` and are just like it (or, a block of `period` calls repeated, like the block it starts). */
export interface CallAggregate {
  /** The kept call they are like (the run's first; for a block, the first block's first call). */
  like: number;
  /** The run's last call (for a block, the last block's first call), kept and drawn after the row. */
  last: number;
  /** Calls in the repeated block: 1 for a run of one call repeated. */
  period: number;
  /** The first block's calls (kept): [like] for a run of one call. */
  block: number[];
  /** The call's name; for a block, its calls' names joined by ', '. */
  name: string;
  /** The status every call of the block returned (null: never returned, or not the same for all). */
  status: string | null;
  /** The folded top-level calls, in order. */
  ids: number[];
  /** Calls nested in the folded ones (folded with them). */
  nested: number[];
  /** The fewest and most events a folded call took. */
  events: [number, number] | null;
}

export interface CallElision {
  /** The calls still drawn, by id. */
  keep: number[];
  aggregates: CallAggregate[];
}

/** What makes two top-level calls "alike": their own fields and their nested calls' fields, in order. */
function signature(c: ElisionCall, nested: readonly ElisionCall[]): string {
  const own = (x: ElisionCall) => [x.name, x.entry, x.previousMode, x.status ?? 'never returned', x.threadId].join('\u0000');
  return [own(c), ...nested.map(own)].join('\u0001');
}

/**
 * Fold runs of identical consecutive top-level calls when there are more than `maxCalls` calls
 * (calls in id order; `pinned`: ids that must stay drawn, e.g. those with a finding).
 */
export function elideCalls(calls: readonly ElisionCall[], pinned: ReadonlySet<number> = new Set(), limits: ElisionLimits = {}): CallElision {
  const maxCalls = limits.maxCalls ?? ELISION_DEFAULTS.maxCalls;
  const minRun = Math.max(3, limits.minRun ?? ELISION_DEFAULTS.minRun);
  const all = calls.map((c) => c.id);
  if (calls.length <= maxCalls) return { keep: all, aggregates: [] };

  // Each call's top-level ancestor; the nested calls of each top-level call, in id order.
  const byId = new Map(calls.map((c) => [c.id, c]));
  const rootOf = (c: ElisionCall): ElisionCall => {
    let r = c;
    for (let guard = 0; r.parentId !== null && byId.has(r.parentId) && guard < calls.length; guard++) r = byId.get(r.parentId)!;
    return r;
  };
  const nestedOf = new Map<number, ElisionCall[]>();
  const tops: ElisionCall[] = [];
  for (const c of calls) {
    const root = rootOf(c);
    if (root === c) tops.push(c);
    else {
      if (!nestedOf.has(root.id)) nestedOf.set(root.id, []);
      nestedOf.get(root.id)!.push(c);
    }
  }
  const stays = (top: ElisionCall) => {
    const tree = [top, ...(nestedOf.get(top.id) ?? [])];
    return tree.some((c) => c.failed || pinned.has(c.id));
  };

  // Each top-level call's signature; null for one that must stay drawn (it matches nothing).
  const sigs = tops.map((top) => (stays(top) ? null : signature(top, nestedOf.get(top.id) ?? [])));
  const maxPeriod = Math.max(1, limits.maxPeriod ?? ELISION_DEFAULTS.maxPeriod);
  const folded = new Set<number>();
  const aggregates: CallAggregate[] = [];
  let i = 0;
  while (i < tops.length) {
    // The block of 1 … maxPeriod calls at i repeated the most times in a row (counted in calls;
    // on a tie the shorter block: ten identical calls are a run of one call, not of two).
    let best = { period: 0, reps: 0 };
    for (let period = 1; period <= maxPeriod && i + period <= tops.length; period++) {
      if (sigs[i + period - 1] === null) break; // a longer block holds it too
      let reps = 1;
      const same = (r: number) => {
        for (let q = 0; q < period; q++) if (sigs[i + r * period + q] !== sigs[i + q]) return false;
        return true;
      };
      while (i + (reps + 1) * period <= tops.length && same(reps)) reps++;
      if (reps >= minRun && reps * period > best.reps * best.period) best = { period, reps };
    }
    if (!best.period) {
      i++;
      continue;
    }
    const { period, reps } = best;
    const middle = tops.slice(i + period, i + (reps - 1) * period);
    const nested = middle.flatMap((t) => (nestedOf.get(t.id) ?? []).map((c) => c.id));
    const lengths = middle.map((t) => t.events).filter((n): n is number => n !== null);
    for (const t of middle) folded.add(t.id);
    for (const id of nested) folded.add(id);
    const block = tops.slice(i, i + period);
    aggregates.push({
      like: tops[i].id,
      last: tops[i + (reps - 1) * period].id,
      period,
      block: block.map((t) => t.id),
      name: block.map((t) => t.name).join(', '),
      status: block.every((t) => t.status === block[0].status) ? block[0].status : null,
      ids: middle.map((t) => t.id),
      nested,
      events: lengths.length ? [Math.min(...lengths), Math.max(...lengths)] : null,
    });
    i += reps * period;
  }
  return { keep: all.filter((id) => !folded.has(id)), aggregates };
}

const count = (n: number) => n.toLocaleString('en');

/** The folded ids as a range when they are consecutive ('4–4,001'), else first, …, last. */
export function idRange(ids: readonly number[]): string {
  if (ids.length === 1) return `#${count(ids[0])}`;
  const consecutive = ids.every((id, k) => k === 0 || id === ids[k - 1] + 1);
  return consecutive ? `${count(ids[0])}–${count(ids[ids.length - 1])}` : `${count(ids[0])}, …, ${count(ids[ids.length - 1])}`;
}

/** The row's label: '×3,998 more NtReadFile calls like #3 → STATUS_SUCCESS (ids 4–4,001)'. */
export function aggregateLabel(a: CallAggregate): string {
  const nested = a.nested.length ? `, with ${count(a.nested.length)} nested` : '';
  if (a.period > 1) {
    const blocks = a.ids.length / a.period;
    return `×${count(blocks)} more repetitions of ${a.name} like ${a.block.map((id) => `#${count(id)}`).join(', ')}${a.status ? ` → ${a.status}` : ''} (${count(a.ids.length)} calls, ids ${idRange(a.ids)}${nested})`;
  }
  return `×${count(a.ids.length)} more ${a.name} calls like #${count(a.like)}${a.status ? ` → ${a.status}` : ''} (ids ${idRange(a.ids)}${nested})`;
}

/** The row's tooltip lines: how many, which, and how to draw or query them. */
export function aggregateDetail(a: CallAggregate, file: string): Record<string, string> {
  const detail: Record<string, string> = {
    calls: count(a.ids.length),
    ids: idRange(a.ids),
    'like call': `#${a.like} (drawn above; #${a.last} below)`,
  };
  if (a.nested.length) detail.nested = count(a.nested.length);
  if (a.events) detail['events per call'] = a.events[0] === a.events[1] ? count(a.events[0]) : `${count(a.events[0])}–${count(a.events[1])}`;
  detail.draw = `ntflow flow ${file} --syscall ${a.ids[0]} -o call.html`;
  detail.query = `ntflow query ${file} "SELECT * FROM syscalls WHERE id BETWEEN ${a.ids[0]} AND ${a.ids[a.ids.length - 1]}"`;
  return detail;
}

/** `extra` (in seq order) merged into `steps` (in seq order); at equal seqs the steps come first. */
export function insertBySeq(steps: FlowStep[], extra: FlowStep[]): FlowStep[] {
  const out: FlowStep[] = [];
  let j = 0;
  for (const s of steps) {
    while (j < extra.length && extra[j].seq < s.seq) out.push(extra[j++]);
    out.push(s);
  }
  while (j < extra.length) out.push(extra[j++]);
  return out;
}

// ---- steps --------------------------------------------------------------------------------

/** Steps left out of one run of a band's steps. */
export interface StepElision {
  /** The band (syscalls.id) the run belongs to; undefined: steps outside every band. */
  syscallId: number | undefined;
  /** How many steps were left out. */
  steps: number;
  /** The events the left-out steps came from. */
  firstSeq: number;
  lastSeq: number;
}

/** Steps that always stay drawn: a failure, a finding's note, a comparison's mark. */
const mustStay = (s: FlowStep) => s.status?.failed === true || s.finding !== undefined || s.diff !== undefined;

/**
 * Cap each run of consecutive steps with the same syscallId at `maxSteps`: its first and last
 * maxSteps / 2 stay, the middle becomes one note at the first left-out step (its lane), except the
 * steps that must stay. Steps in seq order in, steps in seq order out.
 */
export function capSteps(steps: readonly FlowStep[], limits: ElisionLimits = {}, file = '<trace.db>'): { steps: FlowStep[]; elided: StepElision[] } {
  const maxSteps = Math.max(2, limits.maxSteps ?? ELISION_DEFAULTS.maxSteps);
  const out: FlowStep[] = [];
  const elided: StepElision[] = [];
  let i = 0;
  while (i < steps.length) {
    let j = i + 1;
    while (j < steps.length && steps[j].syscallId === steps[i].syscallId) j++;
    if (j - i <= maxSteps) {
      for (let k = i; k < j; k++) out.push(steps[k]);
    } else {
      const head = Math.floor(maxSteps / 2);
      const tail = maxSteps - head;
      for (let k = i; k < i + head; k++) out.push(steps[k]);
      // The middle: left-out stretches between the steps that must stay, each with its note.
      let gapStart = -1;
      const flush = (end: number) => {
        if (gapStart < 0) return;
        const first = steps[gapStart];
        const last = steps[end - 1];
        const e: StepElision = { syscallId: first.syscallId, steps: end - gapStart, firstSeq: first.seq, lastSeq: last.seq };
        elided.push(e);
        out.push(elisionNote(e, first, file));
        gapStart = -1;
      };
      for (let k = i + head; k < j - tail; k++) {
        if (mustStay(steps[k])) {
          flush(k);
          out.push(steps[k]);
        } else if (gapStart < 0) gapStart = k;
      }
      flush(j - tail);
      for (let k = j - tail; k < j; k++) out.push(steps[k]);
    }
    i = j;
  }
  return { steps: out, elided };
}

function elisionNote(e: StepElision, at: FlowStep, file: string): FlowStep {
  const note: FlowStep = {
    seq: at.seq,
    kind: 'note',
    from: at.from,
    to: at.from,
    label: `… ${count(e.steps)} steps elided (events ${count(e.firstSeq)}–${count(e.lastSeq)})`,
    detail: {
      steps: count(e.steps),
      events: `${e.firstSeq}–${e.lastSeq}`,
      query: `ntflow query ${file} "SELECT seq, asm, symbol FROM instructions WHERE session_id = :session AND seq BETWEEN ${e.firstSeq} AND ${e.lastSeq}"`,
    },
  };
  if (e.syscallId !== undefined) note.syscallId = e.syscallId;
  if (at.callId !== undefined) note.callId = at.callId;
  return note;
}

// ---- the note in the drawing ----------------------------------------------------------------

/**
 * The lines the drawing shows above the diagram when something was left out (none when nothing
 * was): how many calls were folded into how many rows, how many steps were elided, what always
 * stays, and how to see the rest.
 */
export function elisionNotice(calls: CallElision, stepsLeft: readonly StepElision[], totalCalls: number, file: string): string[] {
  const lines: string[] = [];
  const folded = calls.aggregates.reduce((n, a) => n + a.ids.length + a.nested.length, 0);
  if (folded) {
    const rows = calls.aggregates.length;
    lines.push(
      `Aggregated: ${count(folded)} of ${count(totalCalls)} system calls drawn as ${count(rows)} row${rows === 1 ? '' : 's'} "×N more … like #ID" ` +
        `(a run of identical calls keeps its first and last). Failed calls and calls with findings are always drawn.`,
    );
  }
  if (stepsLeft.length) {
    const n = stepsLeft.reduce((k, e) => k + e.steps, 0);
    lines.push(`Elided: ${count(n)} steps in ${count(stepsLeft.length)} place${stepsLeft.length === 1 ? '' : 's'} ("… N steps elided"); failures and findings stay.`);
  }
  if (folded) {
    const example = calls.aggregates[0].ids[0];
    lines.push(`To see them: ntflow flow ${file} --syscall ID, or ntflow query ${file} "SELECT * FROM syscalls WHERE id = ${example}".`);
  }
  if (stepsLeft.length) {
    const e = stepsLeft[0];
    lines.push(
      `The elided steps' instructions: ntflow query ${file} "SELECT seq, asm, symbol FROM instructions WHERE session_id = :session AND seq BETWEEN ${e.firstSeq} AND ${e.lastSeq}"` +
        `${stepsLeft.length > 1 ? ' (the first place; each "… elided" note says its own)' : ''}.`,
    );
  }
  return lines;
}

/** The notice's lines wrapped at word boundaries to at most `width` characters (a word longer than that stays whole). */
export function wrapNotice(lines: readonly string[], width: number): string[] {
  const out: string[] = [];
  for (const line of lines) {
    let current = '';
    for (const word of line.split(' ')) {
      if (current && current.length + 1 + word.length > width) {
        out.push(current);
        current = word;
      } else current = current ? `${current} ${word}` : word;
    }
    if (current) out.push(current);
  }
  return out;
}
