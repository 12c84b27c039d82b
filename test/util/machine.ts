// A small protected-mode test machine for the fault and paging tests: physical memory, a real GDT,
// an IDT whose gates point at tiny handlers, a TSS, two-level page tables built by hand, and code
// assembled from NASM-syntax source with core's assembler.
//
// Physical / linear layout (the low 4 MiB are identity-mapped, supervisor read/write):
//   0x00001000  GDT  00 null · 08 code DPL0 · 10 data DPL0 · 18 code DPL3 · 20 data DPL3 ·
//                    28 TSS (32-bit, available) · 30 code DPL1 · 38 data DPL1 (all flat 4 GiB)
//   0x00002000  IDT  256 interrupt gates, 08:HANDLER(v), DPL 0, present; vectors 0x2E and 0x80 DPL 3
//   0x00003000  TSS  ESP0 = 0x00090000, SS0 = 0x10; ESP1 = 0x00088000, SS1 = 0x39;
//                    I/O map base 0x68 = the TSS limit + 1, so there is no I/O bitmap
//   0x00004000  page directory; page tables from 0x00005000
//   0x0000F000  LOG: the handler of vector v stores v here, then executes HLT (the run stops)
//   0x00010000  HANDLER(v) = 0x00010000 + v*16:  mov dword [ss:0xF000], v ; hlt
//               (through SS, which is always usable in a handler, unlike DS after an IRETD to ring 3)
//   0x00020000  kernel code (KCODE), kernel stack below 0x00090000 (KSTACK)
//   0x00400000  user code (UCODE), user data at 0x00410000 (UDATA), user stack top 0x00500000
//               (pages 0x00400000-0x004FFFFF are user read/write)
import { assemble, Machine, type CpuModel, type StopReason } from '../../core/index.js';

export const GDT = 0x1000;
export const IDT = 0x2000;
export const TSS = 0x3000;
export const PD = 0x4000;
export const LOG = 0xf000;
export const HANDLERS = 0x10000;
export const KCODE = 0x20000;
export const KSTACK = 0x90000;
export const ESP1 = 0x88000;
export const UCODE = 0x400000;
export const UDATA = 0x410000;
export const USTACK = 0x500000;
export const EXIT_VECTOR = 0x80;

export const KCS = 0x08;
export const KDS = 0x10;
export const UCS = 0x1b;
export const UDS = 0x23;
export const TSS_SEL = 0x28;

export const P = 1;
export const RW = 2;
export const US = 4;
export const A = 0x20;
export const D = 0x40;
export const PS = 0x80;

export const EFLAGS_IF = 0x200;
export const EFLAGS_RF = 0x10000;

export const CR0_WP = 0x10000;
export const CR0_PG = 0x80000000;
export const CR4_TSD = 4;
export const CR4_PSE = 0x10;

/** The handler address for a vector. */
export const handler = (v: number): number => HANDLERS + v * 16;
/** Where EIP is after a handler's HLT. */
export const handlerEnd = (v: number): number => handler(v) + 12;

export interface GateOptions {
  offset?: number;
  selector?: number;
  dpl?: number;
  present?: boolean;
  /** 'int' (type 0xE, clears IF) or 'trap' (0xF). */
  type?: 'int' | 'trap';
}

export interface StartOptions {
  eip: number;
  cpl?: 0 | 3;
  esp?: number;
  eflags?: number;
  /** CR0.PG (default true). */
  paging?: boolean;
  /** CR0.WP (default true). */
  wp?: boolean;
  /** CR4 value (default 0). */
  cr4?: number;
  /** Load TR with 0x28 (default true). */
  tr?: boolean;
}

/** A flat descriptor: base 0, limit 0xFFFFF pages, G=1, D=1, present; type 0xA code / 0x2 data. */
function flatDescriptor(code: boolean, dpl: number): [number, number] {
  const access = 0x80 | (dpl << 5) | 0x10 | (code ? 0x0a : 0x02);
  return [0x0000ffff, (0x00cf0000 | (access << 8)) >>> 0];
}

export class TestMachine {
  readonly m: Machine;
  private nextTable = 0x5000;

  constructor(opts: { cpu?: CpuModel; memorySize?: number } = {}) {
    this.m = new Machine({ cpu: opts.cpu ?? 'sysenter', memorySize: opts.memorySize ?? 32 * 1024 * 1024 });
    const mem = this.m.mem;
    // GDT
    const entries: [number, number][] = [
      [0, 0],
      flatDescriptor(true, 0),
      flatDescriptor(false, 0),
      flatDescriptor(true, 3),
      flatDescriptor(false, 3),
      // 32-bit available TSS (type 9), DPL 0, present, base TSS, limit 0x67, byte granular.
      [((TSS & 0xffff) << 16) | 0x67, ((TSS >>> 16) & 0xff) | (0x89 << 8) | (TSS & 0xff000000)],
      flatDescriptor(true, 1),
      flatDescriptor(false, 1),
    ];
    entries.forEach(([lo, hi], i) => {
      mem.write32(GDT + i * 8, lo);
      mem.write32(GDT + i * 8 + 4, hi);
    });
    // TSS
    mem.write32(TSS + 4, KSTACK);
    mem.write32(TSS + 8, KDS);
    mem.write32(TSS + 0x0c, ESP1);
    mem.write32(TSS + 0x10, 0x39);
    mem.write32(TSS + 0x64, 0x68 << 16);
    // Handlers: 36 C7 05 <LOG> <v> = mov dword [ss:LOG], v ; F4 = hlt.
    for (let v = 0; v < 256; v++) {
      const h = handler(v);
      mem.write8(h, 0x36);
      mem.write8(h + 1, 0xc7);
      mem.write8(h + 2, 0x05);
      mem.write32(h + 3, LOG);
      mem.write32(h + 7, v);
      mem.write8(h + 11, 0xf4);
      this.setGate(v, { dpl: v === 0x2e || v === EXIT_VECTOR ? 3 : 0 });
    }
    mem.write32(LOG, 0xffffffff);
    // Paging: low 4 MiB identity, supervisor read/write; 0x00400000-0x004FFFFF user read/write.
    for (let page = 0; page < 0x400000; page += 0x1000) this.map(page, page, P | RW);
    for (let page = 0x400000; page < 0x500000; page += 0x1000) this.map(page, page, P | RW | US);
  }

  get cpu() {
    return this.m.cpu;
  }
  get mem() {
    return this.m.mem;
  }

  setGate(v: number, o: GateOptions = {}): void {
    const offset = o.offset ?? handler(v);
    const sel = o.selector ?? KCS;
    const type = o.type === 'trap' ? 0xf : 0xe;
    const present = o.present ?? true;
    const lo = ((sel & 0xffff) << 16) | (offset & 0xffff);
    const hi = (offset & 0xffff0000) | (present ? 0x8000 : 0) | ((o.dpl ?? 0) << 13) | (type << 8);
    this.mem.write32(IDT + v * 8, lo);
    this.mem.write32(IDT + v * 8 + 4, hi);
  }

  /** Physical address of the PDE for a linear address. */
  pdeAddr(linear: number): number {
    return PD + (linear >>> 22) * 4;
  }
  /** Physical address of the PTE for a linear address (allocating its page table). */
  pteAddr(linear: number): number {
    const pdeAddr = this.pdeAddr(linear);
    let pde = this.mem.read32(pdeAddr);
    if (!(pde & P) || pde & PS) {
      const table = this.nextTable;
      this.nextTable += 0x1000;
      if (this.nextTable > LOG) throw new Error('test machine: out of page-table frames');
      pde = table | P | RW | US;
      this.mem.write32(pdeAddr, pde);
    }
    return (pde & ~0xfff) + ((linear >>> 12) & 0x3ff) * 4;
  }
  /** Map one 4 KiB page (the PDE is P|RW|US, so the PTE's bits decide). */
  map(linear: number, phys: number, flags: number): void {
    this.mem.write32(this.pteAddr(linear), ((phys & ~0xfff) | flags) >>> 0);
  }
  /** Set a PDE directly (for 4 MiB pages or directory-level permissions). */
  setPde(linear: number, value: number): void {
    this.mem.write32(this.pdeAddr(linear), value >>> 0);
  }
  pde(linear: number): number {
    return this.mem.read32(this.pdeAddr(linear)) >>> 0;
  }
  pte(linear: number): number {
    return this.mem.read32(this.pteAddr(linear)) >>> 0;
  }

  /** Assemble NASM source at `origin` and copy it to the same physical address (identity-mapped regions). */
  code(origin: number, source: string): Map<string, number> {
    const r = assemble(source, { origin });
    this.m.loadPhysical(origin, r.bytes);
    return r.labels;
  }

  /** Protected mode, GDTR/IDTR, paging and TR as configured; CS:EIP at the given ring. */
  start(o: StartOptions): void {
    const cpu = this.cpu;
    const cpl = o.cpl ?? 0;
    cpu.enterFlatProtectedMode({ eip: o.eip, cpl, esp: o.esp ?? (cpl === 3 ? USTACK : KSTACK), eflags: o.eflags ?? 0x202 });
    cpu.gdtrBase = GDT;
    cpu.gdtrLimit = 0x3f;
    cpu.idtrBase = IDT;
    cpu.idtrLimit = 0x7ff;
    cpu.writeCr(4, o.cr4 ?? 0);
    if (o.paging ?? true) {
      cpu.cr3 = PD;
      cpu.writeCr(0, (cpu.cr0 | CR0_PG | ((o.wp ?? true) ? CR0_WP : 0)) | 0);
    }
    if (o.tr ?? true) cpu.loadTaskRegister(TSS_SEL);
  }

  run(maxInstructions = 10000): StopReason {
    return this.m.run({ maxInstructions });
  }

  /** The vector the last handler logged (0xFFFFFFFF if none ran). */
  get vector(): number {
    return this.mem.read32(LOG) >>> 0;
  }

  /** `n` dwords from the stack at ESP (linear, read through the page tables without side effects). */
  stack(n: number): number[] {
    const out: number[] = [];
    const esp = this.cpu.regs[4] >>> 0;
    for (let i = 0; i < n; i++) {
      const p = this.cpu.mmu.peek((esp + 4 * i) >>> 0);
      if (p === null) throw new Error(`stack word at ${(esp + 4 * i).toString(16)} is not mapped`);
      out.push(this.mem.read32(p) >>> 0);
    }
    return out;
  }

  reg(i: number): number {
    return this.cpu.regs[i] >>> 0;
  }
}

/** Register indices for `cpu.regs`. */
export const EAX = 0, ECX = 1, EDX = 2, EBX = 3, ESP = 4, EBP = 5, ESI = 6, EDI = 7;
