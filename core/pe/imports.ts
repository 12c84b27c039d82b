// resolveImports: fill a mapped image's IAT as XP's loader does — each slot gets the address of
// the function it names — from the exports the caller (the guest) offers.
import { nearestNames } from '../names.js';
import { hex } from './parse.js';
import { PeError, type PeImage } from './types.js';

/**
 * The address of `dll`'s export `nameOrOrdinal` (a name, or an ordinal as a number), or undefined
 * when there is none. `dll` is spelled as in the caller's export list, whatever the image says.
 */
export type ImportResolver = (dll: string, nameOrOrdinal: string | number) => number | undefined;

/** Each module the guest offers and the names it exports (for the error's nearest names). */
export type KnownExports = ReadonlyMap<string, readonly string[]> | Readonly<Record<string, readonly string[]>>;

export interface ResolvedImport {
  /** The module as the caller spells it. */
  dll: string;
  /** The function's name, or its ordinal. */
  import: string | number;
  iatRva: number;
  address: number;
}

/**
 * Writes every IAT slot of `image` (the bytes mapImage returned for `pe`) with the address the
 * resolver gives, and returns what it bound. DLL names compare without regard to case. A module
 * missing from `exports`, or a function the resolver does not know, is a PeError naming the
 * import and the nearest names the guest does export.
 */
export function resolveImports(pe: PeImage, image: Uint8Array, resolve: ImportResolver, exports: KnownExports): ResolvedImport[] {
  const f = pe.fileName;
  const modules = exports instanceof Map ? [...exports.entries()] : Object.entries(exports as Record<string, readonly string[]>);
  const byLowerName = new Map(modules.map(([name, names]) => [name.toLowerCase(), { name, names }]));
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const bound: ResolvedImport[] = [];
  for (const d of pe.imports) {
    const module = byLowerName.get(d.dll.toLowerCase());
    for (const fn of d.functions) {
      const wanted = fn.by === 'name' ? fn.name : fn.ordinal;
      const shown = fn.by === 'name' ? `${d.dll}!${fn.name}` : `${d.dll}!#${fn.ordinal} (by ordinal)`;
      if (!module) {
        const near = nearestNames(d.dll, modules.map(([name]) => name), 2, { ignoreCase: true });
        const offered = modules.map(([name]) => name).join(', ') || 'none';
        throw new PeError(f, `${f} imports ${shown}, but the guest has no module ${d.dll}; ${near.length ? `nearest: ${near.join(', ')}` : `guest modules: ${offered}`}`);
      }
      const address = resolve(module.name, wanted);
      if (address === undefined) {
        const near = fn.by === 'name' ? offered(fn.name, module.names) : [];
        const rest = near.length ? `; nearest: ${near.join(', ')}` : '';
        throw new PeError(f, `${f} imports ${shown}, which the guest does not export${rest}`);
      }
      if (fn.iatRva + 4 > image.length) throw new Error(`resolveImports: the image is ${hex(image.length)} bytes, too small for ${f}'s IAT slot at ${hex(fn.iatRva)}`);
      view.setUint32(fn.iatRva, address >>> 0, true);
      bound.push({ dll: module.name, import: wanted, iatRva: fn.iatRva, address: address >>> 0 });
    }
  }
  return bound;
}

/**
 * The exported names to suggest for a missing one: those near it; when none is near, those that
 * share the longest prefix with it (RtlGetVersion → the Rtl routines), nearest first — so the line
 * always says what the module does offer.
 */
function offered(wanted: string, names: readonly string[]): string[] {
  const close = nearestNames(wanted, names, 3, { ignoreCase: true });
  if (close.length) return close;
  const w = wanted.toLowerCase();
  const prefix = (n: string) => {
    const l = n.toLowerCase();
    let i = 0;
    while (i < l.length && i < w.length && l[i] === w[i]) i++;
    return i;
  };
  const longest = Math.max(0, ...names.map(prefix));
  const pool = longest >= 2 ? names.filter((n) => prefix(n) === longest) : names;
  return nearestNames(wanted, pool, 3, { ignoreCase: true, anyDistance: true });
}
