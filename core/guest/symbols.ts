// The guest's symbols (module!Name → address), for the disassembler, probes, events and programs.
// A module may have a range without names (a stripped PE image): its base carries the name '',
// and addresses there read `module+0xOFFSET`, as WinDbg prints them.
import type { SymbolInfo, SymbolLookup } from '../disasm/index.js';

/** `module!Name`, `module!Name+0x12`, or `module+0x12` for a module without a name there. */
export function formatSymbol(module: string, name: string, offset: number): string {
  const off = offset === 0 ? '' : `+0x${(offset >>> 0).toString(16)}`;
  return name === '' ? `${module}${off || '+0x0'}` : `${module}!${name}${off}`;
}

/** The module and name of a formatted symbol (`module!Name+0x12` or `module+0x12`); name null when none. */
export function splitSymbol(symbol: string): { module: string; name: string | null } {
  const bang = symbol.indexOf('!');
  if (bang > 0) {
    const rest = symbol.slice(bang + 1);
    const plus = rest.indexOf('+');
    return { module: symbol.slice(0, bang), name: plus >= 0 ? rest.slice(0, plus) : rest };
  }
  const plus = symbol.indexOf('+');
  return { module: plus > 0 ? symbol.slice(0, plus) : symbol, name: null };
}

export interface GuestSymbol {
  module: string;
  name: string;
  address: number;
  size: number;
}

// localeCompare's order, without building a collator on every comparison (a boot sorts thousands).
const byName = new Intl.Collator().compare;

export class SymbolTable implements SymbolLookup {
  private sorted: GuestSymbol[] = [];
  private byName = new Map<string, GuestSymbol>();

  /**
   * Add a module's symbols; sizes run to the next symbol (or the module's end). With `start`, the
   * module's whole range is covered: its base gets the name '' (addresses before the first name
   * read `module+0xOFFSET`).
   */
  addModule(module: string, symbols: Map<string, number>, end: number, start?: number): void {
    const named = [...symbols].map(([name, address]) => ({ module, name, address: address >>> 0 }));
    if (start !== undefined && !named.some((s) => s.address === start >>> 0)) named.push({ module, name: '', address: start >>> 0 });
    const list = named.sort((a, b) => a.address - b.address);
    list.forEach((s, i) => {
      // Several names at one address (NtXxx and ZwXxx in ntdll) share a size.
      let j = i + 1;
      while (j < list.length && list[j].address === s.address) j++;
      const next = j < list.length ? list[j].address : end >>> 0;
      const sym: GuestSymbol = { ...s, size: Math.max(next - s.address, 0) };
      this.sorted.push(sym);
      this.byName.set(`${module}!${s.name}`.toLowerCase(), sym);
    });
    this.sorted.sort((a, b) => a.address - b.address || byName(a.name, b.name));
  }

  /** A table holding the same symbols, to which more modules may be added without touching this one. */
  clone(): SymbolTable {
    const copy = new SymbolTable();
    copy.sorted = this.sorted.slice();
    copy.byName = new Map(this.byName);
    return copy;
  }

  /** The address of `module!Name` (case-insensitive, as WinDbg resolves). */
  resolve(module: string, name: string): number | undefined {
    return this.byName.get(`${module}!${name}`.toLowerCase())?.address;
  }

  /** Every qualified name, for suggestions. */
  names(): string[] {
    return this.sorted.filter((s) => s.name !== '').map((s) => `${s.module}!${s.name}`);
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
    return formatSymbol(s.module, s.name, s.offset);
  }

  all(): readonly GuestSymbol[] {
    return this.sorted;
  }
}
