// `ntflow state`'s WinDbg habits on real recorded sessions: addresses as symbols (module!Name+0xN),
// 0n decimal and hex, read the same bytes as the symbol's address from the symbols table; an
// unknown symbol is one line; --k lists the frames the calls table says are open; --handles the
// entries handle_entries says are open; --u COUNT disassembles COUNT instructions.
import t from 'tap';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { record } from '../index.js';
import { repoPath } from './util/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-state-windbg-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const trace = join(dir, 'trace.db');

const cli = (...args: string[]) => spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, repoPath('bin', 'ntflow'), ...args], { encoding: 'utf8' });
const json = (...args: string[]) => {
  const r = cli('state', trace, '--json', ...args);
  if (r.status !== 0) throw new Error(`state ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
};
let db: Database.Database;
let user: number; // osr-log-user-handle
let leaky: number; // kernel-nt-close

t.before(() => {
  // The CLI's record builds the projections (calls) too.
  for (const s of ['osr-log-user-handle', 'kernel-nt-close']) {
    const r = cli('record', s, '-o', trace);
    if (r.status !== 0) throw new Error(`record ${s}: ${r.stderr}`);
  }
  db = new Database(trace, { readonly: true });
  const id = db.prepare('SELECT id FROM sessions WHERE name = ?').pluck();
  user = id.get('osr-log-user-handle') as number;
  leaky = id.get('kernel-nt-close') as number;
});
t.teardown(() => db?.close());

const symbol = (session: number, module: string, name: string) =>
  db.prepare('SELECT address FROM symbols WHERE session_id = ? AND module = ? AND name = ?').pluck().get(session, module, name) as number;
const lastSeq = (session: number) => (db.prepare('SELECT events FROM sessions WHERE id = ?').pluck().get(session) as number) - 1;
const memOf = (session: number, at: number, addr: string, len: number) => {
  const j = json('--session', String(session), '--at', String(at), '--mem', addr, String(len));
  return j.mem as { address: number; data: (number | null)[] };
};

t.test('--mem by symbol reads what --mem by the address from the symbols table reads', async (t) => {
  const at = 700;
  const sdt = symbol(user, 'nt', 'KeServiceDescriptorTable');
  t.ok(sdt > 0x80000000, 'nt!KeServiceDescriptorTable is in the symbols table, in kernel space');
  const bySymbol = memOf(user, at, 'nt!KeServiceDescriptorTable', 16);
  const byHex = memOf(user, at, `0x${sdt.toString(16)}`, 16);
  t.equal(bySymbol.address, sdt, 'the symbol resolves to its address');
  t.same(bySymbol.data, byHex.data, 'the same 16 bytes');
  t.ok(bySymbol.data.every((b) => b !== null), 'all mapped');
  // KiServiceTable's address is the table's first dword.
  const d = bySymbol.data as number[];
  t.equal((d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)) >>> 0, symbol(user, 'nt', 'KiServiceTable'), 'its first dword is nt!KiServiceTable');
  t.same(memOf(user, at, sdt.toString(16), 16), byHex, 'plain hex is hex, as in WinDbg');
  t.same(memOf(user, at, `0n${sdt}`, 16), byHex, '0n is decimal, as in WinDbg');
  t.same(memOf(user, at, 'KeServiceDescriptorTable', 16), byHex, 'a bare name found in one module');
  t.same(memOf(user, at, 'NT!keservicedescriptortable', 16), byHex, 'case-insensitive, as WinDbg resolves');
});

t.test('module!Name+0xOFFSET (and -), also in a module whose name holds dashes', async (t) => {
  const at = 700;
  const ntReadFile = symbol(user, 'ntdll', 'NtReadFile');
  const plus = memOf(user, at, 'ntdll!NtReadFile+0x5', 8);
  t.equal(plus.address, ntReadFile + 5);
  t.same(plus.data, memOf(user, at, `0x${(ntReadFile + 5).toString(16)}`, 8).data);
  t.equal(memOf(user, at, 'ntdll!NtReadFile+5', 8).address, ntReadFile + 5, 'an offset is hex by default');
  t.equal(memOf(user, at, 'ntdll!NtReadFile+0n10', 8).address, ntReadFile + 10);
  const kss = symbol(user, 'nt', 'KiSystemService');
  t.equal(memOf(user, at, 'nt!KiSystemService-1', 4).address, kss - 1);
  const writeBoth = symbol(user, 'osr-log-user-handle', 'WriteBoth');
  t.equal(memOf(user, at, 'osr-log-user-handle!WriteBoth+0x10', 4).address, writeBoth + 0x10, "the driver's own symbol, dashes and all");
});

t.test('an unknown symbol is one line naming the nearest, exit 1', async (t) => {
  const r = cli('state', trace, '--session', String(user), '--at', '10', '--mem', 'nt!KeServiceDescriptorTabel', '16');
  t.equal(r.status, 1);
  t.equal(r.stdout, '');
  t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.match(r.stderr, /no symbol 'nt!KeServiceDescriptorTabel'.*did you mean nt!KeServiceDescriptorTable\?/);
  t.notMatch(r.stderr, /\bat .*\.js:\d+/, 'no stack trace');
  for (const bad of ['ntdl!NtReadFile', 'NoSuchThing+4', '0x12+', 'nt!KiSystemService+zz']) {
    const b = cli('state', trace, '--session', String(user), '--at', '10', '--mem', bad, '4');
    t.equal(b.status, 1, bad);
    t.equal(b.stderr.trim().split('\n').length, 1, `${bad}: ${b.stderr}`);
  }
});

t.test('--k at the NtWriteFile service-enter: the calls table\'s open frames, nt!NtWriteFile innermost, the program\'s start outermost', async (t) => {
  const enter = db
    .prepare("SELECT seq, thread_id FROM service_enters WHERE session_id = ? AND service = 'NtWriteFile' ORDER BY seq LIMIT 1")
    .get(user) as { seq: number; thread_id: number };
  const expected = db
    .prepare('SELECT id, symbol, enter_seq FROM calls WHERE session_id = ? AND thread_id = ? AND enter_seq <= ? AND coalesce(exit_seq, 1e18) > ? ORDER BY depth DESC')
    .all(user, enter.thread_id, enter.seq, enter.seq) as { id: number; symbol: string; enter_seq: number }[];
  const j = json('--session', String(user), '--at', String(enter.seq), '--k');
  t.equal((j.thread as { id: number }).id, enter.thread_id, 'the thread that entered the service');
  const stack = j.stack as { frame: number; id: number; symbol: string; enterSeq: number; kind: string }[];
  t.same(
    stack.map((f) => [f.id, f.symbol, f.enterSeq]),
    expected.map((e) => [e.id, e.symbol, e.enter_seq]),
    'exactly the frames open in the calls table, innermost first',
  );
  t.same(stack.map((f) => f.frame), stack.map((_, i) => i), 'numbered from 0');
  t.equal(stack[0].symbol, 'nt!NtWriteFile');
  t.equal(stack[stack.length - 1].symbol, 'osr-log-user!start');
  t.equal(stack[stack.length - 1].kind, 'callback', "the program's start is where its thread began");
  t.ok(stack.some((f) => f.kind === 'sysenter' && f.symbol === 'nt!KiFastCallEntry'), 'the ring crossing is a frame');

  const text = cli('state', trace, '--session', String(user), '--at', String(enter.seq), '--k');
  t.equal(text.status, 0);
  const lines = text.stdout.split('\n');
  const head = lines.findIndex((l) => /^ # Callee/.test(l));
  t.ok(head > 0, 'a k header');
  t.match(lines[head + 1], /^00 nt!NtWriteFile\s+call\s+\d+\s+[0-9a-f]{8} osr-log-user-handle!WriteBoth\+0x/);
  t.match(lines[head + stack.length], new RegExp(`^${(stack.length - 1).toString(16).padStart(2, '0')} osr-log-user!start\\s+callback\\s+${stack[stack.length - 1].enterSeq}$`));
});

t.test('--handles at the end: exactly the entries handle_entries leaves open (the leaked kernel handle too)', async (t) => {
  for (const session of [leaky, user]) {
    const end = lastSeq(session);
    const expected = db
      .prepare(
        `SELECT handle, handle_table, process, object_type, granted_access FROM handle_entries c WHERE session_id = ? AND op = 'create'
         AND NOT EXISTS (SELECT 1 FROM handle_entries x WHERE x.session_id = c.session_id AND x.op = 'close' AND x.seq > c.seq
           AND x.handle = c.handle AND x.handle_table = c.handle_table AND x.process = c.process)`,
      )
      .all(session) as { handle: number; handle_table: string; process: string; object_type: string; granted_access: number }[];
    const handles = json('--session', String(session), '--at', String(end), '--handles').handles as { handle: number; table: string; process: string; objectType: string; grantedAccess: number }[];
    const key = (h: { handle: number; table: string; process: string }) => `${h.table}/${h.process}/${h.handle}`;
    t.same(handles.map(key).sort(), expected.map((e) => key({ handle: e.handle, table: e.handle_table, process: e.process })).sort(), `session ${session}`);
    t.same(handles.map((h) => h.grantedAccess).sort(), expected.map((e) => e.granted_access).sort());
  }
  const leaked = json('--session', String(leaky), '--at', String(lastSeq(leaky)), '--handles').handles as { handle: number; table: string; process: string; objectName: string }[];
  t.same(
    leaked.map((h) => [h.table, h.process, h.handle >>> 31, h.objectName]),
    [['kernel', 'System', 1, '\\readme.txt']],
    "kernel-nt-close's leaked kernel handle, and nothing else",
  );
  const text = cli('state', trace, '--session', String(leaky), '--at', String(lastSeq(leaky)), '--handles');
  t.match(text.stdout, /^80000004\s+kernel\s+System\s+[0-9a-f]{8}\s+File\s+[0-9a-f]{8}\s+\d+\s+\\readme\.txt$/m, '!handle-like line, handle in hex');
  // Before the process's handle was closed it is listed; right after its close it is not.
  const close = db.prepare("SELECT seq, handle FROM handle_entries WHERE session_id = ? AND op = 'close' AND handle_table = 'process' ORDER BY seq LIMIT 1").get(leaky) as { seq: number; handle: number };
  const before = json('--session', String(leaky), '--at', String(close.seq - 1), '--handles').handles as { handle: number; table: string }[];
  const after = json('--session', String(leaky), '--at', String(close.seq), '--handles').handles as { handle: number; table: string }[];
  t.ok(before.some((h) => h.table === 'process' && h.handle === close.handle), 'open before its close');
  t.notOk(after.some((h) => h.table === 'process' && h.handle === close.handle), 'gone at its close');
});

t.test('--u COUNT disassembles COUNT instructions from EIP', async (t) => {
  const insn = /^[0-9a-f]{8} [0-9a-f]+\s+\S/;
  const five = cli('state', trace, '--session', String(user), '--at', '100', '--u', '5');
  t.equal(five.status, 0, five.stderr);
  t.equal(five.stdout.split('\n').filter((l) => insn.test(l)).length, 5);
  const byDefault = cli('state', trace, '--session', String(user), '--at', '100', '--u');
  t.equal(byDefault.stdout.split('\n').filter((l) => insn.test(l)).length, 8, 'the default is 8');
  const j = json('--session', String(user), '--at', '100', '--u', '5');
  const dis = j.disassembly as { address: number }[];
  t.equal(dis.length, 5);
  t.equal(dis[0].address, (j.regs as { eip: number }).eip, 'from EIP');
  const bad = cli('state', trace, '--session', String(user), '--at', '100', '--u', '0');
  t.equal(bad.status, 1);
  t.equal(bad.stderr.trim().split('\n').length, 1);
});

t.test('--k on a trace recorded without projections builds the calls table first, as query does', async (t) => {
  const bare = join(dir, 'bare.db');
  await record({ scenario: 'kernel-nt-close' }, { output: bare });
  const before = new Database(bare, { readonly: true });
  const hadCalls = before.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'calls'").pluck().get();
  before.close();
  t.equal(hadCalls, 0, 'the library recorder leaves the projections to the analyzer');
  const read = db.prepare("SELECT seq FROM service_enters WHERE session_id = ? AND service = 'NtReadFile'").pluck().get(leaky) as number;
  const r = cli('state', bare, '--at', String(read), '--k', '--json');
  t.equal(r.status, 0, r.stderr);
  const stack = (JSON.parse(r.stdout) as { stack: { symbol: string }[] }).stack;
  t.equal(stack[0].symbol, 'nt!NtReadFile');
  t.equal(stack[stack.length - 1].symbol, 'device-read!start');
});
