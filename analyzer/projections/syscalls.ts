// syscalls: one row per system service call — every dispatch through the SSDT (including a number
// the limit check rejected) and every direct call of an nt!Nt* routine — paired from the log by a
// per-thread stack held in the subscription (like Perfetto's slice tracker pairs begin/end).
//
// How a call is recognised (at the first kernel instruction after the entering instruction):
//   sysenter   the previous instruction of the thread was SYSENTER
//   int2e      it was INT 2Eh
//   zw-kernel  it was a CALL and this instruction is nt!KiSystemService's first (a kernel Zw stub:
//              pushfd; push 8; call KiSystemService)
//   nt-direct  a service-enter (an Nt routine's body starting) that no open dispatch on the thread
//              is waiting for: a driver called nt!NtXxx itself
// The ssdt-lookup events that follow attach to the innermost open call of the thread: the last
// one is the dispatch decision (a win32k number is looked up twice: rejected, then after the
// thread's conversion to a GUI thread, accepted). An entry with no lookup at all is not a dispatch
// and gives no row. The service-enter of the dispatched number gives PreviousMode as the routine
// read it (through an SSDT hook too: the hook's call of the original is absorbed, not a new row).
//
// When the call ends: a call from user mode when the thread next runs an instruction at CPL 3
// (after SYSEXIT or IRETD — also when an APC redirects the return to KiUserApcDispatcher); a call
// from kernel mode when the thread reaches the instruction after the one that entered (the Zw
// stub's `ret`, the driver's instruction after `call nt!NtXxx`). exit_seq is the returning
// instruction (sysexit, iretd, the `jmp edx` of the kernel return after KiSystemCallExitBranch, the routine's ret).
//
// The status is what the caller got back: EAX after exit_seq, read from the recorded effects —
// principled for every kind of call, including a rejected number (KiSystemService puts
// STATUS_INVALID_SYSTEM_SERVICE in EAX itself; no Nt routine runs, so there is no service-exit).
// A call that never returned (NtTerminateProcess, a recording cut short) has NULL exit and status.
import { Observable, type OperatorFunction } from 'rxjs';
import { serviceByNumber, statusName } from '../../core/index.js';
import { COLUMN, Flow, type LogContext, type LogEvent } from './log.js';
import type { Projection, ProjectionTable } from './table.js';

export const SYSCALLS_TABLE: ProjectionTable = {
  name: 'syscalls',
  comment:
    'one row per system service call: each dispatch through the SSDT (a number rejected by the limit check too) and each direct call of an nt!Nt* routine, paired from the log (analyzer/projections/syscalls.ts)',
  columns: [
    { name: 'id', type: 'INTEGER', notNull: true, comment: 'call number within the session, 1, 2, … in enter_seq order' },
    { name: 'parent_id', type: 'INTEGER', comment: "the enclosing call on the same thread (a driver's call made while serving a program's call); NULL at the top" },
    { name: 'enter_seq', type: 'INTEGER', notNull: true, comment: 'first event of the entering instruction: the SYSENTER (its MSR reads), the INT 2Eh, the Zw stub\'s call nt!KiSystemService, or the driver\'s call nt!NtXxx' },
    { name: 'exit_seq', type: 'INTEGER', comment: "the instruction that returned control to the caller: SYSEXIT, IRETD, the kernel return's jmp edx to a Zw stub, the Nt routine's ret (NULL: never returned)" },
    { name: 'thread_id', type: 'INTEGER', notNull: true, comment: 'the guest thread that made the call' },
    { name: 'process', type: 'TEXT', notNull: true, comment: "the image name of that thread's process (from thread-switch events; 'System' for system threads)" },
    { name: 'service_number', type: 'INTEGER', comment: 'the number the caller put in EAX, as given (0x4019 stays 0x4019: the dispatcher ignores bits 14-15 and runs table 0\'s 0x19); for nt-direct the routine\'s own number' },
    { name: 'name', type: 'TEXT', comment: 'the Nt name (NtWriteFile, also when reached through ZwWriteFile); NULL when the limit check rejected the number' },
    { name: 'caller_cpl', type: 'INTEGER', notNull: true, comment: 'privilege level of the entering instruction (3 a program, 0 a driver or the kernel)' },
    { name: 'entry', type: 'TEXT', comment: "how it entered: 'sysenter', 'int2e', 'zw-kernel' (a kernel Zw stub's call into KiSystemService) or 'nt-direct' (a call of nt!NtXxx without the dispatcher)" },
    { name: 'previous_mode', type: 'TEXT', comment: "'UserMode' or 'KernelMode': KTHREAD.PreviousMode as the Nt routine read it (service-enter); when no routine ran (a rejected number, a service without a body) the mode KiSystemService set from the caller's CS" },
    { name: 'status', type: 'INTEGER', comment: 'the NTSTATUS the caller got back (EAX after exit_seq), unsigned 32-bit; NULL when it never returned' },
    { name: 'status_name', type: 'TEXT', comment: 'its name (STATUS_SUCCESS, STATUS_INVALID_HANDLE, …)' },
    { name: 'instructions', type: 'INTEGER', comment: 'instructions retired from enter_seq to exit_seq inclusive, on every thread (a work item run meanwhile counts); NULL when it never returned' },
  ],
  key: ['id'],
};

export const SYSCALLS: Projection = { name: 'syscalls', version: 1, table: SYSCALLS_TABLE };

/** A handle lookup made while the call's routine ran. */
export interface HandleUse {
  handle: number;
  table: string;
  status: number;
  objectType: string | null;
}

/** A syscalls row with what syscall_args needs besides. */
export interface SyscallRecord {
  id: number;
  parentId: number | null;
  enterSeq: number;
  exitSeq: number | null;
  threadId: number;
  process: string;
  serviceNumber: number | null;
  name: string | null;
  callerCpl: number;
  entry: string | null;
  previousMode: string | null;
  status: number | null;
  statusName: string | null;
  instructions: number | null;
  /** The routine's arguments (service-enter), null when no routine ran. */
  args: number[] | null;
  handles: HandleUse[];
}

/** A row of the `syscalls` table as SQLite returns it (SELECT *): what readers of the projection get. */
export interface SyscallTableRow {
  session_id: number;
  id: number;
  parent_id: number | null;
  enter_seq: number;
  exit_seq: number | null;
  thread_id: number;
  process: string;
  service_number: number | null;
  name: string | null;
  caller_cpl: number;
  entry: string | null;
  previous_mode: string | null;
  status: number | null;
  status_name: string | null;
  instructions: number | null;
}

export function syscallRow(r: SyscallRecord): unknown[] {
  return [r.id, r.parentId, r.enterSeq, r.exitSeq, r.threadId, r.process, r.serviceNumber, r.name, r.callerCpl, r.entry, r.previousMode, r.status, r.statusName, r.instructions];
}

interface Open {
  order: number;
  parent: Open | null;
  enterSeq: number;
  enterIcount: number;
  exitSeq: number | null;
  exitIcount: number;
  thread: number;
  entry: string | null;
  callerCpl: number;
  /** Kernel callers: the address the caller continues at. */
  resume: number;
  serviceNumber: number | null;
  /** What the dispatcher made of it: table << 12 | index (the routine's own number when it ran). */
  dispatched: number | null;
  inRange: boolean | null;
  entered: boolean;
  bodyDone: boolean;
  name: string | null;
  previousMode: string | null;
  args: number[] | null;
  handles: HandleUse[];
}

const RING = 16; // recent calls remembered per thread (to find a direct Nt call's call instruction)

interface ThreadState {
  stack: Open[];
  prevSeq: number;
  prevIcount: number;
  prevCode: number;
  /** First event of the previous instruction (a SYSENTER's MSR reads come before it retires). */
  prevFirst: number;
  /** Recent calls: return address, seq, icount, cpl — RING entries, newest at `ringAt - 1`. */
  ring: Float64Array;
  ringAt: number;
}

const SE = COLUMN['service-enter'];
const SX = COLUMN['service-exit'];
const SL = COLUMN['ssdt-lookup'];
const HL = COLUMN['handle-lookup'];
const TS = COLUMN['thread-switch'];

/** The fold: the log in, one SyscallRecord per call out (at the end, in id order). */
export function foldSyscalls(ctx: LogContext): OperatorFunction<LogEvent, SyscallRecord> {
  return (log$) =>
    new Observable<SyscallRecord>((subscriber) => {
      const { code } = ctx;
      const kiSystemService = ctx.symbolAddress('nt', 'KiSystemService') ?? -1;
      const threads = new Map<number, ThreadState>();
      const processOf = new Map<number, string>();
      const all: Open[] = [];
      let order = 0;
      let pendingFirst = -1; // first non-instruction event since the last instruction
      let curThread = -1;
      let ts!: ThreadState;
      const state = (thread: number): ThreadState => {
        let s = threads.get(thread);
        if (!s) threads.set(thread, (s = { stack: [], prevSeq: -1, prevIcount: 0, prevCode: -1, prevFirst: -1, ring: new Float64Array(RING * 4), ringAt: 0 }));
        return s;
      };
      const open = (s: ThreadState, thread: number, o: Partial<Open> & { enterSeq: number; enterIcount: number; callerCpl: number }): Open => {
        const rec: Open = {
          order: order++,
          parent: s.stack.length ? s.stack[s.stack.length - 1] : null,
          exitSeq: null,
          exitIcount: 0,
          thread,
          entry: null,
          resume: -1,
          serviceNumber: null,
          dispatched: null,
          inRange: null,
          entered: false,
          bodyDone: false,
          name: null,
          previousMode: null,
          args: null,
          handles: [],
          ...o,
        };
        s.stack.push(rec);
        all.push(rec);
        return rec;
      };
      /** Close the stack's calls from the top down to index k, returned by the thread's previous instruction. */
      const closeTo = (s: ThreadState, k: number) => {
        while (s.stack.length > k) {
          const o = s.stack.pop()!;
          o.exitSeq = s.prevSeq;
          o.exitIcount = s.prevIcount;
        }
      };
      const innermostRunning = (s: ThreadState): Open | undefined => {
        for (let k = s.stack.length - 1; k >= 0; k--) if (s.stack[k].entered && !s.stack[k].bodyDone) return s.stack[k];
        return undefined;
      };

      const sub = log$.subscribe({
        next(e) {
          if (e.thread !== curThread) {
            curThread = e.thread;
            ts = state(curThread);
          }
          if (e.type === 'instruction') {
            if (e.stretch) {
              // Plain instructions and jumps at one level, none at a caller's return point: no call opens or ends.
              ts.prevFirst = e.seq;
              ts.prevSeq = e.seq;
              ts.prevIcount = e.icount;
              ts.prevCode = e.code;
              return;
            }
            const c = e.code;
            const prev = ts.prevCode;
            // 1. The end of calls: back at CPL 3, or at a kernel caller's next instruction.
            if (ts.stack.length !== 0) {
              if (e.cpl === 3) closeTo(ts, 0);
              else if (ts.stack[ts.stack.length - 1].resume === e.eip) closeTo(ts, ts.stack.length - 1);
            }
            // 2. The start of a dispatch, from the instruction that got here.
            if (prev >= 0 && e.cpl === 0) {
              const f = code.flow[prev];
              let entry: string | null = null;
              if (f === Flow.Sysenter) entry = 'sysenter';
              else if (f === Flow.Int && code.vector[prev] === 0x2e) entry = 'int2e';
              else if (f === Flow.Call && e.eip === kiSystemService) entry = 'zw-kernel';
              if (entry !== null) {
                const callerCpl = code.cpl[prev];
                const first = entry === 'zw-kernel' ? ts.prevSeq : ts.prevFirst;
                open(ts, curThread, {
                  enterSeq: first,
                  enterIcount: ts.prevIcount,
                  callerCpl,
                  entry,
                  // SYSENTER returns through the trap frame; from a kernel caller, to the next instruction
                  resume: callerCpl === 3 ? -1 : (code.eip[prev] + code.length[prev]) >>> 0,
                });
              }
            }
            // 3. Remember calls (a direct Nt call is recognised later, at its service-enter).
            if (code.flow[c] === Flow.Call) {
              const at = (ts.ringAt % RING) * 4;
              ts.ring[at] = (e.eip + code.length[c]) >>> 0;
              ts.ring[at + 1] = e.seq;
              ts.ring[at + 2] = e.icount;
              ts.ring[at + 3] = e.cpl;
              ts.ringAt++;
            }
            ts.prevFirst = pendingFirst >= 0 ? pendingFirst : e.seq;
            pendingFirst = -1;
            ts.prevSeq = e.seq;
            ts.prevIcount = e.icount;
            ts.prevCode = c;
            return;
          }
          const row = e.row!;
          switch (e.type) {
            case 'thread-switch':
              processOf.set(row[TS.from_thread] as number, row[TS.from_process] as string);
              processOf.set(row[TS.to_thread] as number, row[TS.to_process] as string);
              return; // not an event of the next instruction
            case 'ssdt-lookup': {
              let top = ts.stack[ts.stack.length - 1];
              // A lookup with no entry seen (should not happen): a row of its own, entry unknown.
              if (!top || top.entered) top = open(ts, curThread, { enterSeq: e.seq, enterIcount: e.icount, callerCpl: 0 });
              top.serviceNumber = row[SL.service_number] as number;
              top.dispatched = ((row[SL.table_index] as number) << 12) | (row[SL.service_index] as number);
              top.inRange = row[SL.in_range] === 1;
              break;
            }
            case 'service-enter': {
              const n = row[SE.service_number] as number;
              const top = ts.stack[ts.stack.length - 1];
              let o: Open;
              if (top && top.inRange === true && !top.entered && top.dispatched === n) o = top;
              else {
                // A direct call: find the call instruction whose return address is the routine's caller.
                const caller = row[SE.caller] as number;
                let enterSeq = e.seq;
                let enterIcount = e.icount;
                let callerCpl = e.cpl;
                for (let k = 1; k <= Math.min(RING, ts.ringAt); k++) {
                  const at = ((ts.ringAt - k) % RING) * 4;
                  if (ts.ring[at] === caller) {
                    enterSeq = ts.ring[at + 1];
                    enterIcount = ts.ring[at + 2];
                    callerCpl = ts.ring[at + 3];
                    break;
                  }
                }
                o = open(ts, curThread, { enterSeq, enterIcount, callerCpl, entry: 'nt-direct', resume: caller, serviceNumber: n, dispatched: n });
              }
              o.entered = true;
              o.name = row[SE.service] as string;
              o.previousMode = row[SE.previous_mode] as string;
              o.args = JSON.parse(row[SE.args] as string) as number[];
              break;
            }
            case 'service-exit': {
              const o = innermostRunning(ts);
              if (o && o.dispatched === row[SX.service_number]) o.bodyDone = true;
              break;
            }
            case 'handle-lookup': {
              const o = innermostRunning(ts);
              if (o) o.handles.push({ handle: row[HL.handle] as number, table: row[HL.handle_table] as string, status: row[HL.status] as number, objectType: row[HL.object_type] as string | null });
              break;
            }
          }
          if (pendingFirst < 0) pendingFirst = e.seq;
        },
        error: (err) => subscriber.error(err),
        complete: () => {
          try {
            // Number the calls in enter order; drop entries that never reached a dispatch decision.
            const kept = all.filter((o) => o.entry === 'nt-direct' || o.inRange !== null).sort((a, b) => a.enterSeq - b.enterSeq || a.order - b.order);
            const ids = new Map<Open, number>();
            kept.forEach((o, i) => ids.set(o, i + 1));
            for (const o of kept) {
              let p = o.parent;
              while (p && !ids.has(p)) p = p.parent;
              const status = o.exitSeq === null ? null : ctx.registerAfter(o.exitSeq, 0);
              const name = o.inRange === false ? null : o.name ?? (o.dispatched === null ? null : serviceByNumber(o.dispatched)?.name ?? null);
              subscriber.next({
                id: ids.get(o)!,
                parentId: p ? ids.get(p)! : null,
                enterSeq: o.enterSeq,
                exitSeq: o.exitSeq,
                threadId: o.thread,
                process: processOf.get(o.thread) ?? 'System',
                serviceNumber: o.serviceNumber,
                name,
                callerCpl: o.callerCpl,
                entry: o.entry,
                previousMode: o.previousMode ?? (o.callerCpl === 3 ? 'UserMode' : 'KernelMode'),
                status,
                statusName: status === null ? null : statusName(status),
                instructions: o.exitSeq === null ? null : o.exitIcount + 1 - o.enterIcount,
                args: o.args,
                handles: o.handles,
              });
            }
            subscriber.complete();
          } catch (err) {
            subscriber.error(err);
          }
        },
      });
      return sub;
    });
}
