// `ntflow demo` (what `npm start` runs until the full demo of issue E): a program at CPL 3 calls the
// seed's ntdll!NtReadFile stub, which goes through SharedUserData!SystemCallStub and SYSENTER to
// MSR 0x176 = nt!KiFastCallEntry's address and back by SYSEXIT. Every instruction is executed by
// the emulated CPU and printed with its bytes and WinDbg-style disassembly, with the MSR reads and
// ring transitions between them. Ring 0 is a stand-in of a few instructions until the XP guest
// kernel exists (issue B); it says so in the output.
import {
  Machine,
  PTE_P,
  PTE_RW,
  PTE_US,
  assemble,
  formatBytes,
  type SymbolLookup,
  type TraceEvent,
} from '../core/index.js';

const PROGRAM = 0x00401000;
const NTDLL_NTREADFILE = 0x77f761e8;
const SHARED_USER_DATA = 0x7ffe0000;
const SHARED_USER_DATA_KERNEL = 0xffdf0000;
const KI_FAST_CALL_ENTRY = 0x8053a270;
const USER_STACK_TOP = 0x00130000;
const KERNEL_STACK_TOP = 0x80560000;

const PROGRAM_SOURCE = `
  ; NtReadFile(FileHandle, Event, ApcRoutine, ApcContext, IoStatusBlock, Buffer, Length, ByteOffset, Key)
  push 0                      ; Key
  push 0                      ; ByteOffset
  push 16                     ; Length
  push 0x00402000             ; Buffer
  push 0x00402100             ; IoStatusBlock
  push 0                      ; ApcContext
  push 0                      ; ApcRoutine
  push 0                      ; Event
  push 0x7c                   ; FileHandle
  call ntdll!NtReadFile
done:
  jmp done                    ; the demo stops here
`;

// The seed's listings, byte for byte (DESIGN.md's table).
const NTDLL_SOURCE = `
  mov eax, 0xB7               ; service number of NtReadFile in XP's KiServiceTable
  mov edx, 0x7FFE0300         ; SharedUserData!SystemCallStub
  call edx
  ret 0x24                    ; nine arguments
`;
const SYSTEM_CALL_STUB_SOURCE = `
  {load} mov edx, esp         ; arguments are at [edx+8]
  sysenter
  ret                         ; SYSEXIT returns here (0x7FFE0304)
`;
// Stand-in for ring 0 (the XP kernel of issue B replaces it): report "not implemented" and
// return the way KiServiceExit does, with SYSEXIT to SharedUserData's ret.
const KERNEL_STANDIN_SOURCE = `
  mov ecx, edx                ; user ESP, for SYSEXIT
  mov edx, 0x7FFE0304         ; SharedUserData!SystemCallStub's ret
  mov eax, 0xC0000002         ; STATUS_NOT_IMPLEMENTED
  sti
  sysexit
`;

const SYMBOLS: [number, string, string, number][] = [
  [PROGRAM, 'program', 'main', 0x1000],
  [NTDLL_NTREADFILE, 'ntdll', 'NtReadFile', 15],
  [SHARED_USER_DATA + 0x300, 'SharedUserData', 'SystemCallStub', 5],
  [KI_FAST_CALL_ENTRY, 'nt', 'KiFastCallEntry', 0x89],
];

const symbols: SymbolLookup = {
  lookup(address: number) {
    for (const [start, module, name, size] of SYMBOLS) {
      if (address >= start && address < start + size) return { module, name, offset: address - start };
    }
    return undefined;
  },
};

/** Map linear pages to fresh physical frames, with the given user/write bits. */
class PageTables {
  private next = 0x00100000;
  readonly directory: number;
  constructor(private readonly m: Machine) {
    this.directory = this.frame();
  }
  private frame(): number {
    const f = this.next;
    this.next += 0x1000;
    return f;
  }
  map(linear: number, flags: number, physical = this.frame()): number {
    const mem = this.m.mem;
    const pdeAddr = this.directory + (linear >>> 22) * 4;
    let pde = mem.read32(pdeAddr);
    if (!(pde & PTE_P)) mem.write32(pdeAddr, (pde = this.frame() | PTE_P | PTE_RW | PTE_US));
    mem.write32((pde & ~0xfff) + ((linear >>> 12) & 0x3ff) * 4, physical | PTE_P | flags);
    return physical;
  }
}

function place(m: Machine, pt: PageTables, linear: number, source: string, user: boolean, writable = true): void {
  const { bytes } = assemble(source, {
    origin: linear,
    fileName: `demo@${linear.toString(16)}`,
    resolveSymbol: (module, name) => (module === 'ntdll' && name === 'NtReadFile' ? NTDLL_NTREADFILE : undefined),
  });
  const phys = pt.map(linear & ~0xfff, (user ? PTE_US : 0) | (writable ? PTE_RW : 0));
  m.loadPhysical(phys + (linear & 0xfff), bytes);
}

const hex8 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');

function describe(e: TraceEvent, symbolsOn: SymbolLookup): string | null {
  switch (e.type) {
    case 'instruction': {
      const bytes = Array.from(e.bytes, (b) => b.toString(16).padStart(2, '0')).join('');
      const sym = symbolsOn.lookup(e.eip);
      const label = sym && sym.offset === 0 ? `${sym.module}!${sym.name}:\n` : '';
      return `${label}  ${e.cpl}  ${hex8(e.eip)} ${bytes.padEnd(16)} ${formatBytes(e.bytes, e.eip, { symbols: symbolsOn })}`;
    }
    case 'msr-read':
      return `           rdmsr ${e.msr.toString(16)} = ${e.value.toString(16)}  (read by ${e.source})`;
    case 'ring-transition':
      return `           ring ${e.fromCpl} -> ${e.toCpl} by ${e.mechanism}: eip ${hex8(e.fromEip)} -> ${hex8(e.toEip)}, esp ${hex8(e.fromEsp)} -> ${hex8(e.toEsp)}`;
    default:
      return null;
  }
}

export async function runDemo(): Promise<void> {
  const m = new Machine({ cpu: 'sysenter', memorySize: 16 * 1024 * 1024 });
  const pt = new PageTables(m);
  place(m, pt, PROGRAM, PROGRAM_SOURCE, true);
  place(m, pt, NTDLL_NTREADFILE, NTDLL_SOURCE, true, false);
  // SharedUserData: one physical page, user read-only at 0x7FFE0000 and kernel-writable at 0xFFDF0000.
  const shared = pt.map(SHARED_USER_DATA, PTE_US);
  pt.map(SHARED_USER_DATA_KERNEL, PTE_RW, shared);
  const stub = assemble(SYSTEM_CALL_STUB_SOURCE, { origin: SHARED_USER_DATA + 0x300 }).bytes;
  m.loadPhysical(shared + 0x300, stub);
  place(m, pt, KI_FAST_CALL_ENTRY, KERNEL_STANDIN_SOURCE, false);
  for (let p = USER_STACK_TOP - 0x4000; p < USER_STACK_TOP; p += 0x1000) pt.map(p, PTE_US | PTE_RW);
  for (let p = KERNEL_STACK_TOP - 0x3000; p < KERNEL_STACK_TOP; p += 0x1000) pt.map(p, PTE_RW);
  pt.map(0x00402000, PTE_US | PTE_RW);

  const cpu = m.cpu;
  cpu.enterFlatProtectedMode({ eip: PROGRAM, esp: USER_STACK_TOP - 0x100, cpl: 3, eflags: 0x202 });
  cpu.cr3 = pt.directory;
  cpu.writeCr(0, cpu.cr0 | 0x80010000); // PG | WP
  cpu.sysenterCs = 0x08;
  cpu.sysenterEsp = KERNEL_STACK_TOP;
  cpu.sysenterEip = KI_FAST_CALL_ENTRY;

  const lines: string[] = [];
  const sub = m.events$.subscribe((e) => {
    const line = describe(e, symbols);
    if (line !== null) lines.push(line);
  });
  const doneAt = PROGRAM + assemble(PROGRAM_SOURCE.split('done:')[0], { origin: PROGRAM, resolveSymbol: () => NTDLL_NTREADFILE }).bytes.length;
  while (cpu.eip >>> 0 !== doneAt && cpu.icount < 1000) {
    const stop = m.run({ maxInstructions: 1 });
    if (stop.kind !== 'instruction-limit') throw new Error(`demo machine stopped: ${stop.kind} ${stop.detail ?? ''}`);
  }
  sub.unsubscribe();

  const out = [
    'ntflow demo: the seed ntdll!NtReadFile stub, executed instruction by instruction on the emulated CPU',
    '(ring 0 is a 5-instruction stand-in until the XP guest kernel lands; it returns STATUS_NOT_IMPLEMENTED)',
    '',
    'cpl eip      bytes            instruction',
    ...lines,
    '',
    `${cpu.icount} instructions retired; back in ring ${cpu.cpl} with EAX = ${hex8(cpu.regs[0])}, ESP = ${hex8(cpu.regs[4])} (the stub's ret 24h released the nine arguments)`,
  ];
  process.stdout.write(out.join('\n') + '\n');
}
