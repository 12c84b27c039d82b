// `ntflow replay FILE --verify [--session S]`: re-execute a recorded session and compare the new
// event stream with the recorded one (analyzer/verify.ts). Prints "identical (N events)" or the
// first divergent seq with both events side by side; exit status 1 on a divergence.
import cliProgress from 'cli-progress';
import { TraceFileError } from '../recorder/index.js';
import { QueryError, VerifyError, chooseSession, formatVerifyResult, openForQuery, verifySession, type Output, type VerifyResult } from '../analyzer/index.js';

/** Builds the error the CLI prints as one line with exit status 1 (cli.ts's UserError). */
export type UserErrorFactory = (message: string) => Error;

export interface VerifyCommandOptions {
  session?: string;
  /** Where the report goes (default process.stdout). */
  out?: Output;
  /** Set process.exitCode = 1 on a divergence (default true; tests turn it off). */
  exitCode?: boolean;
  /** The result as one JSON object instead of the report. */
  json?: boolean;
}

/** A progress bar on stderr when it is a terminal; nothing otherwise. */
function progressBar(total: number): { update(done: number): void; stop(): void } {
  if (!process.stderr.isTTY || total < 200_000) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: 'verifying {bar} {value}/{total} events', barsize: 24, hideCursor: true, clearOnComplete: true, fps: 8 },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return { update: (d) => bar.update(Math.min(d, total)), stop: () => bar.stop() };
}

/** Events carry 64-bit MSR values as bigints: JSON gets them as decimal strings. */
const jsonSafe = (_key: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v);

export async function verifyCommand(file: string, opts: VerifyCommandOptions = {}, userError: UserErrorFactory = (m) => new VerifyError(m)): Promise<VerifyResult> {
  let result: VerifyResult;
  try {
    const db = openForQuery(file);
    try {
      const session = chooseSession(db, opts.session);
      if (session === null) throw new QueryError(`${file} holds no sessions yet; record one with 'ntflow record <scenario> -o ${file}'`);
      const total = db.prepare('SELECT events FROM sessions WHERE id = ?').pluck().get(session) as number;
      const bar = progressBar(total);
      try {
        result = await verifySession(db, session, { onProgress: (p) => bar.update(p.compared) });
      } finally {
        bar.stop();
      }
    } finally {
      db.close();
    }
  } catch (e) {
    if (e instanceof QueryError || e instanceof TraceFileError || e instanceof VerifyError) throw userError(e.message.split('\n')[0]);
    throw e;
  }
  (opts.out ?? process.stdout).write(opts.json ? JSON.stringify(result, jsonSafe, 1) + '\n' : formatVerifyResult(result));
  if (!result.identical && opts.exitCode !== false) process.exitCode = 1;
  return result;
}
