// Virtual memory services: NtAllocateVirtualMemory (reserve / commit), NtFreeVirtualMemory
// (decommit / release) and NtProtectVirtualMemory,
// on the process's VADs and page tables as core/guest/mm.ts keeps them, so a later user access
// sees the new protection through the MMU (a guard page faults once, a no-access page always).
import type { EscapeCall } from '../escape.js';
import type { Kernel, Process } from '../kernel.js';
import { commitPages, decommitPages, findVad, insertVad, listVads, mmToPage, pageToMm, protectPages, removeVad, setVadRange, userPage, MM_HIGHEST_USER_ADDRESS } from '../mm.js';
import { referenceObjectByHandle } from './handles.js';
import { dereferenceObject } from './objects.js';
import { probeGeneric } from './probe.js';
import { S, UserMode, check, run } from './util.js';

export const MEM_COMMIT = 0x1000;
export const MEM_RESERVE = 0x2000;
export const MEM_RESET = 0x80000;
export const MEM_TOP_DOWN = 0x100000;
export const MEM_DECOMMIT = 0x4000;
export const MEM_RELEASE = 0x8000;
const PROCESS_VM_OPERATION = 0x8;

export { MM_HIGHEST_USER_ADDRESS };
const MM_LOWEST_USER_ADDRESS = 0x00010000;
const GRANULARITY = 0x10000; // MM_ALLOCATION_GRANULARITY
const PAGE = 0x1000;

const BASE_PROTECTIONS = new Set([0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80]);
const PAGE_WRITECOPY = 0x08;
const PAGE_EXECUTE_WRITECOPY = 0x80;
const PAGE_GUARD = 0x100;
const PAGE_NOCACHE = 0x200;

/**
 * MiMakeProtectionMask's validity rule: exactly one base protection, optionally PAGE_GUARD or
 * PAGE_NOCACHE (not with PAGE_NOACCESS). Private memory cannot be write-copy.
 */
export function validProtection(protect: number): boolean {
  const base = protect & 0xff;
  const mods = protect & ~0xff;
  if (!BASE_PROTECTIONS.has(base) || mods & ~(PAGE_GUARD | PAGE_NOCACHE)) return false;
  if (base === 0x01 && mods !== 0) return false;
  return base !== PAGE_WRITECOPY && base !== PAGE_EXECUTE_WRITECOPY;
}

/** Whether a page is committed in a process (read from its page tables, no side effects). */
export function pageMapped(k: Kernel, process: Process, address: number): boolean {
  return userPage(k, process, address).state !== 'none';
}

const overlaps = (a: number, aEnd: number, b: number, bEnd: number): boolean => a < bEnd && b < aEnd;

/** No VAD, and no committed page, in [start, end). */
function rangeFree(k: Kernel, process: Process, start: number, end: number): boolean {
  if (listVads(k, process).some((v) => overlaps(start, end, v.start, v.end))) return false;
  for (let p = start; p < end; p += PAGE) if (pageMapped(k, process, p)) return false;
  return true;
}

/** MiFindEmptyAddressRange: bottom-up from 64 KiB, or top-down below MmHighestUserAddress. */
function findRange(k: Kernel, process: Process, size: number, topDown: boolean): number | null {
  if (topDown) {
    for (let b = Math.floor((MM_HIGHEST_USER_ADDRESS + 1 - size) / GRANULARITY) * GRANULARITY; b >= MM_LOWEST_USER_ADDRESS; b -= GRANULARITY) {
      if (rangeFree(k, process, b, b + size)) return b;
    }
  } else {
    for (let b = MM_LOWEST_USER_ADDRESS; b + size <= MM_HIGHEST_USER_ADDRESS + 1; b += GRANULARITY) {
      if (rangeFree(k, process, b, b + size)) return b;
    }
  }
  return null;
}

/** The one VAD that holds all of [start, end), or null (none, or the range spans several). */
function vadHolding(k: Kernel, process: Process, start: number, end: number): ReturnType<typeof findVad> {
  const v = findVad(k, process, start);
  return v !== null && end <= v.end ? v : null;
}

/** Commit pages: fresh zeroed frames where none is committed; committed pages take the new protection. */
function commit(k: Kernel, process: Process, start: number, end: number, mm: number): void {
  for (let p = start; p < end; p += PAGE) {
    if (pageMapped(k, process, p)) protectPages(k, process, p, p + PAGE, mm);
    else commitPages(k, process, p, p + PAGE, mm);
  }
}

/**
 * Frames kept back from user commits for what the kernel itself still maps (page tables, stacks,
 * pool): a user commit that would eat into them fails instead of leaving the kernel without memory.
 */
const KERNEL_RESERVE_FRAMES = 256;

/**
 * MiChargeCommitment: whether committing [start, end) fits in the frames left. Pages already
 * committed cost nothing; each new 4 MiB stretch may need a page table. Otherwise XP fails the call
 * with STATUS_COMMITMENT_LIMIT before it changes anything (a 1.6 GB MEM_COMMIT from ring 3 used to
 * throw 'guest physical memory exhausted' out of the machine).
 */
function commitFits(k: Kernel, process: Process, start: number, end: number, fresh: boolean): boolean {
  const pages = (end - start) / PAGE;
  const budget = k.framesLeft() - KERNEL_RESERVE_FRAMES;
  if (pages + Math.ceil(pages / 1024) + 1 <= budget) return true;
  if (fresh) return false;
  let needed = 0;
  for (let p = start; p < end && needed <= budget; p += PAGE) if (!pageMapped(k, process, p)) needed++;
  return needed + Math.ceil(needed / 1024) + 1 <= budget;
}

/**
 * NtAllocateVirtualMemory(ProcessHandle, *BaseAddress, ZeroBits, *RegionSize, AllocationType, Protect).
 * The flags and protection are checked first, then (UserMode) the two in/out pointers are probed
 * and captured, then the process handle is referenced — XP's order.
 */
export function NtAllocateVirtualMemory(c: EscapeCall): number {
  const { k, previousMode: mode } = c;
  const [processHandle, baseAddressPtr, zeroBits, regionSizePtr, type, protect] = Array.from({ length: 6 }, (_, i) => c.arg(i));
  return run(() => {
    if (zeroBits > 21) return S.STATUS_INVALID_PARAMETER_3;
    if (type & ~(MEM_COMMIT | MEM_RESERVE | MEM_RESET | MEM_TOP_DOWN)) return S.STATUS_INVALID_PARAMETER_5;
    if (!(type & (MEM_COMMIT | MEM_RESERVE | MEM_RESET))) return S.STATUS_INVALID_PARAMETER_5;
    if (type & MEM_RESET && type & (MEM_COMMIT | MEM_RESERVE)) return S.STATUS_INVALID_PARAMETER_5;
    if (!validProtection(protect)) return S.STATUS_INVALID_PAGE_PROTECTION;
    if (mode === UserMode) {
      check(probeGeneric(k, baseAddressPtr, 4, 'write'));
      check(probeGeneric(k, regionSizePtr, 4, 'write'));
    }
    const base = k.r32(baseAddressPtr);
    const size = k.r32(regionSizePtr);
    if (base > MM_HIGHEST_USER_ADDRESS) return S.STATUS_INVALID_PARAMETER_2;
    if (size === 0 || MM_HIGHEST_USER_ADDRESS + 1 - base < size) return S.STATUS_INVALID_PARAMETER_4;
    const ref = referenceObjectByHandle(k, processHandle, 'Process', PROCESS_VM_OPERATION, mode);
    if (ref.status !== 0) return ref.status;
    try {
      const process = ref.rec!.process!;
      let start: number;
      let end: number;
      if (type & MEM_RESET) {
        start = base & ~(PAGE - 1);
        end = Math.ceil((base + size) / PAGE) * PAGE;
      } else if (base === 0 || type & MEM_RESERVE) {
        // A new region: 64 KiB-aligned start, page-rounded end.
        if (base === 0) {
          const length = Math.ceil(size / PAGE) * PAGE;
          const found = findRange(k, process, length, (type & MEM_TOP_DOWN) !== 0);
          if (found === null) return S.STATUS_NO_MEMORY;
          [start, end] = [found, found + length];
        } else {
          start = Math.floor(base / GRANULARITY) * GRANULARITY;
          end = Math.ceil((base + size) / PAGE) * PAGE;
          if (!rangeFree(k, process, start, end)) return S.STATUS_CONFLICTING_ADDRESSES;
        }
        if (type & MEM_COMMIT && !commitFits(k, process, start, end, true)) return S.STATUS_COMMITMENT_LIMIT;
        insertVad(k, process, start, end, pageToMm(protect), { committed: (type & MEM_COMMIT) !== 0 });
        if (type & MEM_COMMIT) commit(k, process, start, end, pageToMm(protect));
      } else {
        // MEM_COMMIT alone: inside something already reserved.
        start = base & ~(PAGE - 1);
        end = Math.ceil((base + size) / PAGE) * PAGE;
        if (vadHolding(k, process, start, end) === null) return S.STATUS_CONFLICTING_ADDRESSES;
        if (!commitFits(k, process, start, end, false)) return S.STATUS_COMMITMENT_LIMIT;
        commit(k, process, start, end, pageToMm(protect));
      }
      k.w32(baseAddressPtr, start);
      k.w32(regionSizePtr, end - start);
      return S.STATUS_SUCCESS;
    } finally {
      dereferenceObject(k, ref.rec!);
    }
  });
}

/**
 * NtProtectVirtualMemory(ProcessHandle, *BaseAddress, *NumberOfBytesToProtect, NewAccessProtection,
 * *OldAccessProtection): the range rounded out to whole pages must lie inside one VAD (else
 * STATUS_CONFLICTING_ADDRESSES: SharedUserData, for one, has none) and be committed page by page
 * (else STATUS_NOT_COMMITTED); the PTEs take the new protection; the first page's old protection
 * (PAGE_EXECUTE_READWRITE stays 0x40, a guard page keeps PAGE_GUARD) and the rounded base and size
 * are written back.
 */
export function NtProtectVirtualMemory(c: EscapeCall): number {
  const { k } = c;
  const [processHandle, baseAddressPtr, sizePtr, newProtect, oldProtectPtr] = Array.from({ length: 5 }, (_, i) => c.arg(i));
  return run(() => {
    if (!validProtection(newProtect)) return S.STATUS_INVALID_PAGE_PROTECTION;
    return withRegion(c, processHandle, baseAddressPtr, sizePtr, [oldProtectPtr], (process, base, size) => {
      const start = base & ~(PAGE - 1);
      // The end as XP computes it, (base + size − 1) | 0xFFF; a zero size covers base's page.
      const end = (Math.max(base + size - 1, start) | (PAGE - 1)) + 1;
      if (vadHolding(k, process, start, end) === null) return S.STATUS_CONFLICTING_ADDRESSES;
      for (let p = start; p < end; p += PAGE) if (!pageMapped(k, process, p)) return S.STATUS_NOT_COMMITTED;
      const old = protectPages(k, process, start, end, pageToMm(newProtect));
      k.w32(oldProtectPtr, mmToPage(old));
      k.w32(baseAddressPtr, start);
      k.w32(sizePtr, end - start);
      return S.STATUS_SUCCESS;
    });
  });
}

/**
 * What NtProtectVirtualMemory and NtFreeVirtualMemory do before their own work: for a UserMode
 * caller the in/out pointers probed for writing (BaseAddress, the size, then `alsoProbed`), the base
 * and size captured and checked (STATUS_INVALID_PARAMETER_2, _3), the process handle referenced
 * for PROCESS_VM_OPERATION; `body` runs with the process, and the reference is dropped after it.
 */
function withRegion(c: EscapeCall, processHandle: number, baseAddressPtr: number, sizePtr: number, alsoProbed: number[], body: (process: Process, base: number, size: number) => number): number {
  const { k, previousMode: mode } = c;
  if (mode === UserMode) for (const p of [baseAddressPtr, sizePtr, ...alsoProbed]) check(probeGeneric(k, p, 4, 'write'));
  const base = k.r32(baseAddressPtr);
  const size = k.r32(sizePtr);
  if (base > MM_HIGHEST_USER_ADDRESS) return S.STATUS_INVALID_PARAMETER_2;
  if (MM_HIGHEST_USER_ADDRESS + 1 - base < size) return S.STATUS_INVALID_PARAMETER_3;
  const ref = referenceObjectByHandle(k, processHandle, 'Process', PROCESS_VM_OPERATION, mode);
  if (ref.status !== 0) return ref.status;
  try {
    return body(ref.rec!.process!, base, size);
  } finally {
    dereferenceObject(k, ref.rec!);
  }
}

/**
 * NtFreeVirtualMemory(ProcessHandle, *BaseAddress, *RegionSize, FreeType): FreeType is MEM_DECOMMIT
 * or MEM_RELEASE, exactly one (else STATUS_INVALID_PARAMETER_4); the two in/out pointers are probed
 * (UserMode), the range checked like NtProtectVirtualMemory's, the process referenced. The range is
 * rounded out to whole pages and must lie in one VAD (none at its start: STATUS_MEMORY_NOT_ALLOCATED;
 * running past its end: STATUS_UNABLE_TO_FREE_VM); a mapped view (an image) is not private memory
 * and is not freed here (STATUS_UNABLE_TO_DELETE_SECTION). A RegionSize of 0 means: to the end of
 * the region — for MEM_RELEASE the whole region, whose base BaseAddress must then be
 * (STATUS_FREE_VM_NOT_AT_BASE). Decommitted pages lose their PTEs; a release also shrinks the VAD,
 * splits it (a hole in the middle) or removes it. The rounded base and size are written back.
 * (Behaviour as ReactOS's NtFreeVirtualMemory API tests record Windows'.)
 */
export function NtFreeVirtualMemory(c: EscapeCall): number {
  const { k } = c;
  const [processHandle, baseAddressPtr, regionSizePtr, freeType] = Array.from({ length: 4 }, (_, i) => c.arg(i));
  return run(() => {
    if (freeType !== MEM_DECOMMIT && freeType !== MEM_RELEASE) return S.STATUS_INVALID_PARAMETER_4;
    return withRegion(c, processHandle, baseAddressPtr, regionSizePtr, [], (process, base, size) => {
      const release = freeType === MEM_RELEASE;
      let start = base & ~(PAGE - 1);
      const vad = findVad(k, process, start);
      if (vad === null) return S.STATUS_MEMORY_NOT_ALLOCATED;
      if (!vad.private) return S.STATUS_UNABLE_TO_DELETE_SECTION;
      let end: number;
      if (size === 0) {
        if (release && start !== vad.start) return S.STATUS_FREE_VM_NOT_AT_BASE;
        if (release) start = vad.start;
        end = vad.end;
      } else {
        end = ((base + size - 1) | (PAGE - 1)) + 1;
        if (end > vad.end) return S.STATUS_UNABLE_TO_FREE_VM;
      }
      decommitPages(k, process, start, end);
      if (release) {
        if (start === vad.start && end === vad.end) removeVad(k, process, vad.node);
        else if (start === vad.start) setVadRange(k, vad, end, vad.end);
        else {
          setVadRange(k, vad, vad.start, start);
          if (end < vad.end) insertVad(k, process, end, vad.end, vad.protection, { committed: vad.committed, private: vad.private, noChange: vad.noChange });
        }
      }
      k.w32(baseAddressPtr, start);
      k.w32(regionSizePtr, end - start);
      return S.STATUS_SUCCESS;
    });
  });
}
