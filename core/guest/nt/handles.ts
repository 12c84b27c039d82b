// Handle tables in guest memory and the handle rules of NT-FACTS §4a–§4c.
//
// EPROCESS.ObjectTable (+0xC4) → HANDLE_TABLE → TableCode: one page of 512 HANDLE_TABLE_ENTRYs
// (XP's level-0 table; entry 0 is never used, so handles are multiples of 4 from 4). An entry in
// use holds Object = OBJECT_HEADER | 1 (XP's "unlocked" bit) | the OBJ_INHERIT / OBJ_AUDIT bits,
// and GrantedAccess; a free entry holds 0 and NextFreeTableEntry, the next free handle value. XP
// takes handles from FirstFree and pushes freed ones back on it, so a closed handle's value is the
// next one handed out. The System process's table is the kernel handle table
// (ObpKernelHandleTable): a handle created there for OBJ_KERNEL_HANDLE gets bit 31.
import type { Kernel, Process } from '../kernel.js';
import { offsetOf } from '../structs.js';
import { adjustHandleCount, allAccess, dereferenceObject, mapGenericAccess, objectAt, processObject, referenceObject, threadObject } from './objects.js';
import { ntState, type ObjectRecord, type ObTypeName } from './state.js';
import { KernelMode, S, UserMode, fail, modeName, type Mode } from './util.js';

export const OBJ_INHERIT = 0x2;
export const OBJ_KERNEL_HANDLE = 0x200;
export const KERNEL_HANDLE_FLAG = 0x80000000;
export const NT_CURRENT_PROCESS = 0xffffffff;
export const NT_CURRENT_THREAD = 0xfffffffe;

export const HANDLE_ENTRIES = 512; // one page of 8-byte entries
const ENTRY_SIZE = 8;
const ENTRY_LOCK_BIT = 1; // XP: set while the entry is unlocked
const ENTRY_ATTRIBUTES = 0x6; // OBJ_INHERIT | OBJ_AUDIT_OBJECT_CLOSE (bits kept in the entry)

const EP_OBJECT_TABLE = offsetOf('EPROCESS', 'ObjectTable');
const HT = (f: 'TableCode' | 'QuotaProcess' | 'UniqueProcessId' | 'HandleTableList' | 'FirstFree' | 'LastFree' | 'NextHandleNeedingPool' | 'HandleCount') =>
  offsetOf('HANDLE_TABLE', f);
const HTE_OBJECT = offsetOf('HANDLE_TABLE_ENTRY', 'Object');
const HTE_ACCESS = offsetOf('HANDLE_TABLE_ENTRY', 'GrantedAccess');
const HTE_NEXT_FREE = offsetOf('HANDLE_TABLE_ENTRY', 'NextFreeTableEntry');

/** The entry index of a handle value (the two low tag bits are ignored, as ExMapHandleToPointer does). */
export function handleIndex(handle: number): number {
  return (handle >>> 0) >>> 2;
}

/** ObpIsKernelHandle: bit 31 set, KernelMode, and not a pseudo-handle. */
export function isKernelHandle(handle: number, mode: Mode): boolean {
  const h = handle >>> 0;
  return (h & KERNEL_HANDLE_FLAG) !== 0 && mode === KernelMode && h !== NT_CURRENT_PROCESS && h !== NT_CURRENT_THREAD;
}

/** ExCreateHandleTable: an empty table with its free list 4 → 8 → … in guest memory. */
function createHandleTable(k: Kernel, process: Process): number {
  const table = k.allocPool(offsetOf('HANDLE_TABLE', 'Flags') + 4);
  const entries = k.allocPool(HANDLE_ENTRIES * ENTRY_SIZE);
  k.w32(table + HT('TableCode'), entries); // low bits 0: a one-level table
  k.w32(table + HT('QuotaProcess'), process.isSystem ? 0 : process.eprocess);
  k.w32(table + HT('UniqueProcessId'), process.id);
  k.w32(table + HT('HandleTableList'), table + HT('HandleTableList'));
  k.w32(table + HT('HandleTableList') + 4, table + HT('HandleTableList'));
  for (let i = 1; i < HANDLE_ENTRIES; i++) k.w32(entries + i * ENTRY_SIZE + HTE_NEXT_FREE, i + 1 < HANDLE_ENTRIES ? (i + 1) * 4 : 0);
  k.w32(table + HT('FirstFree'), 4);
  k.w32(table + HT('LastFree'), 0);
  k.w32(table + HT('NextHandleNeedingPool'), HANDLE_ENTRIES * 4);
  k.w32(table + HT('HandleCount'), 0);
  return table;
}

/** A process's handle table (EPROCESS.ObjectTable), created on first use. */
export function handleTableOf(k: Kernel, process: Process): number {
  let table = k.r32(process.eprocess + EP_OBJECT_TABLE);
  if (table === 0) {
    if (!process.isSystem) table = createHandleTable(k, process);
    else table = kernelHandleTable(k);
    k.w32(process.eprocess + EP_OBJECT_TABLE, table);
  }
  return table;
}

/** ObpKernelHandleTable: the System process's table. */
export function kernelHandleTable(k: Kernel): number {
  const st = ntState(k);
  if (st.kernelHandleTable === 0) {
    const sys = k.systemProcess;
    const existing = k.r32(sys.eprocess + EP_OBJECT_TABLE);
    st.kernelHandleTable = existing !== 0 ? existing : createHandleTable(k, sys);
    k.w32(sys.eprocess + EP_OBJECT_TABLE, st.kernelHandleTable);
  }
  return st.kernelHandleTable;
}

interface Entry {
  entry: number;
  header: number;
  attributes: number;
  grantedAccess: number;
}

/** ExMapHandleToPointer: the entry of a handle, or null when the slot is out of range or free. */
export function mapHandle(k: Kernel, table: number, handle: number): Entry | null {
  const index = handleIndex(handle);
  if (index === 0 || index >= HANDLE_ENTRIES) return null;
  const entry = k.r32(table + HT('TableCode')) + index * ENTRY_SIZE;
  const value = k.r32(entry + HTE_OBJECT);
  if (value === 0) return null;
  return { entry, header: (value & ~7) >>> 0, attributes: value & ENTRY_ATTRIBUTES, grantedAccess: k.r32(entry + HTE_ACCESS) };
}

/** ExCreateHandle: take FirstFree, fill the entry; returns the handle value (without bit 31). */
function insertHandle(k: Kernel, table: number, header: number, attributes: number, access: number): number {
  const handle = k.r32(table + HT('FirstFree'));
  if (handle === 0) fail(S.STATUS_INSUFFICIENT_RESOURCES);
  const entry = k.r32(table + HT('TableCode')) + handleIndex(handle) * ENTRY_SIZE;
  k.w32(table + HT('FirstFree'), k.r32(entry + HTE_NEXT_FREE));
  k.w32(entry + HTE_OBJECT, (header | ENTRY_LOCK_BIT | (attributes & ENTRY_ATTRIBUTES)) >>> 0);
  k.w32(entry + HTE_ACCESS, access >>> 0);
  k.w32(table + HT('HandleCount'), k.r32(table + HT('HandleCount')) + 1);
  return handle;
}

/** ExDestroyHandle: clear the entry and push its value on the free list. */
function removeHandle(k: Kernel, table: number, handle: number): void {
  const h = (handle & ~3) >>> 0;
  const entry = k.r32(table + HT('TableCode')) + handleIndex(h) * ENTRY_SIZE;
  k.w32(entry + HTE_OBJECT, 0);
  k.w32(entry + HTE_NEXT_FREE, k.r32(table + HT('FirstFree')));
  k.w32(table + HT('FirstFree'), h);
  k.w32(table + HT('HandleCount'), k.r32(table + HT('HandleCount')) - 1);
}

/**
 * ObpCreateHandle: OBJ_KERNEL_HANDLE from a KernelMode caller → the kernel handle table and the
 * value gets bit 31; otherwise (a UserMode caller's flag is ignored) → the current process's
 * table. The handle holds a reference (PointerCount + 1) and HandleCount + 1.
 */
export function createHandle(k: Kernel, rec: ObjectRecord, attributes: number, access: number, mode: Mode): number {
  const kernel = (attributes & OBJ_KERNEL_HANDLE) !== 0 && mode === KernelMode;
  if (!kernel) return createHandleIn(k, k.currentProcess(), rec, attributes, access);
  return (createHandleIn(k, k.systemProcess, rec, attributes, access) | KERNEL_HANDLE_FLAG) >>> 0;
}

/**
 * A handle in a given process's table (the System process's is the kernel table; the value comes
 * without bit 31): what createHandle does once it has chosen the table, and what process creation
 * uses to give a new process its standard handles.
 */
export function createHandleIn(k: Kernel, process: Process, rec: ObjectRecord, attributes: number, access: number): number {
  const table = handleTableOf(k, process);
  const handle = insertHandle(k, table, rec.header, attributes & OBJ_INHERIT, access);
  referenceObject(k, rec);
  adjustHandleCount(k, rec, 1);
  emitEntry(k, 'create', table, handle, rec, access, process);
  return handle;
}

/** The `handle-entry` event of an entry made or destroyed in `table` (value without bit 31). */
function emitEntry(k: Kernel, op: 'create' | 'close', table: number, value: number, rec: ObjectRecord, access: number, owner: Process): void {
  const kernel = table === kernelHandleTable(k);
  k.emit<'handle-entry'>({
    type: 'handle-entry',
    op,
    handle: (kernel ? value | KERNEL_HANDLE_FLAG : value) >>> 0,
    table: kernel ? 'kernel' : 'process',
    process: owner.name,
    object: rec.body,
    objectType: rec.type,
    objectName: rec.name ?? rec.file?.fileName ?? null,
    grantedAccess: access >>> 0,
  });
}

export interface Referenced {
  status: number;
  rec?: ObjectRecord;
  grantedAccess?: number;
  attributes?: number;
}

/** What a handle lookup reports: the table by name ('kernel' when it is ObpKernelHandleTable). */
function tableName(k: Kernel, table: number): 'process' | 'kernel' {
  return table === kernelHandleTable(k) ? 'kernel' : 'process';
}

/**
 * ObReferenceObjectByHandle, exactly as NT-FACTS §4a: pseudo-handles −1/−2 first; a handle with
 * bit 31 is a kernel handle only for AccessMode KernelMode (else STATUS_INVALID_HANDLE, no table
 * is searched); any other handle is looked up in the current process's table. Then the type
 * (STATUS_OBJECT_TYPE_MISMATCH) and, for UserMode, the access (STATUS_ACCESS_DENIED). Success takes
 * a reference. Emits a `handle-lookup` event every time.
 */
export function referenceObjectByHandle(k: Kernel, handle: number, type: ObTypeName | null, desiredAccess: number, mode: Mode): Referenced {
  const h = handle >>> 0;
  let table: 'process' | 'kernel' | 'pseudo' | 'none';
  let result: Referenced;
  let found: { rec: ObjectRecord; granted: number } | null = null;
  if (h === NT_CURRENT_PROCESS || h === NT_CURRENT_THREAD) {
    table = 'pseudo';
    const rec = h === NT_CURRENT_PROCESS ? processObject(k, k.currentProcess()) : threadObject(k, k.currentThread());
    found = { rec, granted: allAccess(rec.type) };
    result = grant(k, rec, type, desiredAccess, mode, found.granted, 0);
  } else if (h & KERNEL_HANDLE_FLAG && mode !== KernelMode) {
    table = 'none';
    result = { status: S.STATUS_INVALID_HANDLE };
  } else {
    const t = h & KERNEL_HANDLE_FLAG ? kernelHandleTable(k) : handleTableOf(k, k.currentProcess());
    table = tableName(k, t);
    const e = mapHandle(k, t, h & ~KERNEL_HANDLE_FLAG);
    const rec = e ? objectAt(k, e.header + 0x18) : undefined;
    if (e && rec) found = { rec, granted: e.grantedAccess };
    result = e && rec ? grant(k, rec, type, desiredAccess, mode, e.grantedAccess, e.attributes) : { status: S.STATUS_INVALID_HANDLE };
  }
  k.emit<'handle-lookup'>({
    type: 'handle-lookup',
    handle: h,
    table,
    previousMode: modeName(mode),
    status: result.status,
    object: result.rec?.body ?? null,
    objectType: result.rec?.type ?? null,
    wantedType: type,
    desiredAccess: desiredAccess >>> 0,
    grantedAccess: found ? found.granted >>> 0 : null,
    foundType: found?.rec.type ?? null,
  });
  return result;
}

function grant(k: Kernel, rec: ObjectRecord, type: ObTypeName | null, desired: number, mode: Mode, granted: number, attributes: number): Referenced {
  if (type !== null && rec.type !== type) return { status: S.STATUS_OBJECT_TYPE_MISMATCH };
  if (mode === UserMode && (~granted & mapGenericAccess(rec.type, desired)) !== 0) return { status: S.STATUS_ACCESS_DENIED };
  referenceObject(k, rec);
  return { status: S.STATUS_SUCCESS, rec, grantedAccess: granted, attributes };
}

/**
 * NtClose → ObpCloseHandle (NT-FACTS §4c): a KernelMode caller passing −1 gets
 * STATUS_INVALID_HANDLE; a kernel handle from a KernelMode caller is closed in the kernel table;
 * anything else in the current process's table (so a UserMode NtClose of a bit-31 value finds
 * nothing there and the handle leaks). Emits `handle-lookup`.
 */
export function closeHandle(k: Kernel, handle: number, mode: Mode): number {
  const h = handle >>> 0;
  let status: number;
  let table: 'process' | 'kernel' | 'pseudo' | 'none' = 'none';
  let rec: ObjectRecord | undefined;
  let closedAccess: number | null = null;
  let closedIn: { table: number; value: number } | null = null;
  if (mode === KernelMode && h === NT_CURRENT_PROCESS) {
    status = S.STATUS_INVALID_HANDLE;
  } else {
    const t = isKernelHandle(h, mode) ? kernelHandleTable(k) : handleTableOf(k, k.currentProcess());
    table = tableName(k, t);
    const value = isKernelHandle(h, mode) ? h & ~KERNEL_HANDLE_FLAG : h;
    const e = mapHandle(k, t, value);
    rec = e ? objectAt(k, e.header + 0x18) : undefined;
    if (e && rec) {
      closedAccess = e.grantedAccess >>> 0;
      removeHandle(k, t, value);
      closedIn = { table: t, value };
      status = S.STATUS_SUCCESS;
    } else {
      status = S.STATUS_INVALID_HANDLE;
    }
  }
  k.emit<'handle-lookup'>({
    type: 'handle-lookup',
    handle: h,
    table,
    previousMode: modeName(mode),
    status,
    object: rec?.body ?? null,
    objectType: rec?.type ?? null,
    wantedType: null,
    desiredAccess: 0,
    grantedAccess: closedAccess,
    foundType: rec?.type ?? null,
  });
  if (closedIn && rec) {
    const owner = closedIn.table === kernelHandleTable(k) ? k.systemProcess : k.currentProcess();
    emitEntry(k, 'close', closedIn.table, closedIn.value, rec, closedAccess ?? 0, owner);
  }
  if (status === S.STATUS_SUCCESS && rec) {
    // The handle's count and reference go after the entry is gone (ObpDecrementHandleCount,
    // then ObDereferenceObject): the last handle of a file sends IRP_MJ_CLEANUP, the last
    // reference IRP_MJ_CLOSE.
    adjustHandleCount(k, rec, -1);
    dereferenceObject(k, rec);
  }
  return status;
}

export interface HandleInfo {
  handle: number;
  object: number;
  type: ObTypeName | null;
  name: string | null;
  grantedAccess: number;
}

/** The handles of a table, for tools (the kernel table's values carry bit 31). */
export function listHandles(k: Kernel, process: Process): HandleInfo[] {
  const table = handleTableOf(k, process);
  const kernel = table === kernelHandleTable(k);
  const out: HandleInfo[] = [];
  for (let i = 1; i < HANDLE_ENTRIES; i++) {
    const e = mapHandle(k, table, i * 4);
    if (!e) continue;
    const rec = objectAt(k, e.header + 0x18);
    out.push({
      handle: kernel ? (i * 4) | KERNEL_HANDLE_FLAG : i * 4,
      object: e.header + 0x18,
      type: rec?.type ?? null,
      name: rec?.name ?? rec?.file?.fileName ?? null,
      grantedAccess: e.grantedAccess,
    });
  }
  for (const h of out) h.handle >>>= 0;
  return out;
}
