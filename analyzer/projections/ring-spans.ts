// ring_spans: each thread's timeline as spans of one privilege level — the maximal runs of
// consecutive events of one thread at one CPL. A span ends where the CPU changes ring or switches
// to another thread (the thread's next span starts when it runs again).
import { Observable, type OperatorFunction } from 'rxjs';
import type { LogContext, LogEvent } from './log.js';
import type { Projection, ProjectionTable } from './table.js';

export const RING_SPANS_TABLE: ProjectionTable = {
  name: 'ring_spans',
  comment: "each thread's timeline in privilege levels: one row per maximal run of consecutive events of one thread at one CPL",
  columns: [
    { name: 'thread_id', type: 'INTEGER', notNull: true, comment: 'the guest thread' },
    { name: 'start_seq', type: 'INTEGER', notNull: true, comment: 'its first event' },
    { name: 'end_seq', type: 'INTEGER', notNull: true, comment: 'its last event (inclusive)' },
    { name: 'cpl', type: 'INTEGER', notNull: true, comment: "the privilege level (0 kernel, 3 user): an instruction's own, another event's cpl column" },
    { name: 'instructions', type: 'INTEGER', notNull: true, comment: 'instructions retired in it' },
  ],
  key: ['start_seq'],
};

export const RING_SPANS: Projection = { name: 'ring_spans', version: 1, table: RING_SPANS_TABLE };

export function foldRingSpans(_ctx: LogContext): OperatorFunction<LogEvent, unknown[]> {
  return (log$) =>
    new Observable<unknown[]>((subscriber) => {
      let thread = -1;
      let cpl = -1;
      let start = -1;
      let end = -1;
      let instructions = 0;
      const sub = log$.subscribe({
        next(e) {
          if (e.thread !== thread || e.cpl !== cpl) {
            if (start >= 0) subscriber.next([thread, start, end, cpl, instructions]);
            thread = e.thread;
            cpl = e.cpl;
            start = e.seq;
            instructions = 0;
          }
          end = e.seq;
          if (e.type === 'instruction') instructions += e.count;
        },
        error: (err) => subscriber.error(err),
        complete: () => {
          if (start >= 0) subscriber.next([thread, start, end, cpl, instructions]);
          subscriber.complete();
        },
      });
      return sub;
    });
}
