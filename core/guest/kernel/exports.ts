// The guest's modules as PE images in memory: a DOS header, the NT headers, one section header and
// an export directory at the start of each image — what a loader (or a rootkit) walking
// MZ → e_lfanew → DataDirectory[EXPORT] → IMAGE_EXPORT_DIRECTORY finds on XP. The export tables
// say which of a module's global labels are its API (XP exports the Nt/Zw stubs, the Rtl, Io, Ex,
// Ob, Ps, Ke routines drivers call, the data a driver links against — not the Ki*/Rtlp* internals);
// the PE loader resolves a program's or driver's imports against them.
//
// Layouts are the PE/COFF specification's (IMAGE_DOS_HEADER, IMAGE_NT_HEADERS32,
// IMAGE_SECTION_HEADER, IMAGE_EXPORT_DIRECTORY; see SOURCES.md). The headers go into the int3
// padding the kernel sources leave before their first code: the builder checks that they fit.
import { parsePe } from '../../pe/index.js';
import type { Image } from './build.js';

/** A guest module as a PE image: its file name, and what kind of image its headers describe. */
export interface ModuleFile {
  /** The file name imports name it by (ntoskrnl.exe, ntdll.dll, hal.dll, kernel32.dll). */
  fileName: string;
  /** A DLL's headers carry IMAGE_FILE_DLL. */
  dll: boolean;
  /** IMAGE_SUBSYSTEM_NATIVE (1) for the kernel's images, WINDOWS_CUI (3) for user-mode DLLs. */
  subsystem: 1 | 3;
}

/** The guest module names (the symbol table's) and the files they are. */
export const MODULE_FILES: Record<string, ModuleFile> = {
  nt: { fileName: 'ntoskrnl.exe', dll: false, subsystem: 1 },
  hal: { fileName: 'hal.dll', dll: true, subsystem: 1 },
  ntdll: { fileName: 'ntdll.dll', dll: true, subsystem: 3 },
  kernel32: { fileName: 'kernel32.dll', dll: true, subsystem: 3 },
};

/** The guest module a PE import's DLL name means (case-insensitive), or undefined. */
export function moduleOfDll(dll: string): string | undefined {
  const want = dll.toLowerCase();
  return Object.keys(MODULE_FILES).find((m) => MODULE_FILES[m]!.fileName === want);
}

// Global labels that are internals, not API: the trap and dispatch code, Rtl's private helpers,
// compiler helpers, import slots, the data-section markers, the object manager's privates.
const INTERNAL = /^(Ki|Kei|Kdp|Rtlp|Ldrp|Obp|Dr_|_SEH_|_except_handler|__imp_|KernelDataSection)/;
const INTERNAL_NAMES = new Set([
  'KeServiceDescriptorTableShadow', // not exported by XP: found by scanning, as rootkits did
  'KeReturnFromSystemCall',
  'CommonDispatchException',
  'KeContextFromKframes',
  'KeContextToKframes',
  'MmAccessFault',
  'KeGdiFlushUserBatch',
  'PsConvertToGuiThread',
  'RtlDispatchException',
]);

/** The exports of a module: its global labels minus the internals (ntdll keeps RtlDispatchException, as XP's does). */
export function moduleExports(module: string, symbols: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, address] of symbols) {
    // ntdll exports the entry points the kernel sends threads to (KiUserApcDispatcher, …).
    if (INTERNAL.test(name) && !(module === 'ntdll' && name.startsWith('KiUser'))) continue;
    if (INTERNAL_NAMES.has(name) && !(module === 'ntdll' && name === 'RtlDispatchException')) continue;
    // The IRQL routines are hal's; ntoskrnl only imports them.
    if (module === 'nt' && /^(Kf|KeGetCurrentIrql$)/.test(name)) continue;
    // ntdll's debug-service helpers and kernel32's Base* helpers are private on XP too.
    if (module === 'ntdll' && (name === 'DebugPrint' || name === 'DebugService')) continue;
    if (module === 'kernel32' && (/^Base/.test(name) || name === 'CreateDispositionMap')) continue;
    out.set(name, address);
  }
  return out;
}

const enc = new TextEncoder();

/** Bytes compared as strcmp does: the order a loader's binary search over AddressOfNames expects. */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const IMAGE_FILE_EXECUTABLE_IMAGE = 0x0002;
const IMAGE_FILE_32BIT_MACHINE = 0x0100;
const IMAGE_FILE_DLL = 0x2000;
const IMAGE_SCN_CNT_CODE = 0x00000020;
const IMAGE_SCN_MEM_EXECUTE = 0x20000000;
const IMAGE_SCN_MEM_READ = 0x40000000;
const IMAGE_SCN_MEM_WRITE = 0x80000000;
const NT_HEADERS = 0x80; // e_lfanew

/**
 * Write a module's PE headers and export directory over the padding at the start of its image:
 * IMAGE_DOS_HEADER ('MZ', e_lfanew), IMAGE_NT_HEADERS32 (i386, one section spanning the image
 * after the first page, DataDirectory[0] = the export directory), and the export directory —
 * the module's file name, ordinal base 1, AddressOfFunctions by ordinal, AddressOfNames sorted
 * by byte order with their AddressOfNameOrdinals.
 */
export function writePeHeaders(image: Image, file: ModuleFile, exports: ReadonlyMap<string, number>, entry = 0): void {
  const bytes = image.bytes;
  const size = image.bytes.length;
  const sizeOfImage = Math.ceil(size / 0x1000) * 0x1000;
  // The export directory follows the section header, then its tables and strings.
  const names = [...exports.keys()].sort(byteOrder);
  const byAddress = [...exports.entries()].sort((a, b) => a[1] - b[1] || byteOrder(a[0], b[0]));
  const ordinalOf = new Map(byAddress.map(([n], i) => [n, i]));
  const dirRva = NT_HEADERS + 0xf8 + 0x28;
  const functionsRva = dirRva + 0x28;
  const namesRva = functionsRva + 4 * byAddress.length;
  const ordinalsRva = namesRva + 4 * names.length;
  let stringRva = ordinalsRva + 2 * names.length;
  const moduleNameRva = stringRva;
  stringRva += file.fileName.length + 1;
  const nameRvas: number[] = [];
  for (const n of names) {
    nameRvas.push(stringRva);
    stringRva += n.length + 1;
  }
  const end = stringRva;
  // Everything must fit in the int3 padding before the module's first byte of code or data.
  let free = 0;
  while (free < size && bytes[free] === 0xcc) free++;
  if (end > free) throw new Error(`${file.fileName}: its headers and export directory need ${end} bytes; only ${free} are free before its code`);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  bytes.fill(0, 0, end);
  const u16 = (at: number, v: number) => view.setUint16(at, v, true);
  const u32 = (at: number, v: number) => view.setUint32(at, v >>> 0, true);
  const str = (at: number, s: string) => {
    bytes.set(enc.encode(s), at);
    bytes[at + s.length] = 0;
  };
  // IMAGE_DOS_HEADER: e_magic, e_lfanew.
  str(0, 'MZ');
  u32(0x3c, NT_HEADERS);
  // IMAGE_NT_HEADERS32: Signature, IMAGE_FILE_HEADER, IMAGE_OPTIONAL_HEADER32.
  str(NT_HEADERS, 'PE');
  const fh = NT_HEADERS + 4;
  u16(fh + 0x00, 0x14c); // Machine: i386
  u16(fh + 0x02, 1); // NumberOfSections
  u16(fh + 0x10, 0xe0); // SizeOfOptionalHeader
  u16(fh + 0x12, IMAGE_FILE_EXECUTABLE_IMAGE | IMAGE_FILE_32BIT_MACHINE | (file.dll ? IMAGE_FILE_DLL : 0));
  const oh = fh + 0x14;
  u16(oh + 0x00, 0x10b); // Magic: PE32
  u32(oh + 0x04, sizeOfImage - 0x1000); // SizeOfCode
  u32(oh + 0x10, entry ? entry - image.base : 0); // AddressOfEntryPoint
  u32(oh + 0x14, 0x1000); // BaseOfCode
  u32(oh + 0x1c, image.base); // ImageBase
  u32(oh + 0x20, 0x1000); // SectionAlignment
  u32(oh + 0x24, 0x1000); // FileAlignment (the in-memory image is the file here)
  u16(oh + 0x28, 5); // MajorOperatingSystemVersion 5.1 (XP)
  u16(oh + 0x2a, 1);
  u16(oh + 0x30, 5); // MajorSubsystemVersion
  u16(oh + 0x32, 1);
  u32(oh + 0x38, sizeOfImage); // SizeOfImage
  u32(oh + 0x3c, 0x1000); // SizeOfHeaders
  u16(oh + 0x44, file.subsystem);
  u32(oh + 0x5c, 16); // NumberOfRvaAndSizes
  u32(oh + 0x60, dirRva); // DataDirectory[IMAGE_DIRECTORY_ENTRY_EXPORT]
  u32(oh + 0x64, end - dirRva);
  // IMAGE_SECTION_HEADER: '.text', the whole image after the headers' page.
  const sh = oh + 0xe0;
  str(sh, '.text');
  u32(sh + 0x08, sizeOfImage - 0x1000); // VirtualSize
  u32(sh + 0x0c, 0x1000); // VirtualAddress
  u32(sh + 0x10, sizeOfImage - 0x1000); // SizeOfRawData
  u32(sh + 0x14, 0x1000); // PointerToRawData
  u32(sh + 0x24, IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE | IMAGE_SCN_MEM_READ | (file.subsystem === 1 ? IMAGE_SCN_MEM_WRITE : 0));
  // IMAGE_EXPORT_DIRECTORY.
  u32(dirRva + 0x0c, moduleNameRva); // Name
  u32(dirRva + 0x10, 1); // Base: the first ordinal
  u32(dirRva + 0x14, byAddress.length); // NumberOfFunctions
  u32(dirRva + 0x18, names.length); // NumberOfNames
  u32(dirRva + 0x1c, functionsRva);
  u32(dirRva + 0x20, namesRva);
  u32(dirRva + 0x24, ordinalsRva);
  byAddress.forEach(([, address], i) => u32(functionsRva + 4 * i, address - image.base));
  names.forEach((n, i) => {
    u32(namesRva + 4 * i, nameRvas[i]!);
    u16(ordinalsRva + 2 * i, ordinalOf.get(n)!);
    str(nameRvas[i]!, n);
  });
  str(moduleNameRva, file.fileName);
}

/** What readExportDirectory found in each image (the images are built once and not changed after). */
const directories = new WeakMap<Image, { name: string; ordinal: number; address: number }[]>();

/**
 * The exports of a module as its PE export directory gives them (names in AddressOfNames order,
 * their ordinals and addresses), read back from the image bytes by core/pe's parser — the reader
 * every loaded program and driver goes through, so the headers writePeHeaders wrote are checked by it.
 */
export function readExportDirectory(image: Image): { name: string; ordinal: number; address: number }[] {
  const known = directories.get(image);
  if (known) return known;
  // The in-memory image is the file (FileAlignment = SectionAlignment); its last page is padded.
  const file = new Uint8Array(Math.ceil(image.bytes.length / 0x1000) * 0x1000);
  file.set(image.bytes);
  const pe = parsePe(file, MODULE_FILES[image.module]?.fileName ?? image.module, { loaded: true });
  const out = (pe.exports?.functions ?? [])
    .flatMap((f) => f.names.map((name) => ({ name, ordinal: f.ordinal, address: (image.base + f.rva) >>> 0 })))
    .sort((a, b) => byteOrder(a.name, b.name));
  directories.set(image, out);
  return out;
}
