// Time travel: the machine's state after any event of a recorded session, rebuilt from the
// nearest checkpoint before it (registers, and memory from checkpoint_pages) plus the effects of
// the events since — not by re-running the program. Memory pages are inflated only when read.
import type Database from 'better-sqlite3';
import { inflateRawSync } from 'node:zlib';
import { SymbolTable, disassemble, formatSymbol, type CpuSnapshot, type DisasmLine } from '../core/index.js';
import { InstructionRuns, TraceFileError, unpackEffects } from '../recorder/index.js';
import { eventEip } from './events.js';

const KPCR = 0xffdff000;
const KPCR_CURRENT_THREAD = 0x124;
const KPCR_IRQL = 0x24;
const KTHREAD_PREVIOUS_MODE = 0x140;

export interface MachineState {
  sessionId: number;
  /** The state after this event. */
  seq: number;
  icount: number;
  regs: Record<'eax' | 'ecx' | 'edx' | 'ebx' | 'esp' | 'ebp' | 'esi' | 'edi' | 'eip' | 'eflags', number>;
  segments: Record<'cs' | 'ss' | 'ds' | 'es' | 'fs' | 'gs', number>;
  control: Record<'cr0' | 'cr2' | 'cr3' | 'cr4', number>;
  cpl: number;
  thread: { id: number; process: string | null };
  /** KTHREAD.PreviousMode of the current thread (read from the rebuilt memory). */
  previousMode: 'UserMode' | 'KernelMode' | null;
  irql: number | null;
  /** Side-effect-free reads of the rebuilt linear memory (null = not mapped). */
  read(linear: number, length: number): (number | null)[];
  /** module!Name+0xOffset of an address (one index lookup). */
  symbolAt(address: number): string | null;
  /** The session's whole symbol table (built on first use: disassembly needs it). */
  readonly symbols: SymbolTable;
}

/** The session's symbol table, from guest_symbols. */
export function sessionSymbols(db: Database.Database, sessionId: number): SymbolTable {
  const rows = db.prepare('SELECT address, module, name, size FROM guest_symbols WHERE session_id = ? ORDER BY address').all(sessionId) as {
    address: number;
    module: string;
    name: string;
    size: number;
  }[];
  const table = new SymbolTable();
  const byModule = new Map<string, { syms: Map<string, number>; end: number }>();
  for (const r of rows) {
    const m = byModule.get(r.module) ?? { syms: new Map(), end: 0 };
    m.syms.set(r.name, r.address);
    m.end = Math.max(m.end, r.address + r.size);
    byModule.set(r.module, m);
  }
  for (const [module, m] of byModule) table.addModule(module, m.syms, m.end);
  return table;
}

/** Physical memory rebuilt from checkpoint pages; pages inflate on first touch. */
class RebuiltMemory {
  private readonly pages = new Map<number, Uint8Array>();
  constructor(private readonly compressed: Map<number, Buffer>) {}

  private page(n: number, create: boolean): Uint8Array | null {
    let p = this.pages.get(n);
    if (p) return p;
    const z = this.compressed.get(n);
    if (z) p = new Uint8Array(inflateRawSync(z));
    else if (create) p = new Uint8Array(4096);
    else return null;
    this.pages.set(n, p);
    return p;
  }
  read8(phys: number): number {
    const p = this.page(phys >>> 12, false);
    return p ? p[phys & 0xfff] : 0;
  }
  read32(phys: number): number {
    return (this.read8(phys) | (this.read8(phys + 1) << 8) | (this.read8(phys + 2) << 16) | (this.read8(phys + 3) << 24)) >>> 0;
  }
  write8(phys: number, v: number): void {
    this.page(phys >>> 12, true)![phys & 0xfff] = v & 0xff;
  }
  write32(phys: number, v: number): void {
    for (let b = 0; b < 4; b++) this.write8(phys + b, (v >>> (8 * b)) & 0xff);
  }
}

/** Two-level paging over rebuilt memory (4 MiB pages with CR4.PSE); null when not mapped. */
function translate(mem: RebuiltMemory, cr0: number, cr3: number, cr4: number, linear: number): number | null {
  if (!(cr0 & 0x80000000)) return linear >>> 0;
  const pde = mem.read32(((cr3 & ~0xfff) + (linear >>> 22) * 4) >>> 0);
  if (!(pde & 1)) return null;
  if (pde & 0x80 && cr4 & 0x10) return ((pde & 0xffc00000) | (linear & 0x3fffff)) >>> 0;
  const pte = mem.read32(((pde & ~0xfff) + ((linear >>> 12) & 0x3ff) * 4) >>> 0);
  if (!(pte & 1)) return null;
  return ((pte & ~0xfff) | (linear & 0xfff)) >>> 0;
}

export function resolveSession(db: Database.Database, session?: string): number {
  const all = db.prepare('SELECT id, name FROM sessions ORDER BY id').all() as { id: number; name: string }[];
  if (all.length === 0) throw new TraceFileError('the trace has no sessions; record one first');
  if (session === undefined) return all[all.length - 1].id;
  const byId = /^\d+$/.test(session) ? all.find((s) => s.id === Number(session)) : undefined;
  const byName = all.filter((s) => s.name === session);
  const found = byId ?? (byName.length ? byName[byName.length - 1] : undefined);
  if (!found) throw new TraceFileError(`no session '${session}' in this trace (sessions: ${all.map((s) => `${s.id} ${s.name}`).join(', ')})`);
  return found.id;
}

/** The machine state after event `seq` of a session. */
export function stateAt(db: Database.Database, sessionId: number, seq: number): MachineState {
  const session = db.prepare('SELECT events, first_thread FROM sessions WHERE id = ?').get(sessionId) as { events: number; first_thread: number } | undefined;
  if (!session) throw new TraceFileError(`no session ${sessionId} in this trace`);
  if (!Number.isInteger(seq) || seq < 0 || seq >= session.events) {
    throw new TraceFileError(`--at ${seq} is outside session ${sessionId}, whose events are 0 to ${session.events - 1}`);
  }
  // The nearest checkpoint at or before the state after `seq` (checkpoint.seq = events before it).
  const cp = db.prepare('SELECT id, seq, icount, cpu, thread_id FROM checkpoints WHERE session_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1').get(sessionId, seq + 1) as
    | { id: number; seq: number; icount: number; cpu: string; thread_id: number }
    | undefined;
  if (!cp) throw new TraceFileError(`session ${sessionId} has no checkpoints (recorded by an older ntflow?); re-record it`);
  const pageRows = db
    .prepare(
      `SELECT page, data FROM checkpoint_pages p
       WHERE session_id = ? AND checkpoint_id = (SELECT max(checkpoint_id) FROM checkpoint_pages q
         WHERE q.session_id = p.session_id AND q.page = p.page AND q.checkpoint_id <= ?)`,
    )
    .raw()
    .all(sessionId, cp.id) as [number, Buffer][];
  const mem = new RebuiltMemory(new Map(pageRows.map(([page, data]) => [page, data])));
  const snap = JSON.parse(cp.cpu) as CpuSnapshot;

  // Registers by RegId (0-7 GPRs, 8 EFLAGS, 9-14 selectors, 15-18 control registers).
  const reg = new Array<number>(19);
  snap.regs.forEach((v, i) => (reg[i] = v));
  reg[8] = snap.eflags;
  snap.segments.forEach((s, i) => (reg[9 + i] = s.selector));
  [snap.cr0, snap.cr2, snap.cr3, snap.cr4].forEach((v, i) => (reg[15 + i] = v));
  let icount = cp.icount;
  let thread = cp.thread_id;

  const applyEffects = (effects: Uint8Array | null) => {
    const e = unpackEffects(effects);
    for (const [id, v] of e.regs) reg[id] = v;
    for (const [lin, size, value] of e.writes) {
      for (let b = 0; b < size; b++) {
        const p = translate(mem, reg[15], reg[17], reg[18], (lin + b) >>> 0);
        if (p !== null) mem.write8(p, Math.floor(value / 2 ** (8 * b)) & 0xff);
      }
    }
    for (const [phys, value] of e.tableWrites) mem.write32(phys, value);
  };

  // The effects from the checkpoint to `seq`, in order: instructions' and exception deliveries'.
  const runs = new InstructionRuns(db, sessionId);
  const exceptions = db.prepare('SELECT seq, effects FROM exceptions WHERE session_id = ? AND seq >= ? AND seq <= ? AND effects IS NOT NULL ORDER BY seq').raw().all(sessionId, cp.seq, seq) as [number, Buffer][];
  let x = 0;
  for (const [s, effects] of runs.effects(cp.seq, seq)) {
    while (x < exceptions.length && exceptions[x][0] < s) applyEffects(exceptions[x++][1]);
    applyEffects(effects);
  }
  while (x < exceptions.length) applyEffects(exceptions[x++][1]);
  // icount and thread after `seq`: from the last instruction run or other event at or before it.
  const mark = db.prepare('SELECT seq, icount, thread_id FROM event_marks WHERE session_id = ? AND seq >= ? AND seq <= ? ORDER BY seq DESC LIMIT 1').raw().get(sessionId, cp.seq, seq) as [number, number, number] | undefined;
  const run = runs.runAt(seq);
  if (run && (!mark || run.seq > mark[0])) {
    icount = run.icount + Math.min(run.count, seq - run.seq + 1);
    thread = run.thread;
  } else if (mark) {
    icount = mark[1];
    thread = mark[2];
  }
  // EIP: where the next event happens (an instruction's own address, or the instruction an event
  // belongs to); after the last event — the machine's stop — the EIP it stopped at.
  const nextEip = (eventEip(db, sessionId, seq + 1) ?? eventEip(db, sessionId, seq) ?? snap.eip) >>> 0;

  const processOf = db.prepare("SELECT to_process FROM thread_switches WHERE session_id = ? AND to_thread = ? AND seq <= ? ORDER BY seq DESC LIMIT 1").get(sessionId, thread, seq) as
    | { to_process: string }
    | undefined;
  const read = (linear: number, length: number) => {
    const out: (number | null)[] = [];
    for (let i = 0; i < length; i++) {
      const p = translate(mem, reg[15], reg[17], reg[18], (linear + i) >>> 0);
      out.push(p === null ? null : mem.read8(p));
    }
    return out;
  };
  const word = (linear: number) => {
    const b = read(linear, 4);
    return b.some((x) => x === null) ? null : ((b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0);
  };
  let symbolTable: SymbolTable | undefined;
  const kthread = word(KPCR + KPCR_CURRENT_THREAD);
  const pm = kthread ? read(kthread + KTHREAD_PREVIOUS_MODE, 1)[0] : null;
  const irql = read(KPCR + KPCR_IRQL, 1)[0];
  return {
    sessionId,
    seq,
    icount,
    regs: {
      eax: reg[0] >>> 0,
      ecx: reg[1] >>> 0,
      edx: reg[2] >>> 0,
      ebx: reg[3] >>> 0,
      esp: reg[4] >>> 0,
      ebp: reg[5] >>> 0,
      esi: reg[6] >>> 0,
      edi: reg[7] >>> 0,
      eip: nextEip,
      eflags: reg[8] >>> 0,
    },
    segments: Object.fromEntries(['es', 'cs', 'ss', 'ds', 'fs', 'gs'].map((n, i) => [n, reg[9 + i]])) as MachineState['segments'],
    control: { cr0: reg[15] >>> 0, cr2: reg[16] >>> 0, cr3: reg[17] >>> 0, cr4: reg[18] >>> 0 },
    cpl: reg[10] & 3,
    thread: { id: thread, process: processOf?.to_process ?? (thread === session.first_thread ? 'System' : null) },
    previousMode: pm === null || pm === undefined ? null : pm & 1 ? 'UserMode' : 'KernelMode',
    irql: irql ?? null,
    read,
    symbolAt: (address: number) => {
      const sym = db
        .prepare('SELECT module, name, address, size FROM guest_symbols WHERE session_id = ? AND address <= ? ORDER BY address DESC LIMIT 1')
        .get(sessionId, address >>> 0) as { module: string; name: string; address: number; size: number } | undefined;
      if (!sym || (address >>> 0) >= sym.address + Math.max(sym.size, 1)) return null;
      const off = (address >>> 0) - sym.address;
      return formatSymbol(sym.module, sym.name, off);
    },
    get symbols() {
      return (symbolTable ??= sessionSymbols(db, sessionId));
    },
  };
}

const hex8 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');
const hex4 = (n: number) => (n >>> 0).toString(16).padStart(4, '0');

/** WinDbg's `r` layout, plus the thread, PreviousMode and IRQL. */
export function formatRegisters(s: MachineState): string {
  const r = s.regs;
  const f = r.eflags;
  const bit = (b: number) => (f >>> b) & 1;
  const flags = [
    bit(11) ? 'ov' : 'nv',
    bit(10) ? 'dn' : 'up',
    bit(9) ? 'ei' : 'di',
    bit(7) ? 'ng' : 'pl',
    bit(6) ? 'zr' : 'nz',
    bit(4) ? 'ac' : 'na',
    bit(2) ? 'pe' : 'po',
    bit(0) ? 'cy' : 'nc',
  ].join(' ');
  const g = s.segments;
  return [
    `eax=${hex8(r.eax)} ebx=${hex8(r.ebx)} ecx=${hex8(r.ecx)} edx=${hex8(r.edx)} esi=${hex8(r.esi)} edi=${hex8(r.edi)}`,
    `eip=${hex8(r.eip)} esp=${hex8(r.esp)} ebp=${hex8(r.ebp)} iopl=${(f >>> 12) & 3}         ${flags}`,
    `cs=${hex4(g.cs)}  ss=${hex4(g.ss)}  ds=${hex4(g.ds)}  es=${hex4(g.es)}  fs=${hex4(g.fs)}  gs=${hex4(g.gs)}             efl=${hex8(f)}`,
    `${s.symbolAt(r.eip) ?? hex8(r.eip)}`,
    `cpl ${s.cpl}  thread ${s.thread.id}${s.thread.process ? ` (${s.thread.process})` : ''}  PreviousMode ${s.previousMode ?? '?'}  IRQL ${s.irql ?? '?'}  cr0=${hex8(s.control.cr0)} cr2=${hex8(s.control.cr2)} cr3=${hex8(s.control.cr3)} cr4=${hex8(s.control.cr4)}`,
  ].join('\n');
}

/** WinDbg's `db` layout: 16 bytes a line, '??' for unmapped bytes. */
export function formatMemory(s: MachineState, address: number, length: number): string {
  const lines: string[] = [];
  for (let off = 0; off < length; off += 16) {
    const bytes = s.read(address + off, Math.min(16, length - off));
    const hex = bytes.map((b, i) => (b === null ? '??' : b.toString(16).padStart(2, '0')) + (i === 7 ? '-' : ' ')).join('');
    const ascii = bytes.map((b) => (b === null ? '?' : b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${hex8(address + off)}  ${hex.padEnd(48)} ${ascii}`);
  }
  return lines.join('\n');
}

/** A few instructions from EIP, with symbols (WinDbg's `u`). */
export function disassembleAt(s: MachineState, count = 8): DisasmLine[] {
  const eip = s.regs.eip;
  const bytes = s.read(eip, count * 15);
  const firstHole = bytes.indexOf(null);
  const usable = Uint8Array.from(bytes.slice(0, firstHole < 0 ? bytes.length : firstHole) as number[]);
  return disassemble(usable, eip, { symbols: s.symbols, count });
}

/** The `--json` form. */
export function stateJson(
  s: MachineState,
  extra: { mem?: { address: number; length: number }; u?: boolean | number; stack?: StackFrame[]; handles?: OpenHandle[] } = {},
): object {
  const f = s.regs.eflags;
  return {
    session: s.sessionId,
    seq: s.seq,
    icount: s.icount,
    regs: s.regs,
    flags: Object.fromEntries(Object.entries({ CF: 0, PF: 2, AF: 4, ZF: 6, SF: 7, TF: 8, IF: 9, DF: 10, OF: 11 }).map(([k, b]) => [k, (f >>> b) & 1])),
    segments: s.segments,
    control: s.control,
    cpl: s.cpl,
    thread: s.thread,
    previousMode: s.previousMode,
    irql: s.irql,
    symbol: s.symbolAt(s.regs.eip),
    ...(extra.mem ? { mem: { address: extra.mem.address, data: s.read(extra.mem.address, extra.mem.length).map((b) => (b === null ? null : b)) } } : {}),
    ...(extra.u ? { disassembly: disassembleAt(s, typeof extra.u === 'number' ? extra.u : undefined).map((l) => ({ address: l.address, bytes: Buffer.from(l.bytes).toString('hex'), text: l.text })) } : {}),
    ...(extra.stack ? { stack: extra.stack } : {}),
    ...(extra.handles ? { handles: extra.handles } : {}),
  };
}

/** One frame of `state --k`: a frame of the calls projection open at the state's event. */
export interface StackFrame {
  /** 0 innermost, as WinDbg numbers `k`'s frames. */
  frame: number;
  /** The calls projection's frame id. */
  id: number;
  kind: string;
  address: number;
  symbol: string | null;
  enterSeq: number;
  /** Where control came from: the entering instruction's address and symbol (the call site). */
  from: number | null;
  fromSymbol: string | null;
}

/**
 * The call stack after event `seq` on the thread running then (WinDbg's `k`), innermost first: the
 * frames the calls projection says were entered at or before `seq` and not yet left after it.
 */
export function callStackAt(db: Database.Database, s: MachineState): StackFrame[] {
  // The file's table, or the view over the calls this reader folded itself (analyzer/replay.ts foldLive).
  const hasCalls = db.prepare("SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'calls' UNION ALL SELECT 1 FROM temp.sqlite_master WHERE type = 'view' AND name = 'calls'").get();
  if (!hasCalls) throw new TraceFileError("the trace has no 'calls' table yet; run `ntflow replay FILE` to build the projections");
  const rows = db
    .prepare(
      `SELECT c.id, c.kind, c.address, c.symbol, c.enter_seq, NULL AS from_eip FROM calls c
       WHERE c.session_id = ? AND c.thread_id = ? AND c.enter_seq <= ? AND (c.exit_seq IS NULL OR c.exit_seq > ?)
       ORDER BY c.depth DESC, c.id DESC`,
    )
    .all(s.sessionId, s.thread.id, s.seq, s.seq) as { id: number; kind: string; address: number; symbol: string | null; enter_seq: number; from_eip: number | null }[];
  for (const r of rows) r.from_eip = eventEip(db, s.sessionId, r.enter_seq) ?? null;
  return rows.map((r, i) => ({
    frame: i,
    id: r.id,
    kind: r.kind,
    address: r.address >>> 0,
    symbol: r.symbol,
    enterSeq: r.enter_seq,
    // A callback has no entering instruction of its own: its "from" is its own first instruction.
    from: r.kind === 'callback' || r.from_eip === null ? null : r.from_eip >>> 0,
    // The symbol table's choice among aliases (NtReadFile over ZwReadFile), as the calls table names callees.
    fromSymbol: r.kind === 'callback' || r.from_eip === null ? null : s.symbols.format(r.from_eip),
  }));
}

/** WinDbg's `k` layout: frame number, the callee, how it was entered, at which event, from where. */
export function formatCallStack(frames: StackFrame[], s: MachineState): string {
  if (frames.length === 0) return `no frames open on thread ${s.thread.id} after event ${s.seq}`;
  const width = Math.max(...frames.map((f) => (f.symbol ?? hex8(f.address)).length));
  const lines = [` # ${'Callee'.padEnd(width)}  Kind      Enter seq  From`];
  for (const f of frames) {
    const from = f.from === null ? '' : `${hex8(f.from)} ${f.fromSymbol ?? ''}`.trimEnd();
    lines.push(`${f.frame.toString(16).padStart(2, '0')} ${(f.symbol ?? hex8(f.address)).padEnd(width)}  ${f.kind.padEnd(8)}  ${String(f.enterSeq).padStart(9)}  ${from}`.trimEnd());
  }
  return lines.join('\n');
}

/** One open handle of `state --handles`. */
export interface OpenHandle {
  handle: number;
  table: string;
  process: string;
  object: number;
  objectType: string | null;
  objectName: string | null;
  grantedAccess: number | null;
  /** The event that created it. */
  createdSeq: number;
}

/**
 * The handles open after event `seq` (WinDbg's `!handle`): each handle table entry whose latest
 * create or close in handle_entries up to `seq` is a create.
 */
export function openHandlesAt(db: Database.Database, sessionId: number, seq: number): OpenHandle[] {
  const rows = db
    .prepare('SELECT seq, op, handle, handle_table, process, object, object_type, object_name, granted_access FROM handle_entries WHERE session_id = ? AND seq <= ? ORDER BY seq')
    .all(sessionId, seq) as { seq: number; op: string; handle: number; handle_table: string; process: string; object: number; object_type: string | null; object_name: string | null; granted_access: number | null }[];
  // A handle value is unique within its table; the process names the table (one per process).
  const open = new Map<string, OpenHandle>();
  for (const r of rows) {
    const key = `${r.handle_table}\0${r.process}\0${r.handle >>> 0}`;
    if (r.op === 'close') open.delete(key);
    else
      open.set(key, {
        handle: r.handle >>> 0,
        table: r.handle_table,
        process: r.process,
        object: r.object >>> 0,
        objectType: r.object_type,
        objectName: r.object_name,
        grantedAccess: r.granted_access === null ? null : r.granted_access >>> 0,
        createdSeq: r.seq,
      });
  }
  return [...open.values()].sort((a, b) => a.table.localeCompare(b.table) || a.process.localeCompare(b.process) || a.handle - b.handle);
}

/** `!handle`'s content, one line a handle. */
export function formatHandles(handles: OpenHandle[], s: MachineState): string {
  if (handles.length === 0) return `no handles open after event ${s.seq}`;
  const proc = Math.max(7, ...handles.map((h) => h.process.length));
  const type = Math.max(4, ...handles.map((h) => (h.objectType ?? '?').length));
  const lines = [`Handle    Table    ${'Process'.padEnd(proc)}  Object    ${'Type'.padEnd(type)}  Access    Created  Name`];
  for (const h of handles) {
    lines.push(
      `${hex8(h.handle)}  ${h.table.padEnd(7)}  ${h.process.padEnd(proc)}  ${hex8(h.object)}  ${(h.objectType ?? '?').padEnd(type)}  ${h.grantedAccess === null ? '????????' : hex8(h.grantedAccess)}  ${String(h.createdSeq).padStart(7)}  ${h.objectName ?? ''}`.trimEnd(),
    );
  }
  return lines.join('\n');
}
