// The projections folded a stretch of quiet instructions at a time (readLog's `stretches`, how
// `record` and every reader build them) are exactly the projections folded one instruction at a
// time: on every built-in scenario, on loops in user and kernel mode, a driver, and random programs
// of the fuzzer (every kind of control flow it makes, faults included).
//   npx tsc -p tsconfig.json && npx tap dist/test/log-stretches.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { SCENARIOS } from '../core/index.js';
import { openRecordWriter, record } from '../recorder/index.js';
import { PROJECTIONS, replayFile } from '../analyzer/index.js';
import { fuzzProgram } from './util/fuzz-programs.js';
import { sourceOf } from './util/randprog.js';

const dir = t.testdir();
const file = join(dir, 'stretches.db');

const userLoop = `; ntflow: user
start:
    mov ecx, 3000
l:
    add eax, ecx
    call f
    dec ecx
    jnz l
    xor eax, eax
    ret
f:
    xor edx, eax
    ret
`;
const driverLoop = `; ntflow: driver
DriverEntry:
    mov ecx, 2000
.l:
    add eax, ecx
    dec ecx
    jnz .l
    push 0
    call nt!ZwClose
    xor eax, eax
    ret 8
`;

/** Every projection table's rows for every session, in a fixed order. */
function snapshot(): Record<string, unknown[]> {
  const db = new Database(file, { readonly: true });
  try {
    return Object.fromEntries(PROJECTIONS.map((p) => [p.table.name, db.prepare(`SELECT * FROM ${p.table.name} ORDER BY ${['session_id', ...p.table.columns.map((c) => c.name)].join(', ')}`).raw().all()]));
  } finally {
    db.close();
  }
}

t.test('stretches fold to the same projections as one instruction at a time', async (t) => {
  const started = performance.now();
  const writer = openRecordWriter(); // one writer thread for every session
  for (const s of SCENARIOS) await record({ scenario: s.name }, { output: file, writer });
  const loop = await record({ program: { fileName: 'loop.asm', source: userLoop } }, { output: file, writer, maxInstructions: 1_000_000 });
  const withDriver = await record({ program: { fileName: 'loop.asm', source: userLoop }, drivers: [{ fileName: 'drv.asm', source: driverLoop }] }, { output: file, writer, maxInstructions: 1_000_000 });
  t.same([loop.outcome?.description, withDriver.outcome?.description], ['exited with STATUS_SUCCESS', 'exited with STATUS_SUCCESS'], 'the loops run to their end');
  for (let i = 0; i < 24; i++) {
    const p = fuzzProgram(20261208, i);
    await record({ program: { fileName: `fuzz-${i}.asm`, source: sourceOf(p.lines) } }, { output: file, writer, cpu: p.cpu, maxInstructions: 50_000 });
  }
  await writer.close();
  t.comment(`recorded in ${(performance.now() - started) / 1000} s`);
  const one = replayFile(file, { stretches: false });
  const byOne = snapshot();
  const stretched = replayFile(file, { stretches: true });
  const byStretch = snapshot();
  t.comment(`recorded and replayed twice in ${(performance.now() - started) / 1000} s`);
  t.ok(one.length >= SCENARIOS.length + 26, `${one.length} sessions`);
  for (let k = 0; k < one.length; k++) {
    t.same(
      stretched[k].projections.map((p) => [p.name, p.rows, p.digest]),
      one[k].projections.map((p) => [p.name, p.rows, p.digest]),
      `session ${one[k].sessionId}: every projection's rows and digest`,
    );
  }
  for (const p of PROJECTIONS) t.same(byStretch[p.table.name], byOne[p.table.name], `${p.table.name}: the same rows`);
  const rows = (name: string) => byOne[name].length;
  t.ok(rows('syscalls') > 50 && rows('calls') > 100 && rows('ring_spans') > 100, `something to compare (${rows('syscalls')} syscalls, ${rows('calls')} calls, ${rows('ring_spans')} ring spans)`);
});
