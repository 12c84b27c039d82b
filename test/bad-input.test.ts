// Issue K §4: bad input that used to end in a stack trace or be accepted, through the real CLI.
// Every row: one line on stderr naming what was wrong and what to do, exit status 1, no stack
// trace, and the trace file given (truncated, damaged, of an unknown schema, empty) byte for byte
// as it was. Then the assembler's limits and a driver's unknown escape id.
//   npx tsc -p tsconfig.json && npx tap dist/test/bad-input.test.js
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdtempSync, openSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AsmError, assemble } from '../core/asm/index.js';
import { cliArgs, ntflow, type CliOutput } from './util/cli.js';
import { assertOneLine, setSchema, sha, truncateTo } from './util/bad-input.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-bad-input-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const SCENARIO = 'osr-log-user-handle';
const BASE = join(dir, 'base.db');

/** A copy of the base trace with `change` applied: its bytes are what must not change. */
function variant(name: string, change: (file: string) => void): string {
  const file = join(dir, name);
  copyFileSync(BASE, file);
  change(file);
  return file;
}

/** Garbage over `count` pages from `first` (1-based): the right size, pages that are not SQLite's. */
const scribble = (first: number, count: number) => (file: string) => {
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(count * 4096, 0xa5), 0, count * 4096, (first - 1) * 4096);
  closeSync(fd);
};

/** Garbage over the instruction_runs table's root page only: opening works, reading the log fails. */
const scribbleInstructions = (file: string) => {
  const db = new Database(file, { readonly: true });
  const root = db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'instruction_runs'").pluck().get() as number;
  if (!(root > 1)) throw new Error(`no instruction_runs table in ${file}`);
  db.close();
  scribble(root, 1)(file);
};

t.before(async () => {
  const r = await ntflow(['record', SCENARIO, '-o', BASE]);
  if (r.code !== 0) throw new Error(`recording the base trace failed: ${r.stderr}`);
});

// ---- trace files that are not (or no longer) usable ---------------------------------------------

/** The commands that open a trace, each with the trace file in it. */
const COMMANDS: [string, (file: string) => string[]][] = [
  ['record -o', (f) => ['record', SCENARIO, '-o', f]],
  ['query --schema', (f) => ['query', f, '--schema']],
  ['query SQL', (f) => ['query', f, 'SELECT count(*) FROM instructions']],
  ['replay', (f) => ['replay', f]],
  ['flow', (f) => ['flow', f, '-o', join(dir, 'out.html')]],
  ['explain', (f) => ['explain', f]],
  ['export', (f) => ['export', f, '-o', join(dir, 'out.json')]],
  ['diff', (f) => ['diff', f, BASE]],
  ['sessions', (f) => ['sessions', f]],
];

const TRUNCATED = /is truncated: \d+ bytes where its header says \d+; restore it from a copy or record a new trace$/;

interface FileRow {
  what: string;
  make: (file: string) => void;
  commands: string[];
  message: RegExp;
}

const FILE_ROWS: FileRow[] = [
  { what: 'cut to half its bytes', make: truncateTo('half'), commands: COMMANDS.map(([c]) => c), message: TRUNCATED },
  { what: 'cut to 1,000 bytes', make: truncateTo(1000), commands: COMMANDS.map(([c]) => c), message: TRUNCATED },
  { what: 'cut to 50 bytes (less than a header)', make: truncateTo(50), commands: ['record -o', 'query --schema', 'replay'], message: /not an SQLite file|truncated/ },
  { what: 'pages overwritten', make: scribble(31, 40), commands: ['record -o', 'query SQL', 'replay', 'explain', 'export'], message: /is damaged \(database disk image is malformed\); restore it from a copy or record a new trace$/ },
  {
    what: "whose instruction_runs table's root page is overwritten (found while reading, after opening)",
    make: scribbleInstructions,
    commands: ['query SQL', 'replay'],
    message: /^ntflow: the trace file is damaged \(database disk image is malformed\); restore it from a copy or record a new trace$/,
  },
  { what: "schema_version '0'", make: setSchema('0'), commands: ['record -o', 'query --schema', 'replay'], message: /has trace schema '0', which no ntflow writes \(schemas are 1 to \d+\)/ },
  { what: "schema_version 'x'", make: setSchema('x'), commands: ['record -o', 'query SQL', 'replay', 'flow'], message: /has trace schema 'x', which no ntflow writes/ },
  { what: 'schema_version newer than this ntflow', make: setSchema('99'), commands: ['record -o', 'replay'], message: /with trace schema 99; this ntflow \(.*\) reads schema \d+ or older — upgrade ntflow$/ },
];

for (const row of FILE_ROWS) {
  t.test(`a trace ${row.what}: every command refuses it in one line and leaves its bytes alone`, async (t) => {
    for (const name of row.commands) {
      const args = COMMANDS.find(([c]) => c === name)![1];
      const file = variant(`${name.replace(/\W+/g, '-')}.db`, row.make);
      const before = sha(file);
      const r = await ntflow(args(file));
      assertOneLine(t, r, row.message, name);
      t.equal(sha(file), before, `${name}: the file's bytes are untouched`);
      t.notOk(existsSync(`${file}-wal`) && statSync(`${file}-wal`).size > 0, `${name}: nothing waits in a WAL to be written into it`);
    }
  });
}

t.test('replay on a 0-byte file: refused, and the file stays 0 bytes (no schema written into it)', async (t) => {
  const file = join(dir, 'empty.db');
  writeFileSync(file, '');
  const r = await ntflow(['replay', file]);
  assertOneLine(t, r, /empty\.db is empty \(0 bytes\), not a trace; record one with 'ntflow record <scenario> -o .*empty\.db'$/, 'replay');
  t.equal(statSync(file).size, 0, 'still 0 bytes');
  for (const args of [['flow', file, '-o', join(dir, 'e.html')], ['explain', file], ['diff', file, BASE]]) {
    assertOneLine(t, await ntflow(args), /not an SQLite file, so not an ntflow trace; give a trace file written by 'ntflow record'$/, args[0]);
    t.equal(statSync(file).size, 0, `${args[0]}: still 0 bytes`);
  }
  const missing = join(dir, 'missing.db');
  assertOneLine(t, await ntflow(['replay', missing]), /missing\.db does not exist; record one with/, 'replay of a missing file');
  t.notOk(existsSync(missing), 'replay does not create it');
});

t.test('a FIFO or a device given as a trace: refused at once (reading a FIFO would wait forever)', async (t) => {
  const fifo = join(dir, 'fifo.db');
  const made = spawnSync('mkfifo', [fifo]);
  if (made.status !== 0) {
    t.comment('no mkfifo here');
    return;
  }
  for (const args of [['query', fifo, '--schema'], ['explain', fifo], ['flow', fifo, '-o', join(dir, 'f.html')], ['query', '/dev/zero', '--schema']]) {
    assertOneLine(t, await ntflow(args), /is not a regular file \(a device or pipe\), so not an ntflow trace; give a trace file written by 'ntflow record'$/, args.join(' '));
  }
  assertOneLine(t, await ntflow(['record', SCENARIO, '-o', fifo]), /fifo\.db is not a regular file \(a device or pipe cannot hold a trace\)/, 'record -o FIFO');
});

// ---- outputs that cannot be written ----------------------------------------------------------------

const haveDevFull = existsSync('/dev/full') && statSync('/dev/full').isCharacterDevice();

t.test('-o /dev/full (the device, or a name ending .html/.svg that links to it): one line, exit 1', { skip: !haveDevFull && 'no /dev/full here' }, async (t) => {
  const html = join(dir, 'full.html');
  const svg = join(dir, 'full.svg');
  symlinkSync('/dev/full', html);
  symlinkSync('/dev/full', svg);
  const rows: [string[], RegExp][] = [
    [['record', SCENARIO, '-o', '/dev/full'], /\/dev\/full is not a regular file \(a device or pipe cannot hold a trace\); give a file name such as trace\.db$/],
    [['flow', BASE, '-o', html], /cannot write .*full\.html: ENOSPC: no space left on device/],
    [['flow', BASE, '-o', svg], /cannot write .*full\.svg: ENOSPC: no space left on device/],
    [['diff', BASE, BASE, '-o', html], /cannot write .*full\.html: ENOSPC: no space left on device/],
  ];
  for (const format of ['perfetto', 'chrome-json', 'speedscope', 'mermaid']) {
    rows.push([['export', BASE, '--format', format, '-o', '/dev/full'], /cannot write \/dev\/full: ENOSPC: no space left on device/]);
  }
  const before = sha(BASE);
  for (const [args, message] of rows) {
    const r = await ntflow(args);
    assertOneLine(t, r, message, args.join(' '));
    // A file renamed over /dev/full would replace the device for everyone on the machine.
    t.ok(statSync('/dev/full').isCharacterDevice(), `${args[0]}: /dev/full is still the device`);
  }
  t.equal(sha(BASE), before, 'the trace read is untouched');
  t.notOk(existsSync('/dev/full.tmp'), 'no temporary file left beside the device');
});

/** Runs the CLI with its standard output on /dev/full (a file, so Node writes it synchronously). */
function withStdoutOnFull(args: string[]): Promise<CliOutput> {
  return new Promise((resolve, reject) => {
    const out = openSync('/dev/full', 'w');
    const p = spawn(...cliArgs(args), { stdio: ['ignore', out, 'pipe'] });
    closeSync(out);
    let stderr = '';
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout: '', stderr }));
  });
}

t.test('standard output on /dev/full: one line naming standard output and ENOSPC, exit 1', { skip: !haveDevFull && 'no /dev/full here' }, async (t) => {
  for (const args of [
    ['export', BASE, '--format', 'mermaid'],
    ['query', BASE, 'SELECT seq FROM events'],
    ['explain', BASE],
    ['diff', BASE, BASE],
    ['diff', BASE, BASE, '--json'],
    ['scenarios'],
  ]) {
    const r = await withStdoutOnFull(args);
    assertOneLine(t, r, /^ntflow: cannot write (standard output|the output): ENOSPC: no space left on device/, args.join(' '));
  }
});

// ---- the assembler -----------------------------------------------------------------------------------

const ASM_ROWS: [string, string, RegExp][] = [
  ['100,000 nested parentheses', `mov eax, ${'('.repeat(100_000)}1${')'.repeat(100_000)}`, /:2:\d+: parentheses nested more than 100 deep; split the expression/],
  ['200,000 terms', `mov eax, ${Array(200_000).fill('1').join(' + ')}`, /:2:\d+: this line has more than 1000 operators; split the expression/],
  ['100,000 unary minus signs', `mov eax, ${'-'.repeat(100_000)}1`, /:2:\d+: this line has more than 1000 operators/],
  ['a equ b / b equ a', 'a equ b\nb equ a\nmov eax, a', /:2:\d+: circular equ: a → b → a has no value; give one of them a value that does not depend on the others$/],
  ['a equ a + 1', 'a equ a + 1\nmov eax, a', /:2:\d+: circular equ: a → a has no value/],
];

t.test('the assembler: AsmError for expressions too deep or too long and for a circular equ', async (t) => {
  for (const [what, body, message] of ASM_ROWS) {
    const source = `start:\n${body}\nret\n`;
    t.throws(() => assemble(source, { fileName: 'bad.asm' }), AsmError, what);
    try {
      assemble(source, { fileName: 'bad.asm' });
    } catch (e) {
      t.match((e as Error).message, new RegExp(`^bad\\.asm${message.source}`), `${what}: the message`);
    }
  }
  // A shift by 10,000,000,000 overflowed BigInt (RangeError); values are 64-bit, so it is 0.
  t.same([...assemble('mov eax, 1 << 10000000000').bytes], [0xb8, 0, 0, 0, 0], '1 << 10000000000 is 0');
  t.same([...assemble('mov eax, -1 >> 60').bytes], [0xb8, 0x0f, 0, 0, 0], 'shorter shifts unchanged: -1 >> 60 is 15');
  // A 100,000-digit literal is named by its start and length: the message stays one short line.
  const huge = `0x${'f'.repeat(100_000)}`;
  for (const [what, source, message] of [
    ['dd', `dd ${huge}`, /^bad\.asm:1:4: value 99601434299370496793… \(120412 digits\) does not fit in 32 bits/],
    ['mov', `mov eax, ${huge}`, /^bad\.asm:1:10: value 0xffffffffffffffff… \(100000 hex digits\) is out of range/],
    ['a displacement', `mov eax, [${huge}]`, /^bad\.asm:1:10: displacement 99601434299370496793… \(120412 digits\) does not fit in 32 bits$/],
  ] as const) {
    try {
      assemble(source, { fileName: 'bad.asm' });
      t.fail(`${what}: a 100,000-digit value is refused`);
    } catch (e) {
      t.ok(e instanceof AsmError, `${what}: AsmError`);
      t.match((e as Error).message, message, `${what}: the message`);
      t.ok((e as Error).message.length < 200, `${what}: a short line (${(e as Error).message.length} characters)`);
    }
  }
  // What is not circular still assembles: a chain resolved forwards, and an equ that reads $.
  const ok = assemble('x equ 5\na equ b + x\nb equ c\nc equ 3\nmov eax, a\nl: nop\nd equ l - $\n');
  t.same([...ok.bytes.subarray(0, 5)], [0xb8, 8, 0, 0, 0], 'a equ b + x with b equ c, c equ 3: mov eax, 8');
  const nested = assemble(`mov eax, ${'('.repeat(100)}7${')'.repeat(100)}`);
  t.same([...nested.bytes], [0xb8, 7, 0, 0, 0], '100 nested parentheses are fine');
});

t.test('record of such a program: one line with file:line:col, the trace it would go into untouched', async (t) => {
  const file = variant('asm-target.db', () => {});
  const before = sha(file);
  for (const [i, [what, body, message]] of ASM_ROWS.entries()) {
    const program = join(dir, `bad-${i}.asm`);
    writeFileSync(program, `; ntflow: user\nstart:\n${body}\nret\n`);
    const r = await ntflow(['record', program, '-o', file]);
    // The "; ntflow: user" line shifts the source one line down.
    assertOneLine(t, r, new RegExp(`bad-${i}\\.asm${message.source.replace(':2:', ':3:')}`), what);
  }
  t.equal(sha(file), before, 'the trace is untouched');
});

// ---- the escape port ---------------------------------------------------------------------------------

t.test("a driver's out 8Eh with an id no body has: the session ends 'unsupported', naming the port, place and EAX", async (t) => {
  const driver = join(dir, 'escape-driver.asm');
  writeFileSync(driver, '; ntflow: driver\nDriverEntry:\n    mov eax, 0x7777\n    out 0x8e, eax\n    xor eax, eax\n    ret 8\n');
  const program = join(dir, 'main.asm');
  writeFileSync(program, '; ntflow: user\nstart:\n    xor eax, eax\n    ret\n');
  const file = join(dir, 'escape.db');
  const r = await ntflow(['record', program, '--driver', driver, '-o', file]);
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stderr, /internal error|\n\s+at /, 'no JavaScript exception');
  const expected = /^unsupported: out 8Eh \(ntflow's escape port\) at escape-driver!DriverEntry\+0x5 with EAX = 0x7777, which names no service or routine body/;
  t.match(r.stdout, /outcome +unsupported: out 8Eh/, 'the summary says so');
  const db = new Database(file, { readonly: true });
  const row = db.prepare('SELECT outcome, outcome_detail FROM sessions').get() as { outcome: string; outcome_detail: string } | undefined;
  db.close();
  t.equal(row?.outcome, 'unsupported', 'the session is in the trace, outcome unsupported');
  t.match(row?.outcome_detail, expected, 'the session row names the escape');
});
