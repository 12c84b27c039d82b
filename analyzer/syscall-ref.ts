// A system call named across a trace file: `ID` (syscalls.id in the session the command works on)
// or `SESSION:ID` (the session by id or name, then the call). Call ids restart at 1 in every
// session, so a bare `--syscall 5` next to the default session (the latest) can name a different
// call than the one a user saw in another session's table; `2:5` never does. Every command that
// takes --syscall reads it here, and the session it names becomes the command's session.
import type Database from 'better-sqlite3';
import { QueryError, chooseSession } from './query.js';

export interface SyscallRef {
  /** The session part as typed (an id or a name), when given. */
  session?: string;
  id: number;
  /** The reference as the user typed it, for messages. */
  text: string;
}

/** `5`, `2:5` or `name:5` (the last ':' splits: session names may hold colons). */
export function parseSyscallRef(value: string): SyscallRef {
  const text = String(value).trim();
  const colon = text.lastIndexOf(':');
  const session = colon >= 0 ? text.slice(0, colon).trim() : undefined;
  const id = colon >= 0 ? text.slice(colon + 1).trim() : text;
  if (!/^\d+$/.test(id) || Number(id) < 1 || session === '') {
    throw new QueryError(`--syscall: '${value}' is not a syscall reference (ID or SESSION:ID, e.g. 5 or 2:5: a syscalls.id, see --named syscalls)`);
  }
  return { session, id: Number(id), text };
}

/** The references of a --syscall option (absent, one, or repeated). */
export function syscallRefs(values: string | readonly string[] | undefined): SyscallRef[] {
  if (values === undefined) return [];
  return (typeof values === 'string' ? [values] : values).map(parseSyscallRef);
}

/**
 * The session a command works on: --session if given, else the one its --syscall references name,
 * else the latest (null: the file has none). References naming another session than --session, or
 * two different sessions, are a QueryError.
 */
export function chooseSessionFor(db: Database.Database, session: string | undefined, refs: readonly SyscallRef[]): number | null {
  const chosen = session === undefined ? null : chooseSession(db, session);
  let fromRefs: { id: number; ref: SyscallRef } | null = null;
  for (const ref of refs) {
    if (ref.session === undefined) continue;
    const id = chooseSession(db, ref.session)!;
    if (chosen !== null && id !== chosen) throw new QueryError(`--syscall ${ref.text} is in session ${id}, but --session ${session} is session ${chosen}; give one of them`);
    if (fromRefs && fromRefs.id !== id) throw new QueryError(`--syscall ${fromRefs.ref.text} and --syscall ${ref.text} are in different sessions (${fromRefs.id} and ${id}); draw one session at a time`);
    fromRefs ??= { id, ref };
  }
  return chosen ?? fromRefs?.id ?? chooseSession(db, undefined);
}
