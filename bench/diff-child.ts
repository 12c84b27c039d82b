// The diff of sessions 1 and 2 of a trace, timed, with this process's peak resident memory (bench/diff.ts).
import Database from 'better-sqlite3';
import { diffSessions } from '../analyzer/index.js';

const file = process.argv[2];
const db = new Database(file, { readonly: true });
const t0 = process.hrtime.bigint();
const r = diffSessions({ db, file, sessionId: 1 }, { db, file, sessionId: 2 });
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
db.close();
process.stdout.write(JSON.stringify({ instructions: r.a.instructions, divergences: r.divergences.length, seconds, maxRssKiB: process.resourceUsage().maxRSS }) + '\n');
