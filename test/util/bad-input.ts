// What the bad-input tests (test/bad-input*.test.ts) assert about a refusal, and how they damage a
// trace file: the one-line-error check, file hashes (a whole file, or one session's rows), and
// truncation and schema_version edits.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Test } from 'tap';
import type { CliOutput } from './cli.js';

/** sha256 of a file's bytes. */
export const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

/** One line on stderr matching `message`, exit status 1, no stack trace. */
export function assertOneLine(t: Test, r: CliOutput, message: RegExp, what: string): void {
  t.equal(r.code, 1, `${what}: exit status 1 (stderr: ${r.stderr.slice(0, 300)})`);
  t.notMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
  t.equal(r.stderr.trimEnd().split('\n').length, 1, `${what}: one line on stderr`);
  t.match(r.stderr.trimEnd(), message, `${what}: says what was wrong`);
}

/** Keeps the first `bytes` bytes of a file (or half of them). */
export const truncateTo = (bytes: number | 'half') => (file: string) => {
  const data = readFileSync(file);
  writeFileSync(file, data.subarray(0, bytes === 'half' ? data.length >> 1 : bytes));
};

/** Sets the trace's meta schema_version to `value`. */
export const setSchema = (value: string) => (file: string) => {
  const db = new Database(file);
  db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(value);
  db.close(); // the last connection checkpoints the WAL: the change is in the file's own bytes
};

/**
 * sha256 over every row one session owns (its sessions row and each table's rows with its
 * session_id), for a file that legitimately gains sessions: what was there before must not change.
 */
export function sessionHash(file: string, sessionId: number): string {
  const hash = createHash('sha256');
  const db = new Database(file, { readonly: true });
  try {
    const tables = db
      .prepare("SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' AND p.name = 'session_id' ORDER BY m.name")
      .pluck()
      .all() as string[];
    const queries: [string, string][] = [['sessions', 'SELECT * FROM sessions WHERE id = ?'], ...tables.map((t): [string, string] => [t, `SELECT * FROM "${t}" WHERE session_id = ?`])];
    for (const [table, sql] of queries) {
      hash.update(`\0table ${table}\0`);
      for (const row of db.prepare(sql).raw().iterate(sessionId) as Iterable<unknown[]>) {
        for (const v of row) {
          if (Buffer.isBuffer(v)) hash.update(v);
          else hash.update(`${typeof v}:${String(v)}`);
          hash.update('\x1f');
        }
        hash.update('\x1e');
      }
    }
  } finally {
    db.close();
  }
  return hash.digest('hex');
}
