// The speedscope file format (https://www.speedscope.app/file-format-schema.json; the package's
// dist/release/file-format-schema.json): one `evented` profile per guest thread and lane — its call
// frames, and its system calls as their own profile — with O/C events balanced and `at`
// non-decreasing, in instructions retired (unit "none"). Frames are shared, named module!symbol.
//
// A profile's events are one JSON array, so the exporter walks the timeline once per profile
// (threads × lanes, a handful; each pass reads only its thread and lane) rather than holding every
// thread's events; `shared.frames` is
// written last (JSON object keys are unordered), once every frame has its index, and so is
// activeProfileIndex: the busiest profile, which speedscope opens on.
import { ChunkedText } from './chunked.js';
import { readTimeline, TS_UNIT, type Lane, type Timeline } from './model.js';
import type { ExportRequest, ExportSink, ExportStats } from './types.js';

export const SPEEDSCOPE_SCHEMA = 'https://www.speedscope.app/file-format-schema.json';

export function exportSpeedscope(req: ExportRequest, sink: ExportSink): ExportStats {
  return writeSpeedscope(readTimeline(req.db, req.sessionId, req.syscallId), sink);
}

export function writeSpeedscope(timeline: Timeline, sink: ExportSink): ExportStats {
  const out = new ChunkedText(sink);
  const frames: { name: string; file?: string }[] = [];
  const frameIndex = new Map<string, number>();
  const frameOf = (name: string, file: string | null): number => {
    const key = `${name}\u0000${file ?? ''}`;
    let i = frameIndex.get(key);
    if (i === undefined) {
      i = frames.length;
      frames.push(file ? { name, file } : { name });
      frameIndex.set(key, i);
    }
    return i;
  };

  const what = timeline.syscallId === undefined ? `session ${timeline.sessionId}` : `session ${timeline.sessionId}, syscall ${timeline.syscallId}`;
  out.write(`{"$schema":${JSON.stringify(SPEEDSCOPE_SCHEMA)},\n"name":${JSON.stringify(`ntflow ${timeline.session.name} (${what}; ${TS_UNIT})`)},\n"exporter":"ntflow export --format speedscope",\n"profiles":[`);

  let profiles = 0;
  let events = 0;
  // The profile speedscope opens on: the one with the most events (the program's busiest thread), written last.
  let busiest = { index: 0, events: -1 };
  const lanes: Lane[] = ['calls', 'syscalls'];
  for (const thread of timeline.threads) {
    for (const lane of lanes) {
      if (!(lane === 'calls' ? timeline.callThreads : timeline.syscallThreads).has(thread.tid)) continue;
      let started = false;
      let n = 0;
      for (const ev of timeline.events({ tid: thread.tid, lanes: [lane], instants: false })) {
        if (ev.type === 'instant' || ev.slice.tid !== thread.tid || ev.slice.lane !== lane) continue;
        if (!started) {
          const name = lane === 'calls' ? thread.name : `${thread.name}: system calls`;
          out.write(`${profiles++ ? ',' : ''}\n{"type":"evented","name":${JSON.stringify(name)},"unit":"none","startValue":${timeline.start},"endValue":${timeline.end},"events":[`);
          started = true;
        }
        const frame = frameOf(ev.slice.symbol, ev.slice.module);
        out.write(`${n++ ? ',' : ''}\n{"type":"${ev.type === 'begin' ? 'O' : 'C'}","at":${ev.ts},"frame":${frame}}`);
      }
      if (started) out.write('\n]}');
      if (started && n > busiest.events) busiest = { index: profiles - 1, events: n };
      events += n;
    }
  }
  out.write(`\n],\n"activeProfileIndex":${busiest.index},\n"shared":{"frames":[`);
  frames.forEach((f, i) => out.write(`${i ? ',' : ''}\n${JSON.stringify(f)}`));
  out.write('\n]}}\n');
  out.flush();
  const notes = profiles === 0 ? ['no call frames in this range: the file has no profile'] : [];
  return { format: 'speedscope', items: events, notes: [`${profiles} profiles, ${frames.length} frames, ${events} events`, ...notes] };
}
