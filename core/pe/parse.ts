// parsePe: the headers, sections, base relocations, imports, exports and COFF symbols of a PE32
// x86 image, every offset bounds-checked so that a damaged file gives a PeError and nothing else.
import * as C from './constants.js';
import { sectionProtection } from './protect.js';
import {
  PeError,
  type CoffSymbol,
  type DataDirectory,
  type FunctionSymbol,
  type ParseOptions,
  type PeExportFunction,
  type PeExports,
  type PeImage,
  type PeImportDll,
  type PeImportFunction,
  type PeRelocationBlock,
  type PeSection,
} from './types.js';

export const hex = (n: number): string => `0x${(n >>> 0).toString(16).toUpperCase()}`;

/** Limits that keep a hostile file from making the parser loop or allocate without end. */
const MAX_SECTIONS = 96; // the PE format's own limit
const MAX_IMPORT_DLLS = 1024;
const MAX_FUNCTIONS = 0x10000; // ordinals are 16-bit
const MAX_NAME = 1024;

/** Kernel modules: a native image importing one of these is a driver. */
const KERNEL_MODULES = new Set(['ntoskrnl.exe', 'ntkrnlpa.exe', 'ntkrnlmp.exe', 'ntkrpamp.exe', 'hal.dll']);
/** User-mode DLLs a driver cannot import (MinGW links some of them when -nostdlib is missing). */
const USER_MODULES = new Set(['ntdll.dll', 'kernel32.dll', 'user32.dll', 'gdi32.dll', 'advapi32.dll', 'msvcrt.dll']);

const isKernelModule = (dll: string) => KERNEL_MODULES.has(dll.toLowerCase()) || dll.toLowerCase().endsWith('.sys');

/** Bounds-checked little-endian reads from the file. */
class FileReader {
  constructor(
    readonly bytes: Uint8Array,
    private readonly truncated: (what: string) => never,
  ) {}
  has(offset: number, length: number): boolean {
    return offset >= 0 && length >= 0 && offset + length <= this.bytes.length;
  }
  need(offset: number, length: number, what: string): void {
    if (!this.has(offset, length)) this.truncated(what);
  }
  u8(o: number, what: string): number {
    this.need(o, 1, what);
    return this.bytes[o]!;
  }
  u16(o: number, what: string): number {
    this.need(o, 2, what);
    return this.bytes[o]! | (this.bytes[o + 1]! << 8);
  }
  u32(o: number, what: string): number {
    this.need(o, 4, what);
    return (this.bytes[o]! | (this.bytes[o + 1]! << 8) | (this.bytes[o + 2]! << 16) | (this.bytes[o + 3]! << 24)) >>> 0;
  }
}

/**
 * Reads the image as the loader lays it out (headers, then each section at its RVA, zero past its
 * raw data) straight from the file, without building the image.
 */
class RvaReader {
  private last: PeSection | undefined;
  constructor(
    private readonly file: Uint8Array,
    private readonly sizeOfHeaders: number,
    private readonly sections: PeSection[],
    private readonly corrupt: (what: string) => never,
  ) {}

  /** The section holding rva, or 'headers', or undefined when no part of the image holds it. */
  private region(rva: number): PeSection | 'headers' | undefined {
    if (rva < this.sizeOfHeaders) return 'headers';
    const last = this.last;
    if (last && rva >= last.virtualAddress && rva < last.virtualAddress + extent(last)) return last;
    for (const s of this.sections) {
      if (rva >= s.virtualAddress && rva < s.virtualAddress + extent(s)) return (this.last = s);
    }
    return undefined;
  }

  byte(rva: number, what: string): number {
    const r = this.region(rva);
    if (r === undefined) this.corrupt(`${what} (RVA ${hex(rva)}) lies outside the headers and every section`);
    if (r === 'headers') return this.file[rva]!;
    const offset = rva - r.virtualAddress;
    return offset < r.sizeOfRawData ? this.file[r.pointerToRawData + offset]! : 0;
  }
  u16(rva: number, what: string): number {
    return this.byte(rva, what) | (this.byte(rva + 1, what) << 8);
  }
  u32(rva: number, what: string): number {
    return (this.byte(rva, what) | (this.byte(rva + 1, what) << 8) | (this.byte(rva + 2, what) << 16) | (this.byte(rva + 3, what) << 24)) >>> 0;
  }
  /** A NUL-terminated ASCII string. */
  cstr(rva: number, what: string): string {
    let s = '';
    for (let i = 0; i < MAX_NAME; i++) {
      const b = this.byte(rva + i, what);
      if (b === 0) return s;
      s += String.fromCharCode(b);
    }
    return this.corrupt(`${what} at RVA ${hex(rva)} is not NUL-terminated within ${MAX_NAME} bytes`);
  }
  /** True when every byte of [rva, rva+length) is in the headers or a section. */
  covers(rva: number, length: number): boolean {
    for (let a = rva; a < rva + length; a++) if (this.region(a) === undefined) return false;
    return true;
  }
}

/** How much of the address space a section takes before alignment (VirtualSize, or the raw size when 0). */
export function extent(s: PeSection): number {
  return s.virtualSize !== 0 ? s.virtualSize : s.sizeOfRawData;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;
const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;

/**
 * Reads a PE32 image for the i386. Refuses, with a one-line PeError naming the file: a file that
 * is not a PE image, a truncated or corrupt one, a 64-bit (PE32+) or non-x86 image, an image with
 * a TLS directory or a .NET header, an unsupported base relocation type, and — with
 * `options.expect` — an image of the wrong kind.
 *
 * Kinds (decided from what MinGW-w64 emits, see core/pe/index.ts): a program is not a DLL and has
 * the Windows console or GUI subsystem, or the native subsystem without kernel imports; a driver
 * has the native subsystem (MinGW's `-Wl,--subsystem,native` .sys is an EXE), with or without the
 * DLL flag, and imports no user-mode DLL.
 *
 * `functionSymbols` are the COFF symbols that are functions by the symbol table's own type field:
 * Type 0x20 (derived type function), storage class EXTERNAL or STATIC, in a section. gcc types
 * every C function so, and MinGW's import thunks (`_DbgPrint`, a `jmp [__imp__DbgPrint]` in
 * .text) too; the untyped EXTERNAL symbols ld adds to .text (`__CTOR_LIST__`, `___DTOR_LIST__`,
 * and for a .text-only image `__data_start__` and the like) are not functions and are left out,
 * as is a hand-written assembly label unless it is declared `.def _f; .scl 2; .type 32; .endef`.
 */
export function parsePe(bytes: Uint8Array, fileName: string, options: ParseOptions = {}): PeImage {
  const f = fileName;
  const refuse = (message: string): never => {
    throw new PeError(f, message);
  };
  const corrupt = (what: string): never => refuse(`${f} is truncated or corrupt: ${what}`);
  const truncated = (what: string): never => corrupt(`${what} runs past the end of the file (${bytes.length} bytes)`);
  const file = new FileReader(bytes, truncated);

  // --- MS-DOS header and the PE signature -------------------------------------------------------
  if (bytes.length < 2 || bytes[0] !== 0x4d || bytes[1] !== 0x5a) refuse(`${f} is not a PE image: no MZ header`);
  const lfanew = file.u32(0x3c, 'the MS-DOS header');
  if (!file.has(lfanew, 4)) refuse(`${f} is not a PE image: e_lfanew (${hex(lfanew)}) points past the end of the file (an MS-DOS program?)`);
  if (file.u32(lfanew, 'the PE signature') !== 0x00004550) {
    refuse(`${f} is not a PE image: no 'PE\\0\\0' signature at e_lfanew (${hex(lfanew)}) (an MS-DOS, NE or LE program?)`);
  }

  // --- COFF file header -------------------------------------------------------------------------
  const coff = lfanew + 4;
  file.need(coff, 20, 'the COFF file header');
  const machine = file.u16(coff, '');
  const numberOfSections = file.u16(coff + 2, '');
  const timeDateStamp = file.u32(coff + 4, '');
  const pointerToSymbolTable = file.u32(coff + 8, '');
  const numberOfSymbols = file.u32(coff + 12, '');
  const sizeOfOptionalHeader = file.u16(coff + 16, '');
  const characteristics = file.u16(coff + 18, '');

  // --- optional header: PE32 only, i386 only ----------------------------------------------------
  const opt = coff + 20;
  const magic = sizeOfOptionalHeader >= 2 ? file.u16(opt, 'the optional header') : 0;
  if (magic === C.IMAGE_NT_OPTIONAL_HDR64_MAGIC) {
    refuse(`${f} is a 64-bit (PE32+) image; ntflow runs 32-bit x86 images: build with i686-w64-mingw32-gcc`);
  }
  if (machine !== C.IMAGE_FILE_MACHINE_I386) {
    const name = C.MACHINE_NAMES[machine];
    refuse(`${f} is built for machine ${hex(machine)}${name ? ` (${name})` : ''}; ntflow runs 32-bit x86 (i386) images: build with i686-w64-mingw32-gcc`);
  }
  if (sizeOfOptionalHeader === 0) corrupt('there is no optional header (SizeOfOptionalHeader is 0)');
  if (magic !== C.IMAGE_NT_OPTIONAL_HDR32_MAGIC) corrupt(`the optional header's magic is ${hex(magic)}, not 0x10B (PE32)`);
  if (sizeOfOptionalHeader < 96) corrupt(`the optional header is ${sizeOfOptionalHeader} bytes, too small for PE32 (96 and the data directories)`);
  file.need(opt, sizeOfOptionalHeader, 'the optional header');
  const entryRva = file.u32(opt + 16, '');
  const imageBase = file.u32(opt + 28, '');
  const sectionAlignment = file.u32(opt + 32, '');
  const fileAlignment = file.u32(opt + 36, '');
  const sizeOfImage = file.u32(opt + 56, '');
  const sizeOfHeaders = file.u32(opt + 60, '');
  const subsystem = file.u16(opt + 68, '');
  const dllCharacteristics = file.u16(opt + 70, '');
  const numberOfRvaAndSizes = file.u32(opt + 92, '');
  const directoryCount = Math.min(numberOfRvaAndSizes, 16);
  if (96 + 8 * directoryCount > sizeOfOptionalHeader) {
    corrupt(`NumberOfRvaAndSizes (${numberOfRvaAndSizes}) needs more than the ${sizeOfOptionalHeader}-byte optional header`);
  }
  const dataDirectories: DataDirectory[] = [];
  for (let i = 0; i < 16; i++) {
    dataDirectories.push(i < directoryCount ? { rva: file.u32(opt + 96 + 8 * i, ''), size: file.u32(opt + 100 + 8 * i, '') } : { rva: 0, size: 0 });
  }

  if ((characteristics & C.IMAGE_FILE_EXECUTABLE_IMAGE) === 0) {
    refuse(`${f} is not marked executable (IMAGE_FILE_EXECUTABLE_IMAGE is clear: did the link fail?)`);
  }
  if (!isPowerOfTwo(sectionAlignment) || sectionAlignment < C.PAGE_SIZE) {
    refuse(`${f} has SectionAlignment ${hex(sectionAlignment)}; ntflow maps images with page-aligned sections (0x1000, the linker's default)`);
  }
  if (!isPowerOfTwo(fileAlignment) || fileAlignment > sectionAlignment) {
    corrupt(`FileAlignment ${hex(fileAlignment)} is not a power of two no larger than SectionAlignment (${hex(sectionAlignment)})`);
  }
  if (imageBase % (options.loaded ? 0x1000 : 0x10000) !== 0) corrupt(`ImageBase ${hex(imageBase)} is not a multiple of ${options.loaded ? '4' : '64'} KiB`);
  if (sizeOfImage === 0) corrupt('SizeOfImage is 0');
  if (sizeOfImage > C.MAX_IMAGE_SIZE) refuse(`${f} is too large: SizeOfImage ${hex(sizeOfImage)} is more than the guest's 64 MiB of memory`);
  if (imageBase + sizeOfImage > 0x1_0000_0000) corrupt(`ImageBase ${hex(imageBase)} + SizeOfImage ${hex(sizeOfImage)} is past 4 GiB`);
  if (entryRva >= sizeOfImage) corrupt(`the entry point (RVA ${hex(entryRva)}) is past SizeOfImage (${hex(sizeOfImage)})`);

  // --- COFF string table (long section and symbol names) ----------------------------------------
  let stringTable: { offset: number; size: number } | undefined;
  if (pointerToSymbolTable !== 0) {
    const symbolsEnd = pointerToSymbolTable + numberOfSymbols * 18;
    file.need(pointerToSymbolTable, numberOfSymbols * 18, 'the COFF symbol table');
    if (file.has(symbolsEnd, 4)) {
      const size = file.u32(symbolsEnd, 'the COFF string table');
      if (size < 4) corrupt(`the COFF string table's size (${size}) is less than 4`);
      file.need(symbolsEnd, size, 'the COFF string table');
      stringTable = { offset: symbolsEnd, size };
    }
  }
  const longName = (offset: number, what: string): string => {
    if (!stringTable || offset < 4 || offset >= stringTable.size) corrupt(`${what} points outside the COFF string table (offset ${offset})`);
    const start = stringTable!.offset + offset;
    const end = stringTable!.offset + stringTable!.size;
    let s = '';
    for (let o = start; o < end && bytes[o] !== 0; o++) s += String.fromCharCode(bytes[o]!);
    return s;
  };

  // --- section table ----------------------------------------------------------------------------
  if (numberOfSections === 0) corrupt('the image has no sections');
  if (numberOfSections > MAX_SECTIONS) corrupt(`NumberOfSections is ${numberOfSections}, more than the format's ${MAX_SECTIONS}`);
  const table = opt + sizeOfOptionalHeader;
  file.need(table, numberOfSections * 40, 'the section table');
  if (sizeOfHeaders > bytes.length) truncated(`the header block (SizeOfHeaders ${hex(sizeOfHeaders)})`);
  if (table + numberOfSections * 40 > sizeOfHeaders) corrupt(`the section table ends past SizeOfHeaders (${hex(sizeOfHeaders)})`);
  if (sizeOfHeaders > sizeOfImage) corrupt(`SizeOfHeaders ${hex(sizeOfHeaders)} is more than SizeOfImage ${hex(sizeOfImage)}`);
  const sections: PeSection[] = [];
  let previousStart = 0;
  let previousEnd = alignUp(sizeOfHeaders, sectionAlignment);
  let previousName = 'the headers';
  for (let i = 0; i < numberOfSections; i++) {
    const h = table + 40 * i;
    let name = '';
    for (let j = 0; j < 8 && bytes[h + j] !== 0; j++) name += String.fromCharCode(bytes[h + j]!);
    if (/^\/\d+$/.test(name)) name = longName(Number(name.slice(1)), `section ${i + 1}'s name`);
    const virtualSize = file.u32(h + 8, '');
    const virtualAddress = file.u32(h + 12, '');
    const sizeOfRawData = file.u32(h + 16, '');
    const pointerToRawData = file.u32(h + 20, '');
    const sectionCharacteristics = file.u32(h + 36, '');
    const section: PeSection = {
      name,
      virtualAddress,
      virtualSize,
      pointerToRawData,
      sizeOfRawData,
      characteristics: sectionCharacteristics,
      readable: (sectionCharacteristics & C.IMAGE_SCN_MEM_READ) !== 0,
      writable: (sectionCharacteristics & C.IMAGE_SCN_MEM_WRITE) !== 0,
      executable: (sectionCharacteristics & C.IMAGE_SCN_MEM_EXECUTE) !== 0,
      protection: sectionProtection(sectionCharacteristics),
    };
    const size = extent(section);
    const label = `section ${name || i + 1}`;
    if (virtualAddress % sectionAlignment !== 0) corrupt(`${label} starts at RVA ${hex(virtualAddress)}, not a multiple of SectionAlignment (${hex(sectionAlignment)})`);
    if (virtualAddress < previousEnd) {
      corrupt(`${label} starts at RVA ${hex(virtualAddress)}, inside ${previousName} (RVA ${hex(previousStart)} to ${hex(previousEnd)})`);
    }
    if (virtualAddress + size > sizeOfImage) {
      corrupt(`${label} (RVA ${hex(virtualAddress)}, ${hex(size)} bytes) extends beyond SizeOfImage (${hex(sizeOfImage)})`);
    }
    if (sizeOfRawData !== 0) file.need(pointerToRawData, sizeOfRawData, `${label}'s raw data (file offset ${hex(pointerToRawData)}, ${hex(sizeOfRawData)} bytes)`);
    sections.push(section);
    previousStart = virtualAddress;
    previousEnd = virtualAddress + alignUp(size, sectionAlignment);
    previousName = label;
  }

  // --- what ntflow does not support ---------------------------------------------------------------
  const directory = (i: number) => dataDirectories[i]!;
  if (directory(C.IMAGE_DIRECTORY_ENTRY_TLS).rva !== 0) {
    refuse(`${f} uses thread-local storage (it has a TLS directory); ntflow does not support TLS: remove __thread / __declspec(thread) variables and TLS callbacks`);
  }
  if (directory(C.IMAGE_DIRECTORY_ENTRY_COM_DESCRIPTOR).rva !== 0) refuse(`${f} is a .NET assembly (it has a CLR header); ntflow runs native x86 code only`);

  const image = new RvaReader(bytes, sizeOfHeaders, sections, corrupt);

  // --- base relocations -------------------------------------------------------------------------
  const relocations: number[] = [];
  const relocationBlocks: PeRelocationBlock[] = [];
  const relocDir = directory(C.IMAGE_DIRECTORY_ENTRY_BASERELOC);
  if (relocDir.rva !== 0 && relocDir.size !== 0) {
    const end = relocDir.rva + relocDir.size;
    if (end > sizeOfImage) corrupt(`the base relocation directory (RVA ${hex(relocDir.rva)}, ${hex(relocDir.size)} bytes) extends beyond SizeOfImage`);
    let at = relocDir.rva;
    while (at < end) {
      if (end - at < 8) corrupt(`the base relocation directory ends inside a block header (RVA ${hex(at)})`);
      const pageRva = image.u32(at, 'a base relocation block');
      const size = image.u32(at + 4, 'a base relocation block');
      if (size < 8 || size % 2 !== 0 || at + size > end) {
        corrupt(`the base relocation block at RVA ${hex(at)} has SizeOfBlock ${hex(size)}, which does not fit the directory`);
      }
      const block: PeRelocationBlock = { pageRva, size, fixups: 0, padding: 0 };
      for (let e = at + 8; e < at + size; e += 2) {
        const entry = image.u16(e, 'a base relocation entry');
        const type = entry >>> 12;
        const rva = pageRva + (entry & 0xfff);
        if (type === C.IMAGE_REL_BASED_ABSOLUTE) {
          block.padding++;
        } else if (type === C.IMAGE_REL_BASED_HIGHLOW) {
          if (rva + 4 > sizeOfImage) corrupt(`a HIGHLOW fixup at RVA ${hex(rva)} is past SizeOfImage (${hex(sizeOfImage)})`);
          relocations.push(rva);
          block.fixups++;
        } else {
          const name = C.RELOCATION_TYPE_NAMES[type];
          refuse(`${f} has a base relocation of type ${type}${name ? ` (${name})` : ''} at RVA ${hex(rva)}; ntflow applies only HIGHLOW (3) and ABSOLUTE (0), all a 32-bit x86 image needs`);
        }
      }
      relocationBlocks.push(block);
      at += size;
    }
  }

  // --- imports ----------------------------------------------------------------------------------
  const imports: PeImportDll[] = [];
  const importDir = directory(C.IMAGE_DIRECTORY_ENTRY_IMPORT);
  if (importDir.rva !== 0) {
    for (let d = importDir.rva; ; d += 20) {
      if (imports.length === MAX_IMPORT_DLLS) corrupt(`the import directory has more than ${MAX_IMPORT_DLLS} descriptors (no terminating entry?)`);
      const what = 'an import descriptor';
      const iltRva = image.u32(d, what);
      const dllTimeDateStamp = image.u32(d + 4, what);
      const nameRva = image.u32(d + 12, what);
      const iatRva = image.u32(d + 16, what);
      // As XP's loader: the list ends at a descriptor without a name or without an IAT.
      if (nameRva === 0 || iatRva === 0) break;
      const dll = image.cstr(nameRva, 'an imported DLL name');
      if (iltRva === 0 && dllTimeDateStamp !== 0) {
        refuse(`${f} is bound to ${dll} and has no import lookup table, so its imports cannot be read: relink it without binding`);
      }
      const lookup = iltRva !== 0 ? iltRva : iatRva;
      const functions: PeImportFunction[] = [];
      for (let i = 0; ; i++) {
        if (i === MAX_FUNCTIONS) corrupt(`the import table of ${dll} has more than ${MAX_FUNCTIONS} entries (no terminating entry?)`);
        const thunk = image.u32(lookup + 4 * i, `the import table of ${dll}`);
        if (thunk === 0) break;
        const slot = iatRva + 4 * i;
        if (!image.covers(slot, 4)) corrupt(`the IAT slot of ${dll} at RVA ${hex(slot)} lies outside the headers and every section`);
        if (thunk & 0x80000000) {
          functions.push({ by: 'ordinal', ordinal: thunk & 0xffff, iatRva: slot });
        } else {
          const hint = image.u16(thunk, `a hint/name entry of ${dll}`);
          const name = image.cstr(thunk + 2, `a hint/name entry of ${dll}`);
          functions.push({ by: 'name', name, hint, iatRva: slot });
        }
      }
      imports.push({ dll, iltRva, iatRva, timeDateStamp: dllTimeDateStamp, functions });
    }
  }

  // --- exports ----------------------------------------------------------------------------------
  let exports: PeExports | undefined;
  const exportDir = directory(C.IMAGE_DIRECTORY_ENTRY_EXPORT);
  if (exportDir.rva !== 0 && exportDir.size !== 0) {
    const e = exportDir.rva;
    const what = 'the export directory';
    const name = image.cstr(image.u32(e + 12, what), 'the export directory name');
    const ordinalBase = image.u32(e + 16, what);
    const numberOfFunctions = image.u32(e + 20, what);
    const numberOfNames = image.u32(e + 24, what);
    const functionsRva = image.u32(e + 28, what);
    const namesRva = image.u32(e + 32, what);
    const ordinalsRva = image.u32(e + 36, what);
    if (numberOfFunctions > MAX_FUNCTIONS || numberOfNames > MAX_FUNCTIONS) {
      corrupt(`the export directory claims ${numberOfFunctions} functions and ${numberOfNames} names (at most ${MAX_FUNCTIONS})`);
    }
    const names: string[][] = Array.from({ length: numberOfFunctions }, () => []);
    for (let i = 0; i < numberOfNames; i++) {
      const index = image.u16(ordinalsRva + 2 * i, 'the export ordinal table');
      if (index >= numberOfFunctions) corrupt(`export name ${i} points at function ${index}, past the ${numberOfFunctions} functions`);
      names[index]!.push(image.cstr(image.u32(namesRva + 4 * i, 'the export name table'), 'an export name'));
    }
    const functions: PeExportFunction[] = [];
    for (let i = 0; i < numberOfFunctions; i++) {
      const rva = image.u32(functionsRva + 4 * i, 'the export address table');
      if (rva === 0) continue;
      const fn: PeExportFunction = { ordinal: (ordinalBase + i) >>> 0, rva, names: names[i]! };
      if (rva >= exportDir.rva && rva < exportDir.rva + exportDir.size) fn.forwarder = image.cstr(rva, 'an export forwarder');
      functions.push(fn);
    }
    exports = { name, ordinalBase, functions };
  }

  // --- COFF symbols -----------------------------------------------------------------------------
  const symbols: CoffSymbol[] = [];
  if (pointerToSymbolTable !== 0) {
    for (let i = 0; i < numberOfSymbols; ) {
      const s = pointerToSymbolTable + 18 * i;
      const inline = file.u32(s, '') === 0 ? undefined : s;
      let name = '';
      if (inline === undefined) name = longName(file.u32(s + 4, ''), `symbol ${i}'s name`);
      else for (let j = 0; j < 8 && bytes[s + j] !== 0; j++) name += String.fromCharCode(bytes[s + j]!);
      const value = file.u32(s + 8, '');
      const section = (file.u16(s + 12, '') << 16) >> 16;
      const type = file.u16(s + 14, '');
      const storageClass = file.u8(s + 16, '');
      const auxCount = file.u8(s + 17, '');
      if (i + 1 + auxCount > numberOfSymbols) corrupt(`symbol ${i} has ${auxCount} auxiliary records past the end of the symbol table`);
      if (section > numberOfSections) corrupt(`symbol ${i} (${name}) is in section ${section}, past the ${numberOfSections} sections`);
      const symbol: CoffSymbol = { index: i, name, value, section, type, storageClass, auxCount };
      if (section >= 1) symbol.rva = (sections[section - 1]!.virtualAddress + value) >>> 0;
      if (storageClass === C.IMAGE_SYM_CLASS_FILE) {
        let file = '';
        for (let o = s + 18; o < s + 18 * (1 + auxCount) && bytes[o] !== 0; o++) file += String.fromCharCode(bytes[o]!);
        symbol.file = file;
      }
      symbols.push(symbol);
      i += 1 + auxCount;
    }
  }
  const seen = new Set<string>();
  const functionSymbols: FunctionSymbol[] = [];
  for (const s of symbols) {
    if (s.rva === undefined || (s.type & C.IMAGE_SYM_DTYPE_MASK) !== C.IMAGE_SYM_DTYPE_FUNCTION_BITS) continue;
    if (s.storageClass !== C.IMAGE_SYM_CLASS_EXTERNAL && s.storageClass !== C.IMAGE_SYM_CLASS_STATIC) continue;
    const key = `${s.name}@${s.rva}`;
    if (seen.has(key)) continue;
    seen.add(key);
    functionSymbols.push({ name: s.name, rva: s.rva });
  }
  functionSymbols.sort((a, b) => a.rva - b.rva || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const pe: PeImage = {
    fileName: f,
    file: bytes,
    machine,
    timeDateStamp,
    pointerToSymbolTable,
    numberOfSymbols,
    characteristics,
    isDll: (characteristics & C.IMAGE_FILE_DLL) !== 0,
    relocsStripped: (characteristics & C.IMAGE_FILE_RELOCS_STRIPPED) !== 0,
    imageBase,
    sectionAlignment,
    fileAlignment,
    sizeOfImage,
    sizeOfHeaders,
    entryRva,
    subsystem,
    subsystemName: C.SUBSYSTEM_NAMES[subsystem] ?? `unknown (${subsystem})`,
    dllCharacteristics,
    dataDirectories,
    sections,
    relocations,
    relocationBlocks,
    imports,
    exports,
    symbols,
    functionSymbols,
  };
  if (options.expect) checkKind(pe, options.expect);
  return pe;
}

/** The rules of ParseOptions.expect. */
function checkKind(pe: PeImage, expect: 'program' | 'driver'): void {
  const f = pe.fileName;
  const refuse = (message: string): never => {
    throw new PeError(f, message);
  };
  const what = `${pe.isDll ? 'a DLL' : 'a program'} for the ${pe.subsystemName} subsystem (${pe.subsystem})`;
  if (expect === 'program') {
    if (pe.isDll) refuse(`${f} is a DLL, not a program: build the program as an .exe (without -shared)`);
    if (pe.subsystem === C.IMAGE_SUBSYSTEM_NATIVE) {
      const kernel = pe.imports.find((d) => isKernelModule(d.dll));
      if (kernel) refuse(`${f} is a driver (native subsystem, imports ${kernel.dll}), not a program: load it with --driver (ntflow record prog.exe --driver drv.sys)`);
    } else if (pe.subsystem !== C.IMAGE_SUBSYSTEM_WINDOWS_CUI && pe.subsystem !== C.IMAGE_SUBSYSTEM_WINDOWS_GUI) {
      refuse(`${f} is ${what}, not a Windows program: link it with -Wl,--subsystem,console`);
    }
    if (pe.entryRva === 0) refuse(`${f} has no entry point (AddressOfEntryPoint is 0): link it with -e _start@0`);
  } else {
    if (pe.subsystem !== C.IMAGE_SUBSYSTEM_NATIVE) refuse(`${f} is ${what}, not a driver: link a driver with -Wl,--subsystem,native`);
    const user = pe.imports.find((d) => USER_MODULES.has(d.dll.toLowerCase()));
    if (user) refuse(`${f} imports ${user.dll}, a user-mode DLL, so it cannot be a driver: link a driver with -nostdlib and only kernel libraries (-lntoskrnl -lhal)`);
    if (pe.entryRva === 0) refuse(`${f} has no entry point (AddressOfEntryPoint is 0): link it with -e _DriverEntry@8`);
  }
}
