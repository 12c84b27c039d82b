// The memory manager's view of a process's user space, kept where XP keeps it: virtual address
// descriptors (MMVAD_SHORT nodes of a binary tree at EPROCESS.VadRoot, in guest memory) say which
// ranges are reserved and with what protection; the page tables say, page by page, what is
// committed and how it may be used. And MmAccessFault: what a page fault means.
//
// Protection is XP's 5-bit MM_* value (ReactOS's miarm.h names them): MM_READONLY 1, MM_EXECUTE 2,
// MM_EXECUTE_READ 3, MM_READWRITE 4, MM_WRITECOPY 5, MM_EXECUTE_READWRITE 6, MM_EXECUTE_WRITECOPY 7,
// | MM_NOCACHE 8, | MM_GUARD_PAGE 0x10; MM_NOACCESS is 0x18. A page's protection lives in its PTE:
// - a valid PTE (P = 1): the hardware bits (US, RW for the writable protections, PCD for
//   PAGE_NOCACHE) plus the MM base protection in the three bits the CPU leaves to software (9-11)
//   — XP keeps that value in the page's PFN entry (OriginalPte), which this miniature has no
//   database for;
// - a guard page or a PAGE_NOACCESS page: a transition PTE (P = 0, bit 11 Transition, bits 5-9
//   Protection, bits 12-31 the frame, XP's MMPTE_TRANSITION layout), so every access faults and
//   MmAccessFault finds the protection there;
// - 0: not committed.
// IA-32 without PAE has no execute-disable bit: PAGE_EXECUTE* differ from their non-execute
// twins only in this bookkeeping (OldProtect reports them faithfully; the CPU executes any page
// it can read), as on XP SP1 x86.
import { GuestFault, Vector } from '../cpu/faults.js';
import { PTE_P, PTE_RW, PTE_US } from '../mmu.js';
import type { Kernel, Process } from './kernel.js';
import { MM_USER_PROBE_ADDRESS } from './layout.js';
import { BUGCHECK, NTSTATUS } from './ntstatus.js';
import { offsetOf } from './structs.js';

import {
  PAGE_EXECUTE,
  PAGE_EXECUTE_READ,
  PAGE_EXECUTE_READWRITE,
  PAGE_EXECUTE_WRITECOPY,
  PAGE_NOACCESS,
  PAGE_READONLY,
  PAGE_READWRITE,
  PAGE_WRITECOPY,
} from '../pe/index.js';

export { PAGE_EXECUTE, PAGE_EXECUTE_READ, PAGE_EXECUTE_READWRITE, PAGE_EXECUTE_WRITECOPY, PAGE_NOACCESS, PAGE_READONLY, PAGE_READWRITE, PAGE_WRITECOPY };
export const PAGE_GUARD = 0x100;
export const PAGE_NOCACHE = 0x200;

export const MM_READONLY = 1;
export const MM_EXECUTE = 2;
export const MM_EXECUTE_READ = 3;
export const MM_READWRITE = 4;
export const MM_WRITECOPY = 5;
export const MM_EXECUTE_READWRITE = 6;
export const MM_EXECUTE_WRITECOPY = 7;
export const MM_NOCACHE = 0x08;
export const MM_GUARD_PAGE = 0x10;
export const MM_NOACCESS = 0x18;

const PAGE = 0x1000;
const PTE_TRANSITION = 0x800;
const PTE_PCD = 0x10;
const PTE_SOFT_PROTECTION_SHIFT = 5;
const PTE_VALID_PROTECTION_SHIFT = 9;

/** The highest user address (MmHighestUserAddress): the 64 KiB below 0x80000000 are never mapped. */
export const MM_HIGHEST_USER_ADDRESS = MM_USER_PROBE_ADDRESS - 1;

const BASE_TO_MM: Record<number, number> = {
  [PAGE_NOACCESS]: MM_NOACCESS,
  [PAGE_READONLY]: MM_READONLY,
  [PAGE_READWRITE]: MM_READWRITE,
  [PAGE_WRITECOPY]: MM_WRITECOPY,
  [PAGE_EXECUTE]: MM_EXECUTE,
  [PAGE_EXECUTE_READ]: MM_EXECUTE_READ,
  [PAGE_EXECUTE_READWRITE]: MM_EXECUTE_READWRITE,
  [PAGE_EXECUTE_WRITECOPY]: MM_EXECUTE_WRITECOPY,
};
const MM_TO_BASE: Record<number, number> = Object.fromEntries(Object.entries(BASE_TO_MM).map(([p, m]) => [m, Number(p)]));

/** PAGE_* (one base protection, optionally | PAGE_GUARD or | PAGE_NOCACHE) → MM_*. */
export function pageToMm(protect: number): number {
  const base = BASE_TO_MM[protect & 0xff] ?? MM_NOACCESS;
  if (base === MM_NOACCESS) return MM_NOACCESS;
  return base | (protect & PAGE_GUARD ? MM_GUARD_PAGE : 0) | (protect & PAGE_NOCACHE ? MM_NOCACHE : 0);
}

/** MM_* → PAGE_* (what NtProtectVirtualMemory reports as OldProtect). */
export function mmToPage(mm: number): number {
  if (mm === MM_NOACCESS) return PAGE_NOACCESS;
  const base = MM_TO_BASE[mm & 7] ?? PAGE_NOACCESS;
  return base | (mm & MM_GUARD_PAGE ? PAGE_GUARD : 0) | (mm & MM_NOCACHE ? PAGE_NOCACHE : 0);
}

/** Whether pages with protection `mm` may be written (after copy-on-write, for the *WRITECOPY ones). */
export const writable = (mm: number): boolean => [MM_READWRITE, MM_WRITECOPY, MM_EXECUTE_READWRITE, MM_EXECUTE_WRITECOPY].includes(mm & 7);
/** A protection whose pages must fault on every access (guard, no access). */
const faultsAlways = (mm: number): boolean => mm === MM_NOACCESS || (mm & MM_GUARD_PAGE) !== 0;

/** The PTE bits (without the frame) of a valid user page with protection `mm` (PAGE_NOCACHE: the PCD bit). */
export function validUserPteBits(mm: number): number {
  return PTE_US | (writable(mm) ? PTE_RW : 0) | (mm & MM_NOCACHE ? PTE_PCD : 0) | ((mm & 7) << PTE_VALID_PROTECTION_SHIFT);
}

// ---- page tables --------------------------------------------------------------------------------

/** The physical address of the PTE for `va` in a process's tables, or null when its PDE is absent. */
function pteAddress(k: Kernel, process: Process, va: number): number | null {
  const mem = k.machine.mem;
  const pde = mem.read32(process.pageDirectory + (va >>> 22) * 4);
  if (!(pde & PTE_P)) return null;
  return (pde & ~0xfff) + ((va >>> 12) & 0x3ff) * 4;
}

/** A user page as the page tables describe it. */
export interface UserPage {
  /** 'valid' (mapped), 'transition' (a guard or no-access page, frame kept), 'none' (not committed). */
  state: 'valid' | 'transition' | 'none';
  /** MM_* protection (0 when not committed). */
  protection: number;
  frame: number;
}

export function userPage(k: Kernel, process: Process, va: number): UserPage {
  const at = pteAddress(k, process, va);
  const pte = at === null ? 0 : k.machine.mem.read32(at);
  if (pte & PTE_P) {
    let protection = (pte >>> PTE_VALID_PROTECTION_SHIFT) & 7;
    if (protection === 0) protection = pte & PTE_RW ? MM_READWRITE : MM_READONLY; // a page mapped without bookkeeping
    if (pte & PTE_PCD) protection |= MM_NOCACHE;
    return { state: 'valid', protection, frame: pte & ~0xfff };
  }
  if (pte & PTE_TRANSITION) return { state: 'transition', protection: (pte >>> PTE_SOFT_PROTECTION_SHIFT) & 0x1f, frame: pte & ~0xfff };
  return { state: 'none', protection: 0, frame: 0 };
}

/** Give a page a frame and a protection (valid, or a transition PTE for guard and no-access pages). */
export function setUserPage(k: Kernel, process: Process, va: number, frame: number, mm: number): void {
  k.mapPage(process, va, frame, validUserPteBits(mm));
  if (faultsAlways(mm)) {
    const at = pteAddress(k, process, va)!;
    k.machine.mem.write32(at, frame | PTE_TRANSITION | ((mm & 0x1f) << PTE_SOFT_PROTECTION_SHIFT));
    k.cpu.invlpg(va | 0);
  }
}

/** Commit fresh zeroed pages over [start, end). */
export function commitPages(k: Kernel, process: Process, start: number, end: number, mm: number): void {
  for (let p = start; p < end; p += PAGE) setUserPage(k, process, p, k.allocFrame(), mm);
}

/** Change the protection of committed pages; returns the first page's old MM_* value. */
export function protectPages(k: Kernel, process: Process, start: number, end: number, mm: number): number {
  let old = -1;
  for (let p = start; p < end; p += PAGE) {
    const page = userPage(k, process, p);
    if (page.state === 'none') throw new GuestFault(Vector.PF, 0, p);
    if (old === -1) old = page.protection;
    setUserPage(k, process, p, page.frame, mm);
  }
  return old === -1 ? 0 : old;
}

// ---- VADs ---------------------------------------------------------------------------------------

const VAD = (f: Parameters<typeof offsetOf<'MMVAD_SHORT'>>[1]) => offsetOf('MMVAD_SHORT', f);
const VAD_PROTECTION_SHIFT = 24;
const VAD_MEM_COMMIT = 1 << 30;
const VAD_PRIVATE_MEMORY = 1 << 31;
const VAD_NO_CHANGE = 1 << 22;

export interface Vad {
  node: number;
  start: number;
  /** One past the last byte. */
  end: number;
  protection: number;
  committed: boolean;
  private: boolean;
  noChange: boolean;
}

function readVad(k: Kernel, node: number): Vad {
  const flags = k.r32(node + VAD('LongFlags'));
  return {
    node,
    start: k.r32(node + VAD('StartingVpn')) * PAGE,
    end: (k.r32(node + VAD('EndingVpn')) + 1) * PAGE,
    protection: (flags >>> VAD_PROTECTION_SHIFT) & 0x1f,
    committed: (flags & VAD_MEM_COMMIT) !== 0,
    private: (flags & VAD_PRIVATE_MEMORY) !== 0,
    noChange: (flags & VAD_NO_CHANGE) !== 0,
  };
}

const vadRoot = (p: Process) => p.eprocess + offsetOf('EPROCESS', 'VadRoot');

/** Every VAD of a process, in address order (an in-order walk of the tree in guest memory). */
export function listVads(k: Kernel, process: Process): Vad[] {
  const out: Vad[] = [];
  const walk = (node: number, depth: number): void => {
    if (node === 0 || depth > 64) return;
    walk(k.r32(node + VAD('LeftChild')), depth + 1);
    out.push(readVad(k, node));
    walk(k.r32(node + VAD('RightChild')), depth + 1);
  };
  walk(k.r32(vadRoot(process)), 0);
  return out;
}

/** The VAD containing `va`, if any. */
export function findVad(k: Kernel, process: Process, va: number): Vad | null {
  let node = k.r32(vadRoot(process));
  for (let depth = 0; node !== 0 && depth < 64; depth++) {
    const v = readVad(k, node);
    if (va < v.start) node = k.r32(node + VAD('LeftChild'));
    else if (va >= v.end) node = k.r32(node + VAD('RightChild'));
    else return v;
  }
  return null;
}

/** Insert a VAD for [start, end) (page-aligned) into the process's tree; returns its node. */
export function insertVad(k: Kernel, process: Process, start: number, end: number, mm: number, opts: { committed: boolean; private?: boolean; noChange?: boolean }): number {
  const node = k.allocPool(0x18);
  k.w32(node + VAD('StartingVpn'), start / PAGE);
  k.w32(node + VAD('EndingVpn'), end / PAGE - 1);
  const flags = ((mm & 0x1f) << VAD_PROTECTION_SHIFT) | (opts.committed ? VAD_MEM_COMMIT : 0) | (opts.private !== false ? VAD_PRIVATE_MEMORY : 0) | (opts.noChange ? VAD_NO_CHANGE : 0);
  k.w32(node + VAD('LongFlags'), flags);
  let parent = 0;
  let link = vadRoot(process);
  for (let cur = k.r32(link); cur !== 0; cur = k.r32(link)) {
    parent = cur;
    link = cur + (start < k.r32(cur + VAD('StartingVpn')) * PAGE ? VAD('LeftChild') : VAD('RightChild'));
  }
  k.w32(node + VAD('Parent'), parent);
  k.w32(link, node);
  return node;
}

/** Give a VAD a new range (a partial release trims it; the tree's order does not change). */
export function setVadRange(k: Kernel, vad: Vad, start: number, end: number): void {
  k.w32(vad.node + VAD('StartingVpn'), start / PAGE);
  k.w32(vad.node + VAD('EndingVpn'), end / PAGE - 1);
}

/** Take a VAD out of the process's tree (a binary search tree with parent links). */
export function removeVad(k: Kernel, process: Process, node: number): void {
  const LEFT = VAD('LeftChild');
  const RIGHT = VAD('RightChild');
  const PARENT = VAD('Parent');
  /** Put `replacement` (or nothing) where `child` hangs under `parent` (0: the root). */
  const replace = (parent: number, child: number, replacement: number): void => {
    if (parent === 0) k.w32(vadRoot(process), replacement);
    else k.w32(parent + (k.r32(parent + LEFT) === child ? LEFT : RIGHT), replacement);
    if (replacement !== 0) k.w32(replacement + PARENT, parent);
  };
  const left = k.r32(node + LEFT);
  const right = k.r32(node + RIGHT);
  const parent = k.r32(node + PARENT);
  if (left === 0) replace(parent, node, right);
  else if (right === 0) replace(parent, node, left);
  else {
    // Two children: the in-order successor (the leftmost node on the right) takes the node's place.
    let next = right;
    while (k.r32(next + LEFT) !== 0) next = k.r32(next + LEFT);
    if (next !== right) {
      replace(k.r32(next + PARENT), next, k.r32(next + RIGHT));
      k.w32(next + RIGHT, right);
      k.w32(right + PARENT, next);
    }
    k.w32(next + LEFT, left);
    k.w32(left + PARENT, next);
    replace(parent, node, next);
  }
  k.freePool(node);
}

/** Decommit [start, end): each page's PTE becomes 0 (not committed). The frames are not reused. */
export function decommitPages(k: Kernel, process: Process, start: number, end: number): void {
  for (let p = start; p < end; p += PAGE) {
    const at = pteAddress(k, process, p);
    if (at === null || k.machine.mem.read32(at) === 0) continue;
    k.machine.mem.write32(at, 0);
    k.cpu.invlpg(p | 0);
  }
}

/** Reserve (and optionally commit) a region the loader maps: a VAD and its pages. */
export function mapRegion(k: Kernel, process: Process, start: number, end: number, mm: number, frames?: (va: number) => number): void {
  insertVad(k, process, start, end, mm, { committed: true, private: frames === undefined });
  for (let p = start; p < end; p += PAGE) setUserPage(k, process, p, frames ? frames(p) : k.allocFrame(), mm);
}

// ---- page faults --------------------------------------------------------------------------------

/**
 * MmAccessFault(StoreInstruction, VirtualAddress, PreviousMode, TrapInformation): what a page
 * fault means, as XP's memory manager decides it.
 * - A user-space address: a guard page loses its guard (its base protection takes effect) and
 *   the access is STATUS_GUARD_PAGE_VIOLATION, once; a no-access page, a write to a read-only
 *   page, or an address nothing is committed at is STATUS_ACCESS_VIOLATION; a page that is
 *   fine (the fault was stale) is STATUS_SUCCESS, and the instruction runs again.
 * - A system address touched from user mode: STATUS_ACCESS_VIOLATION.
 * - A system address touched from kernel mode that is not valid: bug check 0x50
 *   PAGE_FAULT_IN_NONPAGED_AREA (address, write, EIP, 0) — whatever handlers the code has, as on
 *   XP; a kernel write to a read-only system page: 0xBE ATTEMPTED_WRITE_TO_READONLY_MEMORY.
 */
export function mmAccessFault(k: Kernel, store: boolean, va: number, mode: 0 | 1, eip: number): number {
  va >>>= 0;
  if (va >= 0x80000000) {
    if (mode === 1) return NTSTATUS.STATUS_ACCESS_VIOLATION;
    const phys = k.cpu.mmu.peek(va);
    if (phys === null) {
      k.finish({ kind: 'bugcheck', code: BUGCHECK.PAGE_FAULT_IN_NONPAGED_AREA, parameters: [va, store ? 1 : 0, eip >>> 0, 0] });
    }
    if (store) k.finish({ kind: 'bugcheck', code: BUGCHECK.ATTEMPTED_WRITE_TO_READONLY_MEMORY, parameters: [va, 0, 0, 0] });
    return NTSTATUS.STATUS_SUCCESS;
  }
  const process = k.currentProcess();
  const page = userPage(k, process, va);
  if (page.state === 'transition') {
    if (page.protection !== MM_NOACCESS && page.protection & MM_GUARD_PAGE) {
      setUserPage(k, process, va & ~(PAGE - 1), page.frame, page.protection & ~MM_GUARD_PAGE);
      return NTSTATUS.STATUS_GUARD_PAGE_VIOLATION;
    }
    return NTSTATUS.STATUS_ACCESS_VIOLATION;
  }
  if (page.state === 'none') return NTSTATUS.STATUS_ACCESS_VIOLATION;
  if (store && !writable(page.protection)) return NTSTATUS.STATUS_ACCESS_VIOLATION;
  // A user-mode access to a user page that the tables allow: a stale translation. Go again.
  return NTSTATUS.STATUS_SUCCESS;
}

/**
 * A fault raised by TypeScript code touching guest memory on the kernel's behalf (a service body,
 * a probe): the exception the access raises, resolved by mmAccessFault as a kernel-mode access.
 * Returns the exception code (STATUS_ACCESS_VIOLATION, STATUS_GUARD_PAGE_VIOLATION, …); bug-checks
 * (MachineStopped) for an invalid system address.
 */
export function kernelAccessFault(k: Kernel, fault: GuestFault): number {
  if (fault.vector !== Vector.PF || fault.cr2 === null) return NTSTATUS.STATUS_ACCESS_VIOLATION;
  const store = ((fault.errorCode ?? 0) & 2) !== 0;
  const status = mmAccessFault(k, store, fault.cr2, 0, k.cpu.eip);
  // "Resolved" cannot happen for a fault the MMU just raised; treat it as the violation it was.
  return status === NTSTATUS.STATUS_SUCCESS ? NTSTATUS.STATUS_ACCESS_VIOLATION : status;
}
