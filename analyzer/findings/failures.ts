// failure-cause: for every call whose NTSTATUS is not NT_SUCCESS, the event that decided it and
// where its PreviousMode came from — from rules over the recorded events, never per scenario.
//
// The decisive event is the first of the call's own (not its nested calls') failed probe, failed
// handle lookup or fault its handler turned into a status; else the limit check that rejected the
// number; else a nested call or the driver's IRP completion that carried the status up; else the
// routine decided by itself (its service-exit). PreviousMode comes from the entry: SYSENTER and
// INT 2Eh set UserMode from the caller's CS, a kernel Zw stub's `push 8` sets KernelMode, and a
// direct call of nt!NtXxx sets nothing — the mode stays what the thread's last trap frame left,
// the enclosing call's entry (or, on a System thread outside any call, KernelMode from its start).
import { statusName } from '../../core/index.js';
import { stateAt } from '../state.js';
import type { Call, EntryRow, LookupRow, ProbeRow, SessionData } from './session.js';
import type { FailureCause, Finding } from './tables.js';

export const MM_USER_PROBE_ADDRESS = 0x7fff0000;
const KERNEL_HANDLE = 0x80000000;
const S = {
  ACCESS_DENIED: 0xc0000022,
  OBJECT_TYPE_MISMATCH: 0xc0000024,
  INVALID_HANDLE: 0xc0000008,
  DATATYPE_MISALIGNMENT: 0x80000002,
};

export const hex8 = (n: number) => (n >>> 0).toString(16).toUpperCase().padStart(8, '0');
export const hex = (n: number) => (n >>> 0).toString(16).toUpperCase();
const failed = (status: number | null) => status !== null && (status & 0x80000000) !== 0;

/** The name a call goes by at its caller: ZwWriteFile for a Zw stub's call, else the Nt name. */
function callerName(c: Call): string {
  if (c.name === null) return `service 0x${hex(c.serviceNumber ?? 0)}`;
  return c.entry === 'zw-kernel' && c.name.startsWith('Nt') ? `Zw${c.name.slice(2)}` : c.name;
}

export interface ModeOrigin {
  mode: string;
  /** The event that set it (the entry of this call or of the enclosing one), null when none. */
  seq: number | null;
  /** A clause: "so PreviousMode stayed UserMode from the program's NtReadFile (sysenter, seq 117)". */
  text: string;
}

/** Where the call's PreviousMode came from. */
export function modeOrigin(d: SessionData, c: Call): ModeOrigin {
  const mode = c.previousMode ?? 'unknown';
  const at = d.entrySeq(c);
  switch (c.entry) {
    case 'sysenter':
      return { mode, seq: at, text: `SYSENTER (seq ${at}) from ring 3 made KiFastCallEntry set PreviousMode = ${mode}` };
    case 'int2e':
      return { mode, seq: at, text: `INT 2Eh (seq ${at}) from ring 3 made KiSystemService set PreviousMode = ${mode} from the caller's CS` };
    case 'zw-kernel':
      return { mode, seq: c.enterSeq, text: `the Zw stub's push 8 (a kernel CS) before call KiSystemService (seq ${c.enterSeq}) set PreviousMode = ${mode}` };
  }
  // A direct call: the mode of the enclosing call's entry on this thread.
  for (let p = c.parentId === null ? undefined : d.byId.get(c.parentId); p; p = p.parentId === null ? undefined : d.byId.get(p.parentId)) {
    if (p.entry === 'nt-direct') continue;
    const whose = p.callerCpl === 3 ? `the program's ${callerName(p)}` : `${callerName(p)} of the kernel-mode caller`;
    const pAt = d.entrySeq(p);
    return { mode, seq: pAt, text: `PreviousMode stayed ${mode} from ${whose} (${p.entry}, seq ${pAt})` };
  }
  if (c.process === 'System') return { mode, seq: null, text: `PreviousMode stayed ${mode}: a System thread runs in KernelMode from its creation, and no system call on it set another mode` };
  return { mode, seq: null, text: `PreviousMode stayed ${mode}, as the thread's last system call left it` };
}

/** "the IoStatusBlock" when an argument of the call holds the address, else "the buffer". */
function argNamed(c: Call, address: number): string | null {
  const a = c.args.find((x) => x && x[1] === address >>> 0);
  return a ? a[0] : null;
}

interface Decision {
  cause: FailureCause;
  seq: number;
  /** The clause after the semicolon: what failed and why. */
  text: string;
  /** Short form for the title. */
  short: string;
  evidence: number[];
}

function probeDecision(c: Call, p: ProbeRow): Decision {
  const fn = p.kind === 'read' ? 'ProbeForRead' : 'ProbeForWrite';
  const name = argNamed(c, p.address);
  const what = `${fn} of ${name ? `the ${name}` : 'the buffer'} at ${hex8(p.address)} (${p.length} byte${p.length === 1 ? '' : 's'}${p.alignment > 1 ? `, alignment ${p.alignment}` : ''})`;
  const last = p.address + Math.max(p.length, 1) - 1;
  let cause: FailureCause;
  let why: string;
  if (p.status === S.DATATYPE_MISALIGNMENT || (p.alignment > 1 && p.address % p.alignment !== 0)) {
    cause = 'probe-misaligned';
    why = `the address is not a multiple of ${p.alignment}`;
  } else if (last > 0xffffffff || last >= MM_USER_PROBE_ADDRESS) {
    cause = 'probe-kernel-address';
    why = p.address >= MM_USER_PROBE_ADDRESS ? `a kernel address seen from UserMode (at or above MmUserProbeAddress ${hex8(MM_USER_PROBE_ADDRESS)})` : `it runs past MmUserProbeAddress (${hex8(MM_USER_PROBE_ADDRESS)})`;
  } else if (p.fault === 'read-only') {
    cause = 'probe-read-only';
    why = `the page at ${hex8(p.faultAddress ?? p.address)} is read-only, so the probe's write faulted`;
  } else {
    cause = 'probe-unmapped';
    why = `no page is mapped at ${hex8(p.faultAddress ?? p.address)}, so touching it faulted`;
  }
  return { cause, seq: p.seq, text: `${what} failed with ${statusName(p.status)}: ${why}`, short: `${fn}(${name ?? 'buffer'} ${hex8(p.address)}): ${cause.replace('probe-', '').replace(/-/g, ' ')}`, evidence: [p.seq] };
}

const sameIndex = (a: number, b: number) => ((a & ~(KERNEL_HANDLE | 3)) >>> 0) === ((b & ~(KERNEL_HANDLE | 3)) >>> 0);

/** The entries of the table a lookup searched, for one handle index, before the lookup. */
function historyOf(d: SessionData, l: LookupRow, owner: string): EntryRow[] {
  return d.entries.filter((e) => e.seq < l.seq && sameIndex(e.handle, l.handle) && e.table === l.table && (l.table === 'kernel' || e.process === owner));
}

/** Entries of that index open in other tables at the lookup (a handle of another process). */
function openElsewhere(d: SessionData, l: LookupRow, owner: string): EntryRow | null {
  const open = new Map<string, EntryRow>();
  for (const e of d.entries) {
    if (e.seq >= l.seq) break;
    if (!sameIndex(e.handle, l.handle)) continue;
    const key = `${e.table}:${e.process}`;
    if (e.op === 'create') open.set(key, e);
    else open.delete(key);
  }
  for (const [key, e] of open) if (key !== `${l.table}:${l.table === 'kernel' ? 'System' : owner}`) return e;
  return null;
}

/** The call (innermost, on its thread) an event belongs to. */
export function callHolding(d: SessionData, thread: number, seq: number): Call | undefined {
  let best: Call | undefined;
  for (const c of d.calls) {
    if (c.thread !== thread || c.enterSeq > seq || (c.exitSeq !== null && c.exitSeq < seq)) continue;
    if (!best || c.enterSeq >= best.enterSeq) best = c;
  }
  return best;
}

function callLabel(d: SessionData, c: Call | undefined): string {
  if (!c) return 'outside any system call';
  const by = d.callerOf(c).symbol;
  return `#${c.id} ${callerName(c)}${by ? ` from ${by}` : ''}`;
}

function lookupDecision(d: SessionData, c: Call, l: LookupRow): Decision {
  const h = hex(l.handle);
  const owner = l.table === 'kernel' ? 'System' : (d.processOf.get(l.thread) ?? c.process);
  const tableText = l.table === 'kernel' ? 'the kernel handle table' : `${owner}'s handle table`;
  const base = { seq: l.seq, evidence: [l.seq] };
  if (l.table === 'none' || ((l.handle & KERNEL_HANDLE) !== 0 && l.previousMode === 'UserMode' && l.status === S.INVALID_HANDLE)) {
    const made = d.entries.find((e) => e.op === 'create' && e.seq < l.seq && e.table === 'kernel' && sameIndex(e.handle, l.handle));
    const where = l.table === 'none' ? 'ObReferenceObjectByHandle refuses it without searching any table' : `so it was looked up in ${tableText}, where kernel handles never are`;
    return {
      ...base,
      cause: 'handle-kernel-from-user',
      text: `handle ${h} has bit 31 set, a kernel handle${made ? ` (created by ${callLabel(d, callHolding(d, made.thread, made.seq))}, seq ${made.seq})` : ''}, but the lookup ran with PreviousMode UserMode: ${where} → ${statusName(l.status)}`,
      short: `kernel handle ${h} used with PreviousMode UserMode`,
      evidence: made ? [l.seq, made.seq] : [l.seq],
    };
  }
  if (l.status === S.OBJECT_TYPE_MISMATCH) {
    return {
      ...base,
      cause: 'handle-type-mismatch',
      text: `handle ${h} in ${tableText} names ${l.foundType ? `a ${l.foundType} object` : 'an object'}, but the routine wants ${l.wantedType ? `a ${l.wantedType}` : 'another type'} → STATUS_OBJECT_TYPE_MISMATCH`,
      short: `handle ${h} is a ${l.foundType ?? '?'}, not a ${l.wantedType ?? '?'}`,
    };
  }
  if (l.status === S.ACCESS_DENIED) {
    const want = l.desiredAccess ?? 0;
    const have = l.grantedAccess ?? 0;
    return {
      ...base,
      cause: 'handle-access-denied',
      text: `handle ${h} in ${tableText} was granted access 0x${hex(have)}, but the routine asks for 0x${hex(want)} with PreviousMode UserMode (missing 0x${hex(want & ~have)}) → STATUS_ACCESS_DENIED`,
      short: `handle ${h} granted 0x${hex(have)}, wanted 0x${hex(want)}`,
    };
  }
  // STATUS_INVALID_HANDLE from a table: why was the value not there?
  const history = historyOf(d, l, owner);
  const last = history[history.length - 1];
  if (last && last.op === 'close') {
    const closer = callHolding(d, last.thread, last.seq);
    return {
      ...base,
      cause: 'handle-closed',
      text: `handle ${h} was closed by ${callLabel(d, closer)} at seq ${last.seq}, so ${tableText} no longer has it → ${statusName(l.status)}`,
      short: `handle ${h} used after it was closed (seq ${last.seq})`,
      evidence: [l.seq, last.seq],
    };
  }
  const elsewhere = openElsewhere(d, l, owner);
  if (elsewhere && owner === 'System' && l.table === 'kernel') {
    const opener = callHolding(d, elsewhere.thread, elsewhere.seq);
    return {
      ...base,
      cause: 'handle-system-thread',
      text: `handle ${h} lives in ${elsewhere.process}'s handle table (created by ${callLabel(d, opener)}, seq ${elsewhere.seq}), but this code runs on a System thread, whose process is System: the lookup searched the kernel handle table, which has no such handle → ${statusName(l.status)}`,
      short: `handle ${h} of ${elsewhere.process} used from a System thread`,
      evidence: [l.seq, elsewhere.seq],
    };
  }
  return {
    ...base,
    cause: 'handle-never-opened',
    text: `no handle ${h} was ever opened in ${tableText} during the session${elsewhere ? ` (${elsewhere.process}'s table has one, created at seq ${elsewhere.seq})` : ''} → ${statusName(l.status)}`,
    short: `handle ${h} was never opened`,
    evidence: elsewhere ? [l.seq, elsewhere.seq] : [l.seq],
  };
}

function decide(d: SessionData, c: Call, status: number, explained: Map<number, Finding>): Decision {
  if (c.name === null && c.rejected.length > 0) {
    const r = c.rejected[c.rejected.length - 1];
    const table = r.tableIndex === 0 ? 'KiServiceTable (ntoskrnl)' : 'the win32k table';
    const empty = r.tableBase === 0 && r.limit === 0;
    return {
      cause: 'service-limit',
      seq: r.seq,
      text: `service 0x${hex(r.serviceNumber)} is table ${r.tableIndex} index 0x${hex(r.serviceIndex)}, and ${empty ? `the thread's descriptor for table ${r.tableIndex} is empty` : `${table} has only ${r.limit} (0x${hex(r.limit)}) services`}: KiSystemService's limit check rejected it → ${statusName(status)}`,
      short: `service 0x${hex(r.serviceNumber)} past ${r.tableIndex === 0 ? 'KiServiceTable' : r.tableIndex === 1 ? 'W32pServiceTable' : 'table ' + r.tableIndex}'s limit ${r.limit}`,
      evidence: c.rejected.map((x) => x.seq),
    };
  }
  const own: Decision[] = [];
  const p = c.probes.find((x) => x.status !== 0);
  if (p) own.push(probeDecision(c, p));
  const bad = c.lookups.filter((x) => x.status !== 0);
  const l = bad.find((x) => x.status === status) ?? bad[0];
  if (l) own.push(lookupDecision(d, c, l));
  const f = c.faults.find((x) => x.handler === 'service');
  if (f) {
    const rw = f.parameters.length >= 2 ? `${f.parameters[0] === 1 ? 'writing' : f.parameters[0] === 8 ? 'executing' : 'reading'} ${hex8(f.parameters[1])}` : 'touching memory';
    own.push({
      cause: 'page-fault',
      seq: f.seq,
      text: `the routine faulted ${rw} at ${d.sym(f.address)} (${f.codeName}), and its exception handler returned the code as the status`,
      short: `page fault ${rw} inside the service`,
      evidence: [f.seq],
    });
  }
  if (own.length) return own.sort((a, b) => a.seq - b.seq)[0];
  // NtReadFile/NtWriteFile reference the handle asking for no access and check the granted mask
  // themselves (a write may append): the lookup succeeded, its GrantedAccess says why.
  const checked = status === S.ACCESS_DENIED ? c.lookups.find((x) => x.status === 0 && x.grantedAccess !== null) : undefined;
  if (checked) {
    const want = c.name === 'NtWriteFile' ? 'FILE_WRITE_DATA or FILE_APPEND_DATA (0x6)' : c.name === 'NtReadFile' ? 'FILE_READ_DATA (0x1)' : 'more access';
    return {
      cause: 'handle-access-denied',
      seq: checked.seq,
      text: `handle ${hex(checked.handle)} was granted access 0x${hex(checked.grantedAccess!)}, and ${c.name} checked it for ${want} itself after the lookup → STATUS_ACCESS_DENIED`,
      short: `handle ${hex(checked.handle)} granted 0x${hex(checked.grantedAccess!)}, lacks ${c.name === 'NtWriteFile' ? 'write' : 'the'} access`,
      evidence: [checked.seq],
    };
  }

  const child = c.children.find((x) => x.status === status && explained.has(x.id)) ?? c.children.find((x) => failed(x.status) && explained.has(x.id));
  const done = c.irps.find((x) => x.phase === 'complete' && x.status === status);
  if (child) {
    const cf = explained.get(child.id)!;
    return {
      cause: 'nested-call',
      seq: cf.seq,
      text: `${callLabel(d, child)} failed inside it with ${statusName(child.status ?? 0)} (${cf.cause}, finding for #${child.id})${done ? `, and ${done.driver} completed the ${done.majorName} IRP with ${statusName(done.status ?? 0)} (seq ${done.seq})` : ''}`,
      short: `#${child.id} ${callerName(child)} inside it failed: ${cf.title.slice(cf.title.indexOf(': ') + 2)}`,
      evidence: done ? [cf.seq, child.enterSeq, done.seq] : [cf.seq, child.enterSeq],
    };
  }
  if (done) {
    return {
      cause: 'irp-status',
      seq: done.seq,
      text: `${done.driver} completed the ${done.majorName} IRP with ${statusName(done.status ?? 0)} (seq ${done.seq}); nothing failed on the way`,
      short: `${done.driver} completed the IRP with ${statusName(done.status ?? 0)}`,
      evidence: [done.seq],
    };
  }
  const exit = [...c.exits].reverse().find((x) => x.service === c.name) ?? c.exits[c.exits.length - 1];
  const seq = exit?.seq ?? c.exitSeq ?? c.enterSeq;
  // A name that was not found: say which, read from the caller's OBJECT_ATTRIBUTES as the call began.
  const name = NAME_STATUSES.has(status) ? objectName(d, c) : null;
  return {
    cause: 'routine',
    seq,
    text: `${(c.serviceNumber ?? 0) & 0x1000 ? 'win32k' : 'nt'}!${c.name ?? '?'} returned ${statusName(status)} itself${name ? ` for ${name}` : ''}: no probe, handle lookup or fault failed on the way${
      c.rejected.length ? ` (its first lookup, seq ${c.rejected[0].seq}, was past the limit of the thread's table: KiSystemService converted the thread to a GUI thread and looked the number up again)` : ''
    }`,
    short: name ? `${name} not found` : `the routine returned it`,
    evidence: [seq, ...c.rejected.map((x) => x.seq)],
  };
}

const NAME_STATUSES = new Set([0xc0000034 /* OBJECT_NAME_NOT_FOUND */, 0xc000003a /* OBJECT_PATH_NOT_FOUND */, 0xc0000033 /* OBJECT_NAME_INVALID */, 0xc0000035 /* OBJECT_NAME_COLLISION */]);

/** The ObjectName of a call's OBJECT_ATTRIBUTES argument, from guest memory as the call began. */
function objectName(d: SessionData, c: Call): string | null {
  const oa = c.args.find((a) => a && a[0] === 'ObjectAttributes')?.[1];
  if (!oa || !d.hasCheckpoints) return null;
  const m = stateAt(d.db, d.sessionId, c.enterSeq);
  const u32 = (a: number) => {
    const b = m.read(a, 4);
    return b.some((x) => x === null) ? null : (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  };
  const us = u32(oa + 8); // OBJECT_ATTRIBUTES.ObjectName → UNICODE_STRING
  if (!us) return null;
  const lengthWord = u32(us);
  const buffer = u32(us + 4);
  if (lengthWord === null || !buffer) return null;
  const bytes = m.read(buffer, Math.min(lengthWord & 0xffff, 520));
  if (bytes.some((x) => x === null)) return null;
  let text = '';
  for (let i = 0; i + 1 < bytes.length; i += 2) text += String.fromCharCode(bytes[i]! | (bytes[i + 1]! << 8));
  return text || null;
}

/** The Zw advice: a driver's direct Nt call in UserMode that a Zw call would have saved. */
function advice(c: Call, cause: FailureCause): string {
  if (c.entry !== 'nt-direct' || c.callerCpl !== 0 || c.previousMode !== 'UserMode' || !c.name?.startsWith('Nt')) return '';
  if (!['probe-kernel-address', 'handle-kernel-from-user', 'probe-unmapped', 'probe-read-only', 'handle-access-denied'].includes(cause)) return '';
  return ` Zw${c.name.slice(2)} would have set PreviousMode = KernelMode.`;
}

/** One failure-cause finding per call whose status is not NT_SUCCESS (children before parents). */
export function failureFindings(d: SessionData): Finding[] {
  const explained = new Map<number, Finding>();
  // Innermost first, so a parent can point at its child's finding.
  const order = [...d.calls].sort((a, b) => depth(d, b) - depth(d, a) || a.id - b.id);
  for (const c of order) {
    if (!failed(c.status)) continue;
    const status = c.status!;
    const dec = decide(d, c, status, explained);
    const origin = modeOrigin(d, c);
    const caller = d.callerOf(c);
    const how =
      c.entry === 'nt-direct'
        ? `${callerName(c)} was called directly${caller.symbol ? ` from ${caller.symbol}` : ''}, so ${origin.text}`
        : `${callerName(c)} was called${caller.symbol ? ` from ${caller.symbol}` : ''}: ${origin.text}`;
    const detail = `${how}; ${dec.text}.${advice(c, dec.cause)}`;
    const evidence = [...new Set([...dec.evidence, ...(origin.seq !== null ? [origin.seq] : []), ...(caller.seq !== null ? [caller.seq] : []), d.entrySeq(c)])];
    explained.set(c.id, {
      kind: 'failure-cause',
      severity: status >= 0xc0000000 ? 'error' : 'warning',
      cause: dec.cause,
      syscallId: c.id,
      seq: dec.seq,
      title: `#${c.id} ${callerName(c)} → ${statusName(status)}: ${dec.short}`,
      detail,
      evidence,
    });
  }
  return [...explained.values()].sort((a, b) => a.syscallId! - b.syscallId!);
}

function depth(d: SessionData, c: Call): number {
  let n = 0;
  for (let p = c.parentId; p !== null; p = d.byId.get(p)?.parentId ?? null) n++;
  return n;
}
