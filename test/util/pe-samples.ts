// PE images built with MinGW-w64 at test time from test/pe/*.c, into a temporary folder, and the
// objdump oracle's view of them. Call haveOracle(t, 'mingw') / (t, 'objdump') first.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DLLTOOL, DRIVER, GCC, PROGRAM, run } from './mingw.js';
import { haveOracle } from './oracle.js';
import { repoPath } from './paths.js';

const src = (name: string) => repoPath('test', 'pe', name);

/** Every sample: its file name → the command line that builds it (after the compiler's name). */

export const SAMPLES = {
  /** The user program, the linker's defaults (binutils 2.40: --dynamicbase is on). */
  'prog.exe': [...PROGRAM, src('prog.c'), '-lkernel32'],
  /** The same with -Wl,--dynamicbase spelt out. */
  'prog-dynamicbase.exe': [...PROGRAM, '-Wl,--dynamicbase', src('prog.c'), '-lkernel32'],
  /** Without DYNAMIC_BASE (the .reloc section stays). */
  'prog-nodynamicbase.exe': [...PROGRAM, '-Wl,--disable-dynamicbase', src('prog.c'), '-lkernel32'],
  /** Relocations stripped: IMAGE_FILE_RELOCS_STRIPPED, no .reloc. */
  'prog-fixed.exe': [...PROGRAM, '-Wl,--disable-dynamicbase', '-Wl,--disable-reloc-section', src('prog.c'), '-lkernel32'],
  /** Symbols stripped (-s). */
  'prog-stripped.exe': [...PROGRAM, '-s', src('prog.c'), '-lkernel32'],
  /** A native-subsystem program importing only ntdll. */
  'native.exe': [...PROGRAM, '-Wl,--subsystem,native', src('native.c'), '-lntdll'],
  /** The driver. */
  'drv.sys': [...DRIVER, src('drv.c'), '-lntoskrnl', '-lhal'],
  /** The driver linked as a DLL (-shared): IMAGE_FILE_DLL with the native subsystem. */
  'drv-dll.sys': ['-shared', ...DRIVER, src('drv.c'), '-lntoskrnl', '-lhal'],
  /** A driver that imports kernel32. */
  'userdrv.sys': [...DRIVER, src('userdrv.c'), '-lntoskrnl', '-lkernel32'],
  /** A DLL with named, NONAME and forwarded exports; no entry point. */
  'sample.dll': ['-shared', '-nostdlib', '-Wl,--no-insert-timestamp', '-Wl,-e,0', src('lib.c'), src('lib.def')],
  /** A program importing sample.dll by ordinal (libsample.a from dlltool). */
  'ordprog.exe': [...PROGRAM, src('ordprog.c'), '-L', '.', '-lsample', '-lkernel32'],
  /** A program with a TLS directory. */
  'tls.exe': [...PROGRAM, src('tls.c'), '-lkernel32'],
} as const;

export type SampleName = keyof typeof SAMPLES;

export interface Samples {
  dir: string;
  path(name: SampleName): string;
  bytes(name: SampleName): Uint8Array;
  remove(): void;
}

/** Builds every sample into a new temporary folder (about a second). */
export function buildSamples(): Samples {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-pe-'));
  // The import library for sample.dll, so ordprog.exe can import Hidden by ordinal (NONAME).
  run(DLLTOOL, ['-d', src('lib.def'), '-l', 'libsample.a'], dir);
  for (const [name, args] of Object.entries(SAMPLES)) run(GCC, [...args, '-o', name], dir);
  const cache = new Map<string, Uint8Array>();
  return {
    dir,
    path: (name) => join(dir, name),
    bytes: (name) => {
      if (!cache.has(name)) cache.set(name, new Uint8Array(readFileSync(join(dir, name))));
      return cache.get(name)!.slice(); // a copy the caller may patch
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The part of a tap Test the helpers below use. */
interface TestLike {
  skip(...args: any[]): unknown;
  fail(...args: any[]): unknown;
  teardown(fn: () => void): unknown;
}

/** haveOracle for the PE tests: MinGW-w64, and objdump as well when `objdump` is set. */
export function havePeOracles(t: TestLike, objdump = false): boolean {
  const test = { skip: (m?: string) => void t.skip(m ?? ''), fail: (m?: string) => void t.fail(m ?? '') };
  return haveOracle(test, 'mingw') && (!objdump || haveOracle(test, 'objdump'));
}

/** The samples, built on first use and removed when the test file ends. */
export function lazySamples(t: TestLike): () => Samples {
  let samples: Samples | undefined;
  t.teardown(() => samples?.remove());
  return () => (samples ??= buildSamples());
}

// --- objdump's text ------------------------------------------------------------------------------

export interface ObjdumpSection {
  name: string;
  size: number;
  vma: number;
  fileOffset: number;
  flags: string[];
}
export interface ObjdumpImport {
  dll: string;
  /** 'name' or '#ordinal' */
  functions: string[];
}
export interface ObjdumpSymbol {
  section: number;
  type: number;
  storageClass: number;
  aux: number;
  value: number;
  name: string;
}
export interface ObjdumpView {
  imageBase: number;
  entry: number;
  subsystem: number;
  sizeOfImage: number;
  characteristics: number;
  sections: ObjdumpSection[];
  imports: ObjdumpImport[];
  /** Per block: page RVA and "Number of fixups" (objdump counts the ABSOLUTE pads too). */
  relocationBlocks: { page: number; fixups: number; highlow: number[] }[];
  exports: { ordinal: number; rva: number; forwarder?: string }[];
  exportNames: string[];
  symbols: ObjdumpSymbol[];
}

function objdump(args: string[], file: string): string {
  const r = spawnSync('objdump', [...args, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`objdump ${args.join(' ')} ${file} failed: ${r.stderr}`);
  return r.stdout;
}

const num = (s: string) => parseInt(s, 16);

/** objdump -p, -h and -t of a file, parsed line by line (tolerant of spacing and tabs). */
export function objdumpView(file: string): ObjdumpView {
  const p = objdump(['-p'], file).split('\n');
  const field = (name: string): number => {
    const line = p.find((l) => new RegExp(`^${name}\\s`).test(l));
    if (!line) throw new Error(`objdump -p of ${file}: no ${name}`);
    return num(line.trim().split(/\s+/)[1]!);
  };
  const view: ObjdumpView = {
    imageBase: field('ImageBase'),
    entry: field('AddressOfEntryPoint'),
    subsystem: field('Subsystem'),
    sizeOfImage: field('SizeOfImage'),
    characteristics: field('Characteristics'),
    sections: [],
    imports: [],
    relocationBlocks: [],
    exports: [],
    exportNames: [],
    symbols: [],
  };

  // Imports: "\tDLL Name: X" then "\tvma:  Hint/Ord Member-Name Bound-To" then one line per import.
  let current: ObjdumpImport | undefined;
  let section: 'none' | 'imports' | 'relocs' | 'eat' | 'names' = 'none';
  let block: ObjdumpView['relocationBlocks'][number] | undefined;
  for (const raw of p) {
    const line = raw.trim();
    if (/^The Import Tables/.test(line)) section = 'imports';
    else if (/^PE File Base Relocations/.test(line)) section = 'relocs';
    else if (/^Export Address Table -- Ordinal Base/.test(line)) section = 'eat';
    else if (/^\[Ordinal\/Name Pointer\] Table/.test(line)) section = 'names';
    else if (/^There is (an|no) /.test(line) || /^The Export Tables/.test(line)) section = 'none';
    if (section === 'imports') {
      const dll = /^DLL Name: (.+)$/.exec(line);
      if (dll) view.imports.push((current = { dll: dll[1]!, functions: [] }));
      const fn = /^([0-9a-f]+)\s+(\d+)\s+(\S+)/.exec(line);
      if (fn && current && line.split(/\s+/).length <= 4) current.functions.push(fn[3] === '<none>' ? `#${fn[2]}` : fn[3]!);
      if (line === '') current = undefined;
    } else if (section === 'relocs') {
      const b = /^Virtual Address: ([0-9a-f]+) Chunk size \d+ \(0x[0-9a-f]+\) Number of fixups (\d+)/.exec(line);
      if (b) view.relocationBlocks.push((block = { page: num(b[1]!), fixups: Number(b[2]), highlow: [] }));
      const r = /^reloc\s+\d+ offset\s+[0-9a-f]+ \[([0-9a-f]+)\] (\S+)/.exec(line);
      if (r && block && r[2] === 'HIGHLOW') block.highlow.push(num(r[1]!));
    } else if (section === 'eat') {
      const e = /^\[\s*\d+\] \+base\[\s*(\d+)\] ([0-9a-f]+) (Export|Forwarder) RVA(?: -- (\S+))?/.exec(line);
      if (e) view.exports.push({ ordinal: Number(e[1]), rva: num(e[2]!), ...(e[3] === 'Forwarder' ? { forwarder: e[4]! } : {}) });
    } else if (section === 'names') {
      const n = /^\[\s*\d+\] (\S+)$/.exec(line);
      if (n) view.exportNames.push(n[1]!);
    }
  }

  // Sections: "  0 .text  0000007c  00401000  00401000  00000400  2**2" then a flags line.
  const h = objdump(['-h'], file).split('\n');
  for (let i = 0; i < h.length; i++) {
    const m = /^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+2\*\*\d+/.exec(h[i]!);
    if (m) view.sections.push({ name: m[1]!, size: num(m[2]!), vma: num(m[3]!), fileOffset: num(m[4]!), flags: (h[i + 1] ?? '').trim().split(/,\s*/) });
  }

  // Symbols: "[  5](sec  1)(fl 0x00)(ty   20)(scl   2) (nx 0) 0x0000000e _start@0".
  for (const line of objdump(['-t'], file).split('\n')) {
    const m = /^\[\s*\d+\]\(sec\s+(-?\d+)\)\(fl 0x[0-9a-f]+\)\(ty\s+([0-9a-f]+)\)\(scl\s+(\d+)\) \(nx (\d+)\) 0x([0-9a-f]+) (.*)$/.exec(line);
    if (m) {
      view.symbols.push({ section: Number(m[1]), type: num(m[2]!), storageClass: Number(m[3]), aux: Number(m[4]), value: num(m[5]!), name: m[6]! });
    }
  }
  return view;
}

// --- patching a sample ---------------------------------------------------------------------------

export const u16 = (b: Uint8Array, o: number) => b[o]! | (b[o + 1]! << 8);
export const u32 = (b: Uint8Array, o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}
export function put32(b: Uint8Array, o: number, v: number): void {
  put16(b, o, v & 0xffff);
  put16(b, o + 2, v >>> 16);
}

/** File offsets of a PE's headers, for patching tests. */
export function offsets(b: Uint8Array) {
  const pe = u32(b, 0x3c);
  const coff = pe + 4;
  const opt = coff + 20;
  const sections = opt + u16(b, coff + 16);
  return { pe, coff, opt, sections, numberOfSections: u16(b, coff + 2), directory: (i: number) => opt + 96 + 8 * i, section: (i: number) => sections + 40 * i };
}
