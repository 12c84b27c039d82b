// `ntflow exec`: a case of the Unicorn oracle's JSON on stdin, the oracle's result shape on stdout;
// a JSON array in gives an array out; `--jsonl` answers line by line, flushed; bad input is one
// stderr line naming the field and exit status 1. Runs the real CLI (bin/ntflow) as a child process.
//   npx tsc -p tsconfig.json && npx tap dist/test/exec-cli.test.js
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cliArgs as cli, ntflow as run, type CliOutput as Out } from './util/cli.js';

const BASE = 0x401000;

/** Run `ntflow <args>` with `input` on stdin; resolves when it exits. */
const ntflow = (args: string[], input: string): Promise<Out> => run(args, undefined, input);

// The oracle's sample cases (the workplace's oracle/samples folder), copied here: the project stands alone.
const S1 = { code: '01c8 80db10 6bd0fd c1e104 f7d8', regs: { eax: '0xffffffff', ecx: 2, ebx: '0x0f', eflags: '0x203' } };
const S2 = {
  code: '8b1d00005000 66031d04005000 0fb60d06005000 0fbf3500005000 53 58 ff3500005000 8f0508005000 b90a000000 31d2 f7f1 8d4c5904',
  mem: [{ addr: '0x500000', data: '78563412fe80ffff0000000000000000' }],
  regs: { eflags: 2 },
};
const S3 = {
  code: '64a124010000 8a8040010000 31c9 f7f1 90',
  fs_base: '0xffdff000',
  mem: [
    { addr: '0xffdff124', data: '00105080' },
    { addr: '0x80501140', data: '2a' },
  ],
};

const RESULT_KEYS = ['regs', 'eflags', 'flags', 'mem', 'writes', 'exception', 'error', 'automapped'];
const REG_KEYS = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'eip'];
const FLAG_KEYS = ['CF', 'PF', 'AF', 'ZF', 'SF', 'TF', 'IF', 'DF', 'OF'];

type Result = {
  regs: Record<string, number>;
  eflags: number;
  flags: Record<string, number>;
  mem: { addr: number; data: string | null }[];
  writes: [number, number, number][];
  exception: { vector: number; eip: number; error_code?: number } | null;
  error: string | null;
  automapped: number[];
  trace?: number[];
  icount?: number;
};

function checkShape(t: Test, r: Result, what: string): void {
  t.same(Object.keys(r), RESULT_KEYS, `${what}: the oracle's result fields, in its order`);
  t.same(Object.keys(r.regs), REG_KEYS, `${what}: regs eax..edi, eip`);
  t.same(Object.keys(r.flags), FLAG_KEYS, `${what}: flags`);
  for (const [k, bit] of [['CF', 0], ['PF', 2], ['AF', 4], ['ZF', 6], ['SF', 7], ['TF', 8], ['IF', 9], ['DF', 10], ['OF', 11]] as const) {
    if (r.flags[k] !== ((r.eflags >>> bit) & 1)) t.fail(`${what}: flags.${k} disagrees with eflags ${r.eflags.toString(16)}`);
  }
}

const h = (v: number): string => (v >>> 0).toString(16).toUpperCase();

function expectS1(t: Test, r: Result): void {
  checkShape(t, r, 's1');
  t.same(
    Object.fromEntries(REG_KEYS.map((k) => [k, h(r.regs[k]!)])),
    { eax: 'FFFFFFFF', ecx: '20', edx: 'FFFFFFFD', ebx: 'FE', esp: '12FF00', ebp: '0', esi: '0', edi: '0', eip: h(BASE + 13) },
    's1 registers',
  );
  t.equal(h(r.eflags), '297', 's1 eflags 0x297');
  t.same(r.flags, { CF: 1, PF: 1, AF: 1, ZF: 0, SF: 1, TF: 0, IF: 1, DF: 0, OF: 0 });
  t.same([r.mem, r.writes, r.exception, r.error, r.automapped], [[], [], null, null, []], 's1: no memory, no exception');
}

function expectS2(t: Test, r: Result): void {
  checkShape(t, r, 's2');
  t.equal(h(r.regs.eax!), '1D2158B');
  t.equal(h(r.regs.edx!), '8');
  t.equal(h(r.regs.ecx!), '2469AEFA');
  t.same(r.mem, [{ addr: 0x500000, data: '78563412fe80ffff7856341200000000' }], 's2: 0x500008 = 78563412');
  t.equal(r.writes.length, 3, 's2: three writes');
  t.same(r.writes[2], [0x500008, 4, 0x12345678], 'pop [m]');
  t.equal(r.exception, null);
}

function expectS3(t: Test, r: Result): void {
  checkShape(t, r, 's3');
  t.equal(h(r.regs.eax!), '8050102A', 's3 eax');
  t.equal(r.regs.ecx, 0);
  t.same(r.exception, { vector: 0, eip: 0x40100e }, 's3 #DE at the div');
  t.equal(r.regs.eip, 0x40100e, 'eip stays at the faulting div');
  t.same(r.mem, [
    { addr: 0xffdff124, data: '00105080' },
    { addr: 0x80501140, data: '2a' },
  ]);
  t.same(r.writes, []);
  t.equal(r.error, null);
}

t.test('one case in, the oracle result shape out (samples s1, s2, s3)', async (t) => {
  const [a, b, c] = await Promise.all([S1, S2, S3].map((s) => ntflow(['exec'], JSON.stringify(s))));
  for (const o of [a, b, c]) {
    t.equal(o!.code, 0, 'exit 0');
    t.equal(o!.stderr, '', 'nothing on stderr');
  }
  expectS1(t, JSON.parse(a!.stdout) as Result);
  expectS2(t, JSON.parse(b!.stdout) as Result);
  expectS3(t, JSON.parse(c!.stdout) as Result);
});

t.test('a JSON array in gives an array out, in order', async (t) => {
  const o = await ntflow(['exec'], JSON.stringify([S1, S2, S3]));
  t.equal(o.code, 0);
  t.equal(o.stderr, '');
  const rs = JSON.parse(o.stdout) as Result[];
  t.ok(Array.isArray(rs));
  t.equal(rs.length, 3);
  expectS1(t, rs[0]!);
  expectS2(t, rs[1]!);
  expectS3(t, rs[2]!);
  const empty = await ntflow(['exec'], '[]');
  t.same([empty.code, JSON.parse(empty.stdout)], [0, []], 'an empty array gives an empty array');
});

t.test('--jsonl: one flushed result line per case line', async (t) => {
  // Write a line, wait for its answer, only then write the next: a process that buffered its
  // output until stdin closed would never answer line 1 and this test would time out.
  const p = spawn(...cli(['exec', '--jsonl']), { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const lines = createInterface({ input: p.stdout });
  const queue: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  lines.on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l);
    else queue.push(l);
  });
  const next = (ms = 60_000): Promise<string> => // a bound against output that never comes (not flushed), not a timing
    new Promise((resolve, reject) => {
      if (queue.length) return resolve(queue.shift()!);
      const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: --jsonl output is not flushed per line`)), ms);
      waiters.push((l) => (clearTimeout(timer), resolve(l)));
    });
  const exited = new Promise<number | null>((r) => p.on('close', (code) => r(code)));

  p.stdin.write(JSON.stringify(S1) + '\n');
  expectS1(t, JSON.parse(await next()) as Result);
  p.stdin.write(JSON.stringify(S2) + '\n');
  expectS2(t, JSON.parse(await next()) as Result);
  p.stdin.write('\n'); // a blank line is skipped, not answered
  p.stdin.write(JSON.stringify(S3) + '\n');
  const l3 = await next();
  expectS3(t, JSON.parse(l3) as Result);
  t.notOk(l3.includes('\n'), 'one line per result');
  p.stdin.end();
  t.equal(await exited, 0, 'exit 0');
  t.equal(queue.length, 0, 'no extra output lines');
  t.equal(stderr, '');
});

t.test('--cpl 0 runs at ring 0; default is ring 3', async (t) => {
  // cli: privileged (IOPL 0) at ring 3 → #GP(0); fine at ring 0, clearing IF
  const [r3, r0, caseCpl] = await Promise.all([
    ntflow(['exec'], '{"code": "fa 90"}'),
    ntflow(['exec', '--cpl', '0'], '{"code": "fa 90"}'),
    ntflow(['exec'], '{"code": "fa 90", "cpl": 0}'),
  ]);
  const a = JSON.parse(r3.stdout) as Result;
  const b = JSON.parse(r0.stdout) as Result;
  t.same(a.exception, { vector: 13, eip: BASE, error_code: 0 }, 'ring 3: cli → #GP(0)');
  t.equal(b.exception, null, 'ring 0: no exception');
  t.equal(b.flags.IF, 0, 'ring 0: IF cleared');
  t.equal(b.regs.eip, BASE + 2);
  t.same(JSON.parse(caseCpl.stdout), b, '"cpl": 0 in the case does the same');
  // --cpu int2e: sysenter is #UD
  const ud = await ntflow(['exec', '--cpu', 'int2e'], '{"code": "0f34"}');
  t.same((JSON.parse(ud.stdout) as Result).exception, { vector: 6, eip: BASE }, '--cpu int2e: sysenter → #UD');
});

t.test('count bounds an infinite loop', async (t) => {
  const o = await ntflow(['exec'], '{"code": "eb fe", "count": 1000, "trace": true}');
  t.equal(o.code, 0);
  const r = JSON.parse(o.stdout) as Result;
  t.equal(r.regs.eip, BASE, 'still at the jmp $');
  t.equal(r.exception, null);
  t.equal(r.error, null);
  t.equal(r.icount, 1000, 'exactly count instructions ran');
  t.equal(r.trace?.length, 1000);
  t.ok(r.trace?.every((e) => e === BASE));
  const one = JSON.parse((await ntflow(['exec'], '{"code": "40 40 40 40", "count": 2}')).stdout) as Result;
  t.same([one.regs.eax, one.regs.eip], [2, BASE + 2], 'count 2 of 4 instructions');
});

/** One stderr line naming `field`, exit 1, nothing on stdout, no stack trace. */
function expectUserError(t: Test, o: Out, field: RegExp, what: string): void {
  t.equal(o.code, 1, `${what}: exit status 1`);
  const lines = o.stderr.split('\n').filter((l) => l !== '');
  t.equal(lines.length, 1, `${what}: exactly one stderr line (got ${JSON.stringify(o.stderr)})`);
  t.match(o.stderr, field, `${what}: names what was wrong`);
  t.notMatch(o.stderr, /^\s+at |internal error|Error: /m, `${what}: no stack trace`);
  t.equal(o.stdout, '', `${what}: nothing on stdout`);
}

t.test('bad input: one stderr line naming the field, exit status 1', async (t) => {
  const cases: [string[], string, RegExp, string][] = [
    [['exec'], '{"code": "01c8 zz"}', /code.*invalid hex/, 'invalid hex in code'],
    [['exec'], '{"code": "01c8",', /not valid JSON/, 'bad JSON'],
    [['exec'], '{"code": "90", "regs": {"exx": 1}}', /regs\.exx.*unknown register/, 'unknown register regs.exx'],
    [['exec'], '{"code": "90", "bogus": 1}', /bogus.*unknown field/, 'unknown field'],
    [['exec'], '[{"code": "90"}, {"code": "9"}]', /case 1.*code/, 'bad case inside an array names its index'],
    [['exec'], '', /no case given|stdin/, 'empty stdin'],
    [['exec', '--cpl', '2'], '{"code": "90"}', /--cpl/, '--cpl 2'],
    [['exec', '--cpu', 'bogus'], '{"code": "90"}', /--cpu/, '--cpu bogus'],
  ];
  const outs = await Promise.all(cases.map(([args, input]) => ntflow(args, input)));
  cases.forEach(([, , field, what], i) => expectUserError(t, outs[i]!, field, what));
});

t.test('more bad fields, each named (one --jsonl process)', async (t) => {
  const bad: [object | string, RegExp][] = [
    [{ code: '01c' }, /code.*invalid hex/],
    [{ regs: { eax: 1 } }, /code.*missing/],
    [{ code: '90', regs: { eax: 'lots' } }, /regs\.eax/],
    [{ code: '90', mem: [{ addr: 4096, data: 'xyz' }] }, /mem\[0\]\.data/],
    [{ code: '90', map: [[4096]] }, /map\[0\]/],
    [{ code: '90', count: -1 }, /count/],
    [{ code: '90', automap: 'yes' }, /automap/],
    [{ code: '90', cpl: 1 }, /cpl/],
    ['"90"', /case/],
  ];
  const o = await ntflow(['exec', '--jsonl'], bad.map(([c]) => (typeof c === 'string' ? c : JSON.stringify(c))).join('\n') + '\n');
  t.equal(o.code, 1);
  const lines = o.stdout.split('\n').filter((l) => l !== '');
  const errs = o.stderr.split('\n').filter((l) => l !== '');
  t.equal(lines.length, bad.length);
  t.equal(errs.length, bad.length, 'one stderr line per bad case');
  bad.forEach(([, re], i) => {
    t.match((JSON.parse(lines[i] ?? '{}') as { error?: string }).error, re, `line ${i + 1}: ${lines[i]}`);
    t.match(errs[i], re);
  });
  t.notMatch(o.stderr, /^\s+at /m, 'no stack trace');
});

t.test('--jsonl: a bad line gives an {"error": …} line, later lines still run, exit 1', async (t) => {
  const input = [JSON.stringify(S1), '{"code": "zz"}', '{"code": ', '{"code": "90", "regs": {"exx": 1}}', JSON.stringify(S3), ''].join('\n');
  const o = await ntflow(['exec', '--jsonl'], input);
  t.equal(o.code, 1, 'exit status 1 when any line was bad');
  const lines = o.stdout.split('\n').filter((l) => l !== '');
  t.equal(lines.length, 5, 'one output line per input line, so the stream stays aligned');
  const rs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  expectS1(t, rs[0] as unknown as Result);
  for (const [i, re] of [[1, /line 2.*code.*invalid hex/], [2, /line 3.*not valid JSON/], [3, /line 4.*regs\.exx/]] as const) {
    t.same(Object.keys(rs[i]!), ['error'], `line ${i + 1}: only an error field`);
    t.match(rs[i]!.error, re, `line ${i + 1}: the error names the field`);
  }
  expectS3(t, rs[4] as unknown as Result);
  const errLines = o.stderr.split('\n').filter((l) => l !== '');
  t.equal(errLines.length, 3, 'one stderr line per bad line');
  t.notMatch(o.stderr, /^\s+at /m, 'no stack trace');
});

t.test('unknown subcommand and no subcommand', async (t) => {
  const o = await ntflow(['bogus'], '');
  t.equal(o.code, 1, 'unknown subcommand: exit 1');
  t.match(o.stderr, /unknown command 'bogus'/);
  t.notMatch(o.stderr, /^\s+at /m);
  t.equal(o.stdout, '');
  const unknownOpt = await ntflow(['exec', '--bogus'], '{"code": "90"}');
  t.equal(unknownOpt.code, 1, 'unknown option: exit 1');
  t.match(unknownOpt.stderr, /--bogus/);
  const help = await ntflow(['exec', '--help'], '');
  t.equal(help.code, 0, '--help is not an error');
  t.match(help.stdout, /--jsonl/);
});
