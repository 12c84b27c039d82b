// The object manager's objects: an OBJECT_HEADER (PointerCount, HandleCount, Type) in pool with
// the body right after it (+0x18), the counts kept in guest memory so traces and tools see them,
// and a side-map from body address to a typed record. Type objects are objects too (type 'Type'),
// with XP's OBJECT_TYPE fields that matter here (Name, Index, object and handle totals).
import type { Kernel, Process, Thread } from '../kernel.js';
import { offsetOf } from '../structs.js';
import { ntState, type ObjectRecord, type ObTypeName } from './state.js';
import { hex, setUnicodeString } from './util.js';

const OH_POINTER_COUNT = offsetOf('OBJECT_HEADER', 'PointerCount');
const OH_HANDLE_COUNT = offsetOf('OBJECT_HEADER', 'HandleCount');
const OH_TYPE = offsetOf('OBJECT_HEADER', 'Type');
/** The body follows the header's first 0x18 bytes (OBJECT_HEADER.Body). */
export const OBJECT_HEADER_SIZE = offsetOf('OBJECT_HEADER', 'Body');

// XP's OBJECT_TYPE (size 0x190; from the XP PDB layout, not described in structs.ts because only
// these fields are written): Name UNICODE_STRING +0x40, Index +0x4C, TotalNumberOfObjects +0x50,
// TotalNumberOfHandles +0x54.
const OBJECT_TYPE_SIZE = 0x190;
const OT_NAME = 0x40;
const OT_INDEX = 0x4c;
const OT_TOTAL_OBJECTS = 0x50;
const OT_TOTAL_HANDLES = 0x54;

/** The object types, in XP's creation order (their Index). */
export const OBJECT_TYPES: readonly ObTypeName[] = ['Type', 'Directory', 'SymbolicLink', 'Process', 'Thread', 'Event', 'File', 'Device', 'Driver'];

/** Create the type objects (once). */
export function createObjectTypes(k: Kernel): void {
  const st = ntState(k);
  if (st.types.size > 0) return;
  OBJECT_TYPES.forEach((name, i) => {
    const header = k.allocPool(OBJECT_HEADER_SIZE + OBJECT_TYPE_SIZE);
    const body = header + OBJECT_HEADER_SIZE;
    const rec: ObjectRecord = { body, header, type: 'Type', name: `\\ObjectTypes\\${name}`, external: false, pointerCount: 1, handleCount: 0, deleted: false, describes: name };
    st.types.set(name, rec);
    st.typeByObject.set(body, name);
    st.objects.set(body, rec);
    st.names.set(rec.name!.toUpperCase(), rec);
    setUnicodeString(k, body + OT_NAME, name);
    k.w32(body + OT_INDEX, i + 1);
  });
  // The headers' Type fields point at the 'Type' type object, as ObpTypeObjectType does on XP.
  const typeType = st.types.get('Type')!.body;
  for (const rec of st.types.values()) {
    k.w32(rec.header + OH_POINTER_COUNT, 1);
    k.w32(rec.header + OH_TYPE, typeType);
  }
}

/** The type object of a type (address of its body), 0 before boot. */
export function typeObject(k: Kernel, type: ObTypeName): number {
  return ntState(k).types.get(type)?.body ?? 0;
}

/** The type a type-object address names, or null (0 or unknown). */
export function typeFromObject(k: Kernel, address: number): ObTypeName | null {
  return ntState(k).typeByObject.get(address >>> 0) ?? null;
}

function bumpTypeTotal(k: Kernel, type: ObTypeName, field: number, delta: number): void {
  const t = ntState(k).types.get(type);
  if (t) k.w32(t.body + field, (k.r32(t.body + field) + delta) >>> 0);
}

/**
 * ObCreateObject: header and zeroed body in pool, PointerCount 1 (the creator's reference),
 * HandleCount 0. A name, when given, enters the object namespace (the caller checked collisions).
 */
export function createObject(k: Kernel, type: ObTypeName, bodySize: number, name: string | null = null, extra: Partial<ObjectRecord> = {}): ObjectRecord {
  const st = ntState(k);
  const header = k.allocPool(OBJECT_HEADER_SIZE + bodySize);
  const body = header + OBJECT_HEADER_SIZE;
  k.w32(header + OH_POINTER_COUNT, 1);
  k.w32(header + OH_HANDLE_COUNT, 0);
  k.w32(header + OH_TYPE, typeObject(k, type));
  const rec: ObjectRecord = { body, header, type, name, external: false, pointerCount: 1, handleCount: 0, deleted: false, ...extra };
  st.objects.set(body, rec);
  if (name !== null) st.names.set(name.toUpperCase(), rec);
  bumpTypeTotal(k, type, OT_TOTAL_OBJECTS, 1);
  return rec;
}

/**
 * A record for an object the loader built without an OBJECT_HEADER (EPROCESS, ETHREAD): the
 * object manager can hand it out (pseudo-handles, handles) while its counts stay on this side.
 */
export function adoptObject(k: Kernel, type: ObTypeName, body: number, extra: Partial<ObjectRecord> = {}): ObjectRecord {
  const st = ntState(k);
  const old = st.objects.get(body >>> 0);
  if (old) return old;
  const rec: ObjectRecord = { body: body >>> 0, header: (body - OBJECT_HEADER_SIZE) >>> 0, type, name: null, external: true, pointerCount: 1, handleCount: 0, deleted: false, ...extra };
  st.objects.set(rec.body, rec);
  return rec;
}

export function processObject(k: Kernel, p: Process): ObjectRecord {
  return adoptObject(k, 'Process', p.eprocess, { process: p });
}
export function threadObject(k: Kernel, t: Thread): ObjectRecord {
  return adoptObject(k, 'Thread', t.kthread, { thread: t });
}

/** The record of an object body, if the object manager knows it. */
export function objectAt(k: Kernel, body: number): ObjectRecord | undefined {
  return ntState(k).objects.get(body >>> 0);
}

/** An object by its full name (case-insensitive). */
export function objectByName(k: Kernel, name: string): ObjectRecord | undefined {
  return ntState(k).names.get(name.toUpperCase());
}

export function pointerCount(k: Kernel, rec: ObjectRecord): number {
  return rec.external ? rec.pointerCount : k.r32(rec.header + OH_POINTER_COUNT) | 0;
}
export function handleCount(k: Kernel, rec: ObjectRecord): number {
  return rec.external ? rec.handleCount : k.r32(rec.header + OH_HANDLE_COUNT) | 0;
}
function setPointerCount(k: Kernel, rec: ObjectRecord, v: number): void {
  if (rec.external) rec.pointerCount = v;
  else k.w32(rec.header + OH_POINTER_COUNT, v);
}

/** ObReferenceObject: PointerCount + 1. */
export function referenceObject(k: Kernel, rec: ObjectRecord): void {
  setPointerCount(k, rec, pointerCount(k, rec) + 1);
}

/** Called when an object is deleted (last reference gone): IRP_MJ_CLOSE for files (io.ts). */
export const deleteHooks: { file: ((k: Kernel, rec: ObjectRecord) => void) | null; lastHandle: ((k: Kernel, rec: ObjectRecord) => void) | null } = {
  file: null,
  lastHandle: null,
};

/**
 * ObDereferenceObject: PointerCount − 1; at 0 the object is deleted (its delete procedure runs,
 * its name leaves the namespace). Returns the new count. Permanent objects (type objects,
 * symbolic links, devices until IoDeleteDevice) hold their own reference, so they stay.
 */
export function dereferenceObject(k: Kernel, rec: ObjectRecord): number {
  const n = pointerCount(k, rec) - 1;
  if (n < 0) {
    k.log(`ObDereferenceObject: ${rec.type} object ${hex(rec.body)} has no reference left`);
    return 0;
  }
  setPointerCount(k, rec, n);
  if (n === 0 && handleCount(k, rec) === 0 && !rec.external) deleteObject(k, rec);
  return n;
}

function deleteObject(k: Kernel, rec: ObjectRecord): void {
  const st = ntState(k);
  if (rec.deleted) return;
  rec.deleted = true;
  if (rec.type === 'File') deleteHooks.file?.(k, rec);
  if (rec.name !== null && st.names.get(rec.name.toUpperCase()) === rec) st.names.delete(rec.name.toUpperCase());
  st.objects.delete(rec.body);
  bumpTypeTotal(k, rec.type, OT_TOTAL_OBJECTS, -1);
  k.freePool(rec.header);
}

/** HandleCount ± 1 in the header (and the type's total). */
export function adjustHandleCount(k: Kernel, rec: ObjectRecord, delta: number): number {
  const n = handleCount(k, rec) + delta;
  if (rec.external) rec.handleCount = n;
  else k.w32(rec.header + OH_HANDLE_COUNT, n);
  bumpTypeTotal(k, rec.type, OT_TOTAL_HANDLES, delta);
  if (delta < 0 && n === 0) deleteHooks.lastHandle?.(k, rec);
  return n;
}

/** Remove a name from the namespace (IoDeleteSymbolicLink, IoDeleteDevice). */
export function removeName(k: Kernel, rec: ObjectRecord): void {
  const st = ntState(k);
  if (rec.name !== null && st.names.get(rec.name.toUpperCase()) === rec) st.names.delete(rec.name.toUpperCase());
}

// ---- access masks -------------------------------------------------------------------------------

export const GENERIC_READ = 0x80000000;
export const GENERIC_WRITE = 0x40000000;
export const GENERIC_EXECUTE = 0x20000000;
export const GENERIC_ALL = 0x10000000;
export const MAXIMUM_ALLOWED = 0x02000000;

// GENERIC_MAPPING per type: [read, write, execute, all] (winnt.h / the XP type initializers).
const GENERIC_MAPPINGS: Partial<Record<ObTypeName, readonly [number, number, number, number]>> = {
  File: [0x120089, 0x120116, 0x1200a0, 0x1f01ff],
  Device: [0x120089, 0x120116, 0x1200a0, 0x1f01ff],
  Process: [0x020410, 0x020bea, 0x120000, 0x1f0fff],
  Thread: [0x020048, 0x020037, 0x120000, 0x1f03ff],
  Event: [0x020001, 0x020002, 0x120000, 0x1f0003],
};

/** RtlMapGenericMask with the type's mapping; MAXIMUM_ALLOWED grants the type's all-access. */
export function mapGenericAccess(type: ObTypeName, access: number): number {
  const m = GENERIC_MAPPINGS[type] ?? [0x20000, 0x20000, 0x20000, 0x1f0000];
  let a = access >>> 0;
  if (a & GENERIC_READ) a |= m[0];
  if (a & GENERIC_WRITE) a |= m[1];
  if (a & GENERIC_EXECUTE) a |= m[2];
  if (a & (GENERIC_ALL | MAXIMUM_ALLOWED)) a |= m[3];
  return (a & ~(GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE | GENERIC_ALL | MAXIMUM_ALLOWED)) >>> 0;
}

/** The access a pseudo-handle grants: all of it. */
export function allAccess(type: ObTypeName): number {
  return GENERIC_MAPPINGS[type]?.[3] ?? 0x1f0fff;
}
