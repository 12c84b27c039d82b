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
import { statusName, type TraceEvent } from '../core/index.js';

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
  /** The thread's previous instruction: its bytes, address and privilege level. */
  prev: Uint8Array | null;
  prevEip: number;
  prevCpl: number;
  /** EAX after that instruction. */
  eax: number;
}

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

  add(e: TraceEvent): void {
    if (e.thread !== this.curThread) {
      this.curThread = e.thread;
      let s = this.threads.get(e.thread);
      if (!s) this.threads.set(e.thread, (s = { stack: [], prev: null, prevEip: 0, prevCpl: 0, eax: this.eax }));
      this.cur = s;
    }
    const s = this.cur;
    switch (e.type) {
      case 'instruction': {
        const stack = s.stack;
        if (stack.length !== 0) {
          if (e.cpl === 3) while (stack.length !== 0) this.close(stack.pop()!, s.eax);
          else if (stack[stack.length - 1].resume === e.eip) this.close(stack.pop()!, s.eax);
        }
        if (s.prev !== null && e.cpl === 0) {
          const how = entering(s.prev);
          if (how === 'sysenter' || how === 'int2e' || (how === 'call' && e.eip === this.kiSystemService)) {
            stack.push({ resume: s.prevCpl === 3 ? -1 : (s.prevEip + s.prev.length) >>> 0, counted: false, inRange: null, dispatched: null, entered: false });
          }
        }
        this.effects(e.regs);
        s.prev = e.bytes;
        s.prevEip = e.eip;
        s.prevCpl = e.cpl;
        s.eax = this.eax;
        return;
      }
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
