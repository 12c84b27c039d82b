// What a comparison of two sessions found, in sentences generated from its DiffResult (analyzer/diff):
// which calls pair up and which are only on one side; where each pair's paths first part and join
// again (pairs that part alike said once); what differs in outcome; what differs for the sessions as
// a whole. Nothing here is written by hand about a scenario: change the result, the text follows.
// Used above the diagrams of a comparison page (viz/diff-page.ts) and on the demo page.
import type { DiffResult } from '../analyzer/index.js';

type Pair = DiffResult['pairs'][number];
type Call = NonNullable<Pair['a']>;
type Divergence = DiffResult['divergences'][number];
type Point = NonNullable<Divergence['a']>;

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** a, b and c */
function list(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/** '#2 NtReadFile', or '#2 ↔ #3 NtReadFile' when the ids differ. */
export function pairLabel(p: Pair): string {
  if (p.a && p.b) return `#${p.a.id}${p.a.id === p.b.id ? '' : ` ↔ #${p.b.id}`} ${p.a.service}`;
  const c = (p.a ?? p.b)!;
  return `#${c.id} ${c.service}`;
}

/** The two sides as sentences name them: their session names, or A and B when those are the same. */
export function sideNames(r: DiffResult): { a: string; b: string } {
  return r.a.name === r.b.name ? { a: 'A', b: 'B' } : { a: r.a.name, b: r.b.name };
}

const at = (p: Point) => `${p.location} \`${p.asm}\``;

/** Pairs named, or 'all N pairs' when they are every pair. */
function pairsNamed(group: Pair[], paired: number): string {
  const names = list(group.map(pairLabel));
  return group.length === paired && paired > 1 ? `all ${paired} pairs (${names})` : names;
}

function onlyOn(calls: Call[]): string {
  return list(calls.map((c) => `#${c.id} ${c.service} (${[c.entry, c.previousMode, c.process].filter(Boolean).join(', ')})`));
}

/** A divergence's identity (where it is on both sides), the same after a JSON round trip. */
export const divergenceKey = (d: Divergence) => `${d.a?.seq ?? '-'}:${d.b?.seq ?? '-'}`;

/** The divergences outside every pair of calls. */
export function outsidePairs(r: DiffResult): Divergence[] {
  const inPairs = new Set(r.pairs.flatMap((p) => p.divergences.map(divergenceKey)));
  return r.divergences.filter((d) => !inPairs.has(divergenceKey(d)));
}

/** The counts line of `ntflow diff`: calls aligned, paired, the same, only on one side, how often the streams part. */
export function countsLine(r: DiffResult): string {
  const paired = r.pairs.filter((p) => p.a && p.b);
  const same = paired.filter((p) => p.samePath && p.differences.length === 0).length;
  return `${r.pairs.length} calls aligned: ${paired.length} paired (${same} the same), ${r.pairs.filter((p) => !p.b).length} only in A, ${r.pairs.filter((p) => !p.a).length} only in B; the instruction streams part ${plural(r.divergences.length, 'time')}`;
}

/** What the comparison found, as sentences. */
export function describeDiff(r: DiffResult): string[] {
  const n = sideNames(r);
  const calls = (side: 'a' | 'b') => r.pairs.filter((p) => p[side]).length;
  if (r.identical) {
    return [`${n.a} and ${n.b} are identical: the same ${plural(r.pairs.length, 'system call')}, the same ${r.a.instructions.toLocaleString('en')} instructions, the same outcome.`];
  }
  const paired = r.pairs.filter((p): p is Pair & { a: Call; b: Call } => p.a !== null && p.b !== null);
  const onlyA = r.pairs.filter((p) => p.a && !p.b).map((p) => p.a!);
  const onlyB = r.pairs.filter((p) => p.b && !p.a).map((p) => p.b!);
  const out: string[] = [];

  // 1. The calls.
  const same = paired.filter((p) => p.samePath && p.differences.length === 0);
  const only = [onlyA.length ? `only in ${n.a}: ${onlyOn(onlyA)}` : `none only in ${n.a}`, onlyB.length ? `only in ${n.b}: ${onlyOn(onlyB)}` : `none only in ${n.b}`];
  out.push(
    `${n.a} makes ${plural(calls('a'), 'system call')} and ${n.b} ${calls('b')}: ${paired.length} of them pair up${paired.length ? `, ${same.length === 0 ? 'none' : same.length} of those the same on both sides in path and outcome` : ''}; ${only.join('; ')}.`,
  );

  // 2. The paths: pairs that part and join alike, said once.
  const groups = new Map<string, (Pair & { a: Call; b: Call })[]>();
  for (const p of paired) {
    const d = p.divergence;
    if (!d) continue;
    const key = JSON.stringify([d.a?.location, d.a?.asm, d.b?.location, d.b?.asm, d.join?.a.location, d.join?.b.location]);
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  for (const group of groups.values()) {
    const d = group[0].divergence!;
    const where =
      d.a && d.b ? `at ${at(d.a)} in ${n.a} against ${at(d.b)} in ${n.b}` : d.a ? `at ${at(d.a)} in ${n.a}, where ${n.b}'s trace ends` : `at ${at(d.b!)} in ${n.b}, where ${n.a}'s trace ends`;
    const join = !d.join
      ? 'and do not join again'
      : d.join.a.location === d.join.b.location
        ? `and join again at ${d.join.a.location}`
        : `and join again at ${d.join.a.location} in ${n.a} and ${d.join.b.location} in ${n.b}`;
    const range = (from: number, to: number | undefined) => (to === undefined || to === from ? `${from}` : `${from}–${to}`);
    const seqs = group.length === 1 && d.a && d.b ? ` (${n.a} seq ${range(d.a.seq, d.join?.a.seq)}, ${n.b} seq ${range(d.b.seq, d.join?.b.seq)})` : '';
    let sentence = `In ${pairsNamed(group, paired.length)} the paths first part ${where}, ${join}${seqs}.`;
    const later = new Map<string, number>();
    for (const p of group) for (const x of new Set(p.divergences.slice(1).map((v) => (v.a ?? v.b)!.location))) later.set(x, (later.get(x) ?? 0) + 1);
    if (later.size) {
      const places = [...later].map(([loc, k]) => (group.length > 1 && k < group.length ? `${loc} (in ${k} of them)` : loc));
      sentence += ` ${group.length > 1 ? 'They' : 'It'} part${group.length > 1 ? '' : 's'} again further on at ${list(places)}.`;
    }
    out.push(sentence);
  }
  const samePath = paired.filter((p) => p.samePath);
  if (samePath.length === paired.length && paired.length) out.push(`Every pair runs the same instructions on both sides${same.length === paired.length ? '' : ' (what differs is in the service routines\' outcome)'}.`);
  else if (samePath.length) out.push(`${list(samePath.map(pairLabel))} run${samePath.length === 1 ? 's' : ''} the same instructions on both sides.`);

  // 3. What differs in outcome: what every pair has in common first, then each pair's own (pairs
  // that differ alike said together).
  const text = (x: { what: string; a: string; b: string }) => `${x.what} ${x.a} → ${x.b}`;
  const keyOf = (x: { what: string; a: string; b: string }) => JSON.stringify([x.what, x.a, x.b]);
  const common = paired.length > 1 ? paired[0].differences.filter((x) => paired.every((p) => p.differences.some((y) => keyOf(y) === keyOf(x)))) : [];
  const commonKeys = new Set(common.map(keyOf));
  const own = new Map<string, { pairs: Pair[]; texts: string[] }>();
  for (const p of paired) {
    const texts = p.differences.filter((x) => !commonKeys.has(keyOf(x))).map(text);
    if (!texts.length) continue;
    const key = JSON.stringify(texts);
    const entry = own.get(key) ?? { pairs: [], texts };
    entry.pairs.push(p);
    own.set(key, entry);
  }
  const clauses = [...(common.length ? [`in ${pairsNamed(paired, paired.length)}, ${common.map(text).join(', ')}`] : []), ...[...own.values()].map((x) => `in ${list(x.pairs.map(pairLabel))}, ${x.texts.join(', ')}`)];
  if (clauses.length) out.push(`What differs in outcome (${n.a} → ${n.b}): ${clauses.join('; ')}.`);
  else if (paired.length) out.push('No pair differs in outcome: the same PreviousMode, entry, status, handle tables, probes, SSDT target and findings.');

  // 4. The sessions as a whole, and the streams outside the paired calls.
  const outside = outsidePairs(r);
  if (r.differences.length) out.push(`The sessions as a whole: ${r.differences.map((x) => `${x.what} ${x.a} → ${x.b}`).join('; ')}.`);
  else out.push(`The sessions as a whole do not differ: ${r.a.outcome ?? 'the same outcome'}, cpu ${r.a.cpu ?? 'the same'}, the same hooks.`);
  if (outside.length) {
    const first = outside[0];
    const where = first.a && first.b ? `, first at ${at(first.a)} against ${at(first.b)}` : '';
    out.push(`Outside the paired calls the instruction streams part ${plural(outside.length, 'more time')}${where}.`);
  }
  return out;
}
