// `ntflow state FILE --at SEQ [--session S] [--json] [--mem ADDR LEN] [--u [COUNT]] [--k] [--handles]`:
// the machine after event SEQ, from the trace alone (time travel), in WinDbg's `r`, `db`, `u`, `k`
// and `!handle` forms. Addresses are read as WinDbg reads them: hex, 0n-prefixed decimal, and
// module!Name+0xOFFSET from the session's own symbols.
import { openTraceForReading } from '../recorder/index.js';
import { nearestSymbol, type SymbolTable } from '../core/index.js';
import {
  callStackAt,
  disassembleAt,
  openWithProjections,
  formatCallStack,
  formatHandles,
  formatMemory,
  formatRegisters,
  openHandlesAt,
  resolveSession,
  stateAt,
  stateJson,
} from '../analyzer/index.js';

export interface StateOptions {
  at: string;
  session?: string;
  json?: boolean;
  mem?: [string, string];
  /** true: disassemble the default count from EIP; a string: that many instructions. */
  u?: boolean | string;
  k?: boolean;
  handles?: boolean;
}

/**
 * A number as the user typed it: 0x… or …h is hex, 0n… is decimal (WinDbg's prefix); otherwise
 * decimal for counts (--at, LEN) and, as in WinDbg, hex for addresses (--mem 7ffe0300).
 */
export function parseNumber(text: string, what: string, Err: new (m: string) => Error, radix: 10 | 16 = 10): number {
  const t = text.trim();
  let v: number;
  if (/^0x[0-9a-f]+$/i.test(t)) v = parseInt(t.slice(2), 16);
  else if (/^0n\d+$/i.test(t)) v = Number(t.slice(2));
  else if (/^[0-9a-f]+h$/i.test(t)) v = parseInt(t.slice(0, -1), 16);
  else if (radix === 10 && /^\d+$/.test(t)) v = Number(t);
  else if (radix === 16 && /^[0-9a-f]+$/i.test(t)) v = parseInt(t, 16);
  else if (/^-\d/.test(t)) throw new Err(`${what}: '${text}' is negative; give a number from 0 (e.g. 1234 or 0x4d2)`);
  else throw new Err(`${what}: '${text}' is not a number (use ${radix === 10 ? '1234 or 0x4d2' : '7ffe0300, 0x7ffe0300 or 0n2147353344'})`);
  if (!Number.isSafeInteger(v)) throw new Err(`${what}: '${text}' is too large`);
  return v;
}

/**
 * An address expression as WinDbg's `db` takes one: terms joined by + and -, each a number (hex
 * unless 0n-prefixed) or a symbol — `module!Name`, a bare `Name` found in one module, or a module's
 * name for its lowest symbol. A number-looking term is a number (`add` is 0xadd), as in WinDbg.
 */
export function parseAddress(text: string, what: string, symbols: () => SymbolTable, Err: new (m: string) => Error): number {
  const pieces = text.trim().split('+').map((p) => p.trim());
  if (pieces.some((p) => p === '')) throw new Err(`${what}: '${text}' is not an address (use 0x8053a2fb, nt!KiSystemService or ntdll!NtReadFile+0x5)`);
  return pieces.reduce((sum, p) => sum + difference(p, what, symbols, Err), 0) >>> 0;
}

const NUMBER = /^(0x[0-9a-f]+|0n\d+|[0-9a-f]+h?)$/i;

/** `a-b-c`: module names may hold '-' (osr-log-user-handle!WriteBoth), so a '-' subtracts only when the whole is no symbol and what follows it is a number. */
function difference(piece: string, what: string, symbols: () => SymbolTable, Err: new (m: string) => Error): number {
  if (NUMBER.test(piece)) return parseNumber(piece, what, Err, 16);
  const minus = piece.lastIndexOf('-');
  const right = piece.slice(minus + 1).trim();
  if (minus > 0 && NUMBER.test(right) && lookupSymbol(piece, what, symbols(), Err) === undefined) {
    return difference(piece.slice(0, minus).trim(), what, symbols, Err) - parseNumber(right, what, Err, 16);
  }
  return symbolAddress(piece, what, symbols(), Err);
}

function symbolAddress(term: string, what: string, table: SymbolTable, Err: new (m: string) => Error): number {
  const found = lookupSymbol(term, what, table, Err);
  if (found !== undefined) return found;
  const near = nearestSymbol(term, table.names());
  throw new Err(`${what}: no symbol '${term}' in this session${near ? ` (did you mean ${near}?)` : ''}`);
}

/** module!Name, a bare Name found in exactly one module, or a module's name (its lowest symbol). */
function lookupSymbol(term: string, what: string, table: SymbolTable, Err: new (m: string) => Error): number | undefined {
  const bang = term.indexOf('!');
  if (bang > 0) return table.resolve(term.slice(0, bang), term.slice(bang + 1));
  if (!/^[A-Za-z_][\w.-]*$/.test(term)) return undefined;
  const names = table.names();
  const lower = term.toLowerCase();
  const inModule = names.filter((n) => n.toLowerCase().startsWith(`${lower}!`));
  if (inModule.length) return Math.min(...inModule.map((n) => table.resolve(term, n.slice(term.length + 1))!));
  const bare = names.filter((n) => n.slice(n.indexOf('!') + 1).toLowerCase() === lower);
  if (bare.length > 1) throw new Err(`${what}: '${term}' is in several modules (${bare.join(', ')}); name one as module!${term}`);
  return bare.length === 1 ? table.resolve(...(bare[0].split('!') as [string, string])) : undefined;
}

export function stateCommand(file: string, opts: StateOptions, Err: new (m: string) => Error): void {
  // --k reads the calls projection: built or brought up to date first, as `query` does.
  const db = opts.k ? openWithProjections(file) : openTraceForReading(file);
  try {
    const sessionId = resolveSession(db, opts.session);
    const seq = parseNumber(opts.at, '--at', Err);
    const uCount = typeof opts.u === 'string' ? parseNumber(opts.u, '--u COUNT', Err) : undefined;
    if (uCount !== undefined && (uCount < 1 || uCount > 1000)) throw new Err(`--u COUNT must be between 1 and 1000 instructions (got ${uCount})`);
    const memLength = opts.mem ? parseNumber(opts.mem[1], '--mem LEN', Err) : undefined;
    if (memLength !== undefined && (memLength <= 0 || memLength > 0x10000)) throw new Err(`--mem LEN must be between 1 and 65536 bytes (got ${memLength})`);
    const state = stateAt(db, sessionId, seq);
    const mem = opts.mem ? { address: parseAddress(opts.mem[0], '--mem ADDR', () => state.symbols, Err), length: memLength! } : undefined;
    const stack = opts.k ? callStackAt(db, state) : undefined;
    const handles = opts.handles ? openHandlesAt(db, sessionId, seq) : undefined;
    const u = uCount ?? opts.u === true;
    if (opts.json) {
      process.stdout.write(JSON.stringify(stateJson(state, { mem, u, stack, handles }), null, 1) + '\n');
      return;
    }
    const out = [`session ${sessionId}, after event ${seq} (${state.icount} instructions retired)`, formatRegisters(state)];
    if (mem) out.push('', formatMemory(state, mem.address, mem.length));
    if (u) {
      out.push('');
      for (const l of disassembleAt(state, uCount)) {
        const sym = state.symbols.lookup(l.address);
        if (sym && sym.offset === 0) out.push(`${sym.module}!${sym.name}:`);
        out.push(`${l.address.toString(16).padStart(8, '0')} ${Buffer.from(l.bytes).toString('hex').padEnd(16)} ${l.text}`);
      }
    }
    if (stack) out.push('', formatCallStack(stack, state));
    if (handles) out.push('', formatHandles(handles, state));
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    db.close();
  }
}
