// The demo page's "what happened" text comes from the trace (issue G part 3): after the calls and
// their statuses (analyzer's narrateSession) come the session's findings — each one's title and
// explanation, as `ntflow explain` gives them — or, with none, what the rows say: every call that
// returned succeeded, with its status. The hand-written notes say what a scenario's program does,
// never what came of it. (The whole demo page is built in viz-html.test.ts, which checks the same
// text on index.html.)
//   npx tsc -p tsconfig.json && npx tap dist/test/demo-findings.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { record } from '../recorder/index.js';
import { readFindings, replayFile, type FindingRow } from '../analyzer/index.js';
import { SCENARIO_NOTES, findingsParagraphs, whatHappened, type SyscallSummary } from '../bin/demo-page.js';
import { repoPath } from './util/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-demo-findings-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function recorded(scenario: string): Promise<{ db: Database.Database; sessionId: number }> {
  const file = join(dir, `${scenario}.db`);
  const { sessionId } = await record({ scenario }, { output: file });
  replayFile(file);
  return { db: new Database(file, { readonly: true }), sessionId };
}

const call = (id: number, name: string | null, status: number | null, statusName: string | null): SyscallSummary => ({
  id,
  name,
  caller_cpl: 3,
  entry: 'sysenter',
  previous_mode: 'UserMode',
  status,
  status_name: statusName,
});

t.test('findingsParagraphs: the findings, or what the rows say when there are none', async (t) => {
  const finding: FindingRow = {
    id: 1,
    kind: 'failure-cause',
    severity: 'error',
    cause: 'handle-closed',
    syscall_id: 2,
    seq: 40,
    title: '#2 NtReadFile → STATUS_INVALID_HANDLE: handle 7E8 closed by #1',
    detail: 'Handle 7E8 was closed by #1 NtClose at seq 20.',
    evidence: [40, 20],
  };
  t.same(findingsParagraphs([finding], [call(1, 'NtClose', 0, 'STATUS_SUCCESS'), call(2, 'NtReadFile', 0xc0000008, 'STATUS_INVALID_HANDLE')]), [
    "What ntflow found in the trace ('ntflow explain'): 1 failed call explained, 0 handles left open, 0 hooks.",
    'Error: #2 NtReadFile → STATUS_INVALID_HANDLE: handle 7E8 closed by #1. Handle 7E8 was closed by #1 NtClose at seq 20.',
  ]);
  t.same(findingsParagraphs([], [call(1, 'NtCreateFile', 0, 'STATUS_SUCCESS'), call(2, 'NtReadFile', 0x103, 'STATUS_PENDING'), call(3, 'NtTerminateProcess', null, null)]), [
    "What ntflow found in the trace ('ntflow explain'): 0 failed calls explained, 0 handles left open, 0 hooks. No system call failed: both calls that returned succeeded (#1 NtCreateFile → STATUS_SUCCESS, #2 NtReadFile → STATUS_PENDING), #3 NtTerminateProcess did not return; no handle was left open and no hook sits in the path.",
  ]);
  t.same(
    findingsParagraphs([], [call(1, null, 0xc000001c, 'STATUS_INVALID_SYSTEM_SERVICE')]),
    [
      "What ntflow found in the trace ('ntflow explain'): 0 failed calls explained, 0 handles left open, 0 hooks.",
      'No finding explains #1 rejected call → STATUS_INVALID_SYSTEM_SERVICE.',
    ],
    'a failed call without a finding is said, not hidden',
  );
});

t.test("osr-log-user-handle: the calls, how it ended, then each finding's title and explanation", async (t) => {
  const { db, sessionId } = await recorded('osr-log-user-handle');
  t.teardown(() => db.close());
  const findings = readFindings(db, sessionId);
  t.equal(findings.length, 4);
  const text = whatHappened(db, sessionId);
  const all = text.join('\n');
  for (const f of findings) {
    t.ok(all.includes(f.title), `the title of finding ${f.id}: ${f.title}`);
    t.ok(all.includes(f.detail), `its explanation`);
  }
  t.match(text[0], /^The program, osr-log-user\.exe, made 6 system calls/, "narrate's summary of the calls first");
  t.ok(text.includes('The session ended: exited with STATUS_SUCCESS.'));
  t.notMatch(all, /failed to close handle/, "narrate's own leak sentence gives way to the finding");
  t.equal(text.filter((p) => /^(Error|Warning|Note): /.test(p)).length, findings.length, 'a paragraph per finding');
});

t.test('user-nt-readfile: no findings, said from the rows — each call and its status', async (t) => {
  const { db, sessionId } = await recorded('user-nt-readfile');
  t.teardown(() => db.close());
  t.same(readFindings(db, sessionId), []);
  const last = whatHappened(db, sessionId).at(-1)!;
  const rows = db.prepare('SELECT id, name, status_name FROM syscalls WHERE session_id = ? ORDER BY id').all(sessionId) as { id: number; name: string; status_name: string | null }[];
  t.ok(rows.length > 0);
  t.match(last, /^What ntflow found in the trace \('ntflow explain'\): 0 failed calls explained, 0 handles left open, 0 hooks\. No system call failed: /);
  for (const r of rows) t.ok(last.includes(r.status_name ? `#${r.id} ${r.name} → ${r.status_name}` : `#${r.id} ${r.name} did not return`), `#${r.id} ${r.name}`);
});

t.test('the hand-written notes say what a program does, never what came of it', async (t) => {
  // Words of an outcome: a status, a failure or success, a leak, a rejection, a verdict.
  const outcome = /STATUS_|\bfail|\bsucce|\bleak|\breject|\bbug\b|\baccepts? only\b|\bexits? with\b|\bdenied\b|\bpicks\b/i;
  for (const [name, notes] of Object.entries(SCENARIO_NOTES)) {
    for (const note of notes) t.notMatch(note, outcome, `${name}: ${note.slice(0, 60)}…`);
  }
  // And no status name or outcome sentence anywhere in the page's source but in comments.
  const source = readFileSync(repoPath('bin', 'demo-page.ts'), 'utf8')
    .split('\n')
    .filter((line) => !/^\s*(\/\/|\*|\/\*\*)/.test(line))
    .join('\n');
  t.notMatch(source, /STATUS_[A-Z]/, 'no NTSTATUS written in the page source');
  for (const gone of ['The classic driver bug', 'which XP accepts only from a KernelMode caller', 'NtClose picks the handle table', 'the program exits with what it returned', 'the dispatcher must reject']) {
    t.notOk(source.includes(gone), `gone: '${gone}'`);
  }
});
