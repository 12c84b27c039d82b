// Analyzer figures: replay speed (events/s rebuilding every projection) and time travel
// (milliseconds for the state at events spread over the whole trace).
import Database from 'better-sqlite3';
import { replayFile, stateAt } from '../analyzer/index.js';

export interface ReplayFigures {
  events: number;
  seconds: number;
  perSecond: number;
}

export function benchReplay(trace: string): ReplayFigures {
  replayFile(trace); // warm the file into the page cache
  const [r] = replayFile(trace);
  return { events: r.events, seconds: r.seconds, perSecond: r.events / r.seconds };
}

export interface StateFigures {
  instructions: number;
  samples: number;
  maxMs: number;
  medianMs: number;
  times: { seq: number; ms: number }[];
}

export function benchState(trace: string, samples = 20): StateFigures {
  const db = new Database(trace, { readonly: true });
  try {
    const { id, events, instructions } = db.prepare('SELECT id, events, instructions FROM sessions ORDER BY id DESC LIMIT 1').get() as {
      id: number;
      events: number;
      instructions: number;
    };
    stateAt(db, id, Math.floor(events / 2)); // warm-up
    const times: { seq: number; ms: number }[] = [];
    for (let i = 0; i < samples; i++) {
      const seq = Math.floor(((events - 1) * i) / (samples - 1));
      const t0 = process.hrtime.bigint();
      stateAt(db, id, seq);
      times.push({ seq, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
    }
    const sorted = times.map((x) => x.ms).sort((a, b) => a - b);
    return { instructions, samples, maxMs: sorted[sorted.length - 1], medianMs: sorted[Math.floor(sorted.length / 2)], times };
  } finally {
    db.close();
  }
}
