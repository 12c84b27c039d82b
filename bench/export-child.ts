// One export of session 1 of a trace to a file, timed, with this process's peak resident memory (bench/export.ts).
import Database from 'better-sqlite3';
import { closeSync, openSync, writeSync } from 'node:fs';
import { EXPORTERS, type ExportFormat } from '../export/index.js';

const [file, format, out] = process.argv.slice(2);
const db = new Database(file, { readonly: true });
const fd = openSync(out, 'w');
let bytes = 0;
const t0 = process.hrtime.bigint();
const stats = EXPORTERS[format as ExportFormat]!({ db, sessionId: 1 }, {
  write(chunk) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    bytes += writeSync(fd, buf);
  },
});
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
closeSync(fd);
const instructions = db.prepare('SELECT instructions FROM sessions WHERE id = 1').pluck().get() as number;
const frames = db.prepare('SELECT count(*) FROM calls WHERE session_id = 1').pluck().get() as number;
const syscalls = db.prepare('SELECT count(*) FROM syscalls WHERE session_id = 1').pluck().get() as number;
db.close();
process.stdout.write(JSON.stringify({ items: stats.items, bytes, seconds, maxRssKiB: process.resourceUsage().maxRSS, instructions, frames, syscalls }) + '\n');
