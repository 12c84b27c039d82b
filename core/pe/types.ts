// What parsePe reads from a PE32 image: plain data, no methods, so a caller can keep, compare and
// print it. Field names follow Microsoft's PE format documentation; RVAs are relative to the base.

/**
 * Why an image cannot be used: one line naming the file and what to do. Never a stack trace. Names
 * read from a damaged file may hold control characters: they are shown as \xNN, so the message
 * stays one line.
 */
export class PeError extends Error {
  override name = 'PeError';
  constructor(
    /** The file the message is about, as the caller named it. */
    readonly fileName: string,
    message: string,
  ) {
    super(message.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
  }
}

/** What the caller is about to load; parsePe refuses an image that is something else. */
export type PeExpect = 'program' | 'driver';

export interface ParseOptions {
  /**
   * 'program': a user-mode .exe (console, GUI, or native without kernel imports) — not a DLL, not
   * a driver. 'driver': a kernel-mode image (native subsystem; the DLL flag is allowed, as for an
   * export driver). Both need an entry point. Omitted: any PE32 x86 image (a DLL to inspect).
   */
  expect?: PeExpect;
  /**
   * The bytes are an image as a loader left it in memory (its headers updated to the address it
   * was loaded at, any page), not a file: ImageBase need not be a multiple of 64 KiB.
   */
  loaded?: boolean;
}

export interface DataDirectory {
  rva: number;
  size: number;
}

export interface PeSection {
  /** As in the section table (8 bytes at most; a `/n` long name is looked up in the string table). */
  name: string;
  virtualAddress: number;
  /** VirtualSize from the table (0 in some old linkers' output: then sizeOfRawData counts). */
  virtualSize: number;
  pointerToRawData: number;
  sizeOfRawData: number;
  characteristics: number;
  readable: boolean;
  writable: boolean;
  executable: boolean;
  /** The PAGE_* protection of every page of the section (see pageProtection). */
  protection: number;
}

/** One import: by name (with the exporter's hint) or by ordinal, and the IAT slot the loader fills. */
export type PeImportFunction =
  | { by: 'name'; name: string; hint: number; iatRva: number }
  | { by: 'ordinal'; ordinal: number; iatRva: number };

export interface PeImportDll {
  /** As spelled in the image ('KERNEL32.dll', 'ntoskrnl.exe'). */
  dll: string;
  /** OriginalFirstThunk: the import lookup table; 0 when the image has only the IAT. */
  iltRva: number;
  /** FirstThunk: the import address table the loader overwrites with addresses. */
  iatRva: number;
  timeDateStamp: number;
  functions: PeImportFunction[];
}

export interface PeExportFunction {
  ordinal: number;
  /** The code or data RVA; for a forwarder, the RVA of its 'dll.Name' string. */
  rva: number;
  /** 'NTDLL.RtlZeroMemory' when the export forwards to another module. */
  forwarder?: string;
  /** The names that point at this ordinal (none for a NONAME export). */
  names: string[];
}

export interface PeExports {
  /** The DLL's own name from the export directory. */
  name: string;
  ordinalBase: number;
  /** Every non-empty slot of the export address table, by ordinal. */
  functions: PeExportFunction[];
}

/** One record of the COFF symbol table (auxiliary records are skipped; auxCount says how many). */
export interface CoffSymbol {
  /** Index in the table (counting auxiliary records, as objdump's [n]). */
  index: number;
  name: string;
  value: number;
  /** 1-based section index; 0 undefined, -1 absolute, -2 debug. */
  section: number;
  type: number;
  storageClass: number;
  auxCount: number;
  /** section's VirtualAddress + value, for a symbol in a section. */
  rva?: number;
  /** For a `.file` symbol (storage class FILE, 103): the source file named in its auxiliary records. */
  file?: string;
}

export interface FunctionSymbol {
  /** As in the symbol table: '_DriverEntry@8', '_start@0', '@IofCompleteRequest@8'. */
  name: string;
  rva: number;
}

export interface PeRelocationBlock {
  pageRva: number;
  /** SizeOfBlock: 8 + 2 per entry. */
  size: number;
  /** IMAGE_REL_BASED_HIGHLOW entries. */
  fixups: number;
  /** IMAGE_REL_BASED_ABSOLUTE entries (padding to a 4-byte boundary). */
  padding: number;
}

export interface PeImage {
  fileName: string;
  /** The file as given (not copied). */
  file: Uint8Array;
  machine: number;
  timeDateStamp: number;
  pointerToSymbolTable: number;
  numberOfSymbols: number;
  characteristics: number;
  /** IMAGE_FILE_DLL. */
  isDll: boolean;
  /** IMAGE_FILE_RELOCS_STRIPPED: the image can only run at imageBase. */
  relocsStripped: boolean;
  imageBase: number;
  sectionAlignment: number;
  fileAlignment: number;
  sizeOfImage: number;
  sizeOfHeaders: number;
  /** AddressOfEntryPoint (0: none, as a DLL may have). */
  entryRva: number;
  /** 1 native, 2 Windows GUI, 3 Windows console, … */
  subsystem: number;
  subsystemName: string;
  dllCharacteristics: number;
  dataDirectories: DataDirectory[];
  sections: PeSection[];
  /** The RVA of every HIGHLOW fixup, in table order. */
  relocations: number[];
  relocationBlocks: PeRelocationBlock[];
  imports: PeImportDll[];
  exports?: PeExports;
  /** Every COFF symbol (empty for a stripped image). */
  symbols: CoffSymbol[];
  /** The function symbols defined in the image, by RVA (see parsePe for the rule). */
  functionSymbols: FunctionSymbol[];
}
