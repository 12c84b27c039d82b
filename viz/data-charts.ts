// From a trace to the flame chart's frames (the calls projection over icount) and the aggregated
// call graph (how often each call ran). The sequence diagram's input is viz/data.ts.
import type Database from 'better-sqlite3';
import { VizInputError, ensureSessionProjections, hex8 } from './data.js';
import type { FlameInput, FlowStep, GraphInput } from './types.js';

// ---- flame chart and call graph ------------------------------------------------------------

/** icount at each event: from event_marks (icount of instruction rows counts on from the mark before). */
function icountOf(db: Database.Database, sessionId: number): (seq: number) => number {
  const marks = db.prepare('SELECT seq, icount FROM event_marks WHERE session_id = ? ORDER BY seq').raw().all(sessionId) as [number, number][];
  const seqs = Float64Array.from(marks, (m) => m[0]);
  return (seq: number) => {
    let lo = 0;
    let hi = seqs.length - 1;
    let k = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (seqs[mid] <= seq) {
        k = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (k < 0) return seq;
    const [mseq, micount] = marks[k];
    return mseq === seq ? micount : micount + (seq - mseq - 1);
  };
}

export function flameInput(db: Database.Database, sessionId: number): FlameInput {
  ensureSessionProjections(db, sessionId);
  const session = db.prepare('SELECT name, instructions, events FROM sessions WHERE id = ?').get(sessionId) as { name: string; instructions: number; events: number } | undefined;
  if (!session) throw new VizInputError(`no session ${sessionId} in this trace`);
  const icount = icountOf(db, sessionId);
  const rows = db
    .prepare('SELECT id, parent_id, depth, enter_seq, exit_seq, symbol, module, address FROM calls WHERE session_id = ? ORDER BY id')
    .all(sessionId) as { id: number; parent_id: number | null; depth: number; enter_seq: number; exit_seq: number | null; symbol: string | null; module: string | null; address: number }[];
  const total = session.instructions;
  const calls = rows.map((r) => ({
    id: r.id,
    parentId: r.parent_id,
    depth: r.depth,
    startIcount: icount(r.enter_seq),
    endIcount: r.exit_seq === null ? total : icount(r.exit_seq) + 1,
    symbol: r.symbol ?? hex8(r.address),
    module: r.module ?? '?',
    cpl: ((r.address >>> 0) >= 0x80000000 ? 0 : 3) as 0 | 3,
  }));
  return { title: `${session.name}: calls over time (${total} instructions)`, calls, totalIcount: total };
}

export function graphInput(db: Database.Database, sessionId: number): GraphInput {
  ensureSessionProjections(db, sessionId);
  const session = db.prepare('SELECT name FROM sessions WHERE id = ?').get(sessionId) as { name: string } | undefined;
  if (!session) throw new VizInputError(`no session ${sessionId} in this trace`);
  const fnOf = (symbol: string | null, address: number) => (symbol ? symbol.replace(/\+0x[0-9a-f]+$/i, '') : hex8(address));
  const rows = db
    .prepare(
      `SELECT p.symbol AS ps, p.address AS pa, c.symbol AS cs, c.address AS ca, c.module AS cm, c.kind AS k, count(*) AS n
       FROM calls c LEFT JOIN calls p ON p.session_id = c.session_id AND p.id = c.parent_id
       WHERE c.session_id = ? GROUP BY ps, pa, cs, ca, k ORDER BY min(c.id)`,
    )
    .all(sessionId) as { ps: string | null; pa: number | null; cs: string | null; ca: number; cm: string | null; k: string; n: number }[];
  const nodes = new Map<string, { id: string; module: string; ring: 0 | 3 }>();
  const node = (symbol: string | null, address: number) => {
    const id = fnOf(symbol, address);
    if (!nodes.has(id)) nodes.set(id, { id, module: symbol?.includes('!') ? symbol.slice(0, symbol.indexOf('!')) : '?', ring: (address >>> 0) >= 0x80000000 ? 0 : 3 });
    return id;
  };
  const edges = new Map<string, GraphInput['edges'][number]>();
  for (const r of rows) {
    const to = node(r.cs, r.ca);
    if (r.pa === null) continue; // a thread's outermost frame: a node, no edge
    const from = node(r.ps, r.pa);
    const kind = (r.k === 'callback' ? 'call' : r.k) as FlowStep['kind'];
    const key = `${from}\u0000${to}\u0000${kind}`;
    const e = edges.get(key);
    if (e) e.count += r.n;
    else edges.set(key, { from, to, count: r.n, kind });
  }
  return { title: `${session.name}: call graph (how often each call ran)`, nodes: [...nodes.values()], edges: [...edges.values()] };
}
