// symbols: the guest's symbols the session was recorded with (guest_symbols), as the analyzer's
// table every query joins against. Not a fold over the event log: a copy of the session's symbol
// rows, ordered, so that it is rebuilt, versioned and digested like the others.
import { Observable } from 'rxjs';
import type { LogContext } from './log.js';
import type { Projection, ProjectionTable } from './table.js';

export const SYMBOLS_TABLE: ProjectionTable = {
  name: 'symbols',
  comment: "the guest's symbols for the session (from guest_symbols): every module!Name with its address and size",
  columns: [
    { name: 'address', type: 'INTEGER', notNull: true, comment: 'where it starts (unsigned)' },
    { name: 'module', type: 'TEXT', notNull: true, comment: "nt, ntdll, win32k, SharedUserData, the program's and drivers' names" },
    { name: 'name', type: 'TEXT', notNull: true, comment: "the symbol's name (KiFastCallEntry)" },
    { name: 'size', type: 'INTEGER', notNull: true, comment: 'bytes up to the next symbol' },
  ],
  key: ['module', 'name'],
};

export const SYMBOLS: Projection = { name: 'symbols', version: 1, table: SYMBOLS_TABLE };

export function symbolRows(ctx: LogContext): Observable<unknown[]> {
  return new Observable<unknown[]>((subscriber) => {
    const rows = ctx.db.prepare('SELECT address, module, name, size FROM guest_symbols WHERE session_id = ? ORDER BY address, module, name').raw().all(ctx.sessionId) as unknown[][];
    for (const r of rows) {
      if (subscriber.closed) return;
      subscriber.next(r);
    }
    subscriber.complete();
  });
}
