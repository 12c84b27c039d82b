// calls: the call tree of every thread, from the instructions' control flow. A per-thread stack of
// frames lives in the subscription; a frame opens at the callee's first instruction and closes at
// the instruction that left it:
//   call → ret          a ret closes the frames down to the one whose return address it reached
//   sysenter → sysexit  and int n / an exception → iretd: edges between rings; SYSEXIT or IRETD
//                       closes down to the innermost ring-entry frame (XP leaves by SYSEXIT or
//                       IRETD whatever the entry)
//   callback            code the kernel's TypeScript side ran without a call instruction: a
//                       thread's first instruction (DriverEntry, the program's start), a driver's
//                       dispatch routine, a work item. Seen as control arriving somewhere else than
//                       after a plain instruction. It closes at a ret that matches no return
//                       address on the stack (into KiCallbackReturnTrampoline); the interrupted code
//                       later resumes where it stood, which is then not a new callback.
import { Observable, type OperatorFunction } from 'rxjs';
import { splitSymbol } from '../../core/index.js';
import { Flow, type LogContext, type LogEvent } from './log.js';
import type { Projection, ProjectionTable } from './table.js';

export const CALLS_TABLE: ProjectionTable = {
  name: 'calls',
  comment: 'the call tree of each thread: one row per frame, from call/ret, sysenter/sysexit, int/iretd, exceptions and kernel callbacks (analyzer/projections/calls.ts)',
  columns: [
    { name: 'id', type: 'INTEGER', notNull: true, comment: 'frame number within the session, 1, 2, … in the order frames opened' },
    { name: 'parent_id', type: 'INTEGER', comment: 'the calling frame on the same thread (NULL for a thread\'s outermost frames)' },
    { name: 'depth', type: 'INTEGER', notNull: true, comment: 'frames below it on its thread (0 outermost)' },
    { name: 'thread_id', type: 'INTEGER', notNull: true, comment: 'the guest thread' },
    { name: 'enter_seq', type: 'INTEGER', notNull: true, comment: "the instruction that entered it (call, sysenter, int; the exception event; a callback's first instruction)" },
    { name: 'exit_seq', type: 'INTEGER', comment: 'the instruction that left it (ret, sysexit, iretd; for a frame closed with its caller, the caller\'s); NULL when still open at the end' },
    { name: 'kind', type: 'TEXT', notNull: true, comment: "how it was entered: 'call', 'sysenter', 'int', 'exception' or 'callback'" },
    { name: 'address', type: 'INTEGER', notNull: true, comment: "the callee's first instruction" },
    { name: 'symbol', type: 'TEXT', comment: 'module!Name of the callee (module!Name+0xN when it is not at a symbol\'s start; NULL outside every module)' },
    { name: 'module', type: 'TEXT', comment: "the callee's module (nt, ntdll, SharedUserData, a driver's or the program's name)" },
  ],
  key: ['id'],
};

export const CALLS: Projection = { name: 'calls', version: 1, table: CALLS_TABLE };

const enum Kind {
  Call,
  Sysenter,
  Int,
  Exception,
  Callback,
}
const KIND_NAMES = ['call', 'sysenter', 'int', 'exception', 'callback'];

interface Frame {
  id: number;
  parentId: number | null;
  depth: number;
  enterSeq: number;
  kind: Kind;
  /** Where a ret leaves it (call frames), -1 otherwise. */
  retAddr: number;
  /** Callback frames: where the interrupted code resumes. */
  resume: number;
  code: number;
}

interface ThreadState {
  frames: Frame[];
  prevSeq: number;
  prevCode: number;
  /** An exception was delivered on this thread since its last instruction (the event's seq). */
  exceptionSeq: number;
  /** Resume points of callbacks that already returned. */
  resumes: number[];
}

export function foldCalls(ctx: LogContext): OperatorFunction<LogEvent, unknown[]> {
  return (log$) =>
    new Observable<unknown[]>((subscriber) => {
      const { code } = ctx;
      const threads = new Map<number, ThreadState>();
      let nextId = 1;
      let curThread = -1;
      let ts!: ThreadState;
      let thread = 0;
      const row = (f: Frame, exitSeq: number | null): unknown[] => {
        const symbol = code.symbol[f.code];
        return [f.id, f.parentId, f.depth, thread, f.enterSeq, exitSeq, KIND_NAMES[f.kind], code.eip[f.code], symbol, symbol ? splitSymbol(symbol).module : null];
      };
      const push = (kind: Kind, enterSeq: number, c: number, retAddr = -1, resume = -1) => {
        const top = ts.frames[ts.frames.length - 1];
        ts.frames.push({ id: nextId++, parentId: top ? top.id : null, depth: ts.frames.length, enterSeq, kind, retAddr, resume, code: c });
      };
      /** Close the frames from the top down to index k, left by the thread's previous instruction. */
      const closeTo = (k: number) => {
        while (ts.frames.length > k) subscriber.next(row(ts.frames.pop()!, ts.prevSeq));
      };

      const sub = log$.subscribe({
        next(e) {
          if (e.thread !== curThread) {
            curThread = thread = e.thread;
            ts = threads.get(curThread)!;
            if (!ts) threads.set(curThread, (ts = { frames: [], prevSeq: -1, prevCode: -1, exceptionSeq: -1, resumes: [] }));
          }
          if (e.type !== 'instruction') {
            if (e.type === 'exception') ts.exceptionSeq = e.seq;
            return;
          }
          if (e.stretch) {
            // Plain instructions and jumps, each after the one before: no frame opens or closes.
            ts.prevSeq = e.seq;
            ts.prevCode = e.code;
            return;
          }
          const c = e.code;
          const prev = ts.prevCode;
          const eip = e.eip;
          if (prev < 0) push(Kind.Callback, e.seq, c);
          else if (ts.exceptionSeq >= 0) {
            push(Kind.Exception, ts.exceptionSeq, c);
            ts.exceptionSeq = -1;
          } else {
            const next = (code.eip[prev] + code.length[prev]) >>> 0;
            const frames = ts.frames;
            switch (code.flow[prev]) {
              case Flow.Next:
                if (eip !== next) {
                  let k = frames.length - 1;
                  while (k >= 0 && !(frames[k].kind === Kind.Callback && frames[k].resume === eip)) k--;
                  if (ts.resumes.length && ts.resumes[ts.resumes.length - 1] === eip) ts.resumes.pop();
                  else if (k >= 0) closeTo(k);
                  else push(Kind.Callback, e.seq, c, -1, next);
                }
                break;
              case Flow.Call:
                push(Kind.Call, ts.prevSeq, c, next);
                break;
              case Flow.Sysenter:
                push(Kind.Sysenter, ts.prevSeq, c);
                break;
              case Flow.Int:
                push(Kind.Int, ts.prevSeq, c);
                break;
              case Flow.Ret: {
                let k = frames.length - 1;
                while (k >= 0 && frames[k].retAddr !== eip) k--;
                if (k >= 0) closeTo(k);
                else if (frames.length && frames[frames.length - 1].kind === Kind.Callback) {
                  const f = frames[frames.length - 1];
                  closeTo(frames.length - 1);
                  if (f.resume >= 0) {
                    ts.resumes.push(f.resume);
                    if (ts.resumes.length > 64) ts.resumes.shift();
                  }
                }
                break;
              }
              case Flow.Sysexit:
              case Flow.Iret: {
                let k = frames.length - 1;
                while (k >= 0 && frames[k].kind !== Kind.Sysenter && frames[k].kind !== Kind.Int && frames[k].kind !== Kind.Exception) k--;
                if (k >= 0) closeTo(k);
                break;
              }
            }
          }
          ts.prevSeq = e.seq;
          ts.prevCode = c;
        },
        error: (err) => subscriber.error(err),
        complete: () => {
          for (const [t, s] of threads) {
            thread = t;
            for (const f of s.frames) subscriber.next(row(f, null));
          }
          subscriber.complete();
        },
      });
      return sub;
    });
}
