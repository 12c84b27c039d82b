// `npm run fuzz -- --seed S --count N [--jobs J] [--max-instructions M] [--shrink-budget B] [--first K] [--only I]`
// `npm run fuzz -- --fixtures`   (the audit's escape programs, test/programs/escapes.ts, instead)
//
// Runs N random ring-3 programs (test/util/randprog.ts) on the miniature XP with the invariants of
// test/invariant.test.ts — no user EIP retires at CPL 0, the system never bug-checks or stops, no
// JavaScript exception escapes Guest.run, gapless seq, no user-mode write to a kernel address —
// and prints the programs run, the failures by class, the seed, and for each class the first
// failing program shrunk to a minimal one. Deterministic: the same seed gives the same programs
// and the same report (instruction limits, never timeouts). `--jobs J` spreads the programs over J
// worker threads; the report does not depend on J. Exit status 0 when nothing failed, 1 otherwise.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { ESCAPE_FIXTURES } from '../test/programs/escapes.js';
import {
  INSTRUCTION_LIMIT, describeChecked, generateProgram, parseSeed, runChecked, shrinkProgram, sourceOf, type Checked,
} from '../test/util/randprog.js';

interface Options {
  seed: number;
  count: number;
  jobs: number;
  maxInstructions: number;
  shrinkBudget: number;
  /** First program index (programs first … first+count-1). */
  first: number;
  /** Run only this program index (and print it). */
  only: number | null;
  /** Run the escape fixtures instead of random programs. */
  fixtures: boolean;
}

interface Result {
  index: number;
  cpu: string;
  checked: Omit<Checked, 'outcome'> & { outcome: { kind: string; code: number | null; description: string } | null };
}

function parseArgs(argv: string[]): Options {
  const o: Options = { seed: 0, count: 100, jobs: 1, maxInstructions: INSTRUCTION_LIMIT, shrinkBudget: 400, first: 0, only: null, fixtures: false };
  let seedGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    const num = (x: string): number => {
      const m = /^(\d+(?:\.\d+)?)([km]?)$/i.exec(x);
      if (!m) throw new Error(`${a}: not a number: ${x}`);
      return Math.round(Number(m[1]) * (m[2].toLowerCase() === 'k' ? 1e3 : m[2].toLowerCase() === 'm' ? 1e6 : 1));
    };
    if (a === '--seed') (o.seed = parseSeed(v(), 0)), (seedGiven = true);
    else if (a === '--count' || a === '-n') o.count = num(v());
    else if (a === '--jobs' || a === '-j') o.jobs = Math.max(1, num(v()));
    else if (a === '--max-instructions') o.maxInstructions = num(v());
    else if (a === '--shrink-budget') o.shrinkBudget = num(v());
    else if (a === '--first') o.first = num(v());
    else if (a === '--only') o.only = num(v());
    else if (a === '--fixtures') o.fixtures = true;
    else if (a === '--help' || a === '-h') {
      console.log('npm run fuzz -- [--seed S] [--count N] [--jobs J] [--max-instructions M] [--shrink-budget B] [--first K] [--only I] [--fixtures]');
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  // No seed given: one derived from the process id, printed, so a run can always be repeated.
  if (!seedGiven) o.seed = (process.pid * 2654435761) >>> 0;
  return o;
}

function runOne(seed: number, index: number, maxInstructions: number): Result {
  const p = generateProgram(seed, index);
  const c = runChecked({ cpu: p.cpu, program: { fileName: `fuzz-${index}.asm`, source: sourceOf(p.lines) }, maxInstructions });
  return { index, cpu: p.cpu, checked: { ...c, outcome: c.outcome && { kind: c.outcome.kind, code: c.outcome.code, description: c.outcome.description } } };
}

// ---- worker -------------------------------------------------------------------------------------

if (!isMainThread) {
  const { seed, indexes, maxInstructions } = workerData as { seed: number; indexes: number[]; maxInstructions: number };
  for (const i of indexes) parentPort!.postMessage(runOne(seed, i, maxInstructions));
  parentPort!.postMessage('done');
}

async function runAll(o: Options, indexes: number[]): Promise<Result[]> {
  if (o.jobs <= 1) return indexes.map((i) => runOne(o.seed, i, o.maxInstructions));
  const results: Result[] = [];
  const shares: number[][] = Array.from({ length: o.jobs }, () => []);
  indexes.forEach((i, k) => shares[k % o.jobs].push(i));
  await Promise.all(
    shares.filter((s) => s.length).map(
      (share) =>
        new Promise<void>((resolve, reject) => {
          const w = new Worker(fileURLToPath(import.meta.url), { workerData: { seed: o.seed, indexes: share, maxInstructions: o.maxInstructions } });
          w.on('message', (m: Result | 'done') => {
            if (m === 'done') {
              void w.terminate();
              resolve();
            } else results.push(m);
          });
          w.on('error', reject);
        }),
    ),
  );
  return results.sort((a, b) => a.index - b.index);
}

// ---- main ---------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  if (o.fixtures) {
    const counts = new Map<string, number>();
    let failed = 0;
    for (const f of ESCAPE_FIXTURES) {
      const c = runChecked({ cpu: f.cpu, program: { fileName: 'escape.asm', source: f.source }, maxInstructions: o.maxInstructions });
      if (c.classes.length) failed++;
      for (const k of c.classes) counts.set(k, (counts.get(k) ?? 0) + 1);
      console.log(`${c.classes.length ? 'FAIL' : 'ok  '} ${f.name}: ${describeChecked(c)}`);
    }
    console.log(`\nescape fixtures: ${failed} of ${ESCAPE_FIXTURES.length} fail an invariant`);
    for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(5)}  ${k}`);
    return failed ? 1 : 0;
  }
  if (o.only !== null) {
    const p = generateProgram(o.seed, o.only);
    const r = runOne(o.seed, o.only, o.maxInstructions);
    console.log(sourceOf(p.lines));
    console.log(`seed ${o.seed} program ${o.only} (cpu ${p.cpu}): ${describeChecked(r.checked as Checked)}`);
    console.log(`classes: ${r.checked.classes.join(', ') || 'none'}`);
    return r.checked.classes.length ? 1 : 0;
  }
  console.log(`fuzz: seed ${o.seed}, ${o.count} programs (${o.first} … ${o.first + o.count - 1}), ${o.maxInstructions} instructions each, ${o.jobs} job(s)`);
  const indexes = Array.from({ length: o.count }, (_, k) => o.first + k);
  const results = await runAll(o, indexes);

  const byClass = new Map<string, Result[]>();
  const outcomes = new Map<string, number>();
  let failed = 0;
  let instructions = 0;
  for (const r of results) {
    instructions += r.checked.instructions;
    const ok = r.checked.thrown ? 'js-exception' : r.checked.outcome?.kind ?? '?';
    outcomes.set(ok, (outcomes.get(ok) ?? 0) + 1);
    if (r.checked.classes.length) failed++;
    for (const k of r.checked.classes) {
      const list = byClass.get(k) ?? [];
      list.push(r);
      byClass.set(k, list);
    }
  }
  console.log(`programs run: ${results.length}; instructions: ${instructions}; outcomes: ${[...outcomes].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  console.log(`programs failing an invariant: ${failed}`);
  const programsWith = (pred: (k: string) => boolean): number => results.filter((r) => r.checked.classes.some(pred)).length;
  const codes = new Map<string, number>();
  for (const r of results) {
    const code = r.checked.outcome?.kind === 'bugcheck' ? `0x${(r.checked.outcome.code ?? 0).toString(16).toUpperCase()}` : null;
    if (code) codes.set(code, (codes.get(code) ?? 0) + 1);
  }
  console.log(
    [
      `  a. user EIP retired at CPL 0: ${programsWith((k) => k === 'cpl0-user-eip')}`,
      `  a. ring 0 faulted on a user EIP: ${programsWith((k) => k === 'cpl0-user-fetch')}`,
      `  b. system stopped: ${programsWith((k) => k.startsWith('bugcheck') || k.startsWith('system-stop'))}${codes.size ? ` (bug checks ${[...codes].map(([c, n]) => `${c} ×${n}`).join(', ')})` : ''}`,
      `  c. JS exception: ${programsWith((k) => k.startsWith('js-exception'))}`,
      `  d. seq gap: ${programsWith((k) => k === 'seq-gap')}`,
      `  e. user write to kernel: ${programsWith((k) => k === 'user-write-kernel')}`,
    ].join('\n'),
  );
  if (!byClass.size) {
    console.log(`no failures (seed ${o.seed})`);
    return 0;
  }
  console.log('failures by class:');
  const classes = [...byClass].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]));
  for (const [k, rs] of classes) {
    console.log(`  ${String(rs.length).padStart(5)}  ${k}   (programs ${rs.slice(0, 12).map((r) => r.index).join(', ')}${rs.length > 12 ? ', …' : ''})`);
  }
  for (const [k, rs] of classes) {
    const first = rs[0];
    const p = generateProgram(o.seed, first.index);
    console.log(`\n==== ${k}: ${rs.length} program(s); first: seed ${o.seed} program ${first.index} (cpu ${p.cpu})`);
    console.log(`  ${describeChecked(first.checked as Checked)}`);
    const s = shrinkProgram(p, k, o.shrinkBudget, o.maxInstructions);
    const min = runChecked({ cpu: p.cpu, program: { fileName: 'min.asm', source: sourceOf(s.lines) }, maxInstructions: o.maxInstructions });
    console.log(`  minimal program (${s.lines.length} lines, ${s.runs} shrink runs${s.exhausted ? ', budget exhausted' : ''}; cpu ${p.cpu}): ${describeChecked(min)}`);
    console.log(sourceOf(s.lines).replace(/^/gm, '  | ').trimEnd());
  }
  console.log(`\nseed ${o.seed}: ${failed} of ${results.length} programs failed (repeat: npm run fuzz -- --seed ${o.seed} --count ${o.count}${o.first ? ` --first ${o.first}` : ''})`);
  return 1;
}

if (isMainThread) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e instanceof Error ? e.stack : e);
      process.exit(2);
    },
  );
}
