// `npm run fuzz -- --seed S --count N [--jobs J] [--max-instructions M] [--shrink-budget B] [--first K] [--only I]
//                  [--bare] [--verify-every V] [--trace-dir D] [--keep-traces]`
// `npm run fuzz -- --fixtures`   (the audit's escape programs, test/programs/escapes.ts, instead)
//
// Runs N random ring-3 programs (test/util/fuzz-programs.ts: randprog's block programs and random
// byte strings) on the miniature XP, each RECORDED through the real recorder (one session per
// program, a trace file per 250 programs: test/util/fuzz-recorded.ts), with the invariants of
// test/util/invariants.ts — no user EIP retires at CPL 0, the system never bug-checks or stops, no
// JavaScript exception escapes the machine, gapless seq, no user-mode write to a kernel address —
// and the trace's own checks: every session complete and gapless in the file, `replay --verify`
// identical on every V-th program and every failing one, PRAGMA integrity_check ok on every file.
// `--bare` runs the same programs unrecorded (the invariants only). Prints the programs run, the
// failures by class, the seed, for each class the first failing program shrunk to a minimal one,
// and a last line of JSON for tools. Deterministic: the same seed gives the same programs and the
// same report (instruction limits, never timeouts) whatever J. Exit status 0 when nothing failed.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { ESCAPE_FIXTURES } from '../test/programs/escapes.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INSTRUCTION_LIMIT, describeChecked, parseSeed, runChecked, shrinkProgram, sourceOf, type Checked } from '../test/util/randprog.js';
import { fuzzProgram } from '../test/util/fuzz-programs.js';
import { CHUNK, TRACE_CLASSES, VERIFY_EVERY, openRecordWriter, recordChunk, runBareProgram, type ChunkResult, type ProgramResult } from '../test/util/fuzz-recorded.js';

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
  /** Run unrecorded (the invariants only). */
  bare: boolean;
  verifyEvery: number;
  /** Where trace files go (default: a new folder under the system's temporary folder). */
  traceDir: string | null;
  keepTraces: boolean;
}

type Result = ProgramResult;

function parseArgs(argv: string[]): Options {
  const o: Options = { seed: 0, count: 100, jobs: 1, maxInstructions: INSTRUCTION_LIMIT, shrinkBudget: 400, first: 0, only: null, fixtures: false, bare: false, verifyEvery: VERIFY_EVERY, traceDir: null, keepTraces: false };
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
    else if (a === '--bare') o.bare = true;
    else if (a === '--verify-every') o.verifyEvery = Math.max(1, num(v()));
    else if (a === '--trace-dir') o.traceDir = v();
    else if (a === '--keep-traces') o.keepTraces = true;
    else if (a === '--help' || a === '-h') {
      console.log('npm run fuzz -- [--seed S] [--count N] [--jobs J] [--max-instructions M] [--shrink-budget B] [--first K] [--only I] [--fixtures] [--bare] [--verify-every V] [--trace-dir D] [--keep-traces]');
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  // No seed given: one derived from the process id, printed, so a run can always be repeated.
  if (!seedGiven) o.seed = (process.pid * 2654435761) >>> 0;
  return o;
}

/** The programs first … first+count-1 as chunks of CHUNK (a trace file each), fixed by index alone. */
function chunksOf(first: number, count: number): { first: number; count: number }[] {
  const out: { first: number; count: number }[] = [];
  for (let i = first; i < first + count; i += CHUNK) out.push({ first: i, count: Math.min(CHUNK, first + count - i) });
  return out;
}

interface Job {
  seed: number;
  chunks: { first: number; count: number }[];
  maxInstructions: number;
  bare: boolean;
  verifyEvery: number;
  dir: string;
  keep: boolean;
}

/** Run a share of the chunks, handing each one's results to `done` as it finishes. */
async function runJob(j: Job, done: (c: ChunkResult) => void): Promise<void> {
  if (j.bare) {
    for (const c of j.chunks) {
      const results = Array.from({ length: c.count }, (_, k) => runBareProgram(j.seed, c.first + k, j.maxInstructions));
      done({ first: c.first, results, file: '', kept: false, integrity: 'ok' });
    }
    return;
  }
  const writer = openRecordWriter();
  try {
    for (const c of j.chunks) done(await recordChunk({ seed: j.seed, first: c.first, count: c.count, maxInstructions: j.maxInstructions, dir: j.dir, writer, verifyEvery: j.verifyEvery, keep: j.keep }));
  } finally {
    await writer.close();
  }
}

// ---- worker -------------------------------------------------------------------------------------

if (!isMainThread) {
  runJob(workerData as Job, (c) => parentPort!.postMessage(c)).then(
    () => parentPort!.postMessage('done'),
    (e: unknown) => {
      throw e;
    },
  );
}

async function runAll(o: Options, dir: string, onChunk: (c: ChunkResult) => void): Promise<ChunkResult[]> {
  const chunks = chunksOf(o.first, o.count);
  const out: ChunkResult[] = [];
  const done = (c: ChunkResult) => {
    out.push(c);
    onChunk(c);
  };
  const job = (share: typeof chunks): Job => ({ seed: o.seed, chunks: share, maxInstructions: o.maxInstructions, bare: o.bare, verifyEvery: o.verifyEvery, dir, keep: o.keepTraces });
  if (o.jobs <= 1) await runJob(job(chunks), done);
  else {
    const shares: (typeof chunks)[] = Array.from({ length: o.jobs }, () => []);
    chunks.forEach((c, k) => shares[k % o.jobs].push(c));
    await Promise.all(
      shares.filter((s) => s.length).map(
        (share) =>
          new Promise<void>((resolve, reject) => {
            const w = new Worker(fileURLToPath(import.meta.url), { workerData: job(share) });
            w.on('message', (m: ChunkResult | 'done') => {
              if (m === 'done') {
                void w.terminate();
                resolve();
              } else done(m);
            });
            w.on('error', reject);
          }),
      ),
    );
  }
  return out.sort((a, b) => a.first - b.first);
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
    const p = fuzzProgram(o.seed, o.only);
    const r = runBareProgram(o.seed, o.only, o.maxInstructions);
    console.log(sourceOf(p.lines));
    console.log(`seed ${o.seed} program ${o.only} (${p.kind}, cpu ${p.cpu}): ${describeChecked(r.checked as Checked)}`);
    console.log(`classes: ${r.checked.classes.join(', ') || 'none'}`);
    return r.checked.classes.length ? 1 : 0;
  }
  console.log(
    `fuzz: seed ${o.seed}, ${o.count} programs (${o.first} … ${o.first + o.count - 1}), ${o.maxInstructions} instructions each, ` +
      (o.bare ? 'bare guest (not recorded)' : `recorded, ${CHUNK} sessions a trace file, replay --verify on every ${o.verifyEvery}th program`),
  );
  const dir = o.traceDir ?? mkdtempSync(join(tmpdir(), 'ntflow-fuzz-'));
  const started = Date.now();
  let doneCount = 0;
  // Progress on stderr, in the order chunks finish (the report on stdout is in index order).
  const chunks = await runAll(o, dir, (c) => {
    doneCount += c.results.length;
    const s = (Date.now() - started) / 1000;
    process.stderr.write(`fuzz: ${doneCount}/${o.count} programs, ${s.toFixed(0)} s, ${(doneCount / s).toFixed(1)} programs/s${c.kept ? `; kept ${c.file}` : ''}\n`);
  });
  const seconds = (Date.now() - started) / 1000;
  const results = chunks.flatMap((c) => c.results);
  const kept = chunks.filter((c) => c.kept).map((c) => c.file);
  if (!o.traceDir && !kept.length) rmSync(dir, { recursive: true, force: true });

  const byClass = new Map<string, Result[]>();
  const outcomes = new Map<string, number>();
  const kinds = new Map<string, number>();
  let failed = 0;
  let instructions = 0;
  for (const r of results) {
    instructions += r.checked.instructions;
    kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
    const ok = r.checked.thrown ? 'js-exception' : r.checked.outcome?.kind ?? '?';
    outcomes.set(ok, (outcomes.get(ok) ?? 0) + 1);
    if (r.checked.classes.length) failed++;
    for (const k of r.checked.classes) {
      const list = byClass.get(k) ?? [];
      list.push(r);
      byClass.set(k, list);
    }
  }
  console.log(`programs run: ${results.length} (${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}); instructions: ${instructions}; outcomes: ${[...outcomes].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  console.log(`programs failing a check: ${failed}`);
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
  const verified = results.filter((r) => r.verified !== null).length;
  const report = {
    seed: o.seed,
    first: o.first,
    recorded: !o.bare,
    programs: results.length,
    instructions,
    outcomes: Object.fromEntries(outcomes),
    failed,
    crashes: programsWith((k) => k.startsWith('bugcheck') || k.startsWith('system-stop')),
    escapes: programsWith((k) => k === 'cpl0-user-eip' || k === 'cpl0-user-fetch' || k === 'user-write-kernel'),
    jsExceptions: programsWith((k) => k.startsWith('js-exception')),
    seqGaps: programsWith((k) => k === 'seq-gap' || k === 'trace-seq-gap'),
    verifySamples: verified,
    verifyMismatches: programsWith((k) => k === 'verify-mismatch'),
    traceFiles: o.bare ? 0 : chunks.length,
    integrityFailures: chunks.filter((c) => c.integrity !== 'ok').length,
  };
  if (!o.bare) {
    console.log(
      [
        `  trace: ${report.traceFiles} trace files, PRAGMA integrity_check not ok: ${report.integrityFailures}`,
        `  trace: sessions incomplete or not gapless in the file: ${programsWith((k) => k === 'trace-incomplete' || k === 'trace-seq-gap')}`,
        `  trace: replay --verify on ${verified} programs, mismatches: ${report.verifyMismatches}`,
      ].join('\n'),
    );
  }
  process.stderr.write(`fuzz: ${results.length} programs in ${seconds.toFixed(1)} s wall, ${(results.length / seconds).toFixed(1)} programs/s${kept.length ? `; traces kept: ${kept.join(', ')}` : ''}\n`);
  const json = () => console.log(JSON.stringify({ fuzz: report }));
  if (!byClass.size) {
    console.log(`no failures (seed ${o.seed})`);
    json();
    return 0;
  }
  console.log('failures by class:');
  const classes = [...byClass].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]));
  for (const [k, rs] of classes) {
    console.log(`  ${String(rs.length).padStart(5)}  ${k}   (programs ${rs.slice(0, 12).map((r) => r.index).join(', ')}${rs.length > 12 ? ', …' : ''})`);
  }
  for (const [k, rs] of classes) {
    const first = rs[0];
    const p = fuzzProgram(o.seed, first.index);
    console.log(`\n==== ${k}: ${rs.length} program(s); first: seed ${o.seed} program ${first.index} (${p.kind}, cpu ${p.cpu})`);
    console.log(`  ${describeChecked(first.checked as Checked)}${first.traceDetail ? `; ${first.traceDetail}` : ''}`);
    if ((TRACE_CLASSES as readonly string[]).includes(k)) {
      // The trace's own checks need a recording to fail: the program is printed whole, unshrunk.
      console.log(`  program (${p.lines.length} lines; the trace is kept in ${dir}):`);
      console.log(sourceOf(p.lines).replace(/^/gm, '  | ').trimEnd());
      continue;
    }
    const s = shrinkProgram(p, k, o.shrinkBudget, o.maxInstructions);
    const min = runChecked({ cpu: p.cpu, program: { fileName: 'min.asm', source: sourceOf(s.lines) }, maxInstructions: o.maxInstructions });
    console.log(`  minimal program (${s.lines.length} lines, ${s.runs} shrink runs${s.exhausted ? ', budget exhausted' : ''}; cpu ${p.cpu}): ${describeChecked(min)}`);
    console.log(sourceOf(s.lines).replace(/^/gm, '  | ').trimEnd());
  }
  console.log(`\nseed ${o.seed}: ${failed} of ${results.length} programs failed (repeat: npm run fuzz -- --seed ${o.seed} --count ${o.count}${o.first ? ` --first ${o.first}` : ''}${o.bare ? ' --bare' : ''})`);
  json();
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
