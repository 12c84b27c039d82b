// `ntflow flow FILE [--session S] [--kind sequence|flame|graph] [--syscall ID]… [--query SQL] -o out.svg|out.html|-`:
// draw a recorded session. The trace's rows become a diagram input (viz/data.ts), the input a
// layout (viz/layout.ts), the layout SVG (viz/svg.ts) or a self-contained page (viz/html.ts); the
// format follows the output's extension (`-o -`: SVG on stdout). Mistakes are one-line user errors (exit 1).
import { extname, join, resolve } from 'node:path';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import cliProgress from 'cli-progress';
import type Database from 'better-sqlite3';
import { TraceFileError, openTraceForReading } from '../recorder/index.js';
import { QueryError, checkSyscall, chooseSessionFor, escapeGuestText, openWithProjections, parseSyscallRef, prepareReadOnly, registerFunctions, syscallRefs } from '../analyzer/index.js';
// viz/ in parts, not its index: the SVG renderer (d3 and a DOM) loads only when drawing.
import { VizInputError, flameInput, graphInput, layoutCallGraph, layoutFlame, layoutSequence, sequenceInput, type FlameLayout, type GraphLayout, type SequenceLayout } from '../viz/index.js';
import { cannotWrite } from './output.js';

export type FlowKind = 'sequence' | 'flame' | 'graph';
export const FLOW_KINDS: readonly FlowKind[] = ['sequence', 'flame', 'graph'];

export interface FlowOptions {
  session?: string;
  kind?: FlowKind;
  /** --syscall, repeatable: syscalls.id of the session, or 'SESSION:ID' (which also picks the session). */
  syscall?: (number | string)[];
  /** --query: one read-only statement whose first column is syscalls.id (:session is bound). */
  query?: string;
  output?: string;
  /** Show a progress bar (default: when stderr is a terminal). */
  progress?: boolean;
}

export interface FlowResult {
  /** The file written (absolute), or '-' for stdout. */
  output: string;
  format: 'svg' | 'html';
  kind: FlowKind;
  sessionId: number;
  /** Steps (sequence), rectangles (flame) or nodes (graph) drawn. */
  items: number;
  bytes: number;
}

/** What viz/html.ts provides (loaded only for .html output). */
interface HtmlRenderers {
  renderSequenceHtml(layout: SequenceLayout, opts?: object): string;
  renderFlameHtml(layout: FlameLayout, opts?: object): string;
  renderGraphHtml(layout: GraphLayout, opts?: object): string;
}

const FORMATS: Record<string, 'svg' | 'html'> = { '.svg': 'svg', '.html': 'html', '.htm': 'html' };

function syscallRefOption(value: string, previous: string[] = []): string[] {
  try {
    parseSyscallRef(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message.replace(/^--syscall: /, ''));
  }
  return [...previous, value];
}

/** The syscalls.id values a --query returns (first column), checked. */
function idsFromQuery(db: Database.Database, sql: string, sessionId: number): number[] {
  registerFunctions(db, sessionId);
  const stmt = prepareReadOnly(db, sql);
  const columns = stmt.columns();
  const sessionColumn = columns.findIndex((c) => c.name === 'session_id');
  const params = /:session\b/.test(sql) ? [{ session: sessionId }] : [];
  let rows: unknown[][];
  try {
    rows = stmt.raw().all(...params) as unknown[][];
  } catch (e) {
    throw new QueryError(`--query failed: ${(e as Error).message.split('\n')[0]}`);
  }
  const ids: number[] = [];
  for (const row of rows) {
    if (sessionColumn >= 0 && Number(row[sessionColumn]) !== sessionId) continue;
    const v = row[0];
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
      throw new QueryError(
        `--query must return syscall ids in its first column (e.g. SELECT id FROM syscalls WHERE status_name <> 'STATUS_SUCCESS'); it returned ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)} in column '${columns[0]?.name}'`,
      );
    }
    ids.push(n);
  }
  if (ids.length === 0) throw new QueryError(`--query returned no syscall ids for session ${sessionId}; nothing to draw`);
  return ids;
}

/** The action of `ntflow flow`, callable without the command line (tests, the demo). */
export async function flowCommand(file: string, opts: FlowOptions, userError: (message: string) => Error): Promise<FlowResult> {
  const output = opts.output;
  if (!output) throw userError("flow needs -o out.svg or -o out.html (the format follows the extension), or -o - for SVG on stdout");
  // `-o -`: the SVG on stdout, for pipes (a page is a file to open, so stdout is SVG only).
  const toStdout = output === '-';
  if (!toStdout && existsSync(output) && statSync(output).isDirectory()) {
    throw userError(`-o ${output} is a directory; give a file name such as ${join(output, 'flow.svg')} or ${join(output, 'flow.html')}`);
  }
  const format = toStdout ? 'svg' : FORMATS[extname(output).toLowerCase()];
  if (!format) throw userError(`-o ${output}: unknown extension '${extname(output) || '(none)'}'; use .svg or .html`);
  const kind = opts.kind ?? 'sequence';
  if (!FLOW_KINDS.includes(kind)) throw userError(`--kind must be one of ${FLOW_KINDS.join(', ')} (got '${kind}')`);
  if (opts.syscall?.length && opts.query) throw userError('give --syscall or --query, not both');

  const showProgress = opts.progress ?? process.stderr.isTTY === true;
  const bar = showProgress
    ? new cliProgress.SingleBar({ format: 'flow {bar} {percentage}% | {stage}', clearOnComplete: true, stream: process.stderr }, cliProgress.Presets.shades_classic)
    : null;
  let barStarted = false;
  const progress = (stage: string, done: number, total: number) => {
    if (!bar) return;
    if (!barStarted) {
      bar.start(total, done, { stage });
      barStarted = true;
    }
    bar.setTotal(Math.max(total, 1));
    bar.update(done, { stage });
  };

  let db: Database.Database | null = null;
  try {
    db = openTraceForReading(file);
    const refs = syscallRefs(opts.syscall?.map(String));
    const sessionId = chooseSessionFor(db, opts.session, refs);
    if (sessionId === null) throw new TraceFileError('the trace has no sessions; record one first');
    db.close();
    // Projections are built on first use (record leaves them), or rebuilt when behind the log;
    // a session still recording is folded for this command only, never stored (issue K §5).
    db = openWithProjections(file, { only: sessionId, onProgress: (p) => progress(`replaying session ${p.sessionId}`, p.events, p.total) });
    const ids = opts.query ? idsFromQuery(db, opts.query, sessionId) : refs.length ? refs.map((r) => checkSyscall(db!, sessionId, r.text, 'flow')) : undefined;

    let svg: (r: typeof import('../viz/svg.js')) => string;
    let html: (r: HtmlRenderers) => string;
    let items: number;
    if (kind === 'sequence') {
      const input = sequenceInput(db, sessionId, { syscallIds: ids, onProgress: (d, t) => progress('reading the path', d, t) });
      progress('laying out', 0, 1);
      const layout = layoutSequence(input);
      items = layout.steps.length;
      svg = (r) => r.renderSequenceSvg(layout);
      html = (r) => r.renderSequenceHtml(layout);
    } else if (kind === 'flame') {
      const layout = layoutFlame(flameInput(db, sessionId, { syscallIds: ids }));
      items = layout.rects.length;
      svg = (r) => r.renderFlameSvg(layout);
      html = (r) => r.renderFlameHtml(layout);
    } else {
      const layout = layoutCallGraph(graphInput(db, sessionId, { syscallIds: ids }));
      items = layout.nodes.length;
      svg = (r) => r.renderGraphSvg(layout);
      html = (r) => r.renderGraphHtml(layout);
    }
    progress(`rendering ${format.toUpperCase()}`, 0, 1);
    let text: string;
    // The renderers load only when drawing (d3 and a DOM are heavy; other commands start faster).
    if (format === 'svg') text = svg(await import('../viz/svg.js'));
    else {
      const module = '../viz/html.js'; // resolved at run time: the page renderer is a separate part of viz/
      const renderers = (await import(module)) as HtmlRenderers;
      text = html(renderers);
    }
    progress('done', 1, 1);
    if (toStdout) {
      // A reader that stops early (`| head`) closes the pipe: its choice, not an error of ours.
      process.stdout.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EPIPE') return;
        process.stderr.write(`ntflow: cannot write to stdout: ${e.message.split('\n')[0]}\n`);
        process.exitCode = 1;
      });
      process.stdout.write(text);
    } else {
      try {
        writeFileSync(output, text);
      } catch (e) {
        throw userError(cannotWrite(output, e));
      }
    }
    return { output: toStdout ? '-' : resolve(output), format, kind, sessionId, items, bytes: Buffer.byteLength(text) };
  } catch (e) {
    if (e instanceof VizInputError || e instanceof QueryError || e instanceof TraceFileError) throw userError(e.message.split('\n')[0]);
    throw e;
  } finally {
    bar?.stop();
    db?.close();
  }
}

export function addFlowCommand(program: Command, userError: (message: string) => Error): void {
  program
    .command('flow')
    .description('draw a session: a sequence diagram of the system-call path (default), a flame chart or a call graph, as SVG or a self-contained HTML page')
    .argument('<trace.db>', 'a trace file')
    .option('--session <id|name>', 'the session (default: the latest)')
    .addOption(new Option('--kind <kind>', 'what to draw').choices([...FLOW_KINDS]).default('sequence'))
    .option('--syscall <ref>', 'draw this call step by step (a flame chart or call graph: its frames, and what ran inside it on other threads): its syscalls.id, or SESSION:ID (e.g. 2:5); repeatable', syscallRefOption)
    .option('--query <sql>', "draw the calls a SELECT returns (first column syscalls.id; :session is bound), e.g. \"SELECT id FROM syscalls WHERE status_name <> 'STATUS_SUCCESS'\"")
    .option('--json', 'print what was written as JSON: {output, format, kind, sessionId, items, bytes}')
    .requiredOption('-o, --output <file>', "where to write: .svg (static) or .html (interactive, opens offline); '-' writes the SVG to stdout (and nothing else)")
    .action(async (file: string, opts: FlowOptions & { json?: boolean }) => {
      const r = await flowCommand(file, opts, userError);
      if (r.output === '-') return; // stdout holds the SVG alone
      if (opts.json) {
        process.stdout.write(JSON.stringify(r) + '\n');
        return;
      }
      process.stdout.write(`${escapeGuestText(r.output)}: ${r.kind} diagram of session ${r.sessionId}, ${r.items} ${r.kind === 'sequence' ? 'steps' : r.kind === 'flame' ? 'frames' : 'functions'}, ${(r.bytes / 1024).toFixed(1)} KiB ${r.format.toUpperCase()}\n`);
    });
}
