// The TypeScript side of the guest kernel: guest memory access for service bodies, the pool,
// processes and threads, thread switches, calls from TypeScript into guest x86 code, the escape
// dispatcher, and the probes that turn kernel labels into events. The loader (loader.ts) builds
// the machine and hands it to a Kernel.
import { CPU, R, Seg } from '../cpu/cpu.js';
import { GuestFault, Vector } from '../cpu/faults.js';
import type { EventBody, GuestEvent, TraceEvent } from '../events.js';
import type { Machine } from '../machine.js';
import { PTE_P, PTE_RW, PTE_US } from '../mmu.js';
import { kernelAccessFault } from './mm.js';
import type { EscapeCall, RoutineTable, ServiceTable } from './escape.js';
import type { GuestImages } from './kernel/build.js';
import * as L from './layout.js';
import { NTSTATUS, statusName } from './ntstatus.js';
import { offsetOf, type FieldPath, type StructName } from './structs.js';
import type { SymbolTable } from './symbols.js';

export interface Process {
  id: number;
  name: string;
  eprocess: number;
  /** Physical address of the page directory. */
  pageDirectory: number;
  isSystem: boolean;
  peb: number;
}

export interface Thread {
  id: number;
  name: string;
  process: Process;
  /** KTHREAD (= ETHREAD) address. */
  kthread: number;
  teb: number;
  initialStack: number;
  /** A System thread runs only in kernel mode. */
  system: boolean;
  /** Registers while switched out. */
  saved: ThreadContext | null;
}

export interface ThreadContext {
  regs: number[];
  eip: number;
  eflags: number;
  selectors: number[];
  cr3: number;
}

/** The machine stopped inside a TypeScript body (bug check, exit, instruction limit). */
export class MachineStopped extends Error {
  override name = 'MachineStopped';
}

export type Outcome =
  | { kind: 'exited'; status: number }
  | { kind: 'exception'; code: number; eip: number }
  | { kind: 'unsupported'; detail: string }
  | { kind: 'bugcheck'; code: number; parameters: number[] }
  | { kind: 'instruction-limit' };

export class Kernel {
  readonly cpu: CPU;
  readonly processes: Process[] = [];
  readonly threads: Thread[] = [];
  systemProcess!: Process;
  /** The System worker thread (work items) and the thread that ran DriverEntry. */
  systemThread!: Thread;
  private current!: Thread;
  private poolNext = L.POOL_BASE;
  private readonly idle: (() => void)[] = [];
  outcome: Outcome | null = null;
  /** Per-module state of the NT executive bodies (object manager, I/O manager, …). */
  readonly ext = new Map<string, unknown>();

  constructor(
    readonly machine: Machine,
    readonly images: GuestImages,
    readonly symbols: SymbolTable,
    readonly services: ServiceTable,
    readonly routines: RoutineTable,
    /** Allocates a zeroed physical frame (the loader's allocator). */
    readonly allocFrame: () => number,
    /** Frames the allocator has left (commit charges are checked against it). */
    readonly framesLeft: () => number = () => Infinity,
  ) {
    this.cpu = machine.cpu;
  }

  // ============================================================================================
  // Guest memory (the current address space, at CPL 0, through the MMU; writes are traced)
  // ============================================================================================

  r8(a: number): number {
    return this.cpu.read8(a | 0);
  }
  r16(a: number): number {
    return this.cpu.read16(a | 0);
  }
  r32(a: number): number {
    return this.cpu.read32(a | 0) >>> 0;
  }
  w8(a: number, v: number): void {
    this.cpu.write8(a | 0, v);
  }
  w16(a: number, v: number): void {
    this.cpu.write16(a | 0, v);
  }
  w32(a: number, v: number): void {
    this.cpu.write32(a | 0, v | 0);
  }
  readBytes(a: number, n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.r8(a + i);
    return out;
  }
  writeBytes(a: number, bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) this.w8(a + i, bytes[i]);
  }
  /** A counted UTF-16 string (`len` bytes). */
  readWString(a: number, len: number): string {
    let s = '';
    for (let i = 0; i + 1 < len; i += 2) s += String.fromCharCode(this.r16(a + i));
    return s;
  }
  /** The text of a UNICODE_STRING at `us`. */
  readUnicodeString(us: number): string {
    const len = this.r16(us + offsetOf('UNICODE_STRING', 'Length'));
    const buf = this.r32(us + offsetOf('UNICODE_STRING', 'Buffer'));
    return this.readWString(buf, len);
  }
  field<S extends StructName>(struct: S, path: FieldPath<S>, base: number): number {
    return this.r32(base + offsetOf(struct, path));
  }
  setField<S extends StructName>(struct: S, path: FieldPath<S>, base: number, value: number): void {
    this.w32(base + offsetOf(struct, path), value);
  }

  // ============================================================================================
  // Pool
  // ============================================================================================

  /** Zeroed non-paged pool (mapped in every address space), 8-aligned. */
  allocPool(size: number): number {
    const addr = this.poolNext;
    const rounded = (size + 7) & ~7;
    if (addr + rounded > L.POOL_BASE + L.POOL_SIZE) throw new Error('guest non-paged pool exhausted');
    this.poolNext += rounded;
    for (let i = 0; i < rounded; i += 4) this.w32(addr + i, 0);
    return addr;
  }
  /** The miniature never reuses pool: freeing only marks the block (traces stay easy to read). */
  freePool(_addr: number): void {}

  // ============================================================================================
  // Processes and threads
  // ============================================================================================

  currentThread(): Thread {
    return this.current;
  }
  currentProcess(): Process {
    return this.current.process;
  }
  /** KTHREAD.PreviousMode of the current thread, as guest memory holds it. */
  previousMode(): 0 | 1 {
    return (this.r8(this.current.kthread + offsetOf('KTHREAD', 'PreviousMode')) & 1) as 0 | 1;
  }
  setCurrent(t: Thread): void {
    this.current = t;
    this.cpu.threadId = t.id;
  }

  private saveContext(): ThreadContext {
    const c = this.cpu;
    return {
      regs: Array.from(c.regs),
      eip: c.eip,
      eflags: c.getEflags(),
      selectors: Array.from(c.segSel),
      cr3: c.cr3,
    };
  }

  /** Load a thread's registers and address space; segment caches reload from the GDT. */
  private loadContext(ctx: ThreadContext): void {
    const c = this.cpu;
    if (c.cr3 !== ctx.cr3) c.writeCr(3, ctx.cr3);
    ctx.regs.forEach((v, i) => (c.regs[i] = v));
    c.eip = ctx.eip;
    c.setEflags(ctx.eflags);
    const cs = ctx.selectors[Seg.CS];
    c.setCpl(cs & 3);
    for (let s = 0; s < 6; s++) {
      const sel = ctx.selectors[s];
      c.setSegmentCache(s, sel, (sel & 0xfffc) === 0 ? null : c.readDescriptor(sel));
    }
  }

  /** Make `to` the running thread: KPCR, TSS.Esp0 and the TEB pointer follow it; an event says so. */
  switchTo(to: Thread, reason: string, context?: ThreadContext): void {
    const from = this.current;
    if (from === to) return;
    from.saved = this.saveContext();
    const pcr = L.KPCR;
    this.w32(pcr + offsetOf('KPCR', 'PrcbData.CurrentThread'), to.kthread);
    this.w32(pcr + offsetOf('KPCR', 'NtTib.Self'), to.teb);
    this.w32(L.TSS + offsetOf('KTSS', 'Esp0'), to.initialStack - 0x220);
    this.loadContext(context ?? to.saved!);
    to.saved = null;
    this.setCurrent(to);
    this.emit<'thread-switch'>({
      type: 'thread-switch',
      fromThread: from.id,
      toThread: to.id,
      fromProcess: from.process.name,
      toProcess: to.process.name,
      reason,
    });
  }

  /**
   * Run `fn` on the System worker thread (the System process's address space, PreviousMode
   * KernelMode), then switch back: work items, DriverEntry.
   */
  inSystemThread(reason: string, fn: () => void): void {
    const back = this.current;
    if (back === this.systemThread) return fn();
    const worker = this.systemThread;
    const entry: ThreadContext = {
      regs: [0, 0, 0, 0, worker.initialStack - 0x220 - 0x40, 0, 0, 0],
      eip: this.images.ntoskrnl.symbols.get('KiCallbackReturnTrampoline')!,
      eflags: 0x202,
      selectors: [L.KGDT_R3_DATA, L.KGDT_R0_CODE, L.KGDT_R0_DATA, L.KGDT_R3_DATA, L.KGDT_R0_PCR, 0],
      cr3: worker.process.pageDirectory,
    };
    this.switchTo(worker, reason, entry);
    try {
      fn();
    } finally {
      if (this.cpu.stopReason === null) this.switchTo(back, `${reason} done`);
    }
  }

  /** Queue work for when the program's thread next waits or exits (work items). */
  onIdle(fn: () => void): void {
    this.idle.push(fn);
  }
  /** Run the queued idle work now (a wait or the program's exit). */
  runIdleWork(): void {
    while (this.idle.length > 0 && this.cpu.stopReason === null) this.idle.shift()!();
  }

  /**
   * Call a guest routine (stdcall) from TypeScript in the current thread and run it to its return:
   * the return address is KiCallbackReturnTrampoline, whose escape ends the nested run.
   */
  callGuest(address: number, args: number[]): number {
    const c = this.cpu;
    const eip = c.eip;
    for (let i = args.length - 1; i >= 0; i--) c.push32(args[i]);
    c.push32(this.images.ntoskrnl.symbols.get('KiCallbackReturnTrampoline')!);
    c.eip = address | 0;
    if (!c.runNested()) throw new MachineStopped('the machine stopped inside a guest call');
    c.eip = eip;
    return c.regs[R.EAX] >>> 0;
  }

  // ============================================================================================
  // Page tables
  // ============================================================================================

  /** Map (or remap) one page in a process's address space (kernel addresses: in every one). */
  mapPage(process: Process, linear: number, frame: number, flags: number): void {
    const mem = this.machine.mem;
    const pdeAddr = process.pageDirectory + (linear >>> 22) * 4;
    let pde = mem.read32(pdeAddr);
    if (!(pde & PTE_P)) {
      pde = this.allocFrame() | PTE_P | PTE_RW | PTE_US;
      // Kernel page tables are shared: every address space gets the new directory entry.
      if (linear >>> 0 >= 0x80000000) for (const p of this.processes) mem.write32(p.pageDirectory + (linear >>> 22) * 4, pde);
      mem.write32(pdeAddr, pde);
    }
    mem.write32((pde & ~0xfff) + ((linear >>> 12) & 0x3ff) * 4, frame | PTE_P | flags);
    this.cpu.invlpg(linear | 0);
  }

  // ============================================================================================
  // Events
  // ============================================================================================

  /** Emit a guest event (stamped with seq, icount, cpl, eip, thread) when someone listens. */
  emit<T extends GuestEvent['type']>(body: EventBody<Extract<GuestEvent, { type: T }>>): void {
    const c = this.cpu;
    if (!c.tracing) return;
    c.emit({ ...c.base(), ...body } as unknown as TraceEvent);
  }

  symbolAt(address: number): string | null {
    return this.symbols.format(address);
  }

  log(message: string): void {
    if (process.env.NTFLOW_DEBUG) process.stderr.write(`[guest] ${message}\n`);
  }

  // ============================================================================================
  // The escape
  // ============================================================================================

  /** `out ESCAPE_PORT, eax`: run the TypeScript body EAX names. */
  escape(id: number): void {
    const entry = this.images.escapes.get(id);
    if (entry === undefined) {
      // Port 8Eh belongs to ntflow's own kernel code; a driver (or hand-written ring-0 code) that
      // writes an id no body has stops the machine with an outcome naming it, as a trace shows,
      // rather than a JavaScript exception.
      const at = this.symbolAt(this.cpu.eip) ?? `0x${(this.cpu.eip >>> 0).toString(16)}`;
      this.finish({
        kind: 'unsupported',
        detail: `out 8Eh (ntflow's escape port) at ${at} with EAX = 0x${id.toString(16)}, which names no service or routine body; port 8Eh is reserved for ntflow's kernel`,
      });
      return; // finish() throws MachineStopped
    }
    const c = this.cpu;
    const ebp = c.regs[R.EBP] >>> 0;
    const previousMode = this.previousMode();
    const fast = entry.kind === 'routine' && this.routines[entry.name].fastcall === true;
    const ecx = c.regs[R.ECX] >>> 0;
    const edx = c.regs[R.EDX] >>> 0;
    const call: EscapeCall = {
      k: this,
      previousMode,
      arg: (i: number) => (fast && i < 2 ? (i === 0 ? ecx : edx) : this.r32(ebp + 8 + 4 * (fast ? i - 2 : i))),
    };
    try {
      if (entry.kind === 'service') {
        const s = entry.service;
        const args = Array.from({ length: s.args }, (_, i) => this.r32(ebp + 8 + 4 * i));
        this.emit<'service-enter'>({
          type: 'service-enter',
          service: s.name,
          serviceNumber: s.number,
          previousMode: previousMode ? 'UserMode' : 'KernelMode',
          caller: this.r32(ebp + 4),
          args,
        });
        let status: number;
        try {
          status = this.services[s.name](call) >>> 0;
        } catch (e) {
          if (!(e instanceof GuestFault)) throw e;
          status = this.serviceFault(e);
        }
        c.regs[R.EAX] = status | 0;
        this.emit<'service-exit'>({ type: 'service-exit', service: s.name, serviceNumber: s.number, status, statusName: statusName(status) });
      } else {
        // A routine has no handler of its own: a fault in its body is a fault of the routine's
        // instruction (the escape), delivered through the IDT like any other (KiTrap0E, …).
        c.regs[R.EAX] = this.routines[entry.name].body(call) | 0;
      }
    } catch (e) {
      if (e instanceof MachineStopped) return; // the loop sees the stop and unwinds
      throw e;
    }
  }

  /**
   * A service body touched memory it may not (a GuestFault from the MMU): the exception is what
   * MmAccessFault makes of the access — a kernel-mode one — and the service's own exception
   * handler (its __try around the caller's buffers) returns its code as the status. An invalid
   * system address bug-checks instead (MachineStopped), whatever handler there is, as on XP.
   */
  private serviceFault(fault: GuestFault): number {
    const code = kernelAccessFault(this, fault) >>> 0;
    const store = ((fault.errorCode ?? 0) & 2) !== 0;
    this.emit<'exception-dispatch'>({
      type: 'exception-dispatch',
      code,
      codeName: statusName(code),
      address: this.cpu.eip >>> 0,
      previousMode: 'KernelMode',
      firstChance: true,
      handler: 'service',
      parameters: fault.cr2 === null ? [] : [store ? 1 : 0, fault.cr2 >>> 0],
    });
    return code;
  }

  /** Stop the machine with an outcome (exit, exception, bug check). */
  finish(outcome: Outcome): void {
    if (this.outcome === null) this.outcome = outcome;
    const detail =
      outcome.kind === 'exited'
        ? `exit status 0x${outcome.status.toString(16)}`
        : outcome.kind === 'exception'
          ? `exception 0x${outcome.code.toString(16)} (${statusName(outcome.code)}) at ${this.symbolAt(outcome.eip) ?? outcome.eip.toString(16)}`
          : outcome.kind === 'unsupported'
            ? outcome.detail
          : outcome.kind === 'bugcheck'
            ? `bug check 0x${outcome.code.toString(16)}`
            : 'instruction limit';
    this.cpu.halt({ kind: outcome.kind === 'instruction-limit' ? 'instruction-limit' : outcome.kind, detail });
    throw new MachineStopped(detail);
  }
}
