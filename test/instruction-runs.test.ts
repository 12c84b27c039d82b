// How the trace stores instructions (schema 6, issue J §1): runs of consecutive instructions, one
// row each listing straight-line blocks with repeat counts, expanded by the `instructions` view in
// plain SQLite. Checked against the machine's own
// event stream (what the recording was fed), through the sqlite3 CLI (no ntflow functions), and
// through ntflow query's instruction_effects; and the run encoding on its own, bad blobs included.
//   npx tsc -p tsconfig.json && npx tap dist/test/instruction-runs.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { TraceEvent } from '../core/index.js';
import { BlockEncoder, InstructionRuns, MAX_RUN, decodeRunEffects, effectsAt, encodeRunEffects, expandBlocks, packEffects, record, RunFormatError, type NewBlock } from '../recorder/index.js';
import { ntflow } from './util/cli.js';

const dir = t.testdir();
const trace = join(dir, 'runs.db');

/** A user loop: 3 instructions an iteration, no other event between them. */
const LOOP = (n: number) => `; ntflow: user
start:
    mov ecx, ${n}
l:
    push ecx
    pop edx
    loop l
    xor eax, eax
    ret
`;

interface Seen {
  icount: number;
  thread: number;
  eip: number;
  cpl: number;
  bytes: string;
  effects: string;
}
/** Each session's instruction events as the machine emitted them (seq → what the trace must give back). */
const live = new Map<number, Map<number, Seen>>();
const events = new Map<number, number>();

t.before(async () => {
  for (const target of [{ program: { fileName: 'loop.asm', source: LOOP(30_000) } }, { scenario: 'osr-log-user-handle' }] as const) {
    const seen = new Map<number, Seen>();
    const buf = new Uint8Array(4096);
    const s = await record(target, {
      output: trace,
      onGuest: (g) =>
        g.events$.subscribe((e: TraceEvent) => {
          if (e.type !== 'instruction') return;
          const end = packEffects(e, buf, 0);
          seen.set(e.seq, { icount: e.icount, thread: e.thread, eip: e.eip, cpl: e.cpl, bytes: Buffer.from(e.bytes).toString('hex').toUpperCase(), effects: Buffer.from(buf.subarray(0, end)).toString('hex').toUpperCase() });
        }),
    });
    live.set(s.sessionId, seen);
    events.set(s.sessionId, s.events);
  }
});

t.test('runs: up to 4096 instructions a row, together with the other events every seq exactly once', async (t) => {
  const db = new Database(trace, { readonly: true });
  t.teardown(() => db.close());
  for (const [id, seen] of live) {
    const runs = db.prepare('SELECT seq, count, icount, thread_id, blocks FROM instruction_runs WHERE session_id = ? ORDER BY seq').all(id) as { seq: number; count: number; icount: number; thread_id: number; blocks: string }[];
    const blockLength = new Map(db.prepare('SELECT id, length FROM code_blocks WHERE session_id = ?').raw().all(id) as [number, number][]);
    const marks = db.prepare('SELECT seq FROM event_marks WHERE session_id = ?').pluck().all(id) as number[];
    const covered = new Uint8Array(events.get(id)!);
    for (const r of runs) for (let k = 0; k < r.count; k++) covered[r.seq + k]++;
    for (const m of marks) covered[m]++;
    t.ok(covered.every((c) => c === 1), `session ${id}: seq 0 … ${covered.length - 1}, each once`);
    const listed = (r: { blocks: string }) => (JSON.parse(r.blocks) as [number, number, number][]).reduce((n, [, block, times]) => n + times * blockLength.get(block)!, 0);
    t.ok(runs.every((r) => r.count >= 1 && r.count <= MAX_RUN && listed(r) === r.count), 'each run 1 … 4096 instructions, its blocks listing each once');
    t.equal(runs.reduce((n, r) => n + r.count, 0), seen.size, 'as many instructions as the machine retired');
    // A run ends only where another event comes between, or at a batch's end or its length cap.
    const markSet = new Set(marks);
    const joinable = runs.filter((r, i) => i > 0 && runs[i - 1].seq + runs[i - 1].count === r.seq && runs[i - 1].count + r.count <= MAX_RUN && !markSet.has(r.seq - 1));
    t.ok(joinable.length <= Math.ceil(seen.size / 65536) + 1, `runs split only at batch ends (${joinable.length} such splits)`);
  }
  const loopRuns = db.prepare('SELECT count(*) FROM instruction_runs WHERE session_id = 1').pluck().get() as number;
  t.ok(loopRuns < live.get(1)!.size / 1000, `the loop's ${live.get(1)!.size} instructions are ${loopRuns} rows`);
});

t.test('the sqlite3 CLI reads the instructions view with no extension: what the machine emitted', async (t) => {
  for (const [id, seen] of live) {
    const [lo, hi] = id === 1 ? [60_000, 62_000] : [0, events.get(id)! - 1];
    const r = spawnSync('sqlite3', ['-readonly', '-csv', trace, `SELECT seq, eip, cpl, hex(bytes), icount, thread_id, asm FROM instructions WHERE session_id = ${id} AND seq BETWEEN ${lo} AND ${hi}`], { encoding: 'utf8' });
    t.equal(r.status, 0, r.stderr);
    const rows = r.stdout.trimEnd().split('\n').map((line) => line.split(','));
    const expected = [...seen.keys()].filter((s) => s >= lo && s <= hi).sort((a, b) => a - b);
    t.same(rows.map((x) => Number(x[0])), expected, `session ${id}: the instructions of seq ${lo} … ${hi}, in order`);
    const wrong = rows.filter((x) => {
      const e = seen.get(Number(x[0]))!;
      return Number(x[1]) !== e.eip || Number(x[2]) !== e.cpl || x[3] !== e.bytes || Number(x[4]) !== e.icount || Number(x[5]) !== e.thread || x.slice(6).join(',').length === 0;
    });
    t.same(wrong.slice(0, 3), [], 'each with the address, privilege level, bytes, icount and thread it ran with, and its disassembly');
  }
});

t.test("ntflow query's instruction_effects: every instruction's effects as the machine reported them", async (t) => {
  for (const [id, seen] of live) {
    const q = await ntflow(['query', trace, '--session', String(id), '--format', 'csv', 'SELECT seq, hex(effects) FROM instruction_effects WHERE session_id = :session ORDER BY seq']);
    t.equal(q.code, 0, q.stderr);
    const rows = q.stdout.trimEnd().split('\n').slice(1).map((line) => line.split(','));
    t.equal(rows.length, seen.size, `session ${id}: one row per instruction`);
    const wrong = rows.filter(([seq, hex]) => seen.get(Number(seq))?.effects !== hex).slice(0, 3);
    t.same(wrong, [], 'each the packed effects of its instruction event');
  }
});

t.test('the run encoding: effects round-trip through the columns, stored or deflated; damage is named', async (t) => {
  const cases: Uint8Array[][] = [
    [new Uint8Array(0), Uint8Array.of(0x40, 5), new Uint8Array(0)],
    Array.from({ length: 3000 }, (_, i) => (i % 3 === 0 ? new Uint8Array(0) : Uint8Array.of(0x41, i & 0xff, 0x84, 1, 2, 3, 4, i & 0xff, 0, 0, 0))),
    [new Uint8Array(300).fill(7), Uint8Array.of(0x41, 1), Uint8Array.of(0x68, 0x45, 0xc0, 1, 2, 3, 4, 5, 6, 7, 8, 0x82, 0xff, 0xff, 0xff, 0xff, 0x34, 0x12)],
  ];
  for (const list of cases) {
    const ends = new Uint32Array(list.length);
    let total = 0;
    list.forEach((e, i) => (ends[i] = total += e.length));
    const bytes = new Uint8Array(total + 5); // effects after an offset, as in a batch
    list.forEach((e, i) => bytes.set(e, 5 + ends[i] - e.length));
    for (let i = 0; i < ends.length; i++) ends[i] += 5;
    const blob = encodeRunEffects(bytes, ends, 0, list.length, 5)!;
    const run = decodeRunEffects(blob, list.length);
    t.same(
      list.map((_, i) => Buffer.from(effectsAt(run, i) ?? new Uint8Array(0)).toString('hex')),
      list.map((e) => Buffer.from(e).toString('hex')),
      `${list.length} instructions, ${blob[0] === 1 ? 'deflated' : 'stored'} in ${blob.length} bytes`,
    );
  }
  t.equal(encodeRunEffects(new Uint8Array(4), Uint32Array.of(0, 0), 0, 2, 0), null, 'nothing changed: NULL');
  const damage = (blob: Uint8Array, why: RegExp, what: string) => {
    let thrown: unknown = null;
    try {
      decodeRunEffects(blob, 1);
    } catch (e) {
      thrown = e;
    }
    t.ok(thrown instanceof RunFormatError, `${what}: a RunFormatError (a TraceFileError: one line for the user)`);
    t.match((thrown as Error).message, why, what);
  };
  damage(Uint8Array.of(9, 1, 2), /effects encoding 9 is not one ntflow writes.*restore it from a copy/, 'an unknown encoding');
  damage(Uint8Array.of(0, 5, 1), /structure column is longer than the blob/, 'a structure column longer than the blob');
  damage(Uint8Array.of(0, 0x80), /varint runs past its column/, 'a length cut short');
  damage(Uint8Array.of(0, 2, 1, 0x40), /value column ends early/, 'a value missing');
  damage(Uint8Array.of(0, 2, 1, 0x40, 4, 9), /more than their instructions/, 'bytes left over');
  damage(Uint8Array.of(1, 0xff, 0xff, 0xff), /damaged/, 'deflate data that does not inflate');
});

t.test('block lists: straight-line blocks, repeats as one item, expanded back exactly; damage is named', async (t) => {
  // Code 0..5: 0-1-2 straight (2 bytes each from 0x1000), 3 a jump back (at 0x1006), 4-5 elsewhere.
  const enc = new BlockEncoder();
  [[0, 0x1000, 2], [1, 0x1002, 2], [2, 0x1004, 2], [3, 0x1006, 2], [4, 0x2000, 1], [5, 0x2001, 5]].forEach(([id, eip, len]) => enc.addCode(id, eip, len));
  const loop = [4, 5, ...Array.from({ length: 1000 }, () => [0, 1, 2, 3]).flat(), 0, 1];
  const fresh: NewBlock[] = [];
  const items = enc.encode(loop, 0, loop.length, fresh);
  t.equal(items, '[[0,0,1],[2,1,1000],[4002,2,1]]', 'the loop body is one item repeated 1000 times');
  t.same(fresh.map((b) => [b.id, b.codes, b.length]), [[0, '[4,5]', 2], [1, '[0,1,2,3]', 4], [2, '[0,1]', 2]], 'each distinct block once');
  const byId = new Map(fresh.map((b) => [b.id, JSON.parse(b.codes) as number[]]));
  t.same(expandBlocks(items, loop.length, (id) => byId.get(id)), loop, 'expanded: every code id in order');
  const again: NewBlock[] = [];
  t.equal(enc.encode([0, 1, 2, 3, 0, 1, 2, 3], 0, 8, again), '[[0,1,2]]', 'a later run reuses the numbered block');
  t.same(again, [], 'and adds none');
  const damaged = (list: string, count: number, why: RegExp) => {
    let thrown: unknown = null;
    try {
      expandBlocks(list, count, (id) => byId.get(id));
    } catch (e) {
      thrown = e;
    }
    t.match((thrown as Error)?.message, why, `${list} (${count}): ${why}`);
  };
  damaged('[[0,1,2]', 8, /not JSON/);
  damaged('[[0,9,1]]', 2, /block 9 is not in code_blocks/);
  damaged('[[0,1,3]]', 8, /does not follow on/);
  damaged('[[0,1,1]]', 8, /hold 4 instructions, not 8/);
  damaged('[[1,1,1]]', 4, /does not follow on/);

  // Through the reader, a damaged list in a file is one line naming it (a TraceFileError).
  const db = new Database(trace);
  t.teardown(() => db.close());
  const seq = db.prepare('SELECT seq FROM instruction_runs WHERE session_id = 1 ORDER BY seq LIMIT 1').pluck().get() as number;
  db.prepare("UPDATE instruction_runs SET blocks = '[[0,999999,1]]' WHERE session_id = 1 AND seq = ?").run(seq);
  let thrown: unknown = null;
  try {
    new InstructionRuns(db, 1).codes(seq, seq);
  } catch (e) {
    thrown = e;
  }
  t.ok(thrown instanceof RunFormatError, 'a RunFormatError');
  t.match((thrown as Error).message, /^an instruction run's instruction list is damaged \(the run at seq \d+: block 999999 is not in code_blocks\); the trace file is damaged/);
});
