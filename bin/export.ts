// `ntflow export FILE --format perfetto|chrome-json|speedscope|mermaid [--session S] [--syscall ID] [-o OUT|-]`:
// a recorded session in a format another tool opens (export/). Without -o, or with -o -, the
// output goes to stdout (Perfetto's binary is refused on a terminal); with -o FILE it is written to
// FILE.tmp and renamed when complete, so a failure leaves no half file, and a one-line summary goes
// to stderr. Mistakes are one-line user errors (exit 1).
import { closeSync, existsSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { QueryError, chooseSessionFor, syscallRefs, checkSyscall, escapeGuestText, openForQuery, requireProjections } from '../analyzer/index.js';
import { TraceFileError } from '../recorder/index.js';
import { EXPORTERS, EXPORT_EXTENSIONS, EXPORT_FORMATS, ExportInputError, type ExportFormat, type ExportSink, type ExportStats } from '../export/index.js';
import { cannotWrite } from './output.js';

export interface ExportCommandOptions {
  format?: string;
  session?: string;
  syscall?: string;
  output?: string;
}

export interface ExportResult extends ExportStats {
  bytes: number;
  /** The file written, or '-' for stdout. */
  output: string;
  sessionId: number;
}

/** The format from --format, else from the output's extension. */
function chooseFormat(opts: ExportCommandOptions): ExportFormat {
  const given = opts.format?.trim();
  if (given === undefined || given === '') {
    const out = opts.output ?? '-';
    const byExt = (Object.entries(EXPORT_EXTENSIONS) as [ExportFormat, string][]).sort((a, b) => b[1].length - a[1].length).find(([, ext]) => out.endsWith(ext));
    if (out !== '-' && out.endsWith('.pftrace')) return 'perfetto';
    if (out === '-' || !byExt) throw new QueryError(`--format is needed: one of ${EXPORT_FORMATS.join(', ')}`);
    return byExt[0];
  }
  if (!(EXPORT_FORMATS as readonly string[]).includes(given)) {
    const near = EXPORT_FORMATS.find((f) => f.startsWith(given.slice(0, 3).toLowerCase()));
    throw new QueryError(`unknown format '${given}': use one of ${EXPORT_FORMATS.join(', ')}${near ? ` (did you mean '${near}'?)` : ''}`);
  }
  return given as ExportFormat;
}

export function exportCommand(file: string, opts: ExportCommandOptions, stdout: ExportSink & { isTTY?: boolean } = process.stdout): ExportResult {
  const format = chooseFormat(opts);
  const exporter = EXPORTERS[format];
  const output = opts.output ?? '-';
  if (output === '-' && format === 'perfetto' && stdout.isTTY) {
    throw new QueryError(`a Perfetto trace is binary: write it to a file with -o trace${EXPORT_EXTENSIONS.perfetto} (or pipe stdout)`);
  }
  if (output !== '-') {
    if (existsSync(output) && statSync(output).isDirectory()) throw new QueryError(`-o ${output} is a directory; give a file name such as ${output.replace(/\/$/, '')}/trace${EXPORT_EXTENSIONS[format]}`);
    if (!existsSync(dirname(resolve(output)))) throw new QueryError(`-o ${output}: the directory ${dirname(resolve(output))} does not exist`);
  }

  const db = openForQuery(file);
  try {
    const sessionId = chooseSessionFor(db, opts.session, syscallRefs(opts.syscall));
    if (sessionId === null) throw new QueryError(`${file} has no sessions; record one with 'ntflow record <scenario> -o ${file}'`);
    requireProjections(db, file, { name: 'export', summary: '', projections: ['calls', 'syscalls'], needs: [], sql: '' }, sessionId);
    const syscallId = opts.syscall === undefined ? undefined : checkSyscall(db, sessionId, opts.syscall, 'export');
    const req = { db, sessionId, syscallId };

    if (output === '-') {
      let bytes = 0;
      const stats = exporter(req, {
        write(chunk) {
          bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
          stdout.write(chunk);
        },
      });
      return { ...stats, bytes, output, sessionId };
    }

    // A regular file is written beside and renamed into place (a failed export leaves no half
    // file); a device or pipe (/dev/full, a FIFO) is written directly: renaming a file over it
    // would replace the device itself.
    const direct = existsSync(output) && !statSync(output).isFile();
    const tmp = direct ? output : `${output}.tmp`;
    let fd: number;
    try {
      fd = openSync(tmp, 'w');
    } catch (e) {
      throw new QueryError(cannotWrite(output, e));
    }
    let bytes = 0;
    let done = false;
    try {
      const stats = exporter(req, {
        write(chunk) {
          const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          try {
            writeSync(fd, buf);
          } catch (e) {
            throw new QueryError(cannotWrite(output, e));
          }
          bytes += buf.byteLength;
        },
      });
      closeSync(fd);
      if (!direct) renameSync(tmp, output);
      done = true;
      return { ...stats, bytes, output, sessionId };
    } finally {
      if (!done) {
        try {
          closeSync(fd);
        } catch {
          // already closed
        }
        if (!direct) rmSync(tmp, { force: true });
      }
    }
  } catch (e) {
    if (e instanceof ExportInputError) throw new QueryError(e.message);
    throw e;
  } finally {
    db.close();
  }
}

function formatBytes(n: number): string {
  return n < 1024 ? `${n} bytes` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export function addExportCommand(program: Command, userError: (message: string) => Error): void {
  program
    .command('export')
    .description('write a recorded session in a format another tool opens: Perfetto (ui.perfetto.dev, trace_processor), Chrome JSON (chrome://tracing), speedscope, Mermaid; timestamps are instructions retired')
    .argument('<trace.db>', 'a trace file')
    .option(
      '--format <format>',
      `perfetto (${EXPORT_EXTENSIONS.perfetto} or .pftrace), chrome-json (${EXPORT_EXTENSIONS['chrome-json']}), speedscope (${EXPORT_EXTENSIONS.speedscope}) or mermaid (${EXPORT_EXTENSIONS.mermaid}); default: from -o's extension`,
    )
    .option('--session <id|name>', 'the session (default: the latest)')
    .option('--syscall <ref>', 'only this call and what ran inside it: its syscalls.id, or SESSION:ID (e.g. 2:5)')
    .option('-o, --output <file|->', 'where to write (default -: stdout; a Perfetto trace is not written to a terminal)')
    .action((file: string, opts: ExportCommandOptions) => {
      try {
        const r = exportCommand(file, opts);
        if (r.output !== '-') {
          const notes = r.notes.length ? ` (${r.notes.join('; ')})` : '';
          process.stderr.write(`ntflow export: session ${r.sessionId}, ${r.format}, ${r.items} items, ${formatBytes(r.bytes)} → ${escapeGuestText(r.output)}${notes}\n`);
        }
      } catch (e) {
        if (e instanceof QueryError || e instanceof TraceFileError || e instanceof ExportInputError) throw userError(e.message.split('\n')[0]);
        throw e;
      }
    });
}
