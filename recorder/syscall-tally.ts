// The `record` summary's system calls, counted while the machine runs. They must agree with the
// rows the syscalls projection will fold from the log (analyzer/projections/syscalls.ts), so this
// applies the projection's rules to the live events, keeping only what a count and a status need:
//
//   - A call opens at a thread's first CPL-0 instruction after SYSENTER or INT 2Eh, or at
//     nt!KiSystemService reached by a CALL (a kernel Zw stub). It counts once it reaches a
//     dispatch decision: its first ssdt-lookup (in range or not). A win32k number's second
//     lookup, after the thread's conversion to a GUI thread, belongs to the same call; an entry
//     that never reaches a lookup is not a call.
//   - A service-enter that no decided, in-range dispatch on top of the thread's stack is waiting
//     for (same table and index) is a direct call of nt!NtXxx: it counts too.
//   - A call from user mode ends when its thread next runs at CPL 3; one from kernel mode when the
//     thread reaches the instruction after the entering one (for a direct call, the routine's
//     return address). Its status is EAX after the thread's last instruction before that,
//     followed through the events' register effects — what the caller got back, also for a
//     rejected number or a service without a body (neither emits a service-exit).
//
// test/analyzer-projections.test.ts compares the two on every built-in scenario, and
// test/record-summary.test.ts on a program made of the unusual cases.
import { statusName, type EventBatch, type TraceEvent } from '../core/index.js';

const EAX = 0; // RegId.EAX in effect lists

interface OpenCall {
  /** Where a kernel caller continues (-1: a user caller, ends at the return to CPL 3). */
  resume: number;
  /** Reached a dispatch decision (or is a direct call): counted. */
  counted: boolean;
  inRange: boolean | null;
  /** The decided table << 12 | index (a direct call: the routine's own number). */
  dispatched: number | null;
  entered: boolean;
}

interface ThreadCalls {
  stack: OpenCall[];
  /** The thread's previous instruction: its code id (-1 none). */
  prev: number;
  /** EAX after that instruction. */
  eax: number;
}

const NOT_ENTERING = 0;
const SYSENTER = 1;
const INT2E = 2;
const CALL = 3;
const ENTERING = { sysenter: SYSENTER, int2e: INT2E, call: CALL } as const;

const PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);

/** What an instruction's bytes do that can enter the dispatcher: sysenter, int 2Eh, a call, or nothing. */
function entering(bytes: Uint8Array): 'sysenter' | 'int2e' | 'call' | null {
  let i = 0;
  while (i < bytes.length && PREFIXES.has(bytes[i])) i++;
  const op = bytes[i];
  if (op === 0x0f && bytes[i + 1] === 0x34) return 'sysenter';
  if (op === 0xcd && bytes[i + 1] === 0x2e) return 'int2e';
  if (op === 0xe8 || op === 0x9a) return 'call';
  if (op === 0xff) {
    const reg = (bytes[i + 1] >> 3) & 7;
    if (reg === 2 || reg === 3) return 'call';
  }
  return null;
}

export class SyscallTally {
  /** System calls so far: dispatch decisions and direct Nt calls. */
  count = 0;
  /** Failing NTSTATUS names (>= 0xC0000000) of the calls that returned → how many. */
  readonly failures: Record<string, number> = {};
  private eax: number;
  private readonly threads = new Map<number, ThreadCalls>();
  private curThread = -1;
  private cur!: ThreadCalls;

  /** `kiSystemService`: nt!KiSystemService's address; `eax`: EAX before the first event. */
  constructor(
    private readonly kiSystemService: number,
    eax: number,
  ) {
    this.eax = eax >>> 0;
  }

  /** The distinct instructions seen (batches list each once): address, level, length, how it enters. */
  private readonly codeEip: number[] = [];
  private readonly codeCpl: number[] = [];
  private readonly codeLen: number[] = [];
  private readonly codeEntering: number[] = [];

  /** One batch of the machine's events, instructions and the others merged by seq. */
  addBatch(b: EventBatch): void {
    for (const c of b.newCode) {
      this.codeEip[c.id] = c.eip;
      this.codeCpl[c.id] = c.cpl;
      this.codeLen[c.id] = c.bytes.length;
      const how = entering(c.bytes);
      this.codeEntering[c.id] = how === null ? NOT_ENTERING : ENTERING[how];
    }
    const others = b.others;
    let o = 0;
    const ends = b.effectsEnd;
    const eff = b.effects;
    for (let i = 0; i < b.count; i++) {
      const seq = b.seq[i];
      while (o < others.length && others[o].seq < seq) this.other(others[o++]);
      // Registers come first in packed effects, in RegId order: EAX, if written, is the first item
      // (tag 0x00, 0x20 or 0x40 with id 0).
      const start = i === 0 ? 0 : ends[i - 1];
      let eax = -1;
      if (start < ends[i] && (eff[start] & 0x9f) === 0) {
        const tag = eff[start];
        eax = tag === 0x40 ? eff[start + 1] : tag === 0x20 ? eff[start + 1] | (eff[start + 2] << 8) : (eff[start + 1] | (eff[start + 2] << 8) | (eff[start + 3] << 16) | (eff[start + 4] << 24)) >>> 0;
      }
      this.instruction(b.thread[i], b.code[i], eax);
    }
    while (o < others.length) this.other(others[o++]);
  }

  private thread(id: number): ThreadCalls {
    if (id !== this.curThread) {
      this.curThread = id;
      let s = this.threads.get(id);
      if (!s) this.threads.set(id, (s = { stack: [], prev: -1, eax: this.eax }));
      this.cur = s;
    }
    return this.cur;
  }

  /** An instruction retired: its code id, and EAX after it (-1: unchanged). */
  private instruction(thread: number, code: number, eax: number): void {
    const s = this.thread(thread);
    const stack = s.stack;
    const cpl = this.codeCpl[code];
    const eip = this.codeEip[code];
    if (stack.length !== 0) {
      if (cpl === 3) while (stack.length !== 0) this.close(stack.pop()!, s.eax);
      else if (stack[stack.length - 1].resume === eip) this.close(stack.pop()!, s.eax);
    }
    if (s.prev >= 0 && cpl === 0) {
      const how = this.codeEntering[s.prev];
      if (how === SYSENTER || how === INT2E || (how === CALL && eip === this.kiSystemService)) {
        stack.push({ resume: this.codeCpl[s.prev] === 3 ? -1 : (this.codeEip[s.prev] + this.codeLen[s.prev]) >>> 0, counted: false, inRange: null, dispatched: null, entered: false });
      }
    }
    if (eax >= 0) this.eax = eax;
    s.prev = code;
    s.eax = this.eax;
  }

  private other(e: TraceEvent): void {
    const s = this.thread(e.thread);
    switch (e.type) {
      case 'exception':
        this.effects(e.regs);
        return;
      case 'ssdt-lookup': {
        let top = s.stack[s.stack.length - 1];
        if (!top || top.entered) s.stack.push((top = { resume: -1, counted: false, inRange: null, dispatched: null, entered: false }));
        if (!top.counted) {
          top.counted = true;
          this.count++;
        }
        top.inRange = e.inRange;
        top.dispatched = (e.tableIndex << 12) | e.serviceIndex;
        return;
      }
      case 'service-enter': {
        const top = s.stack[s.stack.length - 1];
        if (top && top.inRange === true && !top.entered && top.dispatched === e.serviceNumber) top.entered = true;
        else {
          s.stack.push({ resume: e.caller >>> 0, counted: true, inRange: null, dispatched: e.serviceNumber, entered: true });
          this.count++;
        }
        return;
      }
      default:
        return;
    }
  }

  private effects(regs: readonly number[]): void {
    for (let i = 0; i < regs.length; i += 2) if (regs[i] === EAX) this.eax = regs[i + 1] >>> 0;
  }

  private close(call: OpenCall, status: number): void {
    if (!call.counted || status < 0x80000000) return; // NT_SUCCESS: successes and informational statuses
    const name = statusName(status);
    this.failures[name] = (this.failures[name] ?? 0) + 1;
  }
}
