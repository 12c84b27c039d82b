// Running a built-in scenario (or any program) once and slicing its event stream the way the
// scenario tests assert on it: the symbol path, ring transitions, MSR reads, SSDT lookups,
// service enter/exit pairs, APC checks.
import { createHash } from 'node:crypto';
import { Guest, type GuestOutcome, type ProgramSource } from '../../core/index.js';
import type {
  ApcCheckEvent,
  ExceptionEvent,
  HandleLookupEvent,
  InstructionEvent,
  IrpEvent,
  MsrReadEvent,
  ProbeEvent,
  RingTransitionEvent,
  ServiceEnterEvent,
  ServiceExitEvent,
  SsdtLookupEvent,
  ThreadSwitchEvent,
  TraceEvent,
} from '../../core/events.js';
import { findScenario, scenarioSource } from '../../core/guest/scenarios.js';
import type { CpuModel } from '../../core/cpu/cpu.js';

/** Event by its `type`. */
export type Ev<T extends TraceEvent['type']> = Extract<TraceEvent, { type: T }>;

/** One service call: its enter event, the matching exit (same thread, nesting respected). */
export interface ServiceCall {
  enter: ServiceEnterEvent;
  exit: ServiceExitEvent | null;
}

export interface Run {
  name: string;
  guest: Guest;
  outcome: GuestOutcome;
  events: TraceEvent[];
  /** `module!name` (or `?` + hex) of each instruction event, index-aligned with `instructions`. */
  symbols: string[];
  instructions: InstructionEvent[];
}

export interface BootOptions {
  cpu?: CpuModel;
  program: ProgramSource;
  drivers?: ProgramSource[];
  maxInstructions?: number;
}

/** Boot a guest, collect every event of its run. */
export function runProgram(name: string, opts: BootOptions): Run {
  const guest = Guest.boot({ cpu: opts.cpu, program: opts.program, drivers: opts.drivers });
  const events: TraceEvent[] = [];
  const sub = guest.events$.subscribe((e) => events.push(e));
  let outcome: GuestOutcome;
  try {
    outcome = guest.run(opts.maxInstructions ?? 5_000_000);
  } finally {
    sub.unsubscribe();
  }
  const instructions = events.filter((e): e is InstructionEvent => e.type === 'instruction');
  checkBoundary(name, opts, outcome, instructions);
  const symbols = instructions.map((e) => symbolOf(guest, e.eip));
  return { name, guest, outcome, events, symbols, instructions };
}

/**
 * Issue L's invariant, checked on every program any test runs: no instruction at a user-range EIP
 * (below 0x80000000) ever retires at CPL 0, and a program without drivers (ring 3 only) never
 * bug-checks the system. A breach fails the test that ran the program.
 */
function checkBoundary(name: string, opts: BootOptions, outcome: GuestOutcome, instructions: readonly InstructionEvent[]): void {
  const escaped = instructions.find((e) => e.cpl === 0 && e.eip >>> 0 < 0x80000000);
  if (escaped) throw new Error(`${name}: the user-range instruction at ${(escaped.eip >>> 0).toString(16)} retired at CPL 0 (seq ${escaped.seq})`);
  if ((opts.drivers ?? []).length === 0 && outcome.kind === 'bugcheck') throw new Error(`${name}: a ring-3 program bug-checked the system: ${outcome.description}`);
}

/** Boot a built-in scenario by name and collect its events. */
export function runScenario(name: string, maxInstructions?: number): Run {
  const s = findScenario(name);
  if (!s) throw new Error(`no scenario ${name}`);
  return runProgram(name, {
    cpu: s.cpu,
    program: scenarioSource(s.program),
    drivers: s.drivers.map((d) => scenarioSource(d)),
    maxInstructions,
  });
}

export function symbolOf(guest: Guest, eip: number): string {
  const s = guest.symbols.lookup(eip);
  if (!s) return `?${(eip >>> 0).toString(16)}`;
  return s.name === '' ? `${s.module}+0x${s.offset.toString(16)}` : `${s.module}!${s.name}`; // module+0x… in a stripped image
}

/** Consecutive duplicates collapsed. */
export function collapse(xs: readonly string[]): string[] {
  const out: string[] = [];
  for (const x of xs) if (out[out.length - 1] !== x) out.push(x);
  return out;
}

/** The symbol path of the instructions between two seqs (inclusive bounds), duplicates collapsed. */
export function symbolPath(run: Run, fromSeq = 0, toSeq = Infinity): string[] {
  const xs: string[] = [];
  run.instructions.forEach((e, i) => {
    if (e.seq >= fromSeq && e.seq <= toSeq) xs.push(run.symbols[i]);
  });
  return collapse(xs);
}

export function ofType<T extends TraceEvent['type']>(events: readonly TraceEvent[], type: T): Ev<T>[] {
  return events.filter((e): e is Ev<T> => e.type === type);
}

/** Events whose seq lies in [from, to]. */
export function between(events: readonly TraceEvent[], from: number, to: number): TraceEvent[] {
  return events.filter((e) => e.seq >= from && e.seq <= to);
}

export const ringTransitions = (ev: readonly TraceEvent[]): RingTransitionEvent[] => ofType(ev, 'ring-transition');
export const msrReads = (ev: readonly TraceEvent[]): MsrReadEvent[] => ofType(ev, 'msr-read');
export const ssdtLookups = (ev: readonly TraceEvent[]): SsdtLookupEvent[] => ofType(ev, 'ssdt-lookup');
export const apcChecks = (ev: readonly TraceEvent[]): ApcCheckEvent[] => ofType(ev, 'apc-check');
export const handleLookups = (ev: readonly TraceEvent[]): HandleLookupEvent[] => ofType(ev, 'handle-lookup');
export const probes = (ev: readonly TraceEvent[]): ProbeEvent[] => ofType(ev, 'probe');
export const irps = (ev: readonly TraceEvent[]): IrpEvent[] => ofType(ev, 'irp');
export const threadSwitches = (ev: readonly TraceEvent[]): ThreadSwitchEvent[] => ofType(ev, 'thread-switch');
export const exceptions = (ev: readonly TraceEvent[]): ExceptionEvent[] => ofType(ev, 'exception');

/** service-enter / service-exit paired per thread, innermost first closed (a stack per thread). */
export function serviceCalls(ev: readonly TraceEvent[]): ServiceCall[] {
  const calls: ServiceCall[] = [];
  const open = new Map<number, ServiceCall[]>();
  for (const e of ev) {
    if (e.type === 'service-enter') {
      const c: ServiceCall = { enter: e, exit: null };
      calls.push(c);
      const stack = open.get(e.thread) ?? [];
      stack.push(c);
      open.set(e.thread, stack);
    } else if (e.type === 'service-exit') {
      const stack = open.get(e.thread) ?? [];
      const c = stack.pop();
      if (!c) throw new Error(`service-exit ${e.service} at seq ${e.seq} without an enter`);
      if (c.enter.service !== e.service) throw new Error(`service-exit ${e.service} at seq ${e.seq} closes ${c.enter.service}`);
      c.exit = e;
    }
  }
  return calls;
}

/** The calls of one service, in order. */
export function callsOf(ev: readonly TraceEvent[], service: string): ServiceCall[] {
  return serviceCalls(ev).filter((c) => c.enter.service === service);
}

/** A compact, comparable rendering of an event stream: JSON with bigints and byte arrays as text. */
export function digest(ev: readonly TraceEvent[]): string {
  const h = createHash('sha256');
  for (const e of ev) {
    h.update(
      JSON.stringify(e, (_k, v: unknown) => {
        if (typeof v === 'bigint') return `${v}n`;
        if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
        return v;
      }),
    );
    h.update('\n');
  }
  return h.digest('hex');
}

/** Guest bytes at a program or driver label (read through the current page tables). */
export function labelBytes(run: Run, module: string, label: string, n: number): number[] {
  const a = run.guest.symbols.resolve(module, label);
  if (a === undefined) throw new Error(`no ${module}!${label}`);
  return run.guest.machine.cpu.mmu.peekBytes(a, n).map((b) => (b === null ? -1 : b));
}

/** A little-endian dword at a program or driver label. */
export function labelDword(run: Run, module: string, label: string): number {
  const b = labelBytes(run, module, label, 4);
  return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
}

/** Index of the first element at or after `from` satisfying `pred`, or -1. */
export function indexFrom<T>(xs: readonly T[], from: number, pred: (x: T) => boolean): number {
  for (let i = Math.max(from, 0); i < xs.length; i++) if (pred(xs[i])) return i;
  return -1;
}

/** Whether `needle` occurs in `hay` as a subsequence (in order, gaps allowed). */
export function isSubsequence(hay: readonly string[], needle: readonly string[]): boolean {
  let i = 0;
  for (const h of hay) if (i < needle.length && h === needle[i]) i++;
  return i === needle.length;
}

/**
 * The seq window of one user-mode call of an ntdll stub: from the caller's `call` (the instruction
 * before the stub's first) to the caller's next instruction after the stub returned into it.
 * `nth` picks the nth call of that stub (0-based).
 */
export function userCallWindow(run: Run, stub: string, caller: string, nth = 0): { from: number; to: number } {
  let i = -1;
  for (let n = 0; n <= nth; n++) {
    i = indexFrom(run.symbols, i + 1, (s) => s === stub);
    if (i < 0) throw new Error(`${run.name}: no call #${nth} of ${stub}`);
    // skip the rest of this call's instructions in the stub
    if (n < nth) i = indexFrom(run.symbols, i, (s) => s === caller);
  }
  const j = indexFrom(run.symbols, i + 1, (s) => s === caller);
  if (j < 0) throw new Error(`${run.name}: ${stub} never returned into ${caller}`);
  return { from: run.instructions[i - 1].seq, to: run.instructions[j].seq };
}

/** The non-instruction events of a window, as [type, …] for order checks. */
export function eventTypes(ev: readonly TraceEvent[]): string[] {
  return ev.filter((e) => e.type !== 'instruction').map((e) => e.type);
}
