// Physical memory and IA-32 two-level paging (4 KiB pages, optional 4 MiB PSE pages), with a
// software TLB. The CPU asks `translate()` for every access that misses its fast path; a fault is
// returned as a PageFault value so the CPU can deliver #PF to the guest with CR2 and the error code.

export const PAGE_SIZE = 0x1000;
const PAGE_MASK = ~0xfff;

// Page-directory / page-table entry bits (Intel SDM vol. 3, 4.3).
export const PTE_P = 0x001;
export const PTE_RW = 0x002;
export const PTE_US = 0x004;
export const PTE_A = 0x020;
export const PTE_D = 0x040;
export const PDE_PS = 0x080;

// #PF error-code bits.
export const PF_PRESENT = 1; // 0: page not present, 1: protection violation
export const PF_WRITE = 2;
export const PF_USER = 4;

// TLB entry: the physical page base in the high 20 bits, permission bits below. A write permission
// is only cached once the dirty bit is set, so the first write always walks and sets D.
const TLB_VALID = 1;
const TLB_USER_READ = 2;
const TLB_USER_WRITE = 4;
const TLB_SUPER_WRITE = 8;

/** A page fault the guest will see (#PF). */
export class PageFault {
  constructor(
    readonly linear: number,
    readonly errorCode: number,
  ) {}
}

/** The machine's RAM. Addresses past the end read as 0xFF and ignore writes, as on a bus with nothing there. */
export class PhysicalMemory {
  readonly bytes: Uint8Array;
  /** Per physical page: non-zero when decoded instructions are cached for it (writes must invalidate). */
  readonly codePages: Uint8Array;
  onCodeWrite: (page: number) => void = () => {};
  /** Per physical page: written since the last takeDirty() (the recorder's checkpoints). */
  readonly dirtyPages: Uint8Array;

  constructor(readonly size: number) {
    if (size % PAGE_SIZE !== 0) throw new RangeError(`memory size ${size} is not a multiple of 4096`);
    this.bytes = new Uint8Array(size);
    this.codePages = new Uint8Array(size / PAGE_SIZE);
    this.dirtyPages = new Uint8Array(size / PAGE_SIZE);
  }

  /** The pages written since the last call (and forget them). */
  takeDirty(): number[] {
    const out: number[] = [];
    const d = this.dirtyPages;
    for (let i = 0; i < d.length; i++) {
      if (d[i] !== 0) {
        out.push(i);
        d[i] = 0;
      }
    }
    return out;
  }

  read8(p: number): number {
    return p < this.size ? this.bytes[p] : 0xff;
  }
  read16(p: number): number {
    const b = this.bytes;
    return p + 1 < this.size ? b[p] | (b[p + 1] << 8) : this.read8(p) | (this.read8(p + 1) << 8);
  }
  read32(p: number): number {
    const b = this.bytes;
    return p + 3 < this.size
      ? b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)
      : this.read16(p) | (this.read16(p + 2) << 16);
  }
  write8(p: number, v: number): void {
    if (p >= this.size) return;
    if (this.codePages[p >>> 12] !== 0) this.onCodeWrite(p >>> 12);
    this.dirtyPages[p >>> 12] = 1;
    this.bytes[p] = v;
  }
  write16(p: number, v: number): void {
    this.write8(p, v & 0xff);
    this.write8(p + 1, (v >>> 8) & 0xff);
  }
  write32(p: number, v: number): void {
    if (p + 3 < this.size && this.codePages[p >>> 12] === 0) {
      this.dirtyPages[p >>> 12] = 1;
      const b = this.bytes;
      b[p] = v;
      b[p + 1] = v >>> 8;
      b[p + 2] = v >>> 16;
      b[p + 3] = v >>> 24;
      return;
    }
    this.write16(p, v & 0xffff);
    this.write16(p + 2, v >>> 16);
  }
  /** Copy bytes in (loader use); invalidates cached code like any other write. */
  load(p: number, data: Uint8Array): void {
    if (p < 0 || p + data.length > this.size) {
      throw new RangeError(`physical range ${hex(p)}+${hex(data.length)} is outside the ${hex(this.size)}-byte memory`);
    }
    this.bytes.set(data, p);
    for (let page = p >>> 12; page <= (p + data.length - 1) >>> 12; page++) {
      this.dirtyPages[page] = 1;
      if (this.codePages[page] !== 0) this.onCodeWrite(page);
    }
  }
  slice(p: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) out[i] = this.read8(p + i);
    return out;
  }
}

export interface PagingControl {
  /** CR0.PG */
  paging: boolean;
  /** CR0.WP: supervisor writes honour R/W */
  writeProtect: boolean;
  /** CR4.PSE: 4 MiB pages */
  pse: boolean;
  cr3: number;
}

/**
 * The paging unit. `translate` walks the tables (setting accessed/dirty bits as the CPU does) and
 * fills the TLB; `peek` walks without side effects, for tools (recorder, analyzer, service logs).
 */
export class Mmu {
  readonly ctl: PagingControl = { paging: false, writeProtect: false, pse: false, cr3: 0 };
  /** Indexed by linear page number. */
  private readonly tlb = new Int32Array(1 << 20);
  private readonly tlbFilled: number[] = [];
  /** Called for each accessed/dirty-bit update the walk writes (physical address, new entry). */
  onTableWrite: ((physical: number, value: number) => void) | null = null;
  /** Exec-mode hook: an access to a not-present page may map it (ntflow exec's automap). */
  onNotPresent: ((linear: number) => boolean) | null = null;
  /**
   * Data breakpoints (the CPU's DR0-DR3): called for each data access that may touch a watched
   * address — every access while paging is off, and with paging on every access to a page in
   * `watchPages`, which the TLB never caches, so accesses to other pages keep their fast path.
   * null when no data breakpoint is enabled.
   */
  onWatch: ((linear: number, size: number, write: boolean) => void) | null = null;
  private watchPages: number[] = [];

  constructor(readonly mem: PhysicalMemory) {}

  flush(): void {
    const tlb = this.tlb;
    for (const vpn of this.tlbFilled) tlb[vpn] = 0;
    this.tlbFilled.length = 0;
  }

  invalidate(linear: number): void {
    this.tlb[linear >>> 12] = 0;
  }

  /** The linear pages data breakpoints watch (their TLB entries are dropped and never refilled). */
  setWatchPages(pages: number[]): void {
    for (const vpn of this.watchPages) this.tlb[vpn] = 0;
    this.watchPages = pages.map((p) => p >>> 0);
    for (const vpn of this.watchPages) this.tlb[vpn] = 0;
  }

  /**
   * Linear → physical for an access of the given kind. Returns the physical address, or a
   * PageFault. `user` is true for accesses made at CPL 3 (implicit supervisor accesses pass false).
   */
  translate(linear: number, write: boolean, user: boolean, size = 0): number | PageFault {
    if (!this.ctl.paging) {
      if (this.onWatch !== null && size !== 0) this.onWatch(linear, size, write);
      return linear >>> 0;
    }
    const e = this.tlb[linear >>> 12];
    if (e & TLB_VALID) {
      const ok = write ? (user ? e & TLB_USER_WRITE : e & TLB_SUPER_WRITE) : user ? e & TLB_USER_READ : 1;
      if (ok) return ((e & PAGE_MASK) | (linear & 0xfff)) >>> 0;
    }
    return this.walk(linear, write, user, size);
  }

  /** `size` > 0: a data access of that many bytes (reported to onWatch on a watched page). */
  private walk(linear: number, write: boolean, user: boolean, size = 0): number | PageFault {
    const mem = this.mem;
    const pdeAddr = ((this.ctl.cr3 & PAGE_MASK) + ((linear >>> 22) << 2)) >>> 0;
    let pde = mem.read32(pdeAddr);
    const code = (write ? PF_WRITE : 0) | (user ? PF_USER : 0);
    if (!(pde & PTE_P)) {
      if (this.onNotPresent?.(linear)) return this.walk(linear, write, user, size);
      return new PageFault(linear, code);
    }
    let pageBase: number;
    let rw: boolean;
    let us: boolean;
    let entryAddr: number;
    let entry: number;
    if (pde & PDE_PS && this.ctl.pse) {
      rw = (pde & PTE_RW) !== 0;
      us = (pde & PTE_US) !== 0;
      pageBase = ((pde & 0xffc00000) | (linear & 0x003ff000)) >>> 0;
      entryAddr = pdeAddr;
      entry = pde;
    } else {
      const pteAddr = ((pde & PAGE_MASK) + (((linear >>> 12) & 0x3ff) << 2)) >>> 0;
      const pte = mem.read32(pteAddr);
      if (!(pte & PTE_P)) {
        if (this.onNotPresent?.(linear)) return this.walk(linear, write, user, size);
        return new PageFault(linear, code);
      }
      rw = (pde & pte & PTE_RW) !== 0;
      us = (pde & pte & PTE_US) !== 0;
      pageBase = (pte & PAGE_MASK) >>> 0;
      entryAddr = pteAddr;
      entry = pte;
      // The accessed bit of the directory entry is set on every walk through it.
      if (!(pde & PTE_A)) this.writeEntry(pdeAddr, (pde |= PTE_A));
    }
    const allowed = user ? us && (!write || rw) : !write || rw || !this.ctl.writeProtect;
    if (!allowed) return new PageFault(linear, code | PF_PRESENT);
    const newEntry = entry | PTE_A | (write ? PTE_D : 0);
    if (newEntry !== entry) this.writeEntry(entryAddr, newEntry);
    const dirty = (newEntry & PTE_D) !== 0;
    let flags = TLB_VALID;
    if (us) flags |= TLB_USER_READ;
    if (dirty && us && rw) flags |= TLB_USER_WRITE;
    if (dirty && (rw || !this.ctl.writeProtect)) flags |= TLB_SUPER_WRITE;
    const vpn = linear >>> 12;
    if (this.watchPages.length !== 0 && this.watchPages.includes(vpn)) {
      if (size !== 0 && this.onWatch !== null) this.onWatch(linear, size, write);
      return (pageBase | (linear & 0xfff)) >>> 0; // not cached: the next access walks again
    }
    if (this.tlb[vpn] === 0) this.tlbFilled.push(vpn);
    this.tlb[vpn] = pageBase | flags;
    return (pageBase | (linear & 0xfff)) >>> 0;
  }

  private writeEntry(physical: number, value: number): void {
    this.mem.write32(physical, value);
    this.onTableWrite?.(physical, value);
  }

  /** Side-effect-free translation for tools: no A/D bits, no TLB fill, no fault. null when unmapped. */
  peek(linear: number): number | null {
    if (!this.ctl.paging) return linear >>> 0;
    const mem = this.mem;
    const pde = mem.read32(((this.ctl.cr3 & PAGE_MASK) + ((linear >>> 22) << 2)) >>> 0);
    if (!(pde & PTE_P)) return null;
    if (pde & PDE_PS && this.ctl.pse) return ((pde & 0xffc00000) | (linear & 0x3fffff)) >>> 0;
    const pte = mem.read32(((pde & PAGE_MASK) + (((linear >>> 12) & 0x3ff) << 2)) >>> 0);
    if (!(pte & PTE_P)) return null;
    return ((pte & PAGE_MASK) | (linear & 0xfff)) >>> 0;
  }

  /** Read linear memory for tools; unmapped bytes are null. */
  peekBytes(linear: number, len: number): (number | null)[] {
    const out: (number | null)[] = [];
    for (let i = 0; i < len; i++) {
      const p = this.peek((linear + i) >>> 0);
      out.push(p === null ? null : this.mem.read8(p));
    }
    return out;
  }
}

export function hex(n: number, width = 8): string {
  return '0x' + (n >>> 0).toString(16).toUpperCase().padStart(width, '0');
}
