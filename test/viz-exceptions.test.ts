// Exceptions are drawn (issue L): the exception-dispatch events of a session become notes in the
// sequence diagram, saying which code went where — here zw-protect-virtual-memory, whose write to
// a read-only page is offered to the thread through KiUserExceptionDispatcher (first chance) and
// then ends the process (second chance, NtRaiseException).
//   npx tsc -p tsconfig.json && npx tap dist/test/viz-exceptions.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { record } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';
import { sequenceInput } from '../viz/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-viz-exc-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('zw-protect-virtual-memory: the dispatches are notes, in red, with where the exception went', async (t) => {
  const file = join(dir, 'protect.db');
  const { sessionId } = await record({ scenario: 'zw-protect-virtual-memory' }, { output: file });
  replayFile(file);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  const notes = sequenceInput(db, sessionId, { registerSteps: 0 }).steps.filter((s) => s.kind === 'note' && /→ (KiUserExceptionDispatcher|second chance)/.test(s.label));
  t.same(
    notes.map((s) => [s.label.replace(/at [0-9A-F]{8}/i, 'at X'), s.status?.failed, s.detail?.chance]),
    [
      ["STATUS_ACCESS_VIOLATION at X → KiUserExceptionDispatcher (the thread's handlers)", true, 'first'],
      ['STATUS_ACCESS_VIOLATION at X → second chance: the process ends', true, 'second'],
    ],
  );
  const exc = sequenceInput(db, sessionId, { registerSteps: 0 }).steps.find((s) => s.kind === 'exception');
  t.match(exc?.label, /^#PF at [0-9A-F]{8} → nt!KiTrap0E$/i, 'the fault itself is the exception arrow into KiTrap0E');
});
