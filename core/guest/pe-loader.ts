// The image loader for PE32 programs and drivers (what MinGW-w64 builds from C): it does for a .exe
// or .sys what XP's process creation and IopLoadDriver do — checks the image is what it is loaded
// as, lays its sections out at a base, applies base relocations when that base is not the one it
// was linked for, binds its imports to the guest modules' export tables (the same tables a program
// walking MZ → PE → the export directory finds), and gives each page its section's protection.
// The loader (loader.ts) then maps the pages, as it maps an assembled program.
import { PeError, mapImage, pageProtection, parsePe, resolveImports, undecorate, type PeImage, type ResolvedImport } from '../pe/index.js';
import type { Image } from './kernel/build.js';
import * as L from './layout.js';
import { MODULE_FILES, readExportDirectory } from './kernel/exports.js';
import { ProgramError, type AssembledProgram, type ProgramKind, type ProgramSource } from './program.js';

/** IMAGE_NT_HEADERS32: Signature (4) + IMAGE_FILE_HEADER (20), then ImageBase at +28 of the optional header. */
const OPTIONAL_HEADER_IMAGE_BASE = 4 + 20 + 28;

/** COFF storage classes of the symbols that name C functions and variables. */
const COFF_EXTERNAL = 2;
const COFF_STATIC = 3;

/** A PE image laid out at its base, relocated, its imports bound: ready to map page by page. */
export interface LoadedImage extends AssembledProgram {
  pe: PeImage;
  /** The PAGE_* protection of each page of the image, from its section. */
  pageProtections: number[];
  /** Every import and the guest address its IAT slot now holds. */
  imports: ResolvedImport[];
  /** HIGHLOW fixups changed (0 when the image runs at its own ImageBase). */
  relocationsApplied: number;
}

/** Where an image may go: `base` picks the address once the headers are read. */
export interface LoadPlace {
  base: (pe: PeImage) => number;
  /** The size of the region the image must fit ('a driver slot', 64 KiB). */
  regionSize?: number;
  regionName?: string;
}

/** User space the loader has already given to something, which a program's image must not overlap. */
const TAKEN: readonly { start: number; end: number; what: string }[] = [
  { start: 0, end: L.USER_LOW_END, what: 'the no-access first 64 KiB and the process parameters' },
  { start: L.USER_STACK_TOP - L.USER_STACK_SIZE, end: L.USER_HEAP + 0x10000, what: "the program's stack" },
  { start: L.USER_DLLS_START, end: 0x80000000, what: 'kernel32.dll, ntdll.dll, the PEB, the TEB and SharedUserData' },
  { start: 0x80000000, end: 0x1_0000_0000, what: 'kernel space' },
];

/**
 * Where a program goes: at its own ImageBase when that range is free user space (MinGW links
 * programs for 0x00400000, as XP's are), else relocated to 0x00400000 — as XP's loader relocates
 * an image whose preferred base is taken. An image without relocations cannot move.
 */
export const PROGRAM_PLACE: LoadPlace = {
  base: (pe) => {
    const clash = TAKEN.find((t) => pe.imageBase < t.end && pe.imageBase + pe.sizeOfImage > t.start);
    if (!clash) return pe.imageBase;
    if (pe.relocsStripped) {
      const at = (n: number) => `0x${n.toString(16).toUpperCase().padStart(8, '0')}`;
      throw new PeError(
        pe.fileName,
        `${pe.fileName} is linked to run at ${at(pe.imageBase)}–${at(pe.imageBase + pe.sizeOfImage)}, which overlaps ${clash.what}, and its relocations were stripped so it cannot move: link it for 0x00400000 (-Wl,--image-base,0x400000) or keep its .reloc`,
      );
    }
    return L.PROGRAM_BASE;
  },
  regionSize: L.USER_DLLS_START - L.PROGRAM_BASE,
  regionName: 'user space between 0x00400000 and the system DLLs',
};

/** A PE source: the caller gave an image's bytes (a .exe or .sys), not assembly. */
export function isPeSource(src: ProgramSource): src is ProgramSource & { image: Uint8Array } {
  return src.image !== undefined;
}

/**
 * Load `src` (a PE image) as a user program or a driver at the place given, its imports bound
 * against `modules` (ntdll and kernel32 for a program, ntoskrnl and hal for a driver). Anything
 * wrong with the image is a ProgramError with one line naming the file and the fix.
 */
export function loadPeImage(src: ProgramSource & { image: Uint8Array }, kind: ProgramKind, place: LoadPlace, modules: readonly Image[]): LoadedImage {
  try {
    const pe = parsePe(src.image, src.fileName, { expect: kind === 'user' ? 'program' : 'driver' });
    const base = place.base(pe);
    const mapped = mapImage(pe, base, { regionSize: place.regionSize, regionName: place.regionName });
    // As XP's loader does once it has relocated an image, the mapped headers say where it now is.
    const headers = new DataView(mapped.bytes.buffer, mapped.bytes.byteOffset);
    headers.setUint32(headers.getUint32(0x3c, true) + OPTIONAL_HEADER_IMAGE_BASE, base, true);
    // The guest modules' export directories, read from their images as XP's loader reads them.
    const exports = new Map(modules.map((m) => [MODULE_FILES[m.module]!.fileName, guestExports(m)]));
    refuseOtherSide(pe, kind, exports);
    const imports = resolveImports(
      pe,
      mapped.bytes,
      (dll, fn) => (typeof fn === 'string' ? exports.get(dll)?.byName.get(fn) : exports.get(dll)?.byOrdinal.get(fn)),
      new Map([...exports].map(([dll, e]) => [dll, [...e.byName.keys()]])),
    );
    const symbols = imageSymbols(pe, base);
    const pageProtections: number[] = [];
    for (let rva = 0; rva < pe.sizeOfImage; rva += 0x1000) pageProtections.push(pageProtection(pe, rva));
    return {
      kind,
      fileName: src.fileName,
      origin: base,
      bytes: mapped.bytes,
      entry: (base + pe.entryRva) >>> 0,
      labels: symbols,
      symbols,
      pe,
      pageProtections,
      imports,
      relocationsApplied: mapped.relocationsApplied,
    };
  } catch (e) {
    if (e instanceof PeError) throw new ProgramError(e.message);
    throw e;
  }
}

/** A guest module's exports by name and by ordinal, from the export directory in its image. */
function guestExports(image: Image): { byName: Map<string, number>; byOrdinal: Map<number, number> } {
  const entries = readExportDirectory(image);
  return { byName: new Map(entries.map((e) => [e.name, e.address])), byOrdinal: new Map(entries.map((e) => [e.ordinal, e.address])) };
}

/**
 * A program importing the kernel, or a driver importing ntdll or kernel32, cannot be loaded: say
 * which side the import belongs to (parsePe already tells a driver from a program by subsystem).
 */
function refuseOtherSide(pe: PeImage, kind: ProgramKind, offered: ReadonlyMap<string, unknown>): void {
  const userDlls = ['ntdll.dll', 'kernel32.dll'];
  const kernelDlls = ['ntoskrnl.exe', 'hal.dll'];
  for (const d of pe.imports) {
    const dll = d.dll.toLowerCase();
    if (offered.has(dll)) continue;
    const first = d.functions[0];
    const what = first ? `${d.dll}!${first.by === 'name' ? first.name : `#${first.ordinal}`}` : d.dll;
    if (kind === 'user' && kernelDlls.includes(dll)) {
      throw new PeError(pe.fileName, `${pe.fileName} is a user program but imports ${what} from the kernel; a program calls ntdll.dll or kernel32.dll (link with -lntdll or -lkernel32), a driver is built with -Wl,--subsystem,native and passed with --driver`);
    }
    if (kind === 'driver' && userDlls.includes(dll)) {
      throw new PeError(pe.fileName, `${pe.fileName} is a driver but imports ${what} from user mode; a driver calls ntoskrnl.exe and hal.dll (link with -lntoskrnl -lhal, and -nostdlib so MinGW adds no user-mode libraries)`);
    }
  }
}

/**
 * The image's symbols: its exports, its functions from the COFF symbol table with their C names
 * ('_DispatchRead@8' → DispatchRead), and its C variables ('_logHandle' → logHandle: untyped
 * symbols in a data section named as the compiler names C identifiers, which leaves out the
 * linker's markers such as __data_start__ and the import slots __imp__X). A stripped image has
 * none of the last two: its addresses read module+0xOFFSET.
 */
function imageSymbols(pe: PeImage, base: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of pe.functionSymbols) {
    const name = undecorate(f.name);
    if (!out.has(name)) out.set(name, (base + f.rva) >>> 0);
  }
  for (const v of pe.symbols) {
    const section = pe.sections[v.section - 1];
    if (!section || section.executable || v.rva === undefined || v.type !== 0 || v.auxCount !== 0) continue;
    if ((v.storageClass !== COFF_EXTERNAL && v.storageClass !== COFF_STATIC) || !/^_[A-Za-z]/.test(v.name)) continue;
    const name = v.name.slice(1);
    if (!out.has(name)) out.set(name, (base + v.rva) >>> 0);
  }
  for (const e of pe.exports?.functions ?? []) {
    if (e.forwarder) continue;
    for (const name of e.names) if (!out.has(name)) out.set(name, (base + e.rva) >>> 0);
  }
  return out;
}
