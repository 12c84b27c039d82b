// `ntflow diff A.db[:SESSION] B.db[:SESSION] [--json] [-o diff.html]`: two sessions (of one file or
// two; the latest of each by default) compared — analyzer/diff does the work, viz/ draws the page
// (-o: the two sequence diagrams side by side, rows aligned), this file turns the arguments into
// sides and the errors into one line (exit 1).
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { QueryError, chooseSession, diffSessions, escapeReport, formatDiff, openForQuery, type DiffResult } from '../analyzer/index.js';
import { TraceFileError } from '../recorder/index.js';
import type Database from 'better-sqlite3';
import { cannotWrite } from './output.js';

/** "trace.db:2" → file and session; a path that exists as given is a file (it may hold ':'). */
export function parseSide(arg: string): { file: string; session?: string } {
  if (existsSync(arg)) return { file: arg };
  const colon = arg.lastIndexOf(':');
  if (colon > 0 && colon < arg.length - 1) return { file: arg.slice(0, colon), session: arg.slice(colon + 1) };
  return { file: arg };
}

/** Opens a side for reading: projections brought up to date (an older schema upgraded first, by the opening). */
function open(arg: string): { db: Database.Database; file: string; sessionId: number } {
  const { file, session } = parseSide(arg);
  const db = openForQuery(file); // an older schema is upgraded as it opens
  try {
    const sessionId = chooseSession(db, session);
    if (sessionId === null) throw new QueryError(`${file} has no sessions; record one with 'ntflow record <scenario> -o ${file}'`);
    return { db, file, sessionId };
  } catch (e) {
    db.close();
    throw e;
  }
}

export interface DiffCommandOptions {
  json?: boolean;
  /** -o: also write the comparison as a self-contained HTML page (the name must end in .html). */
  output?: string;
}

/** A mistake in the arguments of `ntflow diff` (exit 1, one line). */
export class DiffInputError extends Error {
  override name = 'DiffInputError';
}

/** -o's file name, checked before any work. */
export function checkOutput(output: string | undefined): void {
  if (output === undefined) return;
  if (existsSync(output) && statSync(output).isDirectory()) throw new DiffInputError(`-o ${output} is a directory; give a file name such as ${join(output, 'diff.html')}`);
  if (!/\.html$/i.test(output)) throw new DiffInputError(`-o ${output}: the comparison page is HTML; give a name ending in .html (e.g. -o diff.html)`);
}

export async function diffCommand(a: string, b: string, opts: DiffCommandOptions, write: (s: string) => void = (s) => process.stdout.write(s)): Promise<DiffResult> {
  checkOutput(opts.output);
  const A = open(a);
  let B: ReturnType<typeof open>;
  try {
    B = open(b);
  } catch (e) {
    A.db.close();
    throw e;
  }
  try {
    const result = diffSessions(A, B);
    write(opts.json ? JSON.stringify(result, null, 1) + '\n' : escapeReport(formatDiff(result)));
    if (opts.output !== undefined) {
      // viz/ loads only for the page (d3 and its renderers are heavy; plain diffs start faster).
      const { renderDiffHtml } = await import('../viz/index.js');
      const html = renderDiffHtml(result, A, B);
      try {
        writeFileSync(opts.output, html);
      } catch (e) {
        throw new DiffInputError(cannotWrite(opts.output, e));
      }
    }
    return result;
  } finally {
    A.db.close();
    B.db.close();
  }
}

export function addDiffCommand(program: Command, userError: (message: string) => Error): void {
  program
    .command('diff')
    .description('two sessions compared: system calls aligned, the first place each pair\'s paths part and where they join again, what differs in outcome')
    .argument('<a>', 'a trace file, or FILE:SESSION (session id or name; default the latest)')
    .argument('<b>', 'the other: FILE, or FILE:SESSION (the same file with another session is fine)')
    .option('--json', 'JSON for tools: {a, b, identical, method, pairs, divergences, differences}')
    .option('-o, --output <diff.html>', 'also write a self-contained page: the two sequence diagrams side by side, rows aligned, divergences marked')
    .action(async (a: string, b: string, opts: DiffCommandOptions) => {
      try {
        await diffCommand(a, b, opts);
      } catch (e) {
        if (e instanceof QueryError || e instanceof TraceFileError || e instanceof DiffInputError || (e instanceof Error && e.name === 'VizInputError')) throw userError(e.message.split('\n')[0]);
        throw e;
      }
    });
}
