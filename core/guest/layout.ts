// Where everything lives in the miniature XP SP1. The addresses in the first block are the seed
// listings' (DESIGN.md's byte table) and must not move; the rest are chosen in the ranges XP uses
// and kept stable, because traces and tests name them.

// --- fixed by the seed listings ---------------------------------------------------------------
export const NTDLL_NTREADFILE = 0x77f761e8;
export const SHARED_USER_DATA = 0x7ffe0000; // user view, read-only
export const SHARED_USER_DATA_KERNEL = 0xffdf0000; // kernel view of the same physical page
export const SYSTEM_CALL_STUB = SHARED_USER_DATA + 0x300;
export const SYSTEM_CALL_RET = SHARED_USER_DATA + 0x304; // the `ret` of SystemCallStub
export const KI_FAST_CALL_ENTRY = 0x8053a270;
export const KI_SYSTEM_SERVICE = 0x8053a2fb;
export const KI_SYSTEM_SERVICE_DISPATCH = KI_SYSTEM_SERVICE + 0x5c; // 0x8053A357
export const NT_ZWREADFILE = 0x80504d4c;
export const NT_NTREADFILE = 0x8056b2ec;
export const NT_SEH_PROLOG = 0x805352d8;
export const NT_READFILE_SCOPE_TABLE = 0x804e0458; // the `push 804E0458h` of NtReadFile's prologue
export const KPCR = 0xffdff000;
export const MM_USER_PROBE_ADDRESS = 0x7fff0000;

// --- chosen in XP's ranges ---------------------------------------------------------------------
/** ntoskrnl's image: base and the end of the region the kernel source may fill. */
export const NTOSKRNL_BASE = 0x804d7000;
export const NTOSKRNL_END = 0x80580000;
/** One ntdll Nt/Zw stub per service, 16 bytes apart, in service-number order, placed so that
 * NtReadFile (0xB7) lands on 0x77F761E8. */
export const NTDLL_STUB_SIZE = 0x10;
export const NTDLL_STUBS = NTDLL_NTREADFILE - 0xb7 * NTDLL_STUB_SIZE;
export const NTDLL_BASE = 0x77f50000;
/** kernel32.dll, where XP SP1 loads it; mapped only into Win32 programs (see loader.ts). */
export const KERNEL32_BASE = 0x77e60000;
/**
 * KiServiceTable, followed by KiArgumentTable and the two descriptor tables: at XP SP2's address
 * of KiServiceTable (SP1's is not public), in the free space before the Zw stubs, so the kernel's
 * code can grow without moving them.
 */
export const KI_SERVICE_TABLE = 0x804e26a8;
/** One kernel Zw stub per service, 0x14 bytes apart (as on XP), placing ZwReadFile on 0x80504D4C. */
export const ZW_STUB_SIZE = 0x14;
export const ZW_STUBS = NT_ZWREADFILE - 0xb7 * ZW_STUB_SIZE;
/** hal.dll: the IRQL routines the kernel and drivers import (in XP's range for it, above ntoskrnl). */
export const HAL_BASE = 0x806d0000;
/** win32k.sys: its service routines (all STATUS_NOT_IMPLEMENTED here) and its table. */
export const WIN32K_BASE = 0xbf800000;
/** Non-paged pool: objects, IRPs, EPROCESS/ETHREAD, allocated by the guest kernel's TS side. */
export const POOL_BASE = 0x81000000;
export const POOL_SIZE = 0x00400000;
/** Kernel stacks, one 12 KiB stack (+ guard page) per thread, as XP's KERNEL_STACK_SIZE 0x3000. */
export const KERNEL_STACKS = 0xf8900000;
export const KERNEL_STACK_SIZE = 0x3000;
/** The per-processor DPC stack MSR 0x175 points at (KiFastCallEntry switches away at once). */
export const DPC_STACK_TOP = 0xf8800000;
/** Drivers are loaded here, one 64 KiB slot each. */
export const DRIVER_BASE = 0xf8a00000;
export const DRIVER_SLOT = 0x10000;
/** GDT, IDT and TSS live in one kernel page, as ntoskrnl's data. */
export const GDT = 0x8003f000;
export const IDT = 0x8003f400;
export const TSS = 0x80042000;

// --- user space of a program process -------------------------------------------------------------
export const PROGRAM_BASE = 0x00400000; // image; code starts at +0x1000
export const PROGRAM_CODE = 0x00401000;
export const USER_STACK_TOP = 0x00130000;
export const USER_STACK_SIZE = 0x00010000;
export const PEB = 0x7ffdf000;
export const TEB = 0x7ffde000;
/**
 * A Win32 program's RTL_USER_PROCESS_PARAMETERS (PEB.ProcessParameters), with its strings in the
 * same page: where XP's process creation leaves the block (the environment is at 0x10000).
 */
export const PROCESS_PARAMETERS = 0x00020000;
/** User heap for the loader's data (strings, OBJECT_ATTRIBUTES the program declares are in its image). */
export const USER_HEAP = 0x00140000;

// --- GDT selectors (XP's KGDT_*) -----------------------------------------------------------------
export const KGDT_R0_CODE = 0x08;
export const KGDT_R0_DATA = 0x10;
export const KGDT_R3_CODE = 0x1b;
export const KGDT_R3_DATA = 0x23;
export const KGDT_TSS = 0x28;
export const KGDT_R0_PCR = 0x30;
export const KGDT_R3_TEB = 0x3b;

/** The port of the one documented escape from guest x86 to ntflow's TypeScript (see escape.ts). */
export const ESCAPE_PORT = 0x8e;
/** The port a guest routine called by the TypeScript side returns through. */
export const CALLBACK_RETURN_PORT = 0x8f;

/** Physical memory of the guest machine. */
export const GUEST_MEMORY = 64 * 1024 * 1024;

// --- where a PE program may be placed (pe-loader.ts) ----------------------------------------------
/** Below this, user space holds the no-access first 64 KiB and the process parameters. */
export const USER_LOW_END = 0x00030000;
/** From here up: the system DLLs (kernel32 at 0x77E60000 is the lowest), PEB, TEB, SharedUserData. */
export const USER_DLLS_START = 0x77e60000;
