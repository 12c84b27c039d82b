// Hooks in the system-call path, found the way the detectors researchers know find them — but
// from the trace, so each also says when it was installed and which call first ran through it:
//
//   ssdt / shadow-ssdt  an entry of KiServiceTable or W32pServiceTable that changed during the
//                       session, or that points outside its module (ntoskrnl, win32k)
//   thread-table        a thread's KTHREAD.ServiceTable pointing at a copied descriptor table: the
//                       SSDT lookups of that thread read another table (Volatility's ssdt walks
//                       every thread's ServiceTable for this reason); each entry of the copy that
//                       differs from the original is a hook
//   msr                 a WRMSR of SYSENTER_EIP (0x176) with anything but nt!KiFastCallEntry
//   idt                 an IDT gate whose offset changed (0x2E: INT 2Eh's KiSystemService)
//   inline / ntdll-stub code bytes of the system modules that changed: an executed instruction
//                       of ntoskrnl, hal, SharedUserData or ntdll, the first bytes of every Nt
//                       routine and Zw stub of ntoskrnl, or one of ntdll's Nt stubs
//
// "Before" is the machine at the session's first event, "after" at its last (time travel rebuilds
// both from checkpoints and effects); the installing write is the last write to those bytes, found
// by reading the recorded effects backwards — only for what changed, so a clean trace costs two
// state rebuilds.
import { disassemble, layout } from '../../core/index.js';
import { InstructionRuns } from '../../recorder/index.js';
import { eventEip } from '../events.js';
import { effectsBackward } from '../projections/log.js';
import { stateAt, type MachineState } from '../state.js';
import { callHolding, hex, hex8 } from './failures.js';
import type { SessionData } from './session.js';
import type { Finding, Hook, HookType } from './tables.js';

const KPCR_CURRENT_THREAD = 0x124;
const KTHREAD_SERVICE_TABLE = 0xe0;
const MSR_SYSENTER_EIP = 0x176;
const SYSTEM_MODULES = new Set(['nt', 'hal', 'ntdll', 'SharedUserData', 'kernel32', 'win32k']);

/** The little-endian dword at `at` of bytes read from a state (unknown bytes count as 0). */
const le32 = (b: (number | null)[], at: number) => (((b[at] ?? 0) | ((b[at + 1] ?? 0) << 8) | ((b[at + 2] ?? 0) << 16) | ((b[at + 3] ?? 0) << 24)) >>> 0);

function u32At(s: MachineState, address: number): number | null {
  const b = s.read(address, 4);
  if (b.some((x) => x === null)) return null;
  return le32(b, 0);
}

function bytesAt(s: MachineState, address: number, length: number): (number | null)[] {
  return s.read(address, length);
}

const hexBytes = (b: (number | null)[]) => b.slice(0, 16).map((x) => (x === null ? '??' : x.toString(16).padStart(2, '0'))).join(' ') + (b.length > 16 ? ' …' : '');

export function hookFindings(d: SessionData): { findings: Finding[]; hooks: Hook[] } {
  const hooks: Hook[] = [];
  if (d.events < 2) return { findings: [], hooks };
  const db = d.db;
  const s = d.sessionId;
  // Without checkpoints (a synthetic trace) memory cannot be rebuilt: only the events speak.
  if (!db.prepare('SELECT 1 FROM checkpoints WHERE session_id = ? LIMIT 1').get(s)) return fromEvents(d);
  const before = stateAt(db, s, 0);
  const after = stateAt(db, s, d.events - 1);
  // User memory exists only once the program's process does: its "before" is the machine after the
  // program's first instruction (SharedUserData is read through its kernel view, mapped from boot).
  const runs = new InstructionRuns(db, s);
  const code = db.prepare('SELECT id, eip, cpl FROM code WHERE session_id = ?').raw().all(s) as [number, number, number][];
  const codeEip = new Map(code.map(([id, eip]) => [id, eip]));
  const userCode = new Set(code.filter(([, , cpl]) => cpl === 3).map(([id]) => id));
  const firstUser = runs.first(-1, (id) => userCode.has(id));
  const beforeUser = firstUser === null ? null : stateAt(db, s, firstUser);
  const kernelView = (a: number) => (a >= layout.SHARED_USER_DATA && a < layout.SHARED_USER_DATA + 0x1000 ? a - layout.SHARED_USER_DATA + layout.SHARED_USER_DATA_KERNEL : a);
  /** Bytes before and after at an address, each through the view that maps it; null where unknown. */
  const beforeAfter = (a: number, length: number): [(number | null)[], (number | null)[]] => {
    const k = kernelView(a);
    if (k >= 0x80000000) return [bytesAt(before, k, length), bytesAt(after, k, length)];
    return [beforeUser ? bytesAt(beforeUser, a, length) : new Array<number | null>(length).fill(null), bytesAt(after, a, length)];
  };

  // The module owning an address: the symbol holding it (symbols run up to the next one). Not a
  // module's first-to-last range: a program and its driver may share a name (hello.exe, hello.sys).
  const moduleOf = (a: number): string | null => d.symbols.lookup(a >>> 0)?.module ?? null;
  const resolve = (module: string, name: string) => d.symbols.resolve(module, name);
  const symName = (a: number) => d.sym(a).replace(/\+0x[0-9a-f]+$/i, '');

  // ---- the last write to [lo, hi) at or before `until` (the recorded effects, newest first) ----
  const back = effectsBackward(db, s);
  const lastWrite = (lo: number, hi: number, until = d.events - 1): number | null =>
    back(until, -1, (effects) => effects.writes.some(([linear, size]) => linear < hi && linear + size > lo));
  const firstExec = (eip: number, after: number) => runs.first(after, (id) => codeEip.get(id) === eip);
  const writer = (seq: number | null): string => {
    if (seq === null) return '';
    const eip = eventEip(db, s, seq);
    return eip === undefined ? ` (seq ${seq})` : ` by ${d.sym(eip)} (seq ${seq})`;
  };

  // ---- SSDT and shadow SSDT entries -------------------------------------------------------------
  const sdt = resolve('nt', 'KeServiceDescriptorTable');
  const shadow = resolve('nt', 'KeServiceDescriptorTableShadow');
  const tables: { type: HookType; name: string; index: number; descriptor: number | undefined; home: string }[] = [
    { type: 'ssdt', name: 'KiServiceTable', index: 0, descriptor: sdt, home: 'nt' },
    { type: 'shadow-ssdt', name: 'W32pServiceTable', index: 1, descriptor: shadow === undefined ? undefined : shadow + 16, home: 'win32k' },
  ];
  const standardBases = new Set<number>();
  const firstLookup = db.prepare('SELECT min(seq) FROM ssdt_lookups WHERE session_id = ? AND table_index = ? AND service_index = ? AND target = ? AND seq > ?').pluck();
  for (const t of tables) {
    if (t.descriptor === undefined) continue;
    const base = u32At(before, t.descriptor);
    const limit = u32At(before, t.descriptor + 8);
    if (!base || !limit || limit > 4096) continue;
    standardBases.add(base);
    const old = bytesAt(before, base, limit * 4);
    const now = bytesAt(after, base, limit * 4);
    for (let i = 0; i < limit; i++) {
      const o = le32(old, i * 4);
      const n = le32(now, i * 4);
      if (o === n && moduleOf(n) === t.home) continue;
      const install = o === n ? null : lastWrite(base + i * 4, base + i * 4 + 4);
      hooks.push({
        type: t.type,
        tableName: t.name,
        index: i,
        function: symName(o),
        original: o,
        current: n,
        owner: moduleOf(n),
        installSeq: install,
        firstRunSeq: (firstLookup.get(s, t.index, i, n, install ?? -1) as number | null) ?? null,
        originalBytes: null,
        currentBytes: null,
      });
    }
  }

  // ---- per-thread service tables: lookups that read a table other than the two above ------------
  const odd = db
    .prepare('SELECT thread_id, table_index, table_base, min(seq) FROM ssdt_lookups WHERE session_id = ? AND in_range GROUP BY thread_id, table_index, table_base ORDER BY 4')
    .raw()
    .all(s) as [number, number, number, number][];
  for (const [thread, tableIndex, rawBase, seq] of odd) {
    const copyBase = rawBase >>> 0;
    if (standardBases.has(copyBase)) continue;
    const at = stateAt(db, s, seq);
    const kthread = u32At(at, layout.KPCR + KPCR_CURRENT_THREAD);
    const descriptor = kthread === null ? null : u32At(at, kthread + KTHREAD_SERVICE_TABLE);
    const original = tables[tableIndex];
    const originalBase = original?.descriptor === undefined ? undefined : u32At(at, original.descriptor);
    const limit = original?.descriptor === undefined ? 0 : (u32At(at, original.descriptor + 8) ?? 0);
    const swapped = descriptor !== null && descriptor !== sdt && descriptor !== shadow;
    const install = swapped && kthread !== null ? lastWrite(kthread + KTHREAD_SERVICE_TABLE, kthread + KTHREAD_SERVICE_TABLE + 4, seq) : lastWrite(copyBase, copyBase + 4, seq);
    const type: HookType = swapped ? 'thread-table' : tableIndex === 0 ? 'ssdt' : 'shadow-ssdt';
    const name = `${original?.name ?? 'table'} copy at ${hex8(copyBase)}${swapped ? ` (thread ${thread}'s ServiceTable → ${hex8(descriptor!)})` : ''}`;
    let found = 0;
    if (originalBase !== undefined && originalBase !== null && limit > 0 && limit <= 4096) {
      for (let i = 0; i < limit; i++) {
        const o = u32At(at, originalBase + i * 4);
        const n = u32At(at, copyBase + i * 4);
        if (o === null || n === null || o === n) continue;
        found++;
        hooks.push({
          type,
          tableName: name,
          index: i,
          function: symName(o),
          original: o,
          current: n,
          owner: moduleOf(n),
          installSeq: install,
          firstRunSeq: (firstLookup.get(s, tableIndex, i, n, -1) as number | null) ?? seq,
          originalBytes: null,
          currentBytes: null,
        });
      }
    }
    if (found === 0) {
      hooks.push({ type, tableName: name, index: null, function: 'KTHREAD.ServiceTable', original: originalBase ?? 0, current: copyBase, owner: moduleOf(copyBase), installSeq: install, firstRunSeq: seq, originalBytes: null, currentBytes: null });
    }
  }

  hooks.push(...msrHooks(d, resolve('nt', 'KiFastCallEntry') ?? layout.KI_FAST_CALL_ENTRY, moduleOf));

  // ---- IDT gates -------------------------------------------------------------------------------------
  const firstInt = db.prepare("SELECT min(seq) FROM ring_transitions WHERE session_id = ? AND vector = ? AND to_eip = ? AND seq > ?").pluck();
  const idtBefore = bytesAt(before, layout.IDT, 256 * 8);
  const idtAfter = bytesAt(after, layout.IDT, 256 * 8);
  // A gate's offset: bytes 0-1 and 6-7 of its eight.
  const gateOffset = (b: (number | null)[], v: number) => ((le32(b, v * 8) & 0xffff) | (le32(b, v * 8 + 4) & 0xffff0000)) >>> 0;
  for (let v = 0; v < 256; v++) {
    let same = true;
    for (let i = 0; i < 8; i++) if (idtBefore[v * 8 + i] !== idtAfter[v * 8 + i]) same = false;
    if (same) continue;
    const o = gateOffset(idtBefore, v);
    const n = gateOffset(idtAfter, v);
    const install = lastWrite(layout.IDT + v * 8, layout.IDT + v * 8 + 8);
    hooks.push({
      type: 'idt',
      tableName: 'IDT',
      index: v,
      function: symName(o),
      original: o,
      current: n,
      owner: moduleOf(n),
      installSeq: install,
      firstRunSeq: (firstInt.get(s, v, n, install ?? -1) as number | null) ?? null,
      originalBytes: null,
      currentBytes: null,
    });
  }

  // ---- code of the system modules --------------------------------------------------------------------
  const spans: [number, number][] = [];
  const executed: [number, number][] = [];
  for (const [eip, len] of db.prepare('SELECT eip, length(bytes) FROM code WHERE session_id = ?').raw().all(s) as [number, number][]) {
    const m = moduleOf(eip >>> 0);
    if (m && SYSTEM_MODULES.has(m)) spans.push([eip >>> 0, (eip >>> 0) + len]);
    if (m && SYSTEM_MODULES.has(m)) executed.push([eip >>> 0, len]);
  }
  /** The start of the instruction holding `a`, in the code as it was before (an executed one, else decoded from its symbol). */
  const instructionStart = (a: number): number => {
    const hit = executed.find(([e, len]) => e <= a && a < e + len);
    if (hit) return hit[0];
    const info = d.symbols.lookup(a);
    if (!info) return a;
    const from = a - info.offset;
    const code = beforeAfter(from, info.offset + 16)[0].map((x) => x ?? 0);
    for (const l of disassemble(Uint8Array.from(code), from)) if (l.address <= a && a < l.address + l.length) return l.address;
    return a;
  };
  for (const g of d.symbols.all()) if (g.module === 'ntdll' && /^(Nt|Zw)/.test(g.name) && g.size > 0 && g.size <= 0x40) spans.push([g.address, g.address + g.size]);
  // The prologue of every Nt routine and Zw stub of ntoskrnl, run or not, where inline hooks go.
  for (const g of d.symbols.all()) if (g.module === 'nt' && /^(Nt|Zw)/.test(g.name) && !/Table$/.test(g.name) && g.size > 0) spans.push([g.address, g.address + Math.min(g.size, 16)]);
  spans.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const sp of spans) {
    const last = merged[merged.length - 1];
    if (last && sp[0] <= last[1]) last[1] = Math.max(last[1], sp[1]);
    else merged.push([sp[0], sp[1]]);
  }
  const patches: [number, number][] = [];
  for (const [lo, hi] of merged) {
    const [o, n] = beforeAfter(lo, hi - lo);
    for (let i = 0; i < o.length; i++) {
      if (o[i] === null || n[i] === null || o[i] === n[i]) continue;
      const last = patches[patches.length - 1];
      if (last && lo + i - last[1] <= 4) last[1] = lo + i + 1;
      else patches.push([lo + i, lo + i + 1]);
    }
  }
  for (const [lo, hi] of patches) {
    const module = moduleOf(lo) ?? '?';
    // Decode from the start of the instruction the patch begins in.
    const start = instructionStart(lo);
    const [oldCode, newCode] = beforeAfter(start, hi - start + 8);
    const target = patchTarget(newCode, start);
    const install = lastWrite(lo, hi);
    const stub = module === 'ntdll';
    // An ntdll stub's patch is its `mov edx,…` (or the call): report the stub's function.
    const fn = stub ? symName(lo) : d.sym(lo);
    const runFrom = install ?? -1;
    const firstRun = firstExec(target !== null && stub ? target : lo, runFrom) ?? firstExec(lo, runFrom);
    const stubStart = stub ? d.symbols.lookup(lo) : undefined;
    const stubBytes = stubStart ? bytesAt(after, lo - stubStart.offset, 5) : [];
    hooks.push({
      type: stub ? 'ntdll-stub' : 'inline',
      tableName: module,
      // An ntdll stub's service number (its mov eax,N); an inline patch has no index.
      index: stubBytes[0] === 0xb8 ? le32(stubBytes, 1) : null,
      function: fn,
      original: stub ? (patchTarget(oldCode, start) ?? lo) : lo,
      current: target ?? lo,
      owner: target !== null ? moduleOf(target) : null,
      installSeq: install,
      firstRunSeq: firstRun,
      patchedAt: lo,
      originalBytes: hexBytes(beforeAfter(lo, hi - lo)[0]),
      currentBytes: hexBytes(beforeAfter(lo, hi - lo)[1]),
    });
  }

  // ---- ntdll's stubs as apihooks reads them: mov eax,N; mov edx,X; call edx — X must be the
  // system-call stub. Catches a stub patched before the program's first instruction too.
  const seen = new Set(hooks.filter((h) => h.type === 'ntdll-stub').map((h) => h.function));
  const stubAt = new Map<number, string>();
  for (const g of d.symbols.all()) if (g.module === 'ntdll' && /^Nt/.test(g.name) && !stubAt.has(g.address)) stubAt.set(g.address, g.name);
  for (const [address, name] of stubAt) {
    const b = bytesAt(after, address, 12);
    if (b[0] !== 0xb8 || b[5] !== 0xba || b.slice(0, 10).some((x) => x === null)) continue;
    const x = le32(b, 6);
    if (x === layout.SYSTEM_CALL_STUB || seen.has(`ntdll!${name}`)) continue;
    const install = lastWrite(address + 6, address + 10);
    hooks.push({
      type: 'ntdll-stub',
      tableName: 'ntdll',
      index: le32(b, 1),
      function: `ntdll!${name}`,
      original: layout.SYSTEM_CALL_STUB,
      current: x,
      owner: moduleOf(x),
      installSeq: install,
      firstRunSeq: firstExec(x, install ?? -1),
      originalBytes: null,
      currentBytes: hexBytes(b.slice(5, 10)),
    });
  }

  return { findings: hooks.map((h) => describeHook(d, h, writer)), hooks };
}


/** A hook's finding: what changed, who installed it when, and the first call that ran through it. */
function describeHook(d: SessionData, h: Hook, writer: (seq: number | null) => string): Finding {
  const db = d.db;
  const s = d.sessionId;
  const threadAt = db.prepare('SELECT to_thread FROM thread_switches WHERE session_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1').pluck();
  const firstThread = (db.prepare('SELECT first_thread FROM sessions WHERE id = ?').pluck().get(s) as number) ?? 0;
  const lo = (x: Hook) => x.patchedAt ?? x.original;

  const runThread = h.firstRunSeq === null ? null : ((threadAt.get(s, h.firstRunSeq) as number | undefined) ?? firstThread);
  // The call it ran in — or, for a user-mode detour that runs before the system call, the next call of that thread.
  const call =
    h.firstRunSeq === null || runThread === null
      ? undefined
      : (callHolding(d, runThread, h.firstRunSeq) ?? d.calls.find((c) => c.thread === runThread && c.enterSeq > h.firstRunSeq!));
  const ran = h.firstRunSeq === null ? 'It never ran in the session.' : `The first ${call ? `call through it: #${call.id} ${call.name ?? 'service 0x' + hex(call.serviceNumber ?? 0)}, at seq ${h.firstRunSeq}` : `run: seq ${h.firstRunSeq}`}.`;
  const installed = h.installSeq === null ? 'It was in place when the session began.' : `Installed${writer(h.installSeq)}.`;
  const owner = h.owner ? `${h.owner}${SYSTEM_MODULES.has(h.owner) ? '' : ' (outside ntoskrnl and win32k)'}` : 'no module';
  const cur = `${hex8(h.current)} ${d.sym(h.current) !== hex8(h.current) ? `(${d.sym(h.current)})` : ''}`.trim();
  let title: string;
  let body: string;
  switch (h.type) {
    case 'ssdt':
    case 'shadow-ssdt':
    case 'thread-table':
      title = h.index === null ? `${h.type} hook: ${h.tableName}` : `${h.type === 'thread-table' ? 'thread service table' : h.type === 'ssdt' ? 'SSDT' : 'shadow SSDT'} hook: ${h.tableName.split(' ')[0]}[0x${hex(h.index)}] ${h.function} → ${d.sym(h.current)}`;
      body = h.index === null ? `${h.tableName}: the thread's lookups read a copied table.` : `Entry 0x${hex(h.index)} of ${h.tableName} should hold ${h.function} (${hex8(h.original)}) but holds ${cur}, owned by ${owner}.`;
      break;
    case 'msr':
      title = `SYSENTER hook: MSR 0x176 → ${d.sym(h.current)}`;
      body = `WRMSR set IA32_SYSENTER_EIP (0x176) to ${cur}, owned by ${owner}, instead of nt!KiFastCallEntry (${hex8(h.original)}): every SYSENTER enters there first.`;
      break;
    case 'idt':
      title = `IDT hook: gate 0x${hex(h.index ?? 0)} ${h.function} → ${d.sym(h.current)}`;
      body = `IDT gate 0x${hex(h.index ?? 0)} pointed at ${h.function} (${hex8(h.original)}) and now at ${cur}, owned by ${owner}${h.index === 0x2e ? ': every INT 2Eh system call enters there first' : ''}.`;
      break;
    default:
      title = `${h.type === 'ntdll-stub' ? 'ntdll stub hook' : 'inline hook'}: ${h.function} → ${d.sym(h.current)}`;
      body =
        h.originalBytes === null
          ? `${h.function}'s stub loads EDX with ${cur}, owned by ${owner}, instead of SharedUserData!SystemCallStub (${hex8(h.original)}): its call edx goes there.`
          : `The code at ${d.sym(lo(h))} changed from ${h.originalBytes} to ${h.currentBytes}${h.current !== lo(h) ? `, which goes to ${cur}, owned by ${owner}` : ''}${h.type === 'ntdll-stub' ? ': the stub\'s call edx goes there instead of SharedUserData!SystemCallStub' : ''}.`;
  }
  return {
    kind: 'hook',
    severity: 'warning',
    cause: h.type,
    syscallId: call?.id ?? null,
    seq: h.installSeq ?? h.firstRunSeq ?? 0,
    title,
    detail: `${body} ${installed} ${ran}`,
    evidence: [...new Set([h.installSeq, h.firstRunSeq, call ? d.entrySeq(call) : null].filter((x): x is number => x !== null && x !== undefined))],
  };
}

/** WRMSR of SYSENTER_EIP with anything but nt!KiFastCallEntry: from the msr_writes events alone. */
function msrHooks(d: SessionData, kiFastCallEntry: number, moduleOf: (a: number) => string | null): Hook[] {
  const db = d.db;
  const s = d.sessionId;
  const hooks: Hook[] = [];
  const firstSysenter = db.prepare("SELECT min(seq) FROM msr_reads WHERE session_id = ? AND msr = ? AND source = 'sysenter' AND (value & 4294967295) = ? AND seq > ?").pluck();
  for (const [seq, value] of db.prepare('SELECT seq, value FROM msr_writes WHERE session_id = ? AND msr = ? ORDER BY seq').raw().safeIntegers(false).all(s, MSR_SYSENTER_EIP) as [number, number][]) {
    const v = Number(BigInt.asUintN(32, BigInt(value)));
    if (v === kiFastCallEntry) continue;
    hooks.push({
      type: 'msr',
      tableName: 'MSR',
      index: MSR_SYSENTER_EIP,
      function: 'nt!KiFastCallEntry',
      original: kiFastCallEntry,
      current: v,
      owner: moduleOf(v),
      installSeq: seq,
      firstRunSeq: (firstSysenter.get(s, MSR_SYSENTER_EIP, v, seq) as number | null) ?? null,
      originalBytes: null,
      currentBytes: null,
    });
  }

  return hooks;
}

/** The findings of a session whose memory cannot be rebuilt. */
function fromEvents(d: SessionData): { findings: Finding[]; hooks: Hook[] } {
  const hooks = msrHooks(d, d.symbols.resolve('nt', 'KiFastCallEntry') ?? layout.KI_FAST_CALL_ENTRY, (a) => d.symbols.lookup(a)?.module ?? null);
  return { findings: hooks.map((h) => describeHook(d, h, (seq) => (seq === null ? '' : ` (seq ${seq})`))), hooks };
}

/**
 * Where patched code sends execution, from the first instruction's bytes: a jmp/call rel32 or
 * rel8's target, `mov r32,imm32` (an ntdll stub's `mov edx,…`, then `call edx`), `push imm32; ret`.
 */
function patchTarget(b: (number | null)[], at: number): number | null {
  const u = (i: number) => le32(b, i);
  if (b.length < 5 || b.slice(0, 5).some((x) => x === null)) return null;
  const op = b[0]!;
  if (op === 0xe9 || op === 0xe8) return (at + 5 + (u(1) | 0)) >>> 0;
  if (op === 0xeb) return (at + 2 + ((b[1]! << 24) >> 24)) >>> 0;
  if (op === 0x68 && b[5] === 0xc3) return u(1);
  if (op >= 0xb8 && op <= 0xbf) {
    // An ntdll stub: mov eax,N; mov edx,X — the second mov is the one that matters.
    if (op === 0xb8 && b[5] === 0xba && b.length >= 10 && b.slice(5, 10).every((x) => x !== null)) return u(6);
    return u(1);
  }
  return null;
}
