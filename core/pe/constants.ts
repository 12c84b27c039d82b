// Numbers from Microsoft's PE format documentation (see SOURCES.md), and the PAGE_* protections
// of the Windows memory manager.

export const IMAGE_FILE_MACHINE_I386 = 0x014c;
export const IMAGE_NT_OPTIONAL_HDR32_MAGIC = 0x10b;
export const IMAGE_NT_OPTIONAL_HDR64_MAGIC = 0x20b;

// COFF file header Characteristics.
export const IMAGE_FILE_RELOCS_STRIPPED = 0x0001;
export const IMAGE_FILE_EXECUTABLE_IMAGE = 0x0002;
export const IMAGE_FILE_DLL = 0x2000;

// Section Characteristics.
export const IMAGE_SCN_CNT_CODE = 0x00000020;
export const IMAGE_SCN_CNT_UNINITIALIZED_DATA = 0x00000080;
export const IMAGE_SCN_MEM_EXECUTE = 0x20000000;
export const IMAGE_SCN_MEM_READ = 0x40000000;
export const IMAGE_SCN_MEM_WRITE = 0x80000000;

// Data directory indices.
export const IMAGE_DIRECTORY_ENTRY_EXPORT = 0;
export const IMAGE_DIRECTORY_ENTRY_IMPORT = 1;
export const IMAGE_DIRECTORY_ENTRY_BASERELOC = 5;
export const IMAGE_DIRECTORY_ENTRY_TLS = 9;
export const IMAGE_DIRECTORY_ENTRY_IAT = 12;
export const IMAGE_DIRECTORY_ENTRY_COM_DESCRIPTOR = 14;

// Base relocation types (the high 4 bits of an entry).
export const IMAGE_REL_BASED_ABSOLUTE = 0;
export const IMAGE_REL_BASED_HIGHLOW = 3;
export const RELOCATION_TYPE_NAMES: Record<number, string> = {
  0: 'ABSOLUTE',
  1: 'HIGH',
  2: 'LOW',
  3: 'HIGHLOW',
  4: 'HIGHADJ',
  10: 'DIR64',
};

// Optional header Subsystem.
export const IMAGE_SUBSYSTEM_NATIVE = 1;
export const IMAGE_SUBSYSTEM_WINDOWS_GUI = 2;
export const IMAGE_SUBSYSTEM_WINDOWS_CUI = 3;
export const SUBSYSTEM_NAMES: Record<number, string> = {
  0: 'unknown',
  1: 'native',
  2: 'Windows GUI',
  3: 'Windows console',
  5: 'OS/2 console',
  7: 'POSIX console',
  8: 'native Win9x driver',
  9: 'Windows CE GUI',
  10: 'EFI application',
  11: 'EFI boot service driver',
  12: 'EFI runtime driver',
  13: 'EFI ROM',
  14: 'Xbox',
  16: 'Windows boot application',
};

export const MACHINE_NAMES: Record<number, string> = {
  0x014c: 'i386',
  0x0166: 'MIPS R4000',
  0x01c0: 'ARM',
  0x01c2: 'Thumb',
  0x01c4: 'ARMv7',
  0x01f0: 'PowerPC',
  0x0200: 'Itanium',
  0x5032: 'RISC-V 32',
  0x5064: 'RISC-V 64',
  0x8664: 'x64',
  0xaa64: 'ARM64',
};

// COFF symbols.
export const IMAGE_SYM_CLASS_EXTERNAL = 2;
export const IMAGE_SYM_CLASS_STATIC = 3;
export const IMAGE_SYM_CLASS_FILE = 103;
/** The derived-type bits of a symbol's Type (winnt.h's N_TMASK); 0x20 = function. */
export const IMAGE_SYM_DTYPE_MASK = 0x30;
export const IMAGE_SYM_DTYPE_FUNCTION_BITS = 0x20;

// Page protections (winnt.h PAGE_*).
export const PAGE_NOACCESS = 0x01;
export const PAGE_READONLY = 0x02;
export const PAGE_READWRITE = 0x04;
export const PAGE_WRITECOPY = 0x08;
export const PAGE_EXECUTE = 0x10;
export const PAGE_EXECUTE_READ = 0x20;
export const PAGE_EXECUTE_READWRITE = 0x40;
export const PAGE_EXECUTE_WRITECOPY = 0x80;
export const PAGE_SIZE = 0x1000;

/** The largest image ntflow maps: the guest machine's 64 MiB of memory. */
export const MAX_IMAGE_SIZE = 64 * 1024 * 1024;
