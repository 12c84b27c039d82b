// A lookup the limit check rejects is labelled with what became of its call (issue L point 7), from
// the call's syscalls row, not with a constant: in invalid-service, 0x11C and 0x1FFF end with
// STATUS_INVALID_SYSTEM_SERVICE, but 0x1000 converts the thread to a GUI thread, is looked up again
// and returns NtGdiAbortDoc's STATUS_NOT_IMPLEMENTED. The same for the named `path` query.
//   npx tsc -p tsconfig.json && npx tap dist/test/viz-rejected-lookup.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { record } from '../recorder/index.js';
import { findNamedQuery, registerFunctions, replayFile } from '../analyzer/index.js';
import { sequenceInput } from '../viz/index.js';
import { rejectedOutcome } from '../viz/data.js';
import { NTSTATUS as S } from '../core/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-rejected-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('invalid-service: each rejected lookup says what its call returned', async (t) => {
  const file = join(dir, 'invalid.db');
  const { sessionId } = await record({ scenario: 'invalid-service' }, { output: file });
  replayFile(file);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  const notes = sequenceInput(db, sessionId, { registerSteps: 0 }).steps.filter((s) => s.kind === 'note' && /past the limit/.test(s.label));
  t.same(
    notes.map((s) => [s.label, s.status?.name, s.status?.failed]),
    [
      ['SSDT[0x11C]: past the limit (284) → STATUS_INVALID_SYSTEM_SERVICE', 'STATUS_INVALID_SYSTEM_SERVICE', true],
      ['SSDT[0x1000]: past the limit (0); looked up again → NtGdiAbortDoc → STATUS_NOT_IMPLEMENTED', 'STATUS_NOT_IMPLEMENTED', true],
      ['SSDT[0x1FFF]: past the limit (667) → STATUS_INVALID_SYSTEM_SERVICE', 'STATUS_INVALID_SYSTEM_SERVICE', true],
    ],
  );

  registerFunctions(db, sessionId);
  const path = findNamedQuery('path')!.sql;
  const lookups = (id: number) =>
    (db.prepare(path).all({ session: sessionId, syscall: id }) as { event: string; what: string }[]).filter((r) => r.event === 'ssdt-lookup' && /past/.test(r.what)).map((r) => r.what);
  const ids = db.prepare('SELECT id FROM syscalls WHERE session_id = ? AND service_number IN (0x11C, 0x1000) ORDER BY id').pluck().all(sessionId) as number[];
  t.same(ids.map(lookups), [
    ["SSDT lookup: service 0x11C is past table 0's limit (284) → STATUS_INVALID_SYSTEM_SERVICE"],
    ["SSDT lookup: service 0x1000 is past table 1's limit (0); looked up again → NtGdiAbortDoc → STATUS_NOT_IMPLEMENTED"],
  ]);
});

t.test('rejectedOutcome: from the row alone', async (t) => {
  t.same(rejectedOutcome({ name: null, status: S.STATUS_INVALID_SYSTEM_SERVICE }).text, ' → STATUS_INVALID_SYSTEM_SERVICE');
  t.same(rejectedOutcome({ name: null, status: S.STATUS_ACCESS_DENIED }).text, ' → STATUS_ACCESS_DENIED', 'whatever the row says');
  t.same(rejectedOutcome({ name: 'NtUserGetThreadState', status: 0 }), { text: '; looked up again → NtUserGetThreadState → STATUS_SUCCESS', status: { code: 0, name: 'STATUS_SUCCESS', failed: false } });
  t.same(rejectedOutcome({ name: null, status: null }), { text: ' → never returned', status: undefined });
  t.same(rejectedOutcome(undefined), { text: '' });
});
