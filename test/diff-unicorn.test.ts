// Differential test: seeded random IA-32 cases (test/gen/) run on ntflow's CPU and on Unicorn
// (test/oracle/), comparing the 8 registers, EIP, the read-back memory, the defined flags and
// the exception. NTFLOW_DIFF_SEED reproduces a run; NTFLOW_DIFF_CASES sets the count (default
// 6000); NTFLOW_DIFF_SHOW caps how many mismatches are printed in full (default 40).
import t from 'tap';
import { runCase, type ExecCase, type ExecResult } from '../core/index.js';
import { EFLAGS_COMPARED, generateCases, type GeneratedCase } from './gen/cases.js';
import { caseCountFromEnv, seedFromEnv } from './gen/prng.js';
import { UnicornOracle, type OracleResult } from './oracle/unicorn.js';
import { haveOracle } from './util/oracle.js';

const REGS = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'eip'] as const;
const FLAG_NAMES: [string, number][] = [['CF', 0x1], ['PF', 0x4], ['AF', 0x10], ['ZF', 0x40], ['SF', 0x80], ['DF', 0x400], ['OF', 0x800]];
const h = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');

/** The parts of a result that are compared (both sides have the oracle's shape). */
type Comparable = Pick<OracleResult, 'regs' | 'eflags' | 'mem' | 'exception' | 'error' | 'automapped'>;

/** Differences between Unicorn (u) and ntflow (n) for one case, as readable lines. */
export function compare(g: GeneratedCase, u: Comparable, n: Comparable): string[] {
  const out: string[] = [];
  if (n.error) out.push(`ntflow error: ${n.error}`);
  for (const r of REGS) {
    if (u.regs[r] >>> 0 !== n.regs[r] >>> 0) out.push(`${r}: unicorn ${h(u.regs[r])} ntflow ${h(n.regs[r])}`);
  }
  const ue = u.exception, ne = n.exception;
  if ((ue === null) !== (ne === null) || (ue && ne && (ue.vector !== ne.vector || ue.eip >>> 0 !== ne.eip >>> 0))) {
    const show = (e: typeof ue): string => (e ? `#${e.vector} at ${h(e.eip)}` : 'none');
    out.push(`exception: unicorn ${show(ue)} ntflow ${show(ne)}`);
  }
  // After a fault the flags are those from before the faulting instruction.
  const mask = (ue ? g.faultMasks[ue.eip >>> 0] ?? g.flagsMask : g.flagsMask) & EFLAGS_COMPARED;
  const fd = (u.eflags ^ n.eflags) & mask;
  if (fd) {
    const names = FLAG_NAMES.filter(([, b]) => fd & b).map(([s]) => s).join(' ');
    out.push(`eflags: unicorn ${h(u.eflags)} ntflow ${h(n.eflags)} differ in ${names} (compared ${mask.toString(16)})`);
  }
  u.mem.forEach((um, i) => {
    const nm = n.mem[i];
    if (!nm || nm.addr >>> 0 !== um.addr >>> 0) {
      out.push(`mem ${h(um.addr)}: ntflow did not read it back`);
      return;
    }
    if (um.data === nm.data) return;
    if (um.data === null || nm.data === null) {
      out.push(`mem ${h(um.addr)}: unicorn ${um.data === null ? 'unreadable' : 'ok'} ntflow ${nm.data === null ? 'unreadable' : 'ok'}`);
      return;
    }
    // Name the differing bytes, not the whole region.
    const spans: string[] = [];
    for (let k = 0; k < um.data.length; k += 2) {
      if (um.data.slice(k, k + 2).toLowerCase() !== nm.data.slice(k, k + 2).toLowerCase()) {
        spans.push(`${h(um.addr + k / 2)}: unicorn ${um.data.slice(k, k + 2)} ntflow ${nm.data.slice(k, k + 2)}`);
      }
    }
    out.push(`mem ${h(um.addr)}: ${spans.length} bytes differ: ${spans.slice(0, 8).join(', ')}${spans.length > 8 ? ', …' : ''}`);
  });
  return out;
}

function summary(r: Comparable): string {
  const regs = REGS.map((k) => `${k}=${h(r.regs[k])}`).join(' ');
  const ex = r.exception ? ` exception #${r.exception.vector} at ${h(r.exception.eip)}` : '';
  return `${regs} eflags=${h(r.eflags)}${ex}${r.error ? ` error=${r.error}` : ''}`;
}

t.test('ntflow agrees with Unicorn on seeded random IA-32 cases', async (t) => {
  // tap's t.skip(name) adds a visible skipped subtest, which is what haveOracle wants to show.
  if (!haveOracle({ skip: (m) => void t.skip(m ?? 'unicorn oracle missing'), fail: (m) => void t.fail(m ?? 'unicorn oracle missing') }, 'unicorn')) return;
  const seed = seedFromEnv();
  const count = caseCountFromEnv(6000);
  const show = Number(process.env.NTFLOW_DIFF_SHOW ?? 40);
  t.comment(`seed ${seed} (rerun with NTFLOW_DIFF_SEED=${seed}), ${count} cases`);

  const started = Date.now();
  const cases = generateCases(seed, count);
  const generated = Date.now();
  const oracle = new UnicornOracle();
  let expected: OracleResult[];
  try {
    expected = await Promise.all(cases.map((g) => oracle.run(g.case)));
  } finally {
    await oracle.close();
  }
  const oracleDone = Date.now();

  let mismatches = 0;
  let oracleTrouble = 0;
  let shown = 0;
  const byMnemonic = new Map<string, number>();
  for (let i = 0; i < cases.length; i++) {
    const g = cases[i]!;
    const u = expected[i]!;
    const json = JSON.stringify(g.case);
    if (u.error || u.automapped.length) {
      // The generator keeps every access inside mapped memory; this is its bug, not ntflow's.
      oracleTrouble++;
      if (oracleTrouble <= 5) t.comment(`case ${i}: Unicorn error=${u.error} automapped=${u.automapped}\n${g.text.join('\n')}\n${json}`);
      continue;
    }
    let diffs: string[];
    let n: ExecResult | null = null;
    try {
      n = runCase(g.case as unknown as ExecCase);
      diffs = compare(g, u, n);
    } catch (e) {
      diffs = [`ntflow threw: ${e instanceof Error ? e.stack ?? e.message : String(e)}`];
    }
    if (diffs.length === 0) continue;
    mismatches++;
    const key = g.mnemonics.join(' ');
    for (const m of new Set(g.mnemonics)) byMnemonic.set(m, (byMnemonic.get(m) ?? 0) + 1);
    if (shown++ < show) {
      t.comment([
        `MISMATCH case ${i} (${key})`,
        ...g.text.map((l) => `  ${l}`),
        ...diffs.map((d) => `  - ${d}`),
        `  unicorn: ${summary(u)}`,
        `  ntflow:  ${n ? summary(n) : '(threw)'}`,
        `  reproduce: echo '${json}' | bin/ntflow exec`,
      ].join('\n'));
    }
  }
  if (mismatches > 0) {
    const tally = [...byMnemonic].sort((a, b) => b[1] - a[1]).map(([m, c]) => `${m}:${c}`).join(' ');
    t.comment(`mismatching cases by mnemonic they contain: ${tally}`);
  }
  const s = (ms: number): string => (ms / 1000).toFixed(1);
  const end = Date.now();
  t.comment(`${count} cases, ${mismatches} mismatches, seed ${seed}`);
  t.comment(`time: generate ${s(generated - started)} s, unicorn ${s(oracleDone - generated)} s, ntflow+compare ${s(end - oracleDone)} s`);
  t.equal(oracleTrouble, 0, 'every case runs cleanly on Unicorn inside mapped memory (generator check)');
  t.equal(mismatches, 0, `${mismatches} of ${count} cases differ from Unicorn (seed ${seed})`);
});
