// Programs and drivers: `.asm` files in ntflow's assembler dialect. The first line says which
// (`; ntflow: user`, the default, or `; ntflow: driver`); a user program starts at `start` and its
// `ret` ends the thread with EAX as the exit status; a driver has DriverEntry(DriverObject,
// RegistryPath). `module!Name` names resolve against the guest's exports.
import { AsmError, assemble, type AsmResult } from '../asm/index.js';
import type { SymbolTable } from './symbols.js';
import { nearestName } from '../names.js';

export type ProgramKind = 'user' | 'driver';

export interface ProgramSource {
  /** Shown in errors and traces (a file name, or the scenario's). */
  fileName: string;
  /** The assembly source ('' for a PE image). */
  source: string;
  /** A PE32 image's bytes (a .exe or .sys built by MinGW), instead of assembly source. */
  image?: Uint8Array;
}

export interface AssembledProgram {
  kind: ProgramKind;
  fileName: string;
  origin: number;
  bytes: Uint8Array;
  entry: number;
  labels: Map<string, number>;
  /** Code and data labels for the symbol table: no `equ` constants, no local labels. */
  symbols: Map<string, number>;
}

/** A program the user wrote wrongly: the message is `file:line:col: what to fix`. */
export class ProgramError extends Error {
  override name = 'ProgramError';
}

export function programKind(p: ProgramSource): ProgramKind {
  const first = p.source.split(/\r?\n/, 1)[0] ?? '';
  const m = /^\s*;\s*ntflow:\s*(\w+)/i.exec(first);
  if (!m) return 'user';
  const kind = m[1].toLowerCase();
  if (kind !== 'user' && kind !== 'driver') {
    throw new ProgramError(`${p.fileName}:1:1: unknown program kind '${m[1]}' (use '; ntflow: user' or '; ntflow: driver')`);
  }
  return kind;
}

/** The name nearest to a mistyped one (a guest export, a scenario): a unique prefix match first. */
export function nearestSymbol(wanted: string, names: string[]): string | undefined {
  const w = wanted.toLowerCase();
  const prefixed = names.filter((n) => n.toLowerCase().startsWith(w));
  if (w.length >= 3 && prefixed.length === 1) return prefixed[0];
  return nearestName(wanted, names, { ignoreCase: true, per: 4 });
}

/** Each `module!Name` in a program's code (comments and strings aside), with its line and column. */
function* moduleReferences(p: ProgramSource): Generator<{ line: number; column: number; module: string; name: string }> {
  const lines = p.source.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const code = lines[i].replace(/;.*$/, '').replace(/'[^']*'|"[^"]*"/g, (s) => ' '.repeat(s.length));
    for (const m of code.matchAll(/\b([A-Za-z_][\w]*)!([A-Za-z_][\w]*)/g)) yield { line: i + 1, column: (m.index ?? 0) + 1, module: m[1], name: m[2] };
  }
}

/**
 * Whether a program calls into a module (`call kernel32!CreateFileA`): a program that uses kernel32
 * is a Win32 program, which gets kernel32 mapped and a console (loader.ts); one that calls only
 * ntdll is a native program, as on XP.
 */
export function referencesModule(p: ProgramSource, module: string): boolean {
  for (const r of moduleReferences(p)) if (r.module.toLowerCase() === module.toLowerCase()) return true;
  return false;
}

/** Every `module!Name` reference must name a guest export; the error points at it. */
function checkReferences(p: ProgramSource, symbols: SymbolTable): void {
  const names = symbols.names();
  for (const r of moduleReferences(p)) {
    if (symbols.resolve(r.module, r.name) !== undefined) continue;
    const hint = nearestSymbol(`${r.module}!${r.name}`, names);
    throw new ProgramError(`${p.fileName}:${r.line}:${r.column}: unknown guest symbol '${r.module}!${r.name}'${hint ? `; did you mean '${hint}'?` : ' (guest modules: nt, ntdll, kernel32, win32k)'}`);
  }
}

export function assembleProgram(p: ProgramSource, origin: number, symbols: SymbolTable): AssembledProgram {
  const kind = programKind(p);
  checkReferences(p, symbols);
  let result: AsmResult;
  try {
    result = assemble(p.source, { origin, fileName: p.fileName, resolveSymbol: (m, n) => symbols.resolve(m, n) });
  } catch (e) {
    if (e instanceof AsmError) throw new ProgramError(e.message);
    throw e;
  }
  const entryName = kind === 'user' ? 'start' : 'DriverEntry';
  const entry = result.labels.get(entryName);
  if (entry === undefined) {
    throw new ProgramError(`${p.fileName}:1:1: no '${entryName}' label (a ${kind === 'user' ? 'user program starts at start:' : 'driver starts at DriverEntry:'})`);
  }
  const constants = new Set([...p.source.matchAll(/^\s*([A-Za-z_]\w*)\s+equ\b/gim)].map((m) => m[1]));
  const exported = new Map([...result.labels].filter(([n]) => !n.includes('.') && !constants.has(n)));
  return { kind, fileName: p.fileName, origin, bytes: result.bytes, entry: entry >>> 0, labels: result.labels, symbols: exported };
}

export interface SeedFile {
  /** An NT path, e.g. \??\C:\readme.txt. */
  path: string;
  content: Uint8Array;
}

/**
 * Files a program or driver expects in the in-memory file system, declared in its header:
 *   ; ntflow-file: \??\C:\readme.txt = "text, with \r\n escapes as in JSON"
 */
export function seedFiles(p: ProgramSource): SeedFile[] {
  const files: SeedFile[] = [];
  p.source.split(/\r?\n/).forEach((line, i) => {
    const m = /^\s*;\s*ntflow-file:\s*(\S+)\s*=\s*(".*")\s*$/.exec(line);
    if (!m) return;
    let text: string;
    try {
      text = JSON.parse(m[2]) as string;
    } catch {
      throw new ProgramError(`${p.fileName}:${i + 1}:1: the file content must be a JSON string, e.g. "hello\\r\\n"`);
    }
    files.push({ path: m[1], content: new TextEncoder().encode(text) });
  });
  return files;
}
