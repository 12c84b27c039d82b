// `ntflow explain FILE [--session S] [--syscall ID] [--json]`: the session's findings — why each
// failed call failed, handles left open, hooks — as sentences with their evidence (analyzer's
// findings projection; the first read of a fresh recording builds it).
import type { Command } from 'commander';
import { QueryError, chooseSessionFor, syscallRefs, checkSyscall, escapeReport, explainSession, formatExplained, openForQuery, requireProjections } from '../analyzer/index.js';
import { TraceFileError } from '../recorder/index.js';

export interface ExplainCommandOptions {
  session?: string;
  syscall?: string;
  json?: boolean;
}

export function explainCommand(file: string, opts: ExplainCommandOptions, write: (s: string) => void = (s) => process.stdout.write(s)): void {
  const db = openForQuery(file);
  try {
    const sessionId = chooseSessionFor(db, opts.session, syscallRefs(opts.syscall));
    if (sessionId === null) throw new QueryError(`${file} has no sessions; record one with 'ntflow record <scenario> -o ${file}'`);
    requireProjections(db, file, { name: 'explain', summary: '', projections: ['findings', 'hooks', 'syscalls'], needs: [], sql: '' }, sessionId);
    const syscall = opts.syscall === undefined ? undefined : checkSyscall(db, sessionId, opts.syscall, 'explain');
    const explained = explainSession(db, sessionId, { syscall });
    write(opts.json ? JSON.stringify(explained, null, 1) + '\n' : escapeReport(formatExplained(explained)));
  } finally {
    db.close();
  }
}

export function addExplainCommand(program: Command, userError: (message: string) => Error): void {
  program
    .command('explain')
    .description("why each failed call failed, which handles were left open and which hooks sit in the path: the session's findings as sentences with their evidence")
    .argument('<trace.db>', 'a trace file')
    .option('--session <id|name>', 'the session (default: the latest)')
    .option('--syscall <ref>', 'only the findings about this call: its syscalls.id, or SESSION:ID (e.g. 2:5)')
    .option('--json', 'JSON: {"session", "counts", "findings": [{id, kind, severity, cause, syscall_id, seq, title, detail, evidence, events, hook}]}')
    .action((file: string, opts: ExplainCommandOptions) => {
      try {
        explainCommand(file, opts);
      } catch (e) {
        if (e instanceof QueryError || e instanceof TraceFileError) throw userError(e.message.split('\n')[0]);
        throw e;
      }
    });
}
