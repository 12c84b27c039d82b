// The diff as text a person reads in a terminal: first the summary (like `git diff --stat`: the two
// sessions, how the calls aligned, one line per pair or unpaired call), then each pair that
// differs in detail — its first divergence, the registers and memory that differ there, where the
// paths join again, and what differs in outcome.
import type { Difference, DiffResult, Divergence, PairInfo, PathPoint } from './diff.js';
import { escapeGuestText } from '../query.js';

const label = (c: { id: number; service: string } | null) => (c ? `#${c.id} ${c.service}` : '');
const pt = (p: PathPoint | null) => (p ? `seq ${p.seq}  ${p.location}  ${p.asm}` : '(its trace ends here)');

function divergenceLines(d: Divergence, indent: string): string[] {
  const out = [`${indent}first divergence:  A ${pt(d.a)}`, `${indent}                   B ${pt(d.b)}`];
  if (d.registers.length) out.push(`${indent}registers before it: ${d.registers.map((r) => `${r.what} ${r.a} | ${r.b}`).join(', ')}`);
  if (d.memory.length) out.push(`${indent}memory it writes:   ${d.memory.map((m) => `[${m.what}] ${m.a} | ${m.b}`).join(', ')}`);
  const at = (j: NonNullable<Divergence['join']>) => (j.a.location === j.b.location ? j.a.location : `${j.a.location} | ${j.b.location}`);
  out.push(d.join ? `${indent}joins again at ${at(d.join)} (A seq ${d.join.a.seq}, B seq ${d.join.b.seq})` : `${indent}does not join again`);
  return out;
}

const diffText = (x: Difference) => `${x.what} ${x.a} → ${x.b}`;

function pairLine(p: PairInfo, width: number): string {
  const alone = (c: NonNullable<PairInfo['a']>) => [c.entry, c.previousMode, c.caller ? `from ${c.caller}` : null, c.statusName].filter(Boolean).join(', ');
  if (!p.a) return `  ${''.padEnd(width)}  + ${label(p.b)}  (only in B: ${alone(p.b!)})`;
  if (!p.b) return `  ${label(p.a).padEnd(width)}  -   (only in A: ${alone(p.a)})`;
  const path = p.samePath ? 'same path' : 'path differs';
  const what = [path, ...p.differences.map(diffText)].join('; ');
  return `  ${label(p.a).padEnd(width)}  = ${label(p.b)}  ${what}`;
}

export function formatDiff(r: DiffResult): string {
  // Names and file names are the user's: a newline in one would pass escapeReport as the report's own layout.
  const head = `A ${escapeGuestText(r.a.file)}:${r.a.sessionId} '${escapeGuestText(r.a.name)}' (${r.a.instructions.toLocaleString('en')} instructions, cpu ${r.a.cpu})\nB ${escapeGuestText(r.b.file)}:${r.b.sessionId} '${escapeGuestText(r.b.name)}' (${r.b.instructions.toLocaleString('en')} instructions, cpu ${r.b.cpu})`;
  if (r.identical) return `${head}\nidentical: the same ${r.pairs.length} system calls, the same ${r.a.instructions.toLocaleString('en')} instructions, the same outcome\n`;
  const paired = r.pairs.filter((p) => p.a && p.b);
  const out = [
    head,
    `${r.pairs.length} calls aligned by ${r.method}: ${paired.length} paired (${paired.filter((p) => p.samePath && p.differences.length === 0).length} the same), ${r.pairs.filter((p) => !p.b).length} only in A, ${r.pairs.filter((p) => !p.a).length} only in B; the instruction streams part ${r.divergences.length} time${r.divergences.length === 1 ? '' : 's'}`,
    ...r.differences.map((d) => `session: ${diffText(d)}`),
    '',
  ];
  const width = Math.max(0, ...r.pairs.map((p) => label(p.a).length));
  for (const p of r.pairs) out.push(pairLine(p, width));
  for (const p of r.pairs) {
    if (!p.a || !p.b || (p.samePath && p.differences.length === 0)) continue;
    out.push('', `${label(p.a)} ↔ ${label(p.b)}`);
    if (p.divergence) out.push(...divergenceLines(p.divergence, '  '));
    if (p.divergences.length > 1) out.push(`  and ${p.divergences.length - 1} more place${p.divergences.length > 2 ? 's' : ''} further on: ${p.divergences.slice(1).map((d) => `${d.a?.location ?? 'end'} (A seq ${d.a?.seq ?? '—'})`).join(', ')}`);
    for (const d of p.differences) out.push(`  ${d.what}: ${d.a} → ${d.b}`);
  }
  const outside = r.divergences.filter((d) => !r.pairs.some((p) => p.divergences.includes(d)));
  if (outside.length) {
    out.push('', `outside the paired calls (${outside.length}):`);
    for (const d of outside.slice(0, 10)) out.push(...divergenceLines(d, '  '), '');
  }
  return out.join('\n').replace(/\n*$/, '\n');
}
