// The page protections of a mapped image, as XP's image loader derives them from the section
// flags: execute/read/write → PAGE_*. Writable image sections are copy-on-write in a real XP
// process (PAGE_WRITECOPY / PAGE_EXECUTE_WRITECOPY); ntflow maps every image once, privately, so
// it gives them the protection a page has after its first write: PAGE_READWRITE /
// PAGE_EXECUTE_READWRITE.
import * as C from './constants.js';
import type { PeImage } from './types.js';

/** The PAGE_* protection of a section with these Characteristics. */
export function sectionProtection(characteristics: number): number {
  const x = (characteristics & C.IMAGE_SCN_MEM_EXECUTE) !== 0;
  const r = (characteristics & C.IMAGE_SCN_MEM_READ) !== 0;
  const w = (characteristics & C.IMAGE_SCN_MEM_WRITE) !== 0;
  if (w) return x ? C.PAGE_EXECUTE_READWRITE : C.PAGE_READWRITE;
  if (x) return r ? C.PAGE_EXECUTE_READ : C.PAGE_EXECUTE;
  return r ? C.PAGE_READONLY : C.PAGE_NOACCESS;
}

/**
 * The PAGE_* protection of the page holding `rva`: PAGE_READONLY for the headers, the section's
 * protection for a section's pages (its VirtualSize rounded up to SectionAlignment), and
 * PAGE_NOACCESS for a page no section covers or one past SizeOfImage.
 */
export function pageProtection(pe: PeImage, rva: number): number {
  const page = rva - (rva % C.PAGE_SIZE);
  if (rva < 0 || page >= pe.sizeOfImage) return C.PAGE_NOACCESS;
  if (page < align(pe.sizeOfHeaders, pe.sectionAlignment)) return C.PAGE_READONLY;
  for (const s of pe.sections) {
    const size = s.virtualSize !== 0 ? s.virtualSize : s.sizeOfRawData;
    if (page >= s.virtualAddress && page < s.virtualAddress + align(size, pe.sectionAlignment)) return s.protection;
  }
  return C.PAGE_NOACCESS;
}

const NAMES: Record<number, string> = {
  [C.PAGE_NOACCESS]: 'PAGE_NOACCESS',
  [C.PAGE_READONLY]: 'PAGE_READONLY',
  [C.PAGE_READWRITE]: 'PAGE_READWRITE',
  [C.PAGE_WRITECOPY]: 'PAGE_WRITECOPY',
  [C.PAGE_EXECUTE]: 'PAGE_EXECUTE',
  [C.PAGE_EXECUTE_READ]: 'PAGE_EXECUTE_READ',
  [C.PAGE_EXECUTE_READWRITE]: 'PAGE_EXECUTE_READWRITE',
  [C.PAGE_EXECUTE_WRITECOPY]: 'PAGE_EXECUTE_WRITECOPY',
};

/** 'PAGE_EXECUTE_READ' for 0x20. */
export function protectionName(protection: number): string {
  return NAMES[protection] ?? `0x${protection.toString(16)}`;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;
