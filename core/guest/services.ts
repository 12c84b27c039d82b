// The Windows XP SP1 x86 system service tables, as data.
//
// Table 0 (ntoskrnl, KiServiceTable): 284 services, numbers 0x000-0x11B.
// Table 1 (win32k, W32pServiceTable): 667 services, numbers 0x1000-0x129A (0x1000 + index).
// Each entry: the service number, its name, its argument count and argument bytes (4 per argument;
// the value KiArgumentTable / W32pArgumentTable holds and the `ret` immediate of the ntdll stub).
//
// The tables live in core/guest/data/*.csv (credited in SOURCES.md) and are read once, at import,
// relative to the repository root (found by walking up from this module to package.json), so the
// same code works from core/ and from dist/core/.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nearestName } from '../names.js';

export interface Service {
  /** the number a caller puts in EAX: table 0 = index, table 1 = 0x1000 + index */
  readonly number: number;
  readonly name: string;
  /** number of 32-bit arguments */
  readonly args: number;
  /** bytes of arguments copied from the caller's stack (= 4 × args) */
  readonly argBytes: number;
  /** 0 = ntoskrnl (KeServiceDescriptorTable[0]), 1 = win32k (KeServiceDescriptorTableShadow[1]) */
  readonly table: 0 | 1;
  /** index within the table (number & 0xFFF) */
  readonly index: number;
  /** win32k only: a different symbol name for the same entry in one of the sources, if any */
  readonly altName?: string;
}

export const NT_SERVICE_COUNT = 284;
export const WIN32K_SERVICE_COUNT = 667;
export const WIN32K_SERVICE_BASE = 0x1000;

const NT_CSV = 'syscalls-xp-sp1-x86.csv';
const WIN32K_CSV = 'win32k-xp-sp1-x86.csv';

/** The directory holding the service CSVs: <repo>/core/guest/data, found from this module's location. */
export function serviceDataDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) {
      const data = join(dir, 'core', 'guest', 'data');
      if (existsSync(join(data, NT_CSV))) return data;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find core/guest/data/${NT_CSV} above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

function parseCsv(file: string): Record<string, string>[] {
  const text = readFileSync(file, 'utf8');
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = lines[0]!.split(',');
  return lines.slice(1).map((line, i) => {
    const cells = line.split(',');
    if (cells.length !== header.length) throw new Error(`${file}:${i + 2}: expected ${header.length} columns, got ${cells.length}`);
    return Object.fromEntries(header.map((h, j) => [h, cells[j]!]));
  });
}

function toInt(text: string | undefined, where: string): number {
  if (text === undefined || !/^(0x[0-9a-f]+|[0-9]+)$/i.test(text)) throw new Error(`${where}: '${text}' is not a number`);
  return Number(text);
}

function loadTable(file: string, table: 0 | 1, expected: number): Service[] {
  const base = table === 0 ? 0 : WIN32K_SERVICE_BASE;
  const rows = parseCsv(join(serviceDataDir(), file));
  const services = rows.map((row, i): Service => {
    const where = `${file}:${i + 2}`;
    const number = toInt(row.number, where);
    const args = toInt(row.arg_count, where);
    const argBytes = toInt(row.arg_bytes, where);
    const index = table === 0 ? number : toInt(row.index, where);
    if (number !== base + i || index !== i) throw new Error(`${where}: service ${row.number} is out of order (expected ${base + i})`);
    if (toInt(row.number_hex, where) !== number) throw new Error(`${where}: number and number_hex disagree`);
    if (argBytes !== 4 * args) throw new Error(`${where}: arg_bytes ${row.arg_bytes} is not 4 x ${args}`);
    if (!/^Nt[A-Za-z0-9_]+$/.test(row.name ?? '')) throw new Error(`${where}: bad service name '${row.name}'`);
    const altName = row.alt_name_tinysec ? row.alt_name_tinysec : undefined;
    return Object.freeze({ number, name: row.name!, args, argBytes, table, index, ...(altName ? { altName } : {}) });
  });
  if (services.length !== expected) throw new Error(`${file}: ${services.length} services, expected ${expected}`);
  return services;
}

/** The ntoskrnl table (KiServiceTable), XP SP1: 284 entries, index = number. */
export const NT_SERVICES: readonly Service[] = Object.freeze(loadTable(NT_CSV, 0, NT_SERVICE_COUNT));
/** The win32k table (W32pServiceTable), XP SP1: 667 entries, number = 0x1000 + index. */
export const WIN32K_SERVICES: readonly Service[] = Object.freeze(loadTable(WIN32K_CSV, 1, WIN32K_SERVICE_COUNT));

const byName = new Map<string, Service>();
for (const s of [...NT_SERVICES, ...WIN32K_SERVICES]) {
  if (byName.has(s.name)) throw new Error(`service name ${s.name} appears twice`);
  byName.set(s.name, s);
}

/** Looks a service up by name; NtXxx and ZwXxx name the same service. Undefined when unknown. */
export function serviceByName(name: string): Service | undefined {
  return byName.get(name.startsWith('Zw') ? 'Nt' + name.slice(2) : name);
}

/** Like serviceByName, but throws an error (with a suggestion) for an unknown name. */
export function requireService(name: string): Service {
  const s = serviceByName(name);
  if (s) return s;
  const wanted = (name.startsWith('Zw') ? 'Nt' + name.slice(2) : name);
  const best = nearestName(wanted, byName.keys(), { ignoreCase: true, per: 4 });
  const hint = best !== undefined ? `; did you mean '${best}'?` : '';
  throw new Error(`no XP SP1 system service named '${name}'${hint}`);
}

/** Looks a service up by its number (0x000-0x11B for ntoskrnl, 0x1000-0x129A for win32k). */
export function serviceByNumber(n: number): Service | undefined {
  if (!Number.isInteger(n)) return undefined;
  if (n >= 0 && n < NT_SERVICES.length) return NT_SERVICES[n];
  if (n >= WIN32K_SERVICE_BASE && n < WIN32K_SERVICE_BASE + WIN32K_SERVICES.length) return WIN32K_SERVICES[n - WIN32K_SERVICE_BASE];
  return undefined;
}

/** The argument-byte table of a service table (KiArgumentTable for 0, W32pArgumentTable for 1). */
export function argumentTable(table: 0 | 1): Uint8Array {
  return Uint8Array.from((table === 0 ? NT_SERVICES : WIN32K_SERVICES).map((s) => s.argBytes));
}
