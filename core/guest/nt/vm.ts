// Virtual memory services: NtAllocateVirtualMemory (reserve / commit) and NtProtectVirtualMemory,
// which change the process's page tables for real (Kernel.mapUserPages / protectPages), so a later
// user access sees the new protection through the MMU.
//
// Reservations made here are kept as VADs on the TypeScript side; what the loader mapped (image,
// stack, PEB/TEB, SharedUserData) is found in the page tables themselves and counts as committed.
import type { EscapeCall } from '../escape.js';
import type { Kernel, Process } from '../kernel.js';
import { USER_HEAP, USER_STACK_SIZE, USER_STACK_TOP } from '../layout.js';
import { PTE_P } from '../../mmu.js';
import { referenceObjectByHandle } from './handles.js';
import { dereferenceObject } from './objects.js';
import { probeGeneric } from './probe.js';
import { ntState, type Vad } from './state.js';
import { S, UserMode, check, run } from './util.js';

export const MEM_COMMIT = 0x1000;
export const MEM_RESERVE = 0x2000;
export const MEM_RESET = 0x80000;
export const MEM_TOP_DOWN = 0x100000;
const PROCESS_VM_OPERATION = 0x8;

export const MM_HIGHEST_USER_ADDRESS = 0x7ffeffff;
const MM_LOWEST_USER_ADDRESS = 0x00010000;
const GRANULARITY = 0x10000; // MM_ALLOCATION_GRANULARITY
const PAGE = 0x1000;
/**
 * The loader's stack and heap neighbourhood, which it may reserve without mapping every page:
 * automatic placement keeps out of it.
 */
const LOADER_RESERVED: readonly [number, number][] = [[USER_STACK_TOP - USER_STACK_SIZE - GRANULARITY, USER_HEAP + 0x100000]];

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

/** Whether a page is present in a process's page tables (read from physical memory, no side effects). */
export function pageMapped(k: Kernel, process: Process, address: number): boolean {
  const mem = k.machine.mem;
  const pde = mem.read32(process.pageDirectory + (address >>> 22) * 4);
  if (!(pde & PTE_P)) return false;
  return (mem.read32((pde & ~0xfff) + ((address >>> 12) & 0x3ff) * 4) & PTE_P) !== 0;
}

function vadsOf(k: Kernel, process: Process): Vad[] {
  const st = ntState(k);
  let v = st.vads.get(process.eprocess);
  if (!v) st.vads.set(process.eprocess, (v = []));
  return v;
}

const overlaps = (a: number, aEnd: number, b: number, bEnd: number): boolean => a < bEnd && b < aEnd;

/** No VAD, no loader region and no mapped page in [start, end). */
function rangeFree(k: Kernel, process: Process, start: number, end: number, placing: boolean): boolean {
  if (vadsOf(k, process).some((v) => overlaps(start, end, v.base, v.base + v.size))) return false;
  if (placing && LOADER_RESERVED.some(([a, b]) => overlaps(start, end, a, b))) return false;
  for (let p = start; p < end; p += PAGE) if (pageMapped(k, process, p)) return false;
  return true;
}

/** MiFindEmptyAddressRange: bottom-up from 64 KiB, or top-down below MmHighestUserAddress. */
function findRange(k: Kernel, process: Process, size: number, topDown: boolean): number | null {
  if (topDown) {
    for (let b = Math.floor((MM_HIGHEST_USER_ADDRESS + 1 - size) / GRANULARITY) * GRANULARITY; b >= MM_LOWEST_USER_ADDRESS; b -= GRANULARITY) {
      if (rangeFree(k, process, b, b + size, true)) return b;
    }
  } else {
    for (let b = MM_LOWEST_USER_ADDRESS; b + size <= MM_HIGHEST_USER_ADDRESS + 1; b += GRANULARITY) {
      if (rangeFree(k, process, b, b + size, true)) return b;
    }
  }
  return null;
}

/** Whether every page of [start, end) is reserved here or mapped by the loader. */
function rangeReserved(k: Kernel, process: Process, start: number, end: number): boolean {
  const vads = vadsOf(k, process);
  for (let p = start; p < end; p += PAGE) {
    if (!vads.some((v) => p >= v.base && p < v.base + v.size) && !pageMapped(k, process, p)) return false;
  }
  return true;
}

/** Commit pages: fresh zeroed frames where none is mapped; already committed pages take the new protection. */
function commit(k: Kernel, process: Process, start: number, end: number, protect: number): void {
  for (let p = start; p < end; p += PAGE) {
    if (pageMapped(k, process, p)) k.protectPages(process, p, PAGE, protect);
    else k.mapUserPages(process, p, PAGE, protect);
  }
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
          if (!rangeFree(k, process, start, end, false)) return S.STATUS_CONFLICTING_ADDRESSES;
        }
        vadsOf(k, process).push({ base: start, size: end - start });
        if (type & MEM_COMMIT) commit(k, process, start, end, protect);
      } else {
        // MEM_COMMIT alone: inside something already reserved.
        start = base & ~(PAGE - 1);
        end = Math.ceil((base + size) / PAGE) * PAGE;
        if (!rangeReserved(k, process, start, end)) return S.STATUS_CONFLICTING_ADDRESSES;
        commit(k, process, start, end, protect);
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
 * *OldAccessProtection): the range rounded out to whole pages, every page of it committed
 * (else STATUS_NOT_COMMITTED), the page tables changed; the old protection of the first page,
 * and the rounded base and size, are written back.
 */
export function NtProtectVirtualMemory(c: EscapeCall): number {
  const { k, previousMode: mode } = c;
  const [processHandle, baseAddressPtr, sizePtr, newProtect, oldProtectPtr] = Array.from({ length: 5 }, (_, i) => c.arg(i));
  return run(() => {
    if (!validProtection(newProtect)) return S.STATUS_INVALID_PAGE_PROTECTION;
    if (mode === UserMode) {
      check(probeGeneric(k, baseAddressPtr, 4, 'write'));
      check(probeGeneric(k, sizePtr, 4, 'write'));
      check(probeGeneric(k, oldProtectPtr, 4, 'write'));
    }
    const base = k.r32(baseAddressPtr);
    const size = k.r32(sizePtr);
    if (base > MM_HIGHEST_USER_ADDRESS) return S.STATUS_INVALID_PARAMETER_2;
    if (MM_HIGHEST_USER_ADDRESS + 1 - base < size) return S.STATUS_INVALID_PARAMETER_3;
    const ref = referenceObjectByHandle(k, processHandle, 'Process', PROCESS_VM_OPERATION, mode);
    if (ref.status !== 0) return ref.status;
    try {
      const process = ref.rec!.process!;
      const start = base & ~(PAGE - 1);
      // The end as XP computes it, (base + size − 1) | 0xFFF; a zero size covers base's page.
      const end = (Math.max(base + size - 1, start) | (PAGE - 1)) + 1;
      for (let p = start; p < end; p += PAGE) if (!pageMapped(k, process, p)) return S.STATUS_NOT_COMMITTED;
      const old = k.protectPages(process, start, end - start, newProtect);
      k.w32(oldProtectPtr, old);
      k.w32(baseAddressPtr, start);
      k.w32(sizePtr, end - start);
      return S.STATUS_SUCCESS;
    } finally {
      dereferenceObject(k, ref.rec!);
    }
  });
}
