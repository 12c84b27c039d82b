// The ntflow command line. It composes core/, recorder/, analyzer/ and viz/ and holds no logic of
// its own beyond argument handling and the exit-status contract: 0 success, 1 a user error (one
// line naming what was wrong), 2 an internal error.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { createInterface } from 'node:readline';
import { AsmError, ExecInputError, ProgramError, SCENARIOS, findScenario, nearestSymbol, runCase, type ExecCase } from '../core/index.js';
import { runDemo } from './demo.js';
import { addRecordCommands } from './record.js';
import { addQueryCommand } from './query.js';
import { addReplayCommand } from './replay.js';
import { addStateCommand } from './state-command.js';
import { addFlowCommand } from './flow.js';
import { addExplainCommand } from './explain.js';
import { addDiffCommand } from './diff.js';
import { addExportCommand } from './export.js';
import { QueryError, ReplayInputError, VerifyError, escapeGuestText } from '../analyzer/index.js';
import { NTFLOW_VERSION, RecordInputError, TraceFileError } from '../recorder/index.js';

/** "; did you mean 'x'?" for the scenario name nearest to a mistyped one. */
function suggest(name: string): string {
  const near = nearestSymbol(name, SCENARIOS.map((s) => s.name));
  return near ? `; did you mean '${near}'?` : '';
}

/** A mistake the user can fix; printed as one line, exit status 1. */
export class UserError extends Error {
  override name = 'UserError';
}

function cplOption(v: string): 0 | 3 {
  if (v === '0' || v === '3') return Number(v) as 0 | 3;
  throw new InvalidArgumentError('use 0 or 3');
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${where}: not valid JSON (${(e as Error).message})`);
  }
}

function execOne(c: unknown, defaults: { cpl: 0 | 3; cpu: 'sysenter' | 'int2e' }, where: string): object {
  try {
    return runCase(c as ExecCase, defaults);
  } catch (e) {
    if (e instanceof ExecInputError) throw new UserError(`${where}: ${e.message}`);
    throw e;
  }
}

async function execCommand(opts: { jsonl?: boolean; cpl: 0 | 3; cpu: 'sysenter' | 'int2e' }): Promise<void> {
  const defaults = { cpl: opts.cpl, cpu: opts.cpu };
  if (opts.jsonl) {
    // One case per line in, one result per line out, flushed: thousands of cases in one process.
    // A bad line gets an {"error": …} line so the stream stays aligned; the exit status is then 1.
    let bad = 0;
    let lineNo = 0;
    for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
      lineNo++;
      if (line.trim() === '') continue;
      let out: object;
      try {
        out = execOne(parseJson(line, `line ${lineNo}`), defaults, `line ${lineNo}`);
      } catch (e) {
        if (!(e instanceof UserError)) throw e;
        bad++;
        process.stderr.write(`ntflow exec: ${e.message}\n`);
        out = { error: `bad case: ${e.message}` };
      }
      process.stdout.write(JSON.stringify(out) + '\n');
    }
    if (bad > 0) process.exitCode = 1;
    return;
  }
  const text = await readStdin();
  if (text.trim() === '') throw new UserError('stdin: no case given (pipe a JSON case, e.g. {"code": "01c8"})');
  const data = parseJson(text, 'stdin');
  const result = Array.isArray(data) ? data.map((c, i) => execOne(c, defaults, `case ${i}`)) : execOne(data, defaults, 'case');
  process.stdout.write(JSON.stringify(result, null, 1) + '\n');
}

export function buildProgram(): Command {
  const program = new Command('ntflow')
    .description('Record, query and draw the Windows XP native system-call path on an emulated IA-32 machine')
    .version(NTFLOW_VERSION, '-V, --version', 'print the ntflow version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .showSuggestionAfterError(true);

  program
    .command('exec')
    .description('run raw machine code on a bare flat machine: a JSON case on stdin, the result as JSON')
    .option('--jsonl', 'one case per line in, one result per line out (flushed)')
    .addOption(new Option('--cpl <level>', 'privilege level to run at').argParser(cplOption).default(3))
    .addOption(new Option('--cpu <model>', 'CPU model').choices(['sysenter', 'int2e']).default('sysenter'))
    .action(execCommand);

  program
    .command('scenarios')
    .description('list the built-in scenarios with one-line descriptions')
    .option('--json', 'print a JSON array, one object per scenario: {name, summary, program, drivers: [file…], cpu}')
    .action((opts: { json?: boolean }) => {
      if (opts.json) {
        const list = SCENARIOS.map((s) => ({ name: s.name, summary: s.summary, program: s.program, drivers: [...s.drivers], cpu: s.cpu }));
        process.stdout.write(JSON.stringify(list, null, 1) + '\n');
        return;
      }
      const width = Math.max(...SCENARIOS.map((s) => s.name.length));
      for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(width)}  ${s.summary}\n`);
    });

  program
    .command('demo')
    .description('record every built-in scenario into traces/demo.db and write traces/index.html, a page with a diagram per scenario (--text: one scenario\'s NtReadFile call as text)')
    .argument('[scenario]', 'with --text: a scenario that reads a file', 'user-nt-readfile')
    .option('--out <dir>', 'where the trace and the pages go', 'traces')
    .option('--text', "print a scenario's NtReadFile call instruction by instruction instead")
    .action(async (name: string, opts: { out: string; text?: boolean }) => {
      if (opts.text) {
        const s = findScenario(name);
        if (!s) throw new UserError(`unknown scenario '${name}'${suggest(name)} (run 'ntflow scenarios' for the list)`);
        await runDemo(name);
        return;
      }
      const { runDemoPage } = await import('./demo-page.js'); // loads the renderers only for the demo
      await runDemoPage({ out: opts.out });
    });

  addRecordCommands(program, (message) => new UserError(message));
  addQueryCommand(program, (message) => new UserError(message));
  addReplayCommand(program, (message) => new UserError(message));
  addStateCommand(program, (message) => new UserError(message));
  addFlowCommand(program, (message) => new UserError(message));
  addExplainCommand(program, (message) => new UserError(message));
  addDiffCommand(program, (message) => new UserError(message));
  addExportCommand(program, (message) => new UserError(message));

  // Each command's own parse errors name it, so the one line can say where its options are listed.
  for (const command of [program, ...program.commands]) {
    const where = command === program ? 'ntflow' : `ntflow ${command.name()}`;
    command.configureOutput({ ...command.configureOutput(), outputError: (text, write) => write(optionErrorLine(text, where)) });
  }
  return program;
}

/**
 * commander's message for a bad command line as one line: `error: unknown option '--x'` with its
 * "(Did you mean --y?)" on a second line becomes `ntflow query: unknown option '--x' (did you mean
 * --y?); see 'ntflow query --help'`. An invalid value's message already says what to give instead.
 */
export function optionErrorLine(text: string, where: string): string {
  const line = text.trim().replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').replace('(Did you mean', '(did you mean');
  return `${where}: ${line}${/ is invalid\./.test(line) ? '' : `; see '${where} --help'`}\n`;
}

/** Mistakes the user can fix, from any layer: one line, exit status 1. */
function isUserError(e: unknown): boolean {
  return (
    e instanceof UserError ||
    e instanceof TraceFileError ||
    e instanceof RecordInputError ||
    e instanceof ReplayInputError ||
    e instanceof QueryError ||
    e instanceof VerifyError ||
    e instanceof ProgramError ||
    e instanceof AsmError
  );
}

/**
 * Failures of the machine rather than of ntflow or of the command: a full disk, a damaged trace
 * found in the middle of reading it, standard output that cannot be written. One line saying
 * which and what to do (null for anything else).
 */
function environmentError(e: unknown): string | null {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  const msg = (e as Error).message.split('\n')[0];
  if (code === 'ENOSPC' || code === 'SQLITE_FULL') return `cannot write: ${msg} (ENOSPC); free some space or write somewhere else`;
  if (/^SQLITE_(CORRUPT|NOTADB)/.test(code)) return `the trace file is damaged (${msg}); restore it from a copy or record a new trace`;
  if (code === 'EIO' || code === 'EBADF' || code === 'EFBIG' || code === 'EDQUOT') return `cannot write: ${msg}`;
  return null;
}

/**
 * Standard output's write errors arrive as an 'error' event (a file or device on stdout is
 * written synchronously, a pipe later): a reader that went away (EPIPE, e.g. `| head`) ends the
 * command quietly; anything else (ENOSPC on `> /dev/full`) is one line and exit status 1.
 */
function guardStdout(): void {
  if (process.stdout.listenerCount('error') > 0) return;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    process.stderr.write(`ntflow: cannot write standard output: ${e.message.split('\n')[0]}\n`);
    process.exit(1);
  });
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  guardStdout();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its message; help and version are not errors.
      return e.exitCode === 0 ? 0 : 1;
    }
    if (isUserError(e)) {
      // Messages quote what the user gave and what the trace holds (session names, paths): their
      // control characters are escaped, so the line cannot recolour the terminal or move its cursor.
      process.stderr.write(`ntflow: ${escapeGuestText((e as Error).message.split('\n')[0]!)}\n`);
      return 1;
    }
    const environment = environmentError(e);
    if (environment) {
      process.stderr.write(`ntflow: ${environment}\n`);
      return 1;
    }
    process.stderr.write(`ntflow: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return 2;
  }
}
