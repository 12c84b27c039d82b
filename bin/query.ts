// `ntflow query FILE "SQL" | --schema | --named NAME`: read-only SQL over a trace (analyzer/query.ts),
// the file's own documented schema, and the named queries (analyzer/named.ts). This file turns the
// command line into those calls and their errors into one-line user errors (exit 1).
import { Option, type Command } from 'commander';
import type Database from 'better-sqlite3';
import { escapeGuestText } from '../analyzer/index.js';
import { TraceFileError } from '../recorder/index.js';
import {
  NAMED_QUERIES,
  checkSyscall,
  findNamedQuery,
  namedQueryList,
  requireProjections,
  QUERY_FORMATS,
  QueryError,
  chooseSessionFor,
  syscallRefs,
  openForQuery,
  prepareReadOnly,
  registerFunctions,
  runQuery,
  schemaText,
  streamRows,
  type Output,
  type QueryFormat,
} from '../analyzer/index.js';

/** Builds the error the CLI prints as one line with exit status 1 (cli.ts's UserError). */
export type UserErrorFactory = (message: string) => Error;

export interface QueryCommandOptions {
  session?: string;
  format?: QueryFormat;
  schema?: boolean;
  named?: string;
  syscall?: string;
  /** Tables print addresses, handles and NTSTATUS in decimal (default hex). */
  decimal?: boolean;
  /** Where the output goes (default process.stdout). */
  out?: Output;
}

const defaultUserError: UserErrorFactory = (m) => new QueryError(m);

/** QueryError and TraceFileError become the CLI's user errors; anything else is internal. */
async function asUser<T>(userError: UserErrorFactory, f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof QueryError || e instanceof TraceFileError) throw userError(e.message.split('\n')[0]);
    throw e;
  }
}

function checkFormat(format: string | undefined): QueryFormat {
  const f = (format ?? 'table') as QueryFormat;
  if (!QUERY_FORMATS.includes(f)) throw new QueryError(`--format must be one of ${QUERY_FORMATS.join(', ')} (got '${format}')`);
  return f;
}

/** `ntflow query FILE "SQL"`: one read-only statement, its rows streamed in the chosen format. */
export async function queryCommand(file: string, sql: string, opts: QueryCommandOptions = {}, userError: UserErrorFactory = defaultUserError): Promise<number> {
  return asUser(userError, () => runQuery(file, sql, { session: opts.session, format: checkFormat(opts.format), out: opts.out, decimal: opts.decimal }));
}

/** `ntflow query FILE --schema`: every table and view with its documentation, from the file. */
export async function schemaCommand(file: string, opts: { out?: QueryCommandOptions['out'] } = {}, userError: UserErrorFactory = defaultUserError): Promise<void> {
  return asUser(userError, () => {
    const db = openForQuery(file);
    try {
      (opts.out ?? process.stdout).write(schemaText(db, file));
    } finally {
      db.close();
    }
  });
}

/** `ntflow query FILE --named NAME [--syscall ID]` (`--named list` lists them). */
export async function namedCommand(file: string, name: string, opts: QueryCommandOptions = {}, userError: UserErrorFactory = defaultUserError): Promise<number> {
  return asUser(userError, async () => {
    const out = opts.out ?? process.stdout;
    if (name === 'list') {
      out.write(namedQueryList());
      return NAMED_QUERIES.length;
    }
    const q = findNamedQuery(name);
    if (!q) throw new QueryError(`no named query '${name}'; the named queries are ${NAMED_QUERIES.map((x) => x.name).join(', ')} (--named list describes them)`);
    if (opts.syscall !== undefined && !q.needs.includes('syscall')) throw new QueryError(`--syscall goes with --named path, not --named ${name}`);
    const format = checkFormat(opts.format);
    const db = openForQuery(file);
    try {
      const session = chooseSessionFor(db, opts.session, syscallRefs(opts.syscall));
      if (session === null) throw new QueryError(`${file} holds no sessions yet; record one with 'ntflow record <scenario> -o ${file}'`);
      requireProjections(db, file, q, session);
      const params: Record<string, unknown> = { session };
      if (q.needs.includes('syscall')) params.syscall = checkSyscall(db, session, opts.syscall);
      registerFunctions(db, session);
      const stmt = prepareReadOnly(db, q.sql);
      // Call ids restart in every session: a table says whose they are (CSV and JSON stay data).
      if (format === 'table') out.write(sessionCaption(db, session, opts.session === undefined && opts.syscall === undefined) + '\n');
      return await streamRows(stmt, params, { format, out, decimal: opts.decimal });
    } finally {
      db.close();
    }
  });
}

/** "session 2 'name'" (and, when it was not chosen, that it is the latest of several). */
function sessionCaption(db: Database.Database, id: number, defaulted: boolean): string {
  const { name, n } = db.prepare('SELECT (SELECT name FROM sessions WHERE id = ?) AS name, (SELECT count(*) FROM sessions) AS n').get(id) as { name: string; n: number };
  const latest = defaulted && n > 1 ? ` (the latest of ${n}; --session S or --syscall S:ID for another)` : '';
  return `session ${id} '${escapeGuestText(name)}'${latest}`;
}

/** The `query` command's action: SQL, --schema or --named, exactly one of them. */
export async function queryAction(file: string, sql: string | undefined, opts: QueryCommandOptions, userError: UserErrorFactory = defaultUserError): Promise<void> {
  const modes = [sql !== undefined && 'SQL', opts.schema && '--schema', opts.named !== undefined && '--named'].filter(Boolean);
  if (modes.length === 0) throw userError('give SQL ("SELECT * FROM sessions"), --schema or --named NAME (--named list shows the names)');
  if (modes.length > 1) throw userError(`give one of SQL, --schema and --named, not ${modes.join(' and ')}`);
  if (opts.syscall !== undefined && opts.named === undefined) throw userError('--syscall goes with --named path');
  if (opts.schema) return schemaCommand(file, opts, userError);
  if (opts.named !== undefined) {
    await namedCommand(file, opts.named, opts, userError);
    return;
  }
  await queryCommand(file, sql!, opts, userError);
}

/** Register `query` on the CLI. */
export function addQueryCommand(program: Command, userError: UserErrorFactory): void {
  program
    .command('query')
    .description('read-only SQL over a trace file; --schema prints its documented schema, --named runs a canned query')
    .argument('<trace.db>', 'a trace file')
    .argument('[sql]', 'one SELECT (or WITH, VALUES, EXPLAIN, PRAGMA read); :session is the --session id')
    .option('--session <id|name>', 'the session :session stands for (default: the latest)')
    .addOption(new Option('--format <format>', 'output format').choices([...QUERY_FORMATS]).default('table'))
    .option('--decimal', 'tables: addresses, handles, NTSTATUS and the like in decimal, as stored (default: hex, as WinDbg prints them)')
    .option('--schema', 'print the documented schema (tables, views, columns) from the file itself')
    .option('--named <name>', `a named query: ${NAMED_QUERIES.map((q) => q.name).join(', ')} (list: describe them)`)
    .option('--syscall <ref>', 'the call for --named path: its syscalls.id, or SESSION:ID (e.g. 2:5) to name the session too')
    .action((file: string, sql: string | undefined, opts: QueryCommandOptions) => queryAction(file, sql, opts, userError));
}
