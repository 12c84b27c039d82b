// A comparison of two sessions as one self-contained page (`ntflow diff A B -o diff.html`): above,
// what the comparison found — the sessions, the counts, the sentences of viz/diff-summary.ts, a table
// of the aligned calls with what differs in each pair and where its paths part — and below, the two
// sessions' sequence diagrams side by side with their rows aligned (viz/diff-layout.ts): each pair
// of calls starts on the same row, a call only on one side leaves a gap on the other, and in each
// pair the place where the paths first part is marked on both sides (a magenta note with that
// side's instruction), and where they join again. The result comes from analyzer/diff; the
// diagrams from each side's trace (viz/data.ts), with the comparison's notes added at their events.
import type Database from 'better-sqlite3';
import type { DiffResult } from '../analyzer/index.js';
import { sequenceInput, type ExtraNote } from './data.js';
import { layoutSequence } from './layout.js';
import { alignLayouts, type PairIds } from './diff-layout.js';
import { countsLine, describeDiff, outsidePairs, pairLabel } from './diff-summary.js';
import { diagramHtml, documentHtml, escapeHtml, paragraphs, relativeHref } from './html.js';
import type { SequenceLayout } from './types.js';

type Pair = DiffResult['pairs'][number];
type Divergence = DiffResult['divergences'][number];
type Point = NonNullable<Divergence['a']>;
type Side = 'a' | 'b';

/** One side of the comparison: the trace it was read from (projections built) and its session. */
export interface DiffPageSide {
  db: Database.Database;
  sessionId: number;
}

export interface DiffPageOptions {
  /** The page's <title> and heading (default: 'ntflow diff: A vs B'). */
  title?: string;
  /** Paragraphs before the summary (text). */
  description?: string[];
  /** A link back (a relative URL). */
  back?: { href: string; text: string };
  /** Steps per diagram that get registers from time travel (default 60). */
  registerSteps?: number;
  /** The narrowest a lane gets (default: layoutSequence's, 120); lanes widen to their labels. */
  laneWidth?: number;
  /** Divergences marked per pair (default 12), outside the pairs (default 20), in all (default 400: a page of thousands of calls stays light). */
  marksPerPair?: number;
  marksOutside?: number;
  marksTotal?: number;
}

const LETTER: Record<Side, string> = { a: 'A', b: 'B' };
const other = (s: Side): Side => (s === 'a' ? 'b' : 'a');
const pointText = (p: Point | null) => (p ? `seq ${p.seq} · ${p.location} · ${p.asm}` : 'its trace ends here');

/** What a divergence's tooltip says: both sides' instructions, the registers and memory that differ, the join. */
function divergenceDetail(d: Divergence, pair: Pair | null): Record<string, string> {
  const detail: Record<string, string> = { A: pointText(d.a), B: pointText(d.b) };
  if (pair) detail.pair = `${pair.a ? `#${pair.a.id} ${pair.a.service}` : '—'} ↔ ${pair.b ? `#${pair.b.id} ${pair.b.service}` : '—'}`;
  if (d.registers.length) detail['registers before (A | B)'] = d.registers.map((r) => `${r.what} ${r.a} | ${r.b}`).join(', ');
  if (d.memory.length) detail['memory written (A | B)'] = d.memory.map((m) => `[${m.what}] ${m.a} | ${m.b}`).join(', ');
  detail['joins again'] = d.join ? `${d.join.a.location} · ${d.join.a.asm} (A seq ${d.join.a.seq}, B seq ${d.join.b.seq})` : 'not within the call';
  return detail;
}

/**
 * The comparison's notes on one side: for each pair, each place its paths part (the first one
 * first) with this side's instruction and the other's, and where they join again; then the places
 * outside the paired calls. Each carries its DiffMark, by which the two sides' notes line up.
 */
export function diffNotes(r: DiffResult, side: Side, opts: Pick<DiffPageOptions, 'marksPerPair' | 'marksOutside' | 'marksTotal'> = {}): ExtraNote[] {
  const notes: ExtraNote[] = [];
  const o = other(side);
  const add = (d: Divergence, pair: number | null, index: number, total: number) => {
    const mine = d[side];
    const theirs = d[o];
    const p = pair === null ? null : r.pairs[pair];
    const what = pair === null ? 'paths part (outside the paired calls)' : index === 0 ? 'paths part' : `paths part again (${index + 1} of ${total})`;
    if (mine) {
      notes.push({
        seq: mine.seq,
        label: `≠ ${what}: ${mine.location}  ${mine.asm}  ↔ ${LETTER[o]}: ${theirs ? theirs.asm : 'its trace ends'}`,
        detail: divergenceDetail(d, p),
        diff: { kind: 'diverge', pair, index, side },
      });
    }
    if (d.join) {
      const j = d.join[side];
      notes.push({
        seq: j.seq,
        label: `= paths join again${index > 0 ? ` (${index + 1} of ${total})` : ''}: ${j.location}  ${j.asm}`,
        detail: { ...divergenceDetail(d, p), here: `seq ${j.seq} · ${j.location} · ${j.asm}` },
        diff: { kind: 'join', pair, index, side },
      });
    }
  };
  let budget = opts.marksTotal ?? 400;
  r.pairs.forEach((p, k) => {
    const shown = p.divergences.slice(0, Math.min(opts.marksPerPair ?? 12, Math.max(0, budget)));
    budget -= shown.length;
    shown.forEach((d, i) => add(d, k, i, p.divergences.length));
  });
  const outside = outsidePairs(r);
  outside.slice(0, Math.min(opts.marksOutside ?? 20, Math.max(0, budget))).forEach((d, i) => add(d, null, i, outside.length));
  return notes;
}

/** Both sides' sequence layouts with the comparison's notes, their rows aligned; and the keys that link each pair's bands. */
export function diffLayouts(r: DiffResult, A: DiffPageSide, B: DiffPageSide, opts: DiffPageOptions = {}): { a: SequenceLayout; b: SequenceLayout; keys: Record<Side, Record<number, string>> } {
  const layout = (s: DiffPageSide, side: Side) => {
    // Everything drawn (no folding of identical runs, no capped steps: viz/elide.ts): the two sides are aligned pair by pair.
    const input = sequenceInput(s.db, s.sessionId, { registerSteps: opts.registerSteps ?? 60, notes: diffNotes(r, side, opts), elision: { maxCalls: Number.POSITIVE_INFINITY, maxSteps: Number.POSITIVE_INFINITY } });
    return layoutSequence({ ...input, title: `${LETTER[side]}: ${input.title}` }, { laneWidth: opts.laneWidth });
  };
  const pairs: PairIds[] = r.pairs.map((p) => ({ a: p.a?.id ?? null, b: p.b?.id ?? null }));
  const aligned = alignLayouts(layout(A, 'a'), layout(B, 'b'), pairs);
  const keys: Record<Side, Record<number, string>> = { a: {}, b: {} };
  r.pairs.forEach((p, k) => {
    if (!p.a || !p.b) return;
    keys.a[p.a.id] = `pair ${k}`;
    keys.b[p.b.id] = `pair ${k}`;
  });
  return { ...aligned, keys };
}

// ---- the summary above the diagrams --------------------------------------------------------------

function divergenceLines(d: Divergence): string[] {
  const out = [`first divergence:  A ${pointText(d.a)}`, `                   B ${pointText(d.b)}`];
  if (d.registers.length) out.push(`registers before it: ${d.registers.map((x) => `${x.what} ${x.a} | ${x.b}`).join(', ')}`);
  if (d.memory.length) out.push(`memory it writes:   ${d.memory.map((x) => `[${x.what}] ${x.a} | ${x.b}`).join(', ')}`);
  out.push(d.join ? `joins again at ${d.join.a.location} (A seq ${d.join.a.seq}, B seq ${d.join.b.seq})` : 'does not join again');
  return out;
}

/** One row of the table of pairs: the calls, the path, what differs (and the details, folded). */
function pairRow(p: Pair, group: string): string {
  const call = (c: Pair['a']) => (c ? `#${c.id} ${escapeHtml(c.service)}` : '');
  const mark = p.a && p.b ? '=' : p.a ? '−' : '+';
  const ids = `${p.a ? ` data-a="${p.a.id}"` : ''}${p.b ? ` data-b="${p.b.id}"` : ''}`;
  let path = p.a && p.b ? 'same path' : `only in ${p.a ? 'A' : 'B'}`;
  if (p.divergence) {
    const d = p.divergence;
    path = `<span class="path-differs">paths part at ${escapeHtml((d.a ?? d.b)!.location)}</span>${d.join ? `, join at ${escapeHtml(d.join.a.location)}` : ''}`;
  }
  const what = p.differences.map((x) => `${escapeHtml(x.what)} <code>${escapeHtml(x.a)}</code> → <code>${escapeHtml(x.b)}</code>`).join('; ');
  const lines: string[] = [];
  p.divergences.forEach((d, i) => lines.push(...(i === 0 ? divergenceLines(d) : [`and again: A ${pointText(d.a)}`, `           B ${pointText(d.b)}`])));
  const details = lines.length ? `<details><summary>where the paths part</summary><pre>${escapeHtml(lines.join('\n'))}</pre></details>` : '';
  return (
    `<tr class="${p.a && p.b ? 'pair' : 'only'}" data-diff-group="${escapeHtml(group)}"${ids} tabindex="0" title="show ${escapeHtml(pairLabel(p))} in the diagrams">` +
    `<td>${call(p.a)}</td><td>${mark}</td><td>${call(p.b)}</td><td>${path}</td><td>${what}${details}</td></tr>`
  );
}

function summaryHtml(r: DiffResult, group: string): string {
  const side = (s: Side) => {
    const x = r[s];
    return `${LETTER[s]}: <code>${escapeHtml(`${x.file}:${x.sessionId}`)}</code> '${escapeHtml(x.name)}' — ${x.instructions.toLocaleString('en')} instructions, cpu ${escapeHtml(x.cpu ?? '?')}, ${escapeHtml(x.outcome ?? 'no outcome')}`;
  };
  const parts = [`<p class="sides">${side('a')}<br>${side('b')}</p>\n`, `<p class="counts">${escapeHtml(countsLine(r))}, by ${escapeHtml(r.method)}</p>\n`];
  if (r.differences.length) {
    parts.push(`<ul class="diff-session">${r.differences.map((d) => `<li>session: ${escapeHtml(d.what)} <code>${escapeHtml(d.a)}</code> → <code>${escapeHtml(d.b)}</code></li>`).join('')}</ul>\n`);
  }
  parts.push(paragraphs(describeDiff(r)));
  parts.push(
    '<table class="diff-pairs">\n<thead><tr><th>A</th><th></th><th>B</th><th>path</th><th>what differs in outcome</th></tr></thead>\n<tbody>\n' +
      r.pairs.map((p) => pairRow(p, group)).join('\n') +
      '\n</tbody>\n</table>\n',
  );
  const outside = outsidePairs(r);
  if (outside.length) {
    const text = outside
      .slice(0, 10)
      .map((d) => divergenceLines(d).join('\n'))
      .join('\n\n');
    parts.push(`<details class="diff-outside"><summary>outside the paired calls (${outside.length})</summary><pre>${escapeHtml(text)}</pre></details>\n`);
  }
  return `<section class="diff-summary">\n${parts.join('')}</section>\n`;
}

/** The comparison page: the summary, then the two diagrams side by side with their rows aligned. */
export function renderDiffHtml(r: DiffResult, A: DiffPageSide, B: DiffPageSide, opts: DiffPageOptions = {}): string {
  const title = opts.title ?? `ntflow diff: ${r.a.name} vs ${r.b.name}`;
  const group = 'diff';
  const { a, b, keys } = diffLayouts(r, A, B, opts);
  const fitWidth = Math.max(a.width, b.width);
  const back = opts.back ? `<nav><a href="${escapeHtml(relativeHref(opts.back.href))}">${escapeHtml(opts.back.text)}</a></nav>\n` : '';
  const diagrams = (['a', 'b'] as const)
    .map((s) => {
      const layout = s === 'a' ? a : b;
      const spec = { kind: 'sequence' as const, layout, caption: `${LETTER[s]}: session ${r[s].sessionId} '${r[s].name}' of ${r[s].file}`, fitWidth, link: { group, side: s, keys: keys[s] } };
      return `<div class="cell" data-side="${s}">\n${diagramHtml(spec, `ntflow-data-${s}`)}</div>\n`;
    })
    .join('');
  const body = `${back}<h1>${escapeHtml(title)}</h1>\n${paragraphs(opts.description)}${summaryHtml(r, group)}<div class="diff-diagrams">\n${diagrams}</div>\n`;
  return documentHtml(title, body, 'ntflow-page ntflow-diff');
}
