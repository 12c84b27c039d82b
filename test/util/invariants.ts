// The invariants every run of a random ring-3 program must keep (issue L), checked on the live
// event stream of the guest — what a ring-3 program can never do to real XP:
//   a. no instruction with EIP < 0x80000000 retires at CPL 0 (and, reported apart, no fault is
//      raised at CPL 0 on a user-range EIP: ring 0 jumped into user memory and the fetch failed);
//   b. the system never stops: no bug check, triple fault or machine halt (only exited, a dead
//      thread, or the instruction limit);
//   c. no JavaScript exception escapes the machine;
//   d. the event stream's seq is gapless (0 … n-1);
//   e. (extra) no instruction retiring at CPL 3 writes a kernel address (≥ 0x80000000).
import type { Subscription } from 'rxjs';
import { bugCheckName, type Guest, type GuestOutcome } from '../../core/index.js';
import type { TraceEvent } from '../../core/events.js';

/** Every run stops after this many instructions (no wall clock anywhere). */
export const INSTRUCTION_LIMIT = 200_000;
export const KERNEL_BASE = 0x80000000;

export interface Sample {
  seq: number;
  eip: number;
  cpl: number;
  bytes: string;
  /** The previous instruction's EIP and CPL (how control got there). */
  prev: string;
}

export interface Checked {
  outcome: GuestOutcome | null;
  /** A JavaScript exception that escaped Guest.run (or boot). */
  thrown: { name: string; message: string; top: string } | null;
  events: number;
  instructions: number;
  /** (d) the first gap, if any. */
  seqGap: { index: number; seq: number } | null;
  /** (a) instructions at EIP < 0x80000000 that retired at CPL 0. */
  userCpl0: number;
  userCpl0First: Sample[];
  /** (a, not retired) faults raised at CPL 0 on a user-range EIP: ring 0 jumped into user memory. */
  userCpl0Faults: number;
  userCpl0FaultFirst: { seq: number; eip: number; vector: number }[];
  /** (e) user-mode instructions that wrote a kernel address. */
  userKernelWrites: number;
  userKernelWriteFirst: { seq: number; eip: number; address: number }[];
  /** The failure classes of this run (empty: all invariants held). */
  classes: string[];
}

/** Optional observers of a checked run (tests that assert more than the invariants). */
export interface RunHooks {
  /** Every event, as it comes (before the checks count it). */
  onEvent?: (e: TraceEvent) => void;
  /** The booted guest, before it runs (and still readable after). */
  onGuest?: (g: Guest) => void;
}

const hex8 = (n: number): string => (n >>> 0).toString(16).padStart(8, '0');

/** The class of a JS exception: its name and message without addresses and byte strings. */
export function exceptionClass(name: string, message: string): string {
  const m = message.replace(/: bytes [0-9a-f ]+ at [0-9a-f]{8}$/i, '').replace(/\b[0-9a-f]{8}\b/gi, '…');
  return `js-exception ${name}: ${m}`;
}

/**
 * The class of an outcome that breaks invariant (b), or null. A bug check names the code and,
 * when its parameters carry one (0x50: parameter 3, 0x1E: parameter 2), where the kernel faulted:
 * `nt!Symbol+0xNN`, or `user address` when CPL 0 was running user memory.
 */
export function outcomeClass(o: GuestOutcome, symbolize?: (eip: number) => string | null): string | null {
  if (o.kind === 'bugcheck') {
    const code = o.code ?? 0;
    const base = `bugcheck 0x${code.toString(16).toUpperCase()} ${bugCheckName(code)}`;
    const params = /\(([0-9a-f, ]+)\)$/i.exec(o.description)?.[1].split(', ').map((x) => parseInt(x, 16)) ?? [];
    const eip = code === 0x50 ? params[2] : code === 0x1e ? params[1] : undefined;
    if (eip === undefined || !symbolize) return base;
    return `${base} at ${eip >>> 0 < KERNEL_BASE ? 'a user address' : symbolize(eip >>> 0) ?? 'a kernel address outside any routine'}`;
  }
  if (o.kind === 'exited' || o.kind === 'exception' || o.kind === 'instruction-limit') return null;
  return `system-stop ${o.kind}`;
}

/**
 * The checks of one run, fed the guest's events as they come (nothing is kept but counters and
 * the first few offenders, so long runs cost no memory). Subscribes on construction; `finish`
 * unsubscribes and names the failure classes. The bare run (runChecked) and the recorded run
 * (test/util/fuzz-recorded.ts) share it, so both check exactly the same things.
 */
export class InvariantChecker {
  private readonly c: Checked = {
    outcome: null, thrown: null, events: 0, instructions: 0, seqGap: null,
    userCpl0: 0, userCpl0First: [], userCpl0Faults: 0, userCpl0FaultFirst: [], userKernelWrites: 0, userKernelWriteFirst: [], classes: [],
  };
  private readonly sub: Subscription;

  constructor(private readonly guest: Guest, onEvent?: (e: TraceEvent) => void) {
    const c = this.c;
    // The previous instruction, formatted only for an offender (a string per instruction was 1 ms in 15).
    let prevEip = -1;
    let prevCpl = 0;
    // Effects are 'since the previous effect-carrying event': a thread switch or a ring transition
    // before an instruction lends it the kernel's writes. Only an instruction that directly follows
    // another instruction has writes of its own alone.
    let ownEffects = false;
    this.sub = guest.events$.subscribe((e: TraceEvent) => {
      if (e.seq !== c.events && c.seqGap === null) c.seqGap = { index: c.events, seq: e.seq };
      c.events++;
      onEvent?.(e);
      if (e.type !== 'instruction') {
        ownEffects = false;
        if (e.type === 'exception' && e.cpl === 0 && e.eip >>> 0 < KERNEL_BASE) {
          c.userCpl0Faults++;
          if (c.userCpl0FaultFirst.length < 4) c.userCpl0FaultFirst.push({ seq: e.seq, eip: e.eip >>> 0, vector: e.vector });
        }
        return;
      }
      c.instructions++;
      const eip = e.eip >>> 0;
      if (e.cpl === 0 && eip < KERNEL_BASE) {
        c.userCpl0++;
        if (c.userCpl0First.length < 8) c.userCpl0First.push({ seq: e.seq, eip, cpl: e.cpl, bytes: Buffer.from(e.bytes).toString('hex'), prev: prevEip < 0 ? '' : `${hex8(prevEip)}@cpl${prevCpl}` });
      }
      if (e.cpl === 3 && ownEffects) {
        const w = e.writes;
        for (let i = 0; i < w.length; i += 3) {
          if (w[i] >>> 0 >= KERNEL_BASE) {
            c.userKernelWrites++;
            if (c.userKernelWriteFirst.length < 4) c.userKernelWriteFirst.push({ seq: e.seq, eip, address: w[i] >>> 0 });
          }
        }
      }
      ownEffects = true;
      prevEip = eip;
      prevCpl = e.cpl;
    });
  }

  /** The run ended with `outcome`, or threw `thrown` (anything but undefined) out of the machine. */
  finish(outcome: GuestOutcome | null, thrown?: unknown): Checked {
    const c = this.c;
    this.sub.unsubscribe();
    c.outcome = outcome;
    if (thrown !== undefined) {
      const err = thrown instanceof Error ? thrown : new Error(String(thrown));
      const top = (err.stack ?? '').split('\n').find((l) => /^\s+at /.test(l))?.trim() ?? '';
      c.thrown = { name: err.name, message: err.message, top };
    }
    if (c.userCpl0 > 0) c.classes.push('cpl0-user-eip');
    if (c.userCpl0Faults > 0) c.classes.push('cpl0-user-fetch');
    if (c.outcome) {
      // a symbol 4 KiB or more before the address is not where it faulted (data, or the image's gaps)
      const symbols = this.guest.symbols;
      const oc = outcomeClass(c.outcome, (eip) => ((symbols.lookup(eip)?.offset ?? Infinity) < 0x1000 ? symbols.format(eip) : null));
      if (oc) c.classes.push(oc);
    }
    if (c.thrown) c.classes.push(exceptionClass(c.thrown.name, c.thrown.message));
    if (c.seqGap) c.classes.push('seq-gap');
    if (c.userKernelWrites > 0) c.classes.push('user-write-kernel');
    return c;
  }
}

/** One line about a checked run. */
export function describeChecked(c: Checked): string {
  const parts = [c.thrown ? `threw ${c.thrown.name}: ${c.thrown.message} (${c.thrown.top})` : c.outcome?.description ?? '?'];
  parts.push(`${c.instructions} instructions, ${c.events} events`);
  if (c.userCpl0) parts.push(`${c.userCpl0} user-EIP instructions at CPL 0 (first ${c.userCpl0First.map((s) => `${hex8(s.eip)} [${s.bytes}] after ${s.prev}`).join(', ')})`);
  if (c.userCpl0Faults) parts.push(`${c.userCpl0Faults} faults at CPL 0 on a user EIP (first ${c.userCpl0FaultFirst.map((f) => `vector ${f.vector} at ${hex8(f.eip)}`).join(', ')})`);
  if (c.userKernelWrites) parts.push(`${c.userKernelWrites} user-mode writes to kernel addresses (first ${c.userKernelWriteFirst.map((w) => `${hex8(w.address)} by ${hex8(w.eip)}`).join(', ')})`);
  if (c.seqGap) parts.push(`seq gap at event ${c.seqGap.index}: seq ${c.seqGap.seq}`);
  return parts.join('; ');
}

