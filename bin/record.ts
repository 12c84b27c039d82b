// `ntflow record` and `ntflow sessions`: argument handling, the progress bar, the closing summary
// and signals. The recording itself is recorder/'s `record()`; this file only turns the command
// line into its target and options, and its results and errors into output and exit statuses:
// 0 for every complete recording (whatever the guest did), 1 for a user error (one line), 130
// after Ctrl-C (the current batch is written and the session stays 'incomplete').
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import cliProgress from 'cli-progress';
import { AsmError, ProgramError, type ProgramSource } from '../core/index.js';
import { ensureProjections, escapeGuestText } from '../analyzer/index.js';
import {
  DEFAULT_MAX_INSTRUCTIONS,
  RecordInputError,
  TraceFileError,
  openTraceForReading,
  openTraceForWriting,
  record,
  resolveTarget,
  type RecordProgress,
  type RecordTarget,
  type SessionSummary,
} from '../recorder/index.js';

export interface RecordCommandOptions {
  output?: string;
  name?: string;
  driver: string[];
  cpu?: 'sysenter' | 'int2e';
  maxInstructions?: number;
  /** Print the closing summary as one JSON object (summaryJson) instead of text. */
  json?: boolean;
}

/** Builds the error the CLI prints as one line with exit status 1 (cli.ts's UserError). */
export type UserErrorFactory = (message: string) => Error;

/** --max-instructions: a positive whole number (digits, `_` or `,` separators, or 5e7 / 50M). */
export function parseMaxInstructions(v: string): number {
  const s = v.trim().replace(/[_,]/g, '');
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)$/.exec(s) ?? /^(\d+(?:\.\d+)?e\d+)()$/i.exec(s);
  const n = m ? Number(m[1]) * ({ '': 1, k: 1e3, m: 1e6, g: 1e9 } as Record<string, number>)[m[2].toLowerCase()] : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number of instructions (e.g. 1000000 or 5M)');
  return n;
}

/** A file name made from a session name, for the default `traces/<name>.db`. */
function fileStem(name: string): string {
  const stem = name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '');
  return stem || 'session';
}

/** Read a program or driver source the user named: a missing or unreadable file is a user error. */
function readSource(path: string, what: string, userError: UserErrorFactory): ProgramSource {
  if (!existsSync(path)) throw userError(`${what} ${path} does not exist`);
  if (statSync(path).isDirectory()) throw userError(`${what} ${path} is a directory, not an .asm, .exe or .sys file`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw userError(`cannot read ${what} ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  // A PE image (what MinGW builds: .exe, .sys) starts with the DOS header's 'MZ'; a file named
  // like one is read as one too, so that the loader says what is wrong with it — unless it is
  // text, which is a source given the wrong name (the loader would only say "no MZ header").
  if (bytes.length === 0) throw userError(`${what} ${path} is empty (0 bytes); write the program into it (an .asm source, or a PE built with MinGW)`);
  const isPe = bytes[0] === 0x4d && bytes[1] === 0x5a;
  const notText = notTextAt(bytes);
  if (!isPe && /\.(exe|sys|dll)$/i.test(path) && notText < 0) {
    throw userError(`${what} ${path} is text, not a PE image; an assembly program is read from a file named .asm (rename it ${path.replace(/\.\w+$/, '.asm')})`);
  }
  if (isPe || /\.(exe|sys|dll)$/i.test(path)) return { fileName: path, source: '', image: new Uint8Array(bytes) };
  // Binary junk would reach the assembler as "source" and fail on whatever its bytes happen to spell.
  if (notText >= 0) {
    throw userError(`${what} ${path} is neither assembly text nor a PE image (byte 0x${bytes[notText]!.toString(16).padStart(2, '0')} at offset ${notText}); give an .asm source or a PE .exe/.sys built with MinGW`);
  }
  return { fileName: path, source: bytes.toString('utf8') };
}

/** The offset of the first byte that cannot be in a source text (a control character or invalid UTF-8), or -1. */
function notTextAt(bytes: Buffer): number {
  const control = bytes.findIndex((b) => (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c && b !== 0x1b) || b === 0x7f);
  if (control >= 0) return control;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return -1;
  } catch {
    // Invalid UTF-8: name the first byte that is not ASCII.
    return bytes.findIndex((b) => b >= 0x80);
  }
}

/**
 * What the argument names: an `.asm`, `.exe` or `.sys` argument, or any path that exists, is a program file (the
 * drivers go with it); anything else is a built-in scenario's name.
 */
export function targetOf(arg: string, drivers: string[], userError: UserErrorFactory): RecordTarget {
  if (/\.(asm|exe|sys|dll)$/i.test(arg) || existsSync(arg) || /[\\/]/.test(arg)) {
    const program = readSource(arg, 'program', userError);
    return { program, drivers: drivers.map((d) => readSource(d, 'driver', userError)) };
  }
  return { scenario: arg };
}

const plain = (n: number) => n.toLocaleString('en-US');

function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = bytes / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

function rateText(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)} M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)} k`;
  return perSecond.toFixed(0);
}

function elapsedText(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${(seconds - m * 60).toFixed(0).padStart(2, '0')} s`;
}

/** The file's size and instructions over all its sessions (a file may hold many). */
function fileTotals(path: string): { bytes: number; instructions: number; sessions: number } | null {
  try {
    const db = openTraceForReading(path);
    try {
      const r = db.prepare('SELECT count(*) AS sessions, coalesce(sum(instructions), 0) AS instructions FROM sessions').get() as { sessions: number; instructions: number };
      return { bytes: statSync(path).size, instructions: r.instructions, sessions: r.sessions };
    } finally {
      db.close();
    }
  } catch {
    return null;
  }
}

/** Guest text made safe for a terminal (re-exported: the summary's tests import it from here). */
export { escapeGuestText };

const GUEST_LINES_SHOWN = 20;

/** The console section: the text line by line (CR LF or LF ends a line), escaped, the first lines of it. */
function consoleLines(s: SessionSummary): string[] {
  const c = s.console;
  if (c.writes === 0) return [];
  const lines = c.text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop(); // the text ended with a line break
  const shown = lines.slice(0, GUEST_LINES_SHOWN).map((l) => `    | ${escapeGuestText(l)}`);
  const more = lines.length - shown.length;
  const out = [`  console       ${plain(c.writes)} write${c.writes === 1 ? '' : 's'}, ${plain(c.bytes)} byte${c.bytes === 1 ? '' : 's'}`, ...shown];
  if (more > 0 || c.truncated) out.push(`    … ${more > 0 ? `${plain(more)} more line${more === 1 ? '' : 's'}` : 'more'} (SELECT text FROM console_outputs)`);
  return out;
}

/** The debug-output section: one line per print, its mode and caller, the text escaped (its final line break dropped). */
function debugLines(s: SessionSummary): string[] {
  const prints = s.debugPrints;
  if (prints.length === 0) return [];
  const shown = prints.slice(0, GUEST_LINES_SHOWN).map((p) => `    | ${p.mode === 'UserMode' ? 'user' : 'kernel'} ${p.callerSymbol ?? p.source}: ${escapeGuestText(p.text.replace(/\r?\n$/, ''))}`);
  const out = [`  debug output  ${plain(prints.length)} print${prints.length === 1 ? '' : 's'}${prints.length > shown.length ? ' or more' : ''}`, ...shown];
  if (prints.length > shown.length) out.push(`    … more (SELECT text FROM debug_prints)`);
  return out;
}

/**
 * The closing summary (stdout), one fact a line. `projectionSeconds`: the time `record` spent
 * building the session's projections after the machine stopped, part of the time shown.
 */
export function summaryText(s: SessionSummary, projectionSeconds?: number): string {
  const lines: string[] = [];
  // The name is the user's (--name) or a program file's: escaped, so that it cannot drive the terminal.
  lines.push(`session ${s.sessionId} '${escapeGuestText(s.name)}': ${s.status}`);
  if (s.outcome) {
    const d = s.outcome.description;
    lines.push(`  outcome       ${d.startsWith(s.outcome.kind) ? d : `${s.outcome.kind}: ${d}`}`);
  }
  lines.push(`  instructions  ${plain(s.instructions)}`);
  lines.push(`  events        ${plain(s.events)}${s.events ? ` (seq 0 … ${plain(s.events - 1)})` : ''}`);
  const failures = Object.entries(s.failures).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const failed = failures.reduce((n, [, k]) => n + k, 0);
  const failText = failed ? `, ${plain(failed)} failed: ${failures.map(([name, k]) => `${name} ×${k}`).join(', ')}` : failures.length === 0 ? ', none failed' : '';
  lines.push(`  system calls  ${plain(s.syscalls)}${s.syscalls ? failText : ''}`);
  lines.push(...consoleLines(s), ...debugLines(s));
  const totals = fileTotals(s.file);
  const bytes = totals?.bytes ?? s.bytes;
  if (totals && totals.sessions > 1) {
    const per = totals.instructions ? (bytes / totals.instructions).toFixed(1) : '–';
    lines.push(`  file          ${escapeGuestText(s.file)}, ${sizeText(bytes)} (${totals.sessions} sessions, ${per} bytes per instruction over all of them)`);
  } else {
    lines.push(`  file          ${escapeGuestText(s.file)}, ${sizeText(bytes)} (${s.instructions ? (bytes / s.instructions).toFixed(1) : '–'} bytes per instruction)`);
  }
  const seconds = s.seconds + (projectionSeconds ?? 0);
  const split = projectionSeconds === undefined ? '' : `: recording ${elapsedText(s.seconds)}, projections ${elapsedText(projectionSeconds)}`;
  lines.push(`  time          ${elapsedText(seconds)} (${rateText(seconds > 0 ? s.instructions / seconds : 0)} instructions/s)${split}`);
  return lines.join('\n') + '\n';
}

/** `record --json`: the facts of the text summary as one object (the shape the option's help and README give). */
export interface SummaryJson {
  session: { id: number; name: string; status: 'complete' | 'incomplete' };
  outcome: { kind: string; code: number | null; description: string } | null;
  instructions: number;
  events: number;
  /** First and last seq of the session's events; null when it has none. */
  seq: { first: number; last: number } | null;
  syscalls: { total: number; failed: number; failures: Record<string, number> };
  /** The whole file: its size, the sessions it holds, its bytes per instruction over all of them. */
  file: { path: string; bytes: number; bytesPerInstruction: number | null; sessions: number };
  /** The whole command's time: the recording, then the projections (the two below). */
  seconds: number;
  recordingSeconds: number;
  /** Building the session's projections (syscalls, calls, findings, …) before reporting; 0 when interrupted. */
  projectionSeconds: number;
  /** findings rows by kind (failure-cause, handle-leak, hook, …); empty for an interrupted session. */
  findings: Record<string, number>;
}

export function summaryJson(s: SessionSummary, findings: Record<string, number>, projectionSeconds = 0): SummaryJson {
  const totals = fileTotals(s.file);
  const bytes = totals?.bytes ?? s.bytes;
  const failed = Object.values(s.failures).reduce((n, k) => n + k, 0);
  const allInstructions = totals && totals.sessions > 1 ? totals.instructions : s.instructions;
  return {
    session: { id: s.sessionId, name: s.name, status: s.status },
    outcome: s.outcome ? { kind: s.outcome.kind, code: s.outcome.code, description: s.outcome.description } : null,
    instructions: s.instructions,
    events: s.events,
    seq: s.events ? { first: 0, last: s.events - 1 } : null,
    syscalls: { total: s.syscalls, failed, failures: { ...s.failures } },
    // As the text says it: the file's bytes over the instructions of all its sessions (this one's when alone).
    file: { path: s.file, bytes, bytesPerInstruction: allInstructions ? bytes / allInstructions : null, sessions: totals?.sessions ?? 1 },
    seconds: s.seconds + projectionSeconds,
    recordingSeconds: s.seconds,
    projectionSeconds,
    findings,
  };
}

/** A progress bar on stderr, only when stderr is a terminal; otherwise nothing at all. */
function progressBar(maxInstructions: number): { update(p: RecordProgress): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: 'recording {bar} {instr} instructions | {eps} events/s | {syscalls} syscalls | {elapsed}',
      barsize: 20,
      hideCursor: true,
      clearOnComplete: true,
      fps: 8,
      barCompleteChar: '█',
      barIncompleteChar: '░',
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(p) {
      const payload = {
        instr: plain(p.instructions),
        eps: rateText(p.seconds > 0 ? p.events / p.seconds : 0),
        syscalls: plain(p.syscalls),
        elapsed: elapsedText(p.seconds),
      };
      // The bar runs against the instruction limit, the only bound known in advance.
      if (!started) {
        started = true;
        bar.start(maxInstructions, Math.min(p.instructions, maxInstructions), payload);
      } else bar.update(Math.min(p.instructions, maxInstructions), payload);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/**
 * Refuse a bad output path before the guest boots (a second, not after it): an existing file is
 * opened the way the recorder will open it (a directory, a non-SQLite file or another database is
 * refused, untouched), and a new file's nearest existing ancestor must be a folder.
 */
function checkOutput(output: string, userError: UserErrorFactory): void {
  if (existsSync(output)) {
    try {
      openTraceForWriting(output, { busyTimeoutMs: 60_000 }).close();
    } catch (e) {
      throw asUserError(e, userError);
    }
    return;
  }
  let dir = resolve(output);
  do dir = dirname(dir);
  while (!existsSync(dir) && dirname(dir) !== dir);
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw userError(`cannot create ${output}: ${dir} is a file, not a folder`);
}

/** Map the recorder's and the assembler's input errors to the CLI's one-line user errors. */
function asUserError(e: unknown, userError: UserErrorFactory): unknown {
  if (e instanceof RecordInputError || e instanceof TraceFileError || e instanceof AsmError || e instanceof ProgramError) {
    return userError(e.message.split('\n')[0]);
  }
  return e;
}

export async function recordCommand(arg: string, opts: RecordCommandOptions, userError: UserErrorFactory): Promise<void> {
  const target = targetOf(arg, opts.driver ?? [], userError);
  let label: string;
  try {
    label = resolveTarget(target, opts.cpu).label;
  } catch (e) {
    throw asUserError(e, userError);
  }
  if ('scenario' in target && opts.driver?.length) {
    throw userError(`--driver goes with a program file (ntflow record prog.exe --driver drv.sys); the scenario '${arg}' brings its own drivers`);
  }
  const name = opts.name?.trim() || label;
  const output = opts.output ?? join('traces', `${fileStem(name)}.db`);
  const maxInstructions = opts.maxInstructions ?? DEFAULT_MAX_INSTRUCTIONS;
  checkOutput(output, userError);

  const controller = new AbortController();
  let interrupted: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) process.exit(sig === 'SIGINT' ? 130 : 143); // a second Ctrl-C: leave now (the file stays valid)
    interrupted = sig;
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const bar = progressBar(maxInstructions);
  let summary: SessionSummary;
  try {
    summary = await record(target, { output, name, cpu: opts.cpu, maxInstructions, signal: controller.signal, onProgress: (p) => bar.update(p) });
  } catch (e) {
    throw asUserError(e, userError);
  } finally {
    bar.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (summary.status !== 'complete') {
    process.stderr.write(
      `ntflow: interrupted; session ${summary.sessionId} in ${summary.file} stays 'incomplete' with the ${plain(summary.instructions)} instructions and ${plain(summary.events)} events recorded so far\n`,
    );
    process.exitCode = interrupted === 'SIGTERM' ? 143 : 130;
    if (opts.json) process.stdout.write(JSON.stringify(summaryJson(summary, {}), null, 1) + '\n');
    return;
  }
  // The projections (syscalls, calls, findings, …) go into the file now, before the summary, so
  // that any SQLite reader (sqlite3, Datasette) finds them (DESIGN's contract); their time is part
  // of the command's. An interrupted recording leaves them to its first reader.
  const started = performance.now();
  ensureProjections(summary.file);
  const projectionSeconds = (performance.now() - started) / 1000;
  const counts = findingCounts(summary.file, summary.sessionId);
  if (opts.json) process.stdout.write(JSON.stringify(summaryJson(summary, counts ?? {}, projectionSeconds), null, 1) + '\n');
  else process.stdout.write(summaryText(summary, projectionSeconds) + findingsLine(summary.file, summary.sessionId, counts));
}

/** The session's findings rows by kind; null for a file the projections could not be written to. */
function findingCounts(file: string, sessionId: number): Record<string, number> | null {
  try {
    const db = openTraceForReading(file);
    try {
      return Object.fromEntries(db.prepare('SELECT kind, count(*) FROM findings WHERE session_id = ? GROUP BY kind ORDER BY kind').raw().all(sessionId) as [string, number][]);
    } finally {
      db.close();
    }
  } catch {
    return null;
  }
}

/** "  findings      2 failed calls explained, …: ntflow explain FILE --session N" (nothing when none). */
function findingsLine(file: string, sessionId: number, counts: Record<string, number> | null): string {
  if (!counts) return ''; // the summary stands without
  const parts: string[] = [];
  const n = (k: string) => counts[k] ?? 0;
  if (n('failure-cause')) parts.push(`${plain(n('failure-cause'))} failed call${n('failure-cause') === 1 ? '' : 's'} explained`);
  if (n('handle-leak')) parts.push(`${plain(n('handle-leak'))} handle${n('handle-leak') === 1 ? '' : 's'} left open`);
  if (n('hook')) parts.push(`${plain(n('hook'))} hook${n('hook') === 1 ? '' : 's'}`);
  return parts.length ? `  findings      ${parts.join(', ')}: ntflow explain ${escapeGuestText(file)} --session ${sessionId}\n` : '';
}

interface SessionRow {
  id: number;
  name: string;
  status: string;
  outcome: string | null;
  instructions: number;
  syscalls: number;
  started_at: string;
}

/** `ntflow sessions FILE`: a table of the file's sessions. */
export function sessionsCommand(file: string, userError: UserErrorFactory, opts: { json?: boolean } = {}): void {
  let rows: SessionRow[];
  try {
    const db = openTraceForReading(file);
    try {
      rows = db
        .prepare(
          `SELECT s.id, s.name, s.status, s.outcome, s.instructions,
                  (SELECT count(*) FROM service_enters e WHERE e.session_id = s.id) AS syscalls, s.started_at
           FROM sessions s ORDER BY s.id`,
        )
        .all() as SessionRow[];
    } finally {
      db.close();
    }
  } catch (e) {
    if (e instanceof TraceFileError) throw userError(e.message.split('\n')[0]);
    const msg = (e as Error).message.split('\n')[0];
    if (/not a database|malformed|no such table|SQLITE_/i.test(msg)) throw userError(`${file} cannot be read as an ntflow trace: ${msg}`);
    throw e;
  }
  if (opts.json) {
    // The table's rows as they are in the file (numbers unformatted, outcome null when none).
    process.stdout.write(JSON.stringify(rows.map((r) => ({ id: r.id, name: r.name, status: r.status, outcome: r.outcome, instructions: r.instructions, syscalls: r.syscalls, started_at: r.started_at })), null, 1) + '\n');
    return;
  }
  if (rows.length === 0) {
    process.stdout.write(`${file} holds no sessions yet\n`);
    return;
  }
  const header = ['id', 'name', 'status', 'outcome', 'instructions', 'syscalls', 'started_at'];
  // Names are the user's: escaped (an ESC or a line break would break the table or drive the terminal).
  const table = rows.map((r) => [String(r.id), escapeGuestText(r.name), r.status, r.outcome ?? '-', plain(r.instructions), plain(r.syscalls), r.started_at]);
  const right = new Set([0, 4, 5]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  process.stdout.write([line(header), line(widths.map((w) => '-'.repeat(w))), ...table.map(line)].join('\n') + '\n');
}

/** Register `record` and `sessions` on the CLI. */
export function addRecordCommands(program: Command, userError: UserErrorFactory): void {
  program
    .command('record')
    .description('record a built-in scenario or a program (.asm, or a PE .exe built with MinGW) into a trace file (SQLite)')
    .argument('<scenario|file>', "a built-in scenario's name ('ntflow scenarios'), or a program file: prog.asm or prog.exe")
    .option('-o, --output <file>', 'the trace file to create or append a session to (default: traces/<name>.db)')
    .option('--name <name>', "the session's name (default: the scenario's or the program file's)")
    .option('--driver <file>', 'a driver to load with the program: drv.asm or drv.sys (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .addOption(new Option('--cpu <model>', "CPU model: 'sysenter', or 'int2e' for a CPU without SYSENTER (default: the scenario's)").choices(['sysenter', 'int2e']))
    .addOption(
      new Option('--max-instructions <n>', `stop the machine after this many instructions (default ${plain(DEFAULT_MAX_INSTRUCTIONS)})`).argParser(parseMaxInstructions),
    )
    .option(
      '--json',
      'print the closing summary as one JSON object: {session: {id, name, status}, outcome: {kind, code, description}|null, instructions, events, seq: {first, last}|null, syscalls: {total, failed, failures: {STATUS_NAME: n}}, file: {path, bytes, bytesPerInstruction, sessions}, seconds, findings: {kind: n}}',
    )
    .action((arg: string, opts: RecordCommandOptions) => recordCommand(arg, opts, userError));

  program
    .command('sessions')
    .description("list a trace file's sessions: id, name, status, outcome, instructions, syscalls, start time")
    .argument('<trace.db>', 'a trace file')
    .option('--json', 'print a JSON array, one object per session: {id, name, status, outcome (null when none), instructions, syscalls, started_at}')
    .action((file: string, opts: { json?: boolean }) => sessionsCommand(file, userError, opts));
}
