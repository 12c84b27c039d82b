// `ntflow state FILE --at SEQ [--session S] [--json] [--mem ADDR LEN] [--u]`: the machine after
// event SEQ, from the trace alone (time travel), in WinDbg's `r`, `db` and `u` forms.
import { openTraceForReading } from '../recorder/index.js';
import { disassembleAt, formatMemory, formatRegisters, resolveSession, stateAt, stateJson } from '../analyzer/index.js';

export interface StateOptions {
  at: string;
  session?: string;
  json?: boolean;
  mem?: [string, string];
  u?: boolean;
}

/**
 * A number as the user typed it: 0x… or …h is hex; otherwise decimal for counts (--at, LEN) and,
 * as in WinDbg, hex for addresses (--mem 7ffe0300).
 */
export function parseNumber(text: string, what: string, Err: new (m: string) => Error, radix: 10 | 16 = 10): number {
  const t = text.trim();
  let v: number;
  if (/^0x[0-9a-f]+$/i.test(t)) v = parseInt(t.slice(2), 16);
  else if (/^[0-9a-f]+h$/i.test(t)) v = parseInt(t.slice(0, -1), 16);
  else if (radix === 10 && /^\d+$/.test(t)) v = Number(t);
  else if (radix === 16 && /^[0-9a-f]+$/i.test(t)) v = parseInt(t, 16);
  else throw new Err(`${what}: '${text}' is not a number (use ${radix === 10 ? '1234 or 0x4d2' : '7ffe0300 or 0x7ffe0300'})`);
  if (!Number.isSafeInteger(v)) throw new Err(`${what}: '${text}' is too large`);
  return v;
}

export function stateCommand(file: string, opts: StateOptions, Err: new (m: string) => Error): void {
  const db = openTraceForReading(file);
  try {
    const sessionId = resolveSession(db, opts.session);
    const seq = parseNumber(opts.at, '--at', Err);
    const state = stateAt(db, sessionId, seq);
    const mem = opts.mem ? { address: parseNumber(opts.mem[0], '--mem ADDR', Err, 16) >>> 0, length: parseNumber(opts.mem[1], '--mem LEN', Err) } : undefined;
    if (mem && (mem.length <= 0 || mem.length > 0x10000)) throw new Err(`--mem LEN must be between 1 and 65536 bytes (got ${mem.length})`);
    if (opts.json) {
      process.stdout.write(JSON.stringify(stateJson(state, { mem, u: opts.u }), null, 1) + '\n');
      return;
    }
    const out = [`session ${sessionId}, after event ${seq} (${state.icount} instructions retired)`, formatRegisters(state)];
    if (mem) out.push('', formatMemory(state, mem.address, mem.length));
    if (opts.u) {
      out.push('');
      for (const l of disassembleAt(state)) {
        const sym = state.symbols.lookup(l.address);
        if (sym && sym.offset === 0) out.push(`${sym.module}!${sym.name}:`);
        out.push(`${l.address.toString(16).padStart(8, '0')} ${Buffer.from(l.bytes).toString('hex').padEnd(16)} ${l.text}`);
      }
    }
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    db.close();
  }
}
