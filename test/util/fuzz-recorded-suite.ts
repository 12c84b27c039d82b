// The bounded fuzz run of `npm test` (issue K §2), split in two halves, one per test file
// (test/fuzz-recorded-1.test.ts, test/fuzz-recorded-2.test.ts) so tap runs them side by side: random ring-3 programs (randprog's block programs
// and random byte strings, test/util/fuzz-programs.ts), each RECORDED through the real recorder on
// the full guest, one session per program (test/util/fuzz-recorded.ts). Asserted, per program: the
// invariants (no user EIP retires at CPL 0, no bug check or system stop, no JavaScript exception out
// of the machine, gapless seq, no user write to a kernel address); per session in the trace: complete
// and gapless; `replay --verify` identical on every 50th program; PRAGMA integrity_check ok on every
// trace file. The nightly-style run is `npm run fuzz -- --count 100000` (BENCHMARKS.md).
//   NTFLOW_FUZZ_COUNT (default 2000, both halves together), NTFLOW_FUZZ_SEED (default below; printed)
//   repeat a run: npx tsc -p tsconfig.json && NTFLOW_FUZZ_SEED=7 npx tap dist/test/fuzz-recorded-*.test.js
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHUNK, VERIFY_EVERY, openRecordWriter, recordChunk, type ChunkResult } from './fuzz-recorded.js';
import { describeChecked, parseSeed, type Checked } from './randprog.js';

const TOTAL = Number(process.env.NTFLOW_FUZZ_COUNT ?? 2000);
const SEED = parseSeed(process.env.NTFLOW_FUZZ_SEED, 0x2026_1207);
/** Below randprog's 200 000: a program that loops forever costs a tenth as much, and nothing is lost at the boundary. */
const MAX_INSTRUCTIONS = 20_000;

/**
 * Half `half` (0 or 1) of the run: programs half·TOTAL/2 … , at a chunk boundary so its trace files
 * are the ones `npm run fuzz` writes for the same indexes. Recording 1000 programs takes one core
 * about a minute and a half (~0.08 s each: boot, run, record, check), several on a loaded machine.
 */
export function fuzzRecordedSuite(half: 0 | 1): void {
  const split = Math.ceil(TOTAL / 2 / CHUNK) * CHUNK;
  const FIRST = half === 0 ? 0 : Math.min(split, TOTAL);
  const COUNT = half === 0 ? Math.min(split, TOTAL) : TOTAL - FIRST;
  t.setTimeout(30 * 60_000);
  if (COUNT === 0) {
    t.pass(`NTFLOW_FUZZ_COUNT=${TOTAL} fits in the first half; nothing for this one`);
    return;
  }
  t.test(`recorded fuzz run: seed ${SEED}, programs ${FIRST} … ${FIRST + COUNT - 1} of ${TOTAL} (repeat: NTFLOW_FUZZ_SEED=${SEED} NTFLOW_FUZZ_COUNT=${TOTAL})`, async (t) => {
    t.comment(`seed ${SEED}`);
    const dir = mkdtempSync(join(tmpdir(), 'ntflow-fuzz-test-'));
    const writer = openRecordWriter();
    const chunks: ChunkResult[] = [];
    try {
      for (let first = FIRST; first < FIRST + COUNT; first += CHUNK) {
        chunks.push(await recordChunk({ seed: SEED, first, count: Math.min(CHUNK, FIRST + COUNT - first), maxInstructions: MAX_INSTRUCTIONS, dir, writer }));
      }
    } finally {
      await writer.close();
    }
    const results = chunks.flatMap((c) => c.results);
    const failing = results.filter((r) => r.checked.classes.length);
    const withClass = (pred: (k: string) => boolean) => results.filter((r) => r.checked.classes.some(pred));
    const show = (rs: typeof results) => rs.slice(0, 5).map((r) => `program ${r.index} (${r.kind}, cpu ${r.cpu}): ${r.checked.classes.join(', ')}: ${describeChecked(r.checked as Checked)}${r.traceDetail ? `; ${r.traceDetail}` : ''}`);

    t.equal(results.length, COUNT, 'every program ran and was checked');
    t.ok(results.reduce((n, r) => n + r.checked.instructions, 0) > COUNT * 10, 'the programs retired instructions');
    t.ok(results.some((r) => r.kind === 'bytes') && results.some((r) => r.kind === 'blocks'), 'both program classes ran (block programs and random byte strings)');
    t.ok(new Set(results.map((r) => r.checked.outcome?.kind)).size >= 2, 'the programs end in more than one way (exit, exception, instruction limit)');
    t.same(withClass((k) => k === 'cpl0-user-eip' || k === 'cpl0-user-fetch').map((r) => r.index), [], 'a. no user-range EIP ran at CPL 0', { first: show(withClass((k) => k.startsWith('cpl0'))) });
    t.same(withClass((k) => k.startsWith('bugcheck') || k.startsWith('system-stop')).map((r) => r.index), [], 'b. no program stopped the system', { first: show(withClass((k) => k.startsWith('bugcheck') || k.startsWith('system-stop'))) });
    t.same(withClass((k) => k.startsWith('js-exception')).map((r) => r.index), [], 'c. no JavaScript exception escaped the machine', { first: show(withClass((k) => k.startsWith('js-exception'))) });
    t.same(withClass((k) => k === 'seq-gap' || k === 'trace-seq-gap').map((r) => r.index), [], 'd. seq gapless, live and in the trace');
    t.same(withClass((k) => k === 'user-write-kernel').map((r) => r.index), [], 'e. no user-mode write to a kernel address');
    t.same(withClass((k) => k === 'trace-incomplete').map((r) => r.index), [], 'every session is complete in its trace');
    const verified = results.filter((r) => r.verified !== null);
    t.ok(verified.length >= Math.floor(COUNT / VERIFY_EVERY), `replay --verify ran on a sample (${verified.length} programs)`);
    t.same(verified.filter((r) => !r.verified).map((r) => r.index), [], 'replay --verify is identical on every sampled program');
    t.equal(chunks.length, Math.ceil(COUNT / CHUNK), 'a trace file per chunk');
    t.same(chunks.filter((c) => c.integrity !== 'ok').map((c) => `${c.file}: ${c.integrity}`), [], 'PRAGMA integrity_check is ok on every trace file');
    t.same(failing.map((r) => r.index), [], `no program failed a check (seed ${SEED}; npm run fuzz -- --seed ${SEED} --first ${FIRST} --count ${COUNT} --max-instructions ${MAX_INSTRUCTIONS} shrinks a failure)`, { first: show(failing) });
    if (!failing.length) rmSync(dir, { recursive: true, force: true });
    else t.comment(`traces of the failing programs kept in ${dir}`);
  });
}
