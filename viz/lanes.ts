// The sequence diagram's lanes: which lane an instruction's symbol belongs to (the program, ntdll,
// SharedUserData, the kernel's entry, service and exit routines, other kernel code, drivers,
// win32k), each lane's label and ring, and their order left to right.
import type Database from 'better-sqlite3';
import { splitSymbol as parseSymbol } from '../core/index.js';
import type { LaneSpec } from './types.js';

/** Lane order: ring 3 first, then ring 0 (drivers and win32k after nt). */
const LANE_ORDER = ['program', 'user', 'ntdll', 'SharedUserData', 'nt-entry', 'nt-service', 'nt-exit', 'nt', 'driver', 'win32k'];

const ENTRY_FUNCTIONS = new Set(['KiFastCallEntry', 'KiFastCallBadStack', 'KiSystemService', 'KiBBTUnexpectedRange', 'KiSystemServiceAccessViolation', 'KiTrap2E']);
const EXIT_FUNCTIONS = new Set(['KeReturnFromSystemCall', 'KiServiceExit', 'KiServiceExit2', 'KiSystemCallExit', 'KiSystemCallExit2', 'KiSystemCallExitBranch', 'KiExceptionExit', 'KiTrapReturn', 'KiEditedTrapReturn']);

export interface LaneContext {
  /** The program's module name (its image without .exe). */
  programModule: string | null;
  programLabel: string;
  /** Modules at kernel addresses (drivers, nt, win32k). */
  kernelModules: Set<string>;
}

export function splitSymbol(symbol: string | null): { module: string | null; fn: string | null } {
  if (!symbol) return { module: null, fn: null };
  const { module, name } = parseSymbol(symbol);
  return { module, fn: name };
}

/** The lane id of code at `symbol` running at `cpl`. */
export function laneOf(ctx: LaneContext, symbol: string | null, cpl: number): string {
  const { module, fn } = splitSymbol(symbol);
  if (module === null) return cpl === 3 ? 'program' : 'nt';
  if (module === 'ntdll') return 'ntdll';
  if (module === 'SharedUserData') return 'SharedUserData';
  if (module === 'nt') {
    if (fn && ENTRY_FUNCTIONS.has(fn)) return 'nt-entry';
    if (fn && EXIT_FUNCTIONS.has(fn)) return 'nt-exit';
    if (fn && /^Nt[A-Z]/.test(fn)) return 'nt-service';
    return 'nt';
  }
  if (module === 'win32k') return 'win32k';
  if (module === ctx.programModule) return 'program';
  if (ctx.kernelModules.has(module)) return `driver:${module}`;
  return `user:${module}`;
}

export function laneSpec(ctx: LaneContext, id: string): LaneSpec {
  const kind = id.includes(':') ? id.slice(0, id.indexOf(':')) : id;
  const name = id.slice(id.indexOf(':') + 1);
  switch (kind) {
    case 'program':
      return { id, label: ctx.programLabel, ring: 3 };
    case 'user':
      return { id, label: name, ring: 3 };
    case 'ntdll':
      return { id, label: 'ntdll', ring: 3 };
    case 'SharedUserData':
      return { id, label: 'SharedUserData', ring: 3 };
    case 'nt-entry':
      return { id, label: 'KiFastCallEntry / KiSystemService', ring: 0 };
    case 'nt-service':
      return { id, label: 'SSDT target (nt!Nt*)', ring: 0 };
    case 'nt-exit':
      return { id, label: 'KiServiceExit', ring: 0 };
    case 'nt':
      return { id, label: 'nt (other)', ring: 0 };
    case 'driver':
      return { id, label: name, ring: 0 };
    default:
      return { id, label: 'win32k', ring: 0 };
  }
}

export function sortLanes(ids: Iterable<string>): string[] {
  const rank = (id: string) => LANE_ORDER.indexOf(id.includes(':') ? id.slice(0, id.indexOf(':')) : id);
  return [...new Set(ids)].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

export function laneContext(db: Database.Database, sessionId: number): LaneContext {
  const modules = db
    .prepare('SELECT module, min(address) AS base FROM guest_symbols WHERE session_id = ? GROUP BY module')
    .all(sessionId) as { module: string; base: number }[];
  const kernelModules = new Set(modules.filter((m) => m.base >>> 0 >= 0x80000000).map((m) => m.module));
  const session = db.prepare('SELECT program, program_file FROM sessions WHERE id = ?').get(sessionId) as { program: string; program_file: string };
  const userModules = modules.filter((m) => m.base >>> 0 < 0x80000000 && !['ntdll', 'kernel32', 'SharedUserData'].includes(m.module)).map((m) => m.module);
  const stem = session.program_file.replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, '');
  const programModule = userModules.find((m) => m === stem || m === session.program) ?? userModules[0] ?? null;
  const process = db
    .prepare("SELECT process FROM syscalls WHERE session_id = ? AND caller_cpl = 3 AND process <> 'System' LIMIT 1")
    .pluck()
    .get(sessionId) as string | undefined;
  return { programModule, programLabel: process ?? `${programModule ?? stem}.exe`, kernelModules };
}

