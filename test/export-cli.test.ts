// `ntflow export` as a user runs it: each available format to a file (a one-line summary on
// stderr, no .tmp left behind) and to stdout, the format taken from the extension, --syscall, and
// the mistakes — unknown format, no such call, missing trace, a directory as output, binary to a
// terminal — each one line with exit status 1.
import t from 'tap';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { cliArgs, ntflow } from './util/cli.js';
import { exportCommand } from '../bin/export.js';
import { QueryError } from '../analyzer/index.js';
import { perfettoTraceType } from '../export/index.js';

const dir = t.testdir();
const trace = join(dir, 'cli.db');
t.before(async () => {
  const r = await ntflow(['record', 'osr-log-user-handle', '-o', trace]);
  if (r.code !== 0) throw new Error(r.stderr);
});

/** Runs the CLI and keeps stdout as bytes (a Perfetto trace is binary). */
function ntflowBytes(args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(...cliArgs(args), { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => out.push(d));
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

const packetsOf = (bytes: Buffer): number => (perfettoTraceType().decode(bytes) as unknown as { packet: unknown[] }).packet.length;

t.test('each format to a file: the file, a one-line summary, no .tmp left', async (t) => {
  const outDir = join(dir, 'out');
  mkdirSync(outDir);
  for (const [format, file] of [['perfetto', 'osr.perfetto-trace'], ['chrome-json', 'osr.json'], ['speedscope', 'osr.speedscope.json'], ['mermaid', 'osr.mmd']] as const) {
    const path = join(outDir, file);
    const r = await ntflow(['export', trace, '--format', format, '-o', path]);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout, '', 'nothing on stdout');
    t.match(r.stderr, new RegExp(`^ntflow export: session 1, ${format}, \\d+ items, [\\d.]+ (KiB|bytes) → ${path.replace(/[.]/g, '\\.')}(?: \\(.+\\))?\\n$`), 'one summary line');
    const bytes = readFileSync(path);
    if (format === 'perfetto') t.ok(packetsOf(bytes) > 100, 'the Perfetto trace decodes');
    else if (format === 'mermaid') t.match(bytes.toString('utf8'), /^sequenceDiagram\n[^]*NtWriteFile[^]*STATUS_INVALID_HANDLE/, 'a Mermaid sequence diagram with the failed write');
    else t.ok(JSON.parse(bytes.toString('utf8')), `${format} parses as JSON`);
  }
  t.same(readdirSync(outDir).sort(), ['osr.json', 'osr.mmd', 'osr.perfetto-trace', 'osr.speedscope.json'], 'no .tmp file left');
});

t.test('to stdout (no -o, or -o -), binary for Perfetto through a pipe', async (t) => {
  const json = await ntflow(['export', trace, '--format', 'chrome-json']);
  t.equal(json.code, 0, json.stderr);
  t.equal(json.stderr, '', 'no summary when writing to stdout');
  t.ok(JSON.parse(json.stdout).traceEvents.length > 100);
  const scope = await ntflow(['export', trace, '--format', 'speedscope', '-o', '-']);
  t.equal(JSON.parse(scope.stdout).$schema, 'https://www.speedscope.app/file-format-schema.json');
  const pf = await ntflowBytes(['export', trace, '--format', 'perfetto', '-o', '-']);
  t.equal(pf.code, 0, pf.stderr);
  const file = join(dir, 'same.pftrace');
  const viaFile = await ntflow(['export', trace, '-o', file]);
  t.equal(viaFile.code, 0, viaFile.stderr);
  t.match(viaFile.stderr, /^ntflow export: session 1, perfetto,/, 'the format follows a .pftrace extension');
  t.ok(pf.stdout.equals(readFileSync(file)), 'stdout carries the same bytes as the file');
});

t.test('--syscall: only that call and the calls inside it', async (t) => {
  const r = await ntflow(['export', trace, '--format', 'chrome-json', '--syscall', '4']);
  t.equal(r.code, 0, r.stderr);
  const events = JSON.parse(r.stdout).traceEvents as { ph: string; cat?: string; name?: string; args?: { syscall_id?: number } }[];
  t.same(
    events.filter((e) => e.ph === 'B' && e.cat?.endsWith(',syscalls')).map((e) => e.args?.syscall_id),
    [4, 5, 6],
  );
  const frames = events.filter((e) => e.ph === 'B' && e.cat?.endsWith(',calls')).map((e) => e.name);
  t.equal(frames[0], 'nt!KiFastCallEntry', 'the first frame is the call itself');
  t.notOk(frames.includes('ntdll!NtCreateFile'));
});

t.test('mistakes: one line, exit status 1', async (t) => {
  const cases: [string[], RegExp][] = [
    [['export', trace, '--format', 'perfeto'], /^ntflow: unknown format 'perfeto': use one of perfetto, chrome-json, speedscope, mermaid \(did you mean 'perfetto'\?\)\n$/],
    [['export', trace, '--format', 'chrome-json', '--syscall', '999'], /^ntflow: no syscall 999 in session 1 \(its ids run 1 … 11; see --named syscalls\)\n$/],
    [['export', trace, '--format', 'chrome-json', '--syscall', 'x'], /^ntflow: --syscall: 'x' is not a syscall reference \(ID or SESSION:ID/],
    [['export', join(dir, 'missing.db'), '--format', 'chrome-json'], /^ntflow: .*missing\.db does not exist/],
    [['export', trace, '--format', 'chrome-json', '-o', dir], /^ntflow: -o .* is a directory; give a file name such as .*\/trace\.json\n$/],
    [['export', trace, '--format', 'chrome-json', '-o', join(dir, 'no', 'such', 'x.json')], /^ntflow: -o .*: the directory .* does not exist\n$/],
    [['export', trace], /^ntflow: --format is needed: one of perfetto, chrome-json, speedscope, mermaid\n$/],
    [['export', trace, '--session', '7', '--format', 'speedscope'], /^ntflow: .*session.*7/],
  ];
  for (const [args, pattern] of cases) {
    const r = await ntflow(args);
    t.equal(r.code, 1, `${args.slice(2).join(' ')}: exit 1`);
    t.match(r.stderr, pattern, args.slice(2).join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  t.notOk(existsSync(join(dir, 'no')), 'nothing created');
});

t.test('a trace missing a log table: one line, no output file', async (t) => {
  const broken = join(dir, 'broken.db');
  copyFileSync(trace, broken);
  const db = new Database(broken);
  db.exec('DROP TABLE apc_checks');
  db.close();
  const out = join(dir, 'broken.pftrace');
  const r = await ntflow(['export', broken, '--format', 'perfetto', '-o', out]);
  t.equal(r.code, 1);
  t.equal(r.stderr, 'ntflow: the trace has no apc_checks table: not a complete ntflow trace (record it again with this version)\n');
  t.notOk(existsSync(out) || existsSync(`${out}.tmp`), 'no file, no .tmp');
});

t.test('Perfetto to a terminal is refused before any byte is written', async (t) => {
  const written: unknown[] = [];
  t.throws(() => exportCommand(trace, { format: 'perfetto' }, { isTTY: true, write: (c) => written.push(c) }), QueryError);
  try {
    exportCommand(trace, { format: 'perfetto' }, { isTTY: true, write: (c) => written.push(c) });
  } catch (e) {
    t.match((e as Error).message, /binary: write it to a file with -o trace\.perfetto-trace/);
  }
  t.same(written, []);
  const r = exportCommand(trace, { format: 'chrome-json' }, { isTTY: true, write: (c) => written.push(c) });
  t.equal(r.format, 'chrome-json', 'text formats may go to a terminal');
  t.ok(written.length > 0);
});
