// Issue K §4: the table of bad inputs, across every command, through the real CLI. One row per
// input: the command line, what it needs set up, and the one line the user must see. Every row:
// exit status 1, one line on stderr naming what was wrong and how to fix it, no stack trace, and
// every file the command line names (the trace above all) byte for byte as it was. Then what is
// not a user mistake — a runaway loop, a triple fault, a stack overflow — recorded as the
// session's outcome (exit status 0, the README's "Exit status"), the earlier session untouched.
//   npx tsc -p tsconfig.json && npx tap dist/test/bad-input-table.test.js
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ntflow } from './util/cli.js';
import { assertOneLine, sessionHash, setSchema, sha, truncateTo } from './util/bad-input.js';
import { GCC, PROGRAM, run } from './util/mingw.js';
import { repoPath } from './util/paths.js';

// About 90 CLI processes: on a loaded machine that passes tap's default of 300 s per file.
t.setTimeout(1_200_000);

const dir = mkdtempSync(join(tmpdir(), 'ntflow-bad-table-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const SCENARIO = 'osr-log-user-handle';
/** The trace every row reads or would write into: one complete session. */
const TRACE = join(dir, 'trace.db');
const at = (name: string) => join(dir, name);
const userProgram = (body: string) => `; ntflow: user\nstart:\n${body}\n`;

/** Pseudo-random bytes (fixed seed), none of them 'MZ' at the start: junk that is not a PE image. */
function junk(length: number): Buffer {
  const b = Buffer.alloc(length);
  let x = 0x2545f491;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  b[0] = 0x00;
  return b;
}

/** MinGW is needed only for the rows that give a real PE where it does not belong. */
const haveMingw = spawnSync(GCC, ['--version'], { stdio: 'ignore' }).status === 0;

t.before(async () => {
  const r = await ntflow(['record', SCENARIO, '-o', TRACE]);
  if (r.code !== 0) throw new Error(`recording the trace failed: ${r.stderr}`);
  writeFileSync(at('undefined-label.asm'), userProgram('    jmp nowhere_at_all\n    ret'));
  writeFileSync(at('huge-immediate.asm'), userProgram('    mov al, 0x1234\n    ret'));
  writeFileSync(at('huge-dword.asm'), userProgram('    dd 0x1_0000_0000\n    ret'));
  writeFileSync(at('bad-mnemonic.asm'), userProgram('    frobnicate eax, ebx\n    ret'));
  writeFileSync(at('no-start.asm'), '; ntflow: user\nmain:\n    ret\n');
  writeFileSync(at('empty.asm'), '');
  writeFileSync(at('junk.asm'), junk(4096));
  writeFileSync(at('junk.exe'), junk(4096));
  writeFileSync(at('asm-text.exe'), userProgram('    xor eax, eax\n    ret'));
  writeFileSync(at('asm-text.sys'), '; ntflow: driver\nDriverEntry:\n    xor eax, eax\n    ret 8\n');
  writeFileSync(at('mz-only.exe'), Buffer.from('MZ this is not a PE image at all'));
  writeFileSync(at('ok.asm'), userProgram('    xor eax, eax\n    ret'));
  mkdirSync(at('a-directory.asm'));
  mkdirSync(at('a-directory'));
  writeFileSync(at('plain-file'), 'a regular file, not a folder\n');
  writeFileSync(at('not-sqlite.db'), 'id,name\n1,a CSV file, not a trace\n');
  writeFileSync(at('empty.db'), '');
  copyFileSync(TRACE, at('truncated.db'));
  truncateTo('half')(at('truncated.db'));
  copyFileSync(TRACE, at('newer.db'));
  setSchema('99')(at('newer.db'));
  if (haveMingw) run(GCC, [...PROGRAM, repoPath('test', 'pe', 'prog.c'), '-lkernel32', '-o', 'prog.exe'], dir);
});

interface Row {
  /** What is wrong, as the class of input and the input. */
  what: string;
  args: string[];
  /** The one line on stderr. */
  message: RegExp;
  stdin?: string;
  /** Rows that need a real PE (MinGW). */
  pe?: boolean;
}

const T = TRACE;
const HELP = (command: string) => new RegExp(`; see 'ntflow ${command} --help'$`);

const ROWS: Row[] = [
  // ---- programs that are not programs ------------------------------------------------------------
  { what: 'program: an undefined label', args: ['record', at('undefined-label.asm'), '-o', T], message: /undefined-label\.asm:3:\d+: .*nowhere_at_all/ },
  { what: 'program: an immediate too big for its operand', args: ['record', at('huge-immediate.asm'), '-o', T], message: /huge-immediate\.asm:3:\d+: .*(does not fit|out of range)/ },
  { what: 'program: dd of a 33-bit value', args: ['record', at('huge-dword.asm'), '-o', T], message: /huge-dword\.asm:3:\d+: .*does not fit in 32 bits/ },
  { what: 'program: an unknown mnemonic', args: ['record', at('bad-mnemonic.asm'), '-o', T], message: /bad-mnemonic\.asm:3:\d+: .*frobnicate/ },
  { what: 'program: no start label', args: ['record', at('no-start.asm'), '-o', T], message: /no-start\.asm.*start/ },
  { what: 'program: a 0-byte .asm', args: ['record', at('empty.asm'), '-o', T], message: /empty\.asm is empty \(0 bytes\); write the program into it/ },
  { what: 'program: binary junk named .asm', args: ['record', at('junk.asm'), '-o', T], message: /junk\.asm is neither assembly text nor a PE image \(byte 0x[0-9a-f]{2} at offset \d+\); give an \.asm source or a PE/ },
  { what: 'program: binary junk named .exe', args: ['record', at('junk.exe'), '-o', T], message: /junk\.exe.*not a PE image/ },
  { what: 'program: "MZ" and nothing of a PE after it', args: ['record', at('mz-only.exe'), '-o', T], message: /mz-only\.exe.*(not a PE|truncated)/ },
  { what: 'program: assembly text where a PE (.exe) is expected', args: ['record', at('asm-text.exe'), '-o', T], message: /asm-text\.exe is text, not a PE image; .*\(rename it .*asm-text\.asm\)$/ },
  { what: 'driver: assembly text where a PE (.sys) is expected', args: ['record', at('ok.asm'), '--driver', at('asm-text.sys'), '-o', T], message: /asm-text\.sys is text, not a PE image; .*\(rename it .*asm-text\.asm\)$/ },
  { what: 'driver: a user-mode PE (.exe) where a driver is expected', args: ['record', at('ok.asm'), '--driver', at('prog.exe'), '-o', T], message: /prog\.exe.*(not a driver|subsystem|user program)/, pe: true },
  { what: 'program: a directory', args: ['record', at('a-directory.asm'), '-o', T], message: /a-directory\.asm is a directory/ },
  { what: 'program: a file that does not exist', args: ['record', at('missing.asm'), '-o', T], message: /missing\.asm does not exist/ },
  { what: 'driver: a file that does not exist', args: ['record', at('ok.asm'), '--driver', at('missing.sys'), '-o', T], message: /missing\.sys does not exist/ },
  { what: 'scenario: an unknown name', args: ['record', 'osr-log-user-handel', '-o', T], message: /unknown scenario 'osr-log-user-handel'; did you mean 'osr-log-user-handle'/ },
  { what: 'scenario: unknown under demo --text', args: ['demo', '--text', 'no-such-scenario'], message: /unknown scenario 'no-such-scenario'.*ntflow scenarios/ },

  // ---- trace files that are not traces -----------------------------------------------------------
  { what: 'trace: missing (sessions)', args: ['sessions', at('missing.db')], message: /missing\.db does not exist/ },
  { what: 'trace: missing (state)', args: ['state', at('missing.db'), '--at', '1'], message: /missing\.db does not exist/ },
  { what: 'trace: 0 bytes (sessions)', args: ['sessions', at('empty.db')], message: /empty\.db is not an SQLite file, so not an ntflow trace; give a trace file written by 'ntflow record'$/ },
  { what: 'trace: a CSV file (query)', args: ['query', at('not-sqlite.db'), 'SELECT 1'], message: /not-sqlite\.db is not an SQLite file, so not an ntflow trace; give a trace file/ },
  { what: 'trace: a CSV file as record -o', args: ['record', SCENARIO, '-o', at('not-sqlite.db')], message: /not-sqlite\.db is not an SQLite file \(so not an ntflow trace\); choose another output file$/ },
  { what: 'trace: a directory (explain)', args: ['explain', at('a-directory')], message: /a-directory is a directory/ },
  { what: 'trace: truncated (state)', args: ['state', at('truncated.db'), '--at', '1'], message: /truncated\.db is truncated/ },
  { what: 'trace: truncated (sessions)', args: ['sessions', at('truncated.db')], message: /truncated\.db is truncated/ },
  { what: 'trace: a newer schema (query)', args: ['query', at('newer.db'), 'SELECT 1'], message: /trace schema 99.*upgrade ntflow$/ },
  { what: 'trace: a newer schema (export)', args: ['export', at('newer.db'), '--format', 'mermaid'], message: /trace schema 99.*upgrade ntflow$/ },
  { what: 'trace: diff against a missing file', args: ['diff', T, at('missing.db')], message: /missing\.db does not exist/ },
  { what: 'session: an unknown session name (diff FILE:SESSION)', args: ['diff', T, `${T}:no-such-session`], message: /no session 'no-such-session' in this trace \(sessions: 1 osr-log-user-handle\)$/ },
  { what: 'session: an unknown session id (replay)', args: ['replay', T, '--session', '99'], message: /no session '99' in this trace \(sessions: 1 osr-log-user-handle\)$/ },
  { what: 'session: an unknown session (flow)', args: ['flow', T, '--session', 'nope', '-o', at('x.svg')], message: /no session 'nope' in this trace/ },

  // ---- outputs that cannot be written --------------------------------------------------------------
  { what: 'output: record -o under /proc', args: ['record', SCENARIO, '-o', '/proc/ntflow-trace.db'], message: /cannot open \/proc\/ntflow-trace\.db for writing: .*; choose a file in a folder you can write$/ },
  { what: 'output: record -o whose parent is a regular file', args: ['record', SCENARIO, '-o', at('plain-file/trace.db')], message: /cannot create .*plain-file\/trace\.db: .*plain-file is a file, not a folder$/ },
  { what: 'output: record -o a directory', args: ['record', SCENARIO, '-o', at('a-directory')], message: /a-directory is a directory/ },
  { what: 'output: flow -o under /sys', args: ['flow', T, '-o', '/sys/ntflow.svg'], message: /cannot write \/sys\/ntflow\.svg: EACCES: permission denied; choose a location you can write$/ },
  { what: 'output: flow -o whose parent is a regular file', args: ['flow', T, '-o', at('plain-file/x.html')], message: /cannot write .*plain-file\/x\.html: ENOTDIR: not a directory; a part of the path is a file, not a folder/ },
  { what: 'output: flow -o a directory', args: ['flow', T, '-o', at('a-directory')], message: /a-directory is a directory; give a file name such as .*a-directory\/flow\.svg/ },
  { what: 'output: flow -o with an extension it cannot write', args: ['flow', T, '-o', at('x.png')], message: /x\.png: unknown extension '\.png'; use \.svg or \.html$/ },
  { what: 'output: diff -o a directory', args: ['diff', T, T, '-o', at('a-directory')], message: /a-directory is a directory; give a file name such as .*a-directory\/diff\.html$/ },
  { what: 'output: export -o under /proc', args: ['export', T, '--format', 'chrome-json', '-o', '/proc/ntflow.json'], message: /cannot write \/proc\/ntflow\.json: ENOENT: no such file or directory; the folder does not exist or cannot hold new files/ },
  { what: 'output: export -o whose parent is a regular file', args: ['export', T, '--format', 'speedscope', '-o', at('plain-file/x.json')], message: /cannot write .*plain-file\/x\.json: ENOTDIR: not a directory; a part of the path is a file/ },
  { what: 'output: export -o a name with no format', args: ['export', T, '-o', at('x.bin')], message: /--format is needed: one of perfetto, chrome-json, speedscope, mermaid/ },
  { what: 'output: record -o /dev/full', args: ['record', SCENARIO, '-o', '/dev/full'], message: /\/dev\/full is not a regular file/ },

  // ---- SQL that writes or reaches outside the file -------------------------------------------------
  { what: 'sql: ATTACH', args: ['query', T, `ATTACH '${at('other.db')}' AS o`], message: /returns none, so it was refused \(ATTACH, DETACH and transactions are not allowed\)$/ },
  { what: 'sql: VACUUM INTO', args: ['query', T, `VACUUM INTO '${at('copy.db')}'`], message: /would change the trace, so it was refused \(the file is opened read-only; nothing was changed\)$/ },
  { what: 'sql: PRAGMA writable_schema', args: ['query', T, 'PRAGMA writable_schema = 1'], message: /'PRAGMA writable_schema = 1' returns none, so it was refused/ },
  { what: 'sql: load_extension', args: ['query', T, "SELECT load_extension('/tmp/x.so')"], message: /SQL error: not authorized \(load_extension and anything else reaching outside the trace is disabled/ },
  { what: 'sql: two statements', args: ['query', T, 'SELECT 1; DELETE FROM sessions'], message: /SQL error: give one statement at a time/ },
  { what: 'sql: a CTE with DELETE', args: ['query', T, 'WITH x AS (SELECT 1) DELETE FROM sessions'], message: /would change the trace, so it was refused \(the file is opened read-only; nothing was changed\)$/ },
  { what: 'sql: DELETE', args: ['query', T, 'DELETE FROM sessions'], message: /would change the trace, so it was refused \(the file is opened read-only; nothing was changed\)$/ },
  { what: 'sql: a syntax error', args: ['query', T, 'SELEC * FROM sessions'], message: /SQL error: near "SELEC": syntax error$/ },
  { what: 'sql: flow --query that deletes', args: ['flow', T, '--query', 'DELETE FROM syscalls RETURNING id', '-o', at('q.svg')], message: /would change the trace, so it was refused \(the file is opened read-only; nothing was changed\)$/ },
  { what: 'query: an unknown --named query', args: ['query', T, '--named', 'everything'], message: /no named query 'everything'; the named queries are failures, syscalls/ },

  // ---- numbers out of range ------------------------------------------------------------------------
  { what: '--at past the last event', args: ['state', T, '--at', '999999999'], message: /--at 999999999 is outside session 1, whose events are 0 to \d+$/ },
  { what: '--at negative', args: ['state', T, '--at', '-1'], message: /--at: '-1' is negative; give a number from 0/ },
  { what: '--at not a number', args: ['state', T, '--at', 'abc'], message: /--at: 'abc' is not a number \(use 1234 or 0x4d2\)$/ },
  { what: '--at 1e30', args: ['state', T, '--at', '1e30'], message: /--at: '1e30' is not a number/ },
  { what: '--max-instructions 0', args: ['record', SCENARIO, '-o', T, '--max-instructions', '0'], message: /'0'.*positive whole number/ },
  { what: '--max-instructions negative', args: ['record', SCENARIO, '-o', T, '--max-instructions=-5'], message: /'-5'.*positive whole number/ },
  { what: '--max-instructions 1e30', args: ['record', SCENARIO, '-o', T, '--max-instructions', '1e30'], message: /'1e30'.*positive whole number/ },
  { what: '--max-instructions abc', args: ['record', SCENARIO, '-o', T, '--max-instructions', 'abc'], message: /'abc'.*positive whole number/ },
  { what: '--syscall no such call (explain)', args: ['explain', T, '--syscall', '9999'], message: /no syscall 9999 in session 1 \(its ids run 1 … \d+; see --named syscalls\)$/ },
  { what: '--syscall no such call (export)', args: ['export', T, '--format', 'mermaid', '--syscall', '9999'], message: /no syscall 9999 in session 1/ },
  { what: '--syscall not a number (flow)', args: ['flow', T, '--syscall', 'x1', '-o', at('s.svg')], message: /'x1' is not a syscall reference \(ID or SESSION:ID, e.g. 5 or 2:5: a syscalls\.id, see --named syscalls\)$/ },
  { what: '--cpu unknown', args: ['record', SCENARIO, '-o', T, '--cpu', 'pentium'], message: /'pentium'.*sysenter, int2e/ },
  { what: '--kind unknown', args: ['flow', T, '--kind', 'pie', '-o', at('k.svg')], message: /'pie'.*sequence, flame, graph/ },
  { what: '--format unknown (export)', args: ['export', T, '--format', 'pdf'], message: /unknown format 'pdf': use one of perfetto, chrome-json, speedscope, mermaid$/ },
  { what: 'exec --cpl 2', args: ['exec', '--cpl', '2'], message: /'2'.*0 or 3/, stdin: '{}' },
  { what: 'exec: not JSON', args: ['exec'], message: /stdin: not valid JSON/, stdin: '{code: 01c8' },
  { what: 'exec: nothing on stdin', args: ['exec'], message: /no case given/, stdin: '' },

  // ---- unknown flags and commands ------------------------------------------------------------------
  ...(
    [
      ['record', [SCENARIO, '-o', T]],
      ['sessions', [T]],
      ['query', [T, 'SELECT 1']],
      ['replay', [T]],
      ['state', [T, '--at', '1']],
      ['flow', [T, '-o', at('f.svg')]],
      ['explain', [T]],
      ['diff', [T, T]],
      ['export', [T]],
      ['exec', []],
      ['scenarios', []],
      ['demo', []],
    ] as [string, string[]][]
  ).map(([command, rest]): Row => ({ what: `flag: unknown on ${command}`, args: [command, ...rest, '--frobnicate'], message: new RegExp(`unknown option '--frobnicate'.*${HELP(command).source}`), stdin: command === 'exec' ? '{}' : undefined })),
  { what: 'flag: a misspelt --session on query (a suggestion, still one line)', args: ['query', T, 'SELECT 1', '--sesion', '1'], message: /unknown option '--sesion' \(did you mean --session\?\)/ },
  { what: 'flag: a missing argument', args: ['record'], message: /missing required argument 'scenario\|file'.*--help/ },
  { what: 'command: unknown', args: ['recrod', SCENARIO], message: /unknown command 'recrod'.*(did you mean record|--help)/ },
];

/** The regular files a command line names (FILE:SESSION too): each must keep its bytes. */
function filesIn(args: string[]): string[] {
  const files = new Set<string>([TRACE]);
  for (const a of args) {
    for (const p of [a, a.replace(/:[^:/]*$/, '')]) if (existsSync(p) && statSync(p).isFile()) files.add(p);
  }
  return [...files];
}

/**
 * Runs `work` over `items`, `width` at a time, results in the items' order. Each row is a process
 * that mostly waits on Node's start-up; three at once keep the file well inside tap's timeout.
 */
async function pool<T, R>(items: readonly T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return results;
}

t.test(`the table: ${ROWS.length} bad inputs, each one line and exit 1, every file it names untouched`, async (t) => {
  const traceBefore = sha(TRACE);
  const runnable = ROWS.filter((row) => !row.pe || haveMingw);
  for (const row of ROWS.filter((r) => !runnable.includes(r))) t.ok(true, row.what, { skip: 'needs MinGW (apt-get install -y gcc-mingw-w64-i686)' });
  // No row writes anything (each is refused), so rows may run side by side; each compares the
  // files it names before and after itself, and the trace is compared once more at the end.
  const results = await pool(runnable, 3, async (row) => {
    const files = filesIn(row.args);
    const before = files.map(sha);
    const r = await ntflow(row.args, dir, row.stdin);
    return { row, r, files, before, after: files.map(sha) };
  });
  for (const { row, r, files, before, after } of results) {
    // SHOW_STDERR=1 prints every row's line, for reading the wording.
    if (process.env.SHOW_STDERR) t.comment(`${row.what} → ${r.stderr.trim()}`);
    assertOneLine(t, r, row.message, row.what);
    t.same(after, before, `${row.what}: ${files.length} file(s) named keep their bytes`);
  }
  t.equal(sha(TRACE), traceBefore, 'the trace is byte for byte what it was before the table');
  t.notOk(existsSync('/proc/ntflow-trace.db') || existsSync(at('copy.db')) || existsSync(at('other.db')), 'nothing was created where it could not or must not be');
});

// ---- not mistakes: the guest did it, the recording is its outcome ------------------------------------

const OUTCOME_ROWS: { what: string; files: Record<string, string>; args: string[]; outcome: RegExp }[] = [
  {
    what: 'an infinite loop stops at the instruction limit',
    files: { 'loop.asm': userProgram('.again:\n    jmp .again') },
    args: ['loop.asm', '--max-instructions', '20k'],
    outcome: /^ {2}outcome +instruction-limit$/m,
  },
  {
    what: 'a triple fault (a driver loads an empty IDT and traps)',
    files: { 'ok.asm': userProgram('    xor eax, eax\n    ret'), 'triple.asm': '; ntflow: driver\nDriverEntry:\n    push 0\n    push 0\n    lidt [esp]\n    int3\n    ret 8\n' },
    args: ['ok.asm', '--driver', 'triple.asm'],
    outcome: /^ {2}outcome +triple-fault: #GP\(0x[0-9a-f]+\) while delivering #DF/m,
  },
  {
    what: 'a stack overflow (a program that calls itself until its stack runs out)',
    files: { 'recurse.asm': userProgram('    call start') },
    args: ['recurse.asm'],
    outcome: /^ {2}outcome +exception: the process ended with exit status STATUS_ACCESS_VIOLATION: no handler wanted the exception at 00401000$/m,
  },
];

t.test('a runaway loop, a triple fault, a stack overflow: recorded outcomes, exit 0, the earlier session untouched', async (t) => {
  const file = at('outcomes.db');
  copyFileSync(TRACE, file);
  const earlier = sessionHash(file, 1);
  for (const [i, row] of OUTCOME_ROWS.entries()) {
    for (const [name, text] of Object.entries(row.files)) writeFileSync(at(name), text);
    const r = await ntflow(['record', ...row.args, '-o', file], dir);
    t.equal(r.code, 0, `${row.what}: exit status 0, not an error of ntflow's (stderr: ${r.stderr.slice(0, 300)})`);
    t.equal(r.stderr, '', `${row.what}: nothing on stderr`);
    t.match(r.stdout, new RegExp(`^session ${i + 2} '\\w+': complete$`, 'm'), `${row.what}: the summary names the session`);
    t.match(r.stdout, row.outcome, `${row.what}: the outcome in one summary line`);
    t.equal(sessionHash(file, 1), earlier, `${row.what}: session 1's rows are as they were`);
  }
  const list = await ntflow(['sessions', file]);
  t.match(list.stdout, /^ 2 +loop +complete +instruction-limit +20,000 /m, 'sessions lists the runaway one');
  t.match(list.stdout, /^ 3 +ok +complete +triple-fault /m, 'and the triple fault');
  t.match(list.stdout, /^ 4 +recurse +complete +exception /m, 'and the stack overflow');
});
