// The guest's symbols (module!Name → address), for the disassembler, probes, events and programs.
import type { SymbolInfo, SymbolLookup } from '../disasm/index.js';

export interface GuestSymbol {
  module: string;
  name: string;
  address: number;
  size: number;
}

export class SymbolTable implements SymbolLookup {
  private sorted: GuestSymbol[] = [];
  private byName = new Map<string, GuestSymbol>();

  /** Add a module's symbols; sizes run to the next symbol (or the module's end). */
  addModule(module: string, symbols: Map<string, number>, end: number): void {
    const list = [...symbols].map(([name, address]) => ({ module, name, address: address >>> 0 })).sort((a, b) => a.address - b.address);
    list.forEach((s, i) => {
      // Several names at one address (NtXxx and ZwXxx in ntdll) share a size.
      let j = i + 1;
      while (j < list.length && list[j].address === s.address) j++;
      const next = j < list.length ? list[j].address : end >>> 0;
      const sym: GuestSymbol = { ...s, size: Math.max(next - s.address, 0) };
      this.sorted.push(sym);
      this.byName.set(`${module}!${s.name}`.toLowerCase(), sym);
    });
    this.sorted.sort((a, b) => a.address - b.address || a.name.localeCompare(b.name));
  }

  /** The address of `module!Name` (case-insensitive, as WinDbg resolves). */
  resolve(module: string, name: string): number | undefined {
    return this.byName.get(`${module}!${name}`.toLowerCase())?.address;
  }

  /** Every qualified name, for suggestions. */
  names(): string[] {
    return this.sorted.map((s) => `${s.module}!${s.name}`);
  }

  /** The symbol containing an address (the first name when several share it). */
  lookup(address: number): SymbolInfo | undefined {
    const a = address >>> 0;
    let lo = 0;
    let hi = this.sorted.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid].address <= a) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return undefined;
    let s = this.sorted[found];
    // Prefer the first of several names at one address (NtReadFile over ZwReadFile in ntdll).
    while (found > 0 && this.sorted[found - 1].address === s.address) s = this.sorted[--found];
    if (a >= s.address + Math.max(s.size, 1)) return undefined;
    return { module: s.module, name: s.name, offset: a - s.address };
  }

  /** `module!Name` or `module!Name+0x12` for an address, or null. */
  format(address: number): string | null {
    const s = this.lookup(address);
    if (!s) return null;
    return s.offset === 0 ? `${s.module}!${s.name}` : `${s.module}!${s.name}+0x${s.offset.toString(16)}`;
  }

  all(): readonly GuestSymbol[] {
    return this.sorted;
  }
}
