// `ntflow replay FILE [--session S] [--verify]`: rebuild the projections from the log (with a
// progress bar on a terminal), or re-execute the session and compare (--verify).
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import { ReplayInputError, replayFile, resolveSession } from '../analyzer/index.js';
import { verifyCommand } from './verify.js';
import { openTraceForReading } from '../recorder/index.js';

/** A session id from an id or a name (one-line error when there is none). */
function sessionId(file: string, session: string): number {
  const db = openTraceForReading(file);
  try {
    return resolveSession(db, session);
  } finally {
    db.close();
  }
}

export function addReplayCommand(program: Command, userError: (message: string) => Error): void {
  program
    .command('replay')
    .description('rebuild the projections (syscalls, calls, symbols, ring_spans, syscall_args) from the log; --verify re-executes and compares')
    .argument('<trace.db>', 'a trace file')
    .option('--session <id|name>', 'one session (default: every session)')
    .option('--verify', 're-execute the session from its stored program and options and compare the new event stream with the recorded one')
    .option('--json', 'JSON: an array of {sessionId, events, seconds, projections: [{name, rows, digest}]}; with --verify one object {sessionId, name, status, compared, recorded, identical, divergence, lastIdentical, outcome, recordedOutcome, note}')
    .action(async (file: string, opts: { session?: string; verify?: boolean; json?: boolean }) => {
      if (opts.verify) {
        await verifyCommand(file, { session: opts.session, json: opts.json }, userError);
        return;
      }
      const bar = process.stderr.isTTY
        ? new cliProgress.SingleBar({ format: 'replay {bar} {percentage}% | {value}/{total} events | session {session}', clearOnComplete: true, stream: process.stderr }, cliProgress.Presets.shades_classic)
        : null;
      let started = false;
      try {
        const results = replayFile(file, {
          session: opts.session === undefined ? undefined : sessionId(file, opts.session),
          onProgress: (p) => {
            if (!bar) return;
            if (!started) (started = true), bar.start(p.total, 0, { session: p.sessionId });
            bar.setTotal(p.total);
            bar.update(p.events, { session: p.sessionId });
          },
        });
        bar?.stop();
        if (opts.json) {
          const list = results.map((r) => ({ sessionId: r.sessionId, events: r.events, seconds: r.seconds, projections: r.projections.map((p) => ({ name: p.name, rows: p.rows, digest: p.digest })) }));
          process.stdout.write(JSON.stringify(list, null, 1) + '\n');
          return;
        }
        for (const r of results) {
          const rate = r.seconds > 0 ? ` (${(r.events / r.seconds / 1e6).toFixed(2)} M events/s)` : '';
          process.stdout.write(`session ${r.sessionId}: ${r.events} events replayed in ${r.seconds.toFixed(2)} s${rate}\n`);
          for (const p of r.projections) process.stdout.write(`  ${p.name.padEnd(13)} ${String(p.rows).padStart(8)} rows  digest ${p.digest.slice(0, 16)}\n`);
        }
      } catch (e) {
        bar?.stop();
        if (e instanceof ReplayInputError) throw userError(e.message);
        throw e;
      }
    });
}
