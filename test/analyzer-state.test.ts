// Time travel: the state rebuilt from a trace equals the machine's own state at that event, on
// a sample of events of real scenarios; the values the seed path makes known (EAX = 0B7h after
// ntdll's mov, ESP = MSR 0x175 and CS = 8 after SYSENTER); the CLI's forms and errors.
import t from 'tap';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Guest, record, scenarioOptions } from '../index.js';
import { stateAt } from '../analyzer/index.js';
import { repoPath } from './util/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-state-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const trace = join(dir, 'trace.db');

const cli = (...args: string[]) => spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, repoPath('bin', 'ntflow'), ...args], { encoding: 'utf8' });

t.before(async () => {
  for (const s of ['user-nt-readfile', 'user-apc', 'osr-log-kernel-handle']) await record({ scenario: s }, { output: trace });
});

t.test('the rebuilt state equals the live machine at sampled instruction events', async (t) => {
  const db = new Database(trace, { readonly: true });
  t.teardown(() => db.close());
  const sessions = db.prepare('SELECT id, scenario FROM sessions ORDER BY id').all() as { id: number; scenario: string }[];
  for (const s of sessions) {
    const g = Guest.boot(scenarioOptions(s.scenario));
    const live: { seq: number; regs: number[]; eip: number; eflags: number; cs: number }[] = [];
    let n = 0;
    g.events$.subscribe((e) => {
      if (e.type !== 'instruction' || n++ % 23 !== 0) return;
      const c = g.machine.cpu;
      live.push({ seq: e.seq, regs: Array.from(c.regs, (v) => v >>> 0), eip: c.eip >>> 0, eflags: c.getEflags() >>> 0, cs: c.segSel[1] });
    });
    g.run();
    let mismatches = 0;
    for (const l of live) {
      const st = stateAt(db, s.id, l.seq);
      const r = st.regs;
      const got = [r.eax, r.ecx, r.edx, r.ebx, r.esp, r.ebp, r.esi, r.edi];
      const same = got.every((v, i) => v === l.regs[i]) && r.eip === l.eip && r.eflags === l.eflags && st.segments.cs === l.cs;
      if (!same) {
        mismatches++;
        if (mismatches <= 3) t.fail(`${s.scenario} seq ${l.seq}: rebuilt ${JSON.stringify(r)} cs ${st.segments.cs}, live ${JSON.stringify(l)}`);
      }
    }
    t.equal(mismatches, 0, `${s.scenario}: ${live.length} sampled events rebuilt exactly`);
  }
});

t.test('values the seed path makes known', async (t) => {
  const db = new Database(trace, { readonly: true });
  t.teardown(() => db.close());
  const seqOf = (sql: string) => db.prepare(sql).pluck().get() as number;
  const movEax = seqOf("SELECT seq FROM instructions WHERE session_id = 1 AND asm = 'mov eax,0B7h' ORDER BY seq LIMIT 1");
  t.equal(stateAt(db, 1, movEax).regs.eax, 0xb7, "EAX = 0B7h right after ntdll's mov eax,0B7h");
  const sysenter = seqOf("SELECT seq FROM instructions WHERE session_id = 1 AND asm = 'sysenter' ORDER BY seq LIMIT 1");
  const after = stateAt(db, 1, sysenter);
  const msr175 = Number(db.prepare("SELECT value FROM msr_reads WHERE session_id = 1 AND msr = 0x175 AND source = 'sysenter' LIMIT 1").pluck().get());
  t.equal(after.regs.esp, msr175, 'ESP = MSR 0x175 right after SYSENTER');
  t.equal(after.segments.cs, 8, 'CS = 8 right after SYSENTER');
  t.equal(after.regs.eip, 0x8053a270, 'EIP = nt!KiFastCallEntry');
  t.equal(after.cpl, 0, 'CPL 0');
  t.equal(after.symbolAt(after.regs.eip), 'nt!KiFastCallEntry');
  t.equal(after.previousMode, 'UserMode', 'the thread still has PreviousMode UserMode (KiFastCallEntry sets it next)');
  // SharedUserData as the program sees it at that point
  t.same(after.read(0x7ffe0300, 5), [0x8b, 0xd4, 0x0f, 0x34, 0xc3], 'SystemCallStub bytes through the rebuilt page tables');
});

t.test('ntflow state: r layout, --json, --mem, --u', async (t) => {
  const r = cli('state', trace, '--session', '1', '--at', '100', '--mem', '0x7ffe0300', '5', '--u');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^session 1, after event 100 \(\d+ instructions retired\)/);
  t.match(r.stdout, /eax=[0-9a-f]{8} ebx=[0-9a-f]{8} ecx=[0-9a-f]{8} edx=[0-9a-f]{8} esi=[0-9a-f]{8} edi=[0-9a-f]{8}/);
  t.match(r.stdout, /cs=[0-9a-f]{4} {2}ss=[0-9a-f]{4}/);
  t.match(r.stdout, /7ffe0300 {2}8b d4 0f 34 c3/);
  const j = cli('state', trace, '--session', 'user-nt-readfile', '--at', '0x64', '--json');
  t.equal(j.status, 0, j.stderr);
  const parsed = JSON.parse(j.stdout);
  t.equal(parsed.seq, 100, 'hex --at');
  t.type(parsed.regs.eax, 'number');
  t.type(parsed.regs.eip, 'number');
  t.ok(['UserMode', 'KernelMode'].includes(parsed.previousMode));
});

t.test('ntflow state: bad input is one line, exit 1', async (t) => {
  const notTrace = join(dir, 'not-a-trace.txt');
  writeFileSync(notTrace, 'hello');
  const cases: [string[], RegExp][] = [
    [['state', trace, '--at', '99999999'], /--at 99999999 is outside session 3/],
    [['state', trace, '--at', 'abc'], /--at: 'abc' is not a number/],
    [['state', trace, '--at', '5', '--session', 'nope'], /no session 'nope'/],
    [['state', notTrace, '--at', '5'], /not an SQLite file/],
    [['state', join(dir, 'missing.db'), '--at', '5'], /does not exist/],
    [['state', trace, '--at', '5', '--mem', '0x1000'], /--mem takes an address and a length/],
  ];
  for (const [args, message] of cases) {
    const r = cli(...args);
    t.equal(r.status, 1, `${args.join(' ')}: exit 1`);
    t.match(r.stderr, message, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});
