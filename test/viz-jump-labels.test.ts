// How a sequence diagram names a jump (viz/data.ts): by where it goes. A jump out of a routine into
// another whose next arrow jumps straight back to the instruction after the first jump — on a Zw
// call, KiSystemService's `jae KiSystemServiceAccessViolation`, whose stub sees a kernel-mode
// caller and jumps back with `je KiSystemService+0xc2` — is one arrow named by where execution goes
// on, not by the stub (whose name reads like an error on this successful path); the stub stays in
// the arrow's detail. Other jumps keep their target's name.
//   npx tsc -p tsconfig.json && npx tap dist/test/viz-jump-labels.test.js
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import { record } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';
import { sequenceInput } from '../viz/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-jump-labels-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function steps(scenario: string) {
  const file = join(dir, `${scenario}.db`);
  const { sessionId } = await record({ scenario }, { output: file });
  replayFile(file);
  const db = new Database(file, { readonly: true }); // the caller closes it
  return { steps: sequenceInput(db, sessionId, { registerSteps: 0 }).steps, db, sessionId };
}

t.test('kernel-zw-readfile: the detour through the access-violation stub is one arrow named by where it goes on', async (t) => {
  const { steps: all, db, sessionId } = await steps('kernel-zw-readfile');
  // The trace: the jump into the stub and the jump straight back to the instruction after it.
  const path = db
    .prepare(
      `SELECT asm, symbol FROM instructions
       WHERE session_id = ? AND (asm LIKE 'jae nt!KiSystemServiceAccessViolation%' OR symbol LIKE 'nt!KiSystemServiceAccessViolation%') ORDER BY seq`,
    )
    .all(sessionId) as { asm: string; symbol: string }[];
  db.close();
  t.ok(path.length >= 3, `the stub ran (${path.length} instructions at or into it)`);
  t.ok(path.some((p) => p.asm.startsWith('je nt!KiSystemService+0xc2')), 'and jumped back to KiSystemService+0xc2');
  const named = all.filter((s) => s.label.includes('AccessViolation'));
  t.same(named.map((s) => s.label), [], "no arrow is named after the stub on the Zw calls' successful path");
  const detours = all.filter((s) => s.kind === 'jump' && s.label === 'jmp → nt!KiSystemService+0xc2 (the next instruction, via a stub and straight back)');
  t.ok(detours.length >= 1, `${detours.length} detour arrow(s)`);
  for (const d of detours) {
    t.equal(d.from, d.to, 'within the dispatcher lane');
    t.equal(d.detail.through, 'nt!KiSystemServiceAccessViolation', 'the stub is in the detail');
    t.match(d.detail.instruction, /^jae nt!KiSystemServiceAccessViolation/);
    t.match(d.detail.back, /^je nt!KiSystemService\+0xc2/);
  }
  t.notOk(all.some((s) => s.label === 'jmp nt!KiSystemService+0xc2'), 'no second arrow for the way back');
  t.ok(all.some((s) => s.label === 'jmp nt!KiSystemService+0x5c'), "an ordinary jump keeps its target's name");
});

t.test('user-nt-readfile: a user-mode call does not take the detour; its jumps keep their names', async (t) => {
  const { steps: all, db } = await steps('user-nt-readfile');
  db.close();
  t.notOk(all.some((s) => s.label.includes('straight back')), 'no detour');
  t.ok(all.some((s) => s.label === 'jmp nt!KiSystemService+0x5c'));
});
