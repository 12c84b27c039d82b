// The JSON Trace Event Format (chrome://tracing, ui.perfetto.dev's JSON importer): B/E slices per
// thread, i instants, M metadata naming processes and threads, s/t/f flows. Written as it goes:
// `{"traceEvents":[` then one event per line, then the metadata keys — never one whole string.
//
// `ts` is in the format's microseconds; ntflow puts the instruction count there (1 µs on screen =
// 1 guest instruction) and says so in "otherData". A thread's system calls need not nest with its
// frames (see model.ts), so they go on a companion thread id of their own, named after the thread.
// Flow events bind to the slice enclosing them (Perfetto's importer, and Chrome's when cat, pid,
// tid and ts match the slice's): `s` at the system call's B, `t` at its service routine's B, `f`
// (bp "e", bind to enclosing) at the return instant.
import { ChunkedText } from './chunked.js';
import { readTimeline, TS_UNIT, type FlowRef, type Timeline } from './model.js';
import type { ExportRequest, ExportSink, ExportStats } from './types.js';

/** The companion tid of a thread's system-call lane (a tid the guest never uses: guest tids are below 0x10000). */
export const syscallLaneTid = (tid: number): number => 0x100000 + tid;

export function exportChromeJson(req: ExportRequest, sink: ExportSink): ExportStats {
  return writeChromeJson(readTimeline(req.db, req.sessionId, req.syscallId), sink);
}

export function writeChromeJson(timeline: Timeline, sink: ExportSink): ExportStats {
  const out = new ChunkedText(sink);
  let count = 0;
  const put = (ev: object): void => {
    out.write((count++ === 0 ? '\n' : ',\n') + JSON.stringify(ev));
  };
  out.write('{"traceEvents":[');

  const pidOf = new Map(timeline.threads.map((t) => [t.tid, t.pid]));
  for (const p of timeline.processes) put({ ph: 'M', name: 'process_name', pid: p.pid, tid: 0, ts: 0, args: { name: p.name } });
  let sort = 0;
  for (const t of timeline.threads) {
    put({ ph: 'M', name: 'thread_name', pid: t.pid, tid: t.tid, ts: 0, args: { name: t.name } });
    put({ ph: 'M', name: 'thread_sort_index', pid: t.pid, tid: t.tid, ts: 0, args: { sort_index: sort++ } });
    if (timeline.syscallThreads.has(t.tid)) {
      put({ ph: 'M', name: 'thread_name', pid: t.pid, tid: syscallLaneTid(t.tid), ts: 0, args: { name: `${t.name}: system calls` } });
      put({ ph: 'M', name: 'thread_sort_index', pid: t.pid, tid: syscallLaneTid(t.tid), ts: 0, args: { sort_index: sort++ } });
    }
  }

  const flowEvents = (flows: FlowRef[], pid: number, tid: number, ts: number): void => {
    for (const f of flows) {
      const ph = f.role === 'begin' ? 's' : f.role === 'step' ? 't' : 'f';
      put({ ph, id: f.id, name: 'system call', cat: 'syscall-flow', pid, tid, ts, ...(ph === 'f' ? { bp: 'e' } : {}) });
    }
  };

  let slices = 0;
  let instants = 0;
  for (const ev of timeline.events()) {
    if (ev.type === 'begin' || ev.type === 'end') {
      const s = ev.slice;
      const pid = pidOf.get(s.tid) ?? s.tid;
      const tid = s.lane === 'syscalls' ? syscallLaneTid(s.tid) : s.tid;
      if (ev.type === 'begin') {
        slices++;
        put({ ph: 'B', name: s.name, cat: `${s.category},${s.lane}`, pid, tid, ts: ev.ts, args: s.args });
        flowEvents(ev.flows, pid, tid, ev.ts);
      } else {
        put({ ph: 'E', pid, tid, ts: ev.ts });
      }
    } else {
      instants++;
      const pid = pidOf.get(ev.tid) ?? ev.tid;
      put({ ph: 'i', s: 't', name: ev.name, cat: ev.category, pid, tid: ev.tid, ts: ev.ts, args: ev.args });
      flowEvents(ev.flows, pid, ev.tid, ev.ts);
    }
  }

  out.write('\n],\n"displayTimeUnit":"ns",\n');
  out.write(
    `"otherData":${JSON.stringify({
      ts_unit: TS_UNIT,
      exporter: 'ntflow export --format chrome-json',
      session: timeline.sessionId,
      session_name: timeline.session.name,
      program: timeline.session.program,
      ...(timeline.syscallId === undefined ? {} : { syscall_id: timeline.syscallId }),
    })}}\n`,
  );
  out.flush();
  return { format: 'chrome-json', items: count, notes: [`${slices} slices, ${instants} instants`] };
}
