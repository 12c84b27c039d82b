// core/pe: PE32 images for the i386 — the .exe programs and .sys drivers MinGW-w64 builds — read,
// checked, laid out at a base and relocated, their imports bound to the guest's exports.
//
//   const pe = parsePe(bytes, 'drv.sys', { expect: 'driver' });   // PeError if it cannot run
//   const { bytes: image } = mapImage(pe, 0xF8A00000, { regionSize: 0x10000, regionName: 'a driver slot' });
//   resolveImports(pe, image, (dll, fn) => guestAddress(dll, fn), guestExports);
//   pageProtection(pe, rva) → PAGE_* for each page; pe.entryRva; pe.functionSymbols
//
// Every refusal is a PeError whose message is one line naming the file and what to do; a
// truncated or fuzzed file gives a PeError too, never another exception. The format's facts come
// from Microsoft's PE format specification (SOURCES.md); what MinGW-w64 emits was read with
// objdump, and the tests compare the parser with objdump on images built at test time.
//
// What MinGW-w64 (gcc 12, binutils 2.40, Debian) emits, and the rules taken from it:
// - Program: `i686-w64-mingw32-gcc -nostdlib -e _start@0 prog.c -lkernel32` → an EXE (not a DLL),
//   subsystem 3 (console), ImageBase 0x00400000, sections .text .data .rdata .eh_fram (the
//   truncated .eh_frame) .idata .reloc (and .bss when there is uninitialized data). binutils 2.40
//   turns --dynamicbase on by default: DYNAMIC_BASE is set and .reloc holds HIGHLOW fixups (plus an
//   ABSOLUTE pad per block) with or without -Wl,--dynamicbase; -Wl,--disable-dynamicbase clears the
//   flag but keeps .reloc; only -Wl,--disable-reloc-section strips them (IMAGE_FILE_RELOCS_STRIPPED).
//   A program is run at 0x00400000, its own ImageBase, so it needs no relocation.
// - Driver: `… -nostdlib -Wl,--subsystem,native -e _DriverEntry@8 drv.c -lntoskrnl -lhal` → also an
//   EXE, subsystem 1 (native), and also ImageBase 0x00400000: it must be relocated to its slot at
//   0xF8A00000, so a driver needs its .reloc. Its imports are ntoskrnl.exe and HAL.dll. So a
//   driver is told from a program by its subsystem (native), not by the DLL flag, which a kernel
//   export driver may carry; a native image that imports a kernel module is a driver, and a
//   native image without kernel imports (as smss.exe) may run as a program.
// - Symbols: unstripped images keep the COFF symbol table: C functions are Type 0x20, storage
//   class EXTERNAL (2) or STATIC (3), value = offset in their section; import thunks for functions
//   not declared dllimport (DbgPrint) are typed functions in .text too. `-s` removes the table.
// - No TLS: a TLS directory is refused. A DLL (`-shared`) gets an ImageBase ld derives from its
//   name (0x62640000 for the tests' sample.dll) and an export directory; one without absolute
//   addresses has no .reloc at all, yet is not marked relocs-stripped: it maps anywhere as is.
export { parsePe } from './parse.js';
export { mapImage, type MapOptions, type MappedImage } from './map.js';
export { resolveImports, type ImportResolver, type KnownExports, type ResolvedImport } from './imports.js';
export { pageProtection, sectionProtection, protectionName } from './protect.js';
export { undecorate } from './undecorate.js';
export {
  PeError,
  type ParseOptions,
  type PeExpect,
  type PeImage,
  type PeSection,
  type PeImportDll,
  type PeImportFunction,
  type PeExports,
  type PeExportFunction,
  type CoffSymbol,
  type FunctionSymbol,
  type PeRelocationBlock,
  type DataDirectory,
} from './types.js';
export {
  PAGE_NOACCESS,
  PAGE_READONLY,
  PAGE_READWRITE,
  PAGE_WRITECOPY,
  PAGE_EXECUTE,
  PAGE_EXECUTE_READ,
  PAGE_EXECUTE_READWRITE,
  PAGE_EXECUTE_WRITECOPY,
  PAGE_SIZE,
  MAX_IMAGE_SIZE,
  IMAGE_SUBSYSTEM_NATIVE,
  IMAGE_SUBSYSTEM_WINDOWS_GUI,
  IMAGE_SUBSYSTEM_WINDOWS_CUI,
} from './constants.js';
