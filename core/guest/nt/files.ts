// Files: object-name resolution (symbolic links, devices), the in-memory file system behind
// `\??\C:` (= `\Device\HarddiskVolume1`, case-insensitive), and the file services NtCreateFile,
// NtOpenFile, NtReadFile and NtWriteFile with the probes NT-FACTS §4e assigns to each argument.
//
// A name resolves to a device object plus the rest of the name. The volume's device is served by
// the TypeScript file system here (no IRP: the file system driver is not modelled); a driver's
// device gets IRP_MJ_CREATE / READ / WRITE through io.ts.
import type { EscapeCall } from '../escape.js';
import type { Kernel } from '../kernel.js';
import { offsetOf } from '../structs.js';
import { createDevice, createDriverObject, createSymbolicLink, canonicalName, deviceReadWrite, FILE_OBJECT_SIZE, FO, FO_ALERTABLE_IO, FO_SYNCHRONOUS_IO, IRP_MJ_READ, IRP_MJ_WRITE, sendCreate } from './io.js';
import { createHandle, referenceObjectByHandle } from './handles.js';
import { createObject, dereferenceObject, mapGenericAccess, objectByName, referenceObject } from './objects.js';
import { probeForRead, probeForWrite, probeGeneric } from './probe.js';
import { ntState, type FsNode, type ObjectRecord } from './state.js';
import { S, UserMode, check, fail, ntError, read64, readUnicodeStringHeader, readWString, run, setUnicodeString, write64, type Mode } from './util.js';

// ---- constants (ntifc.h / winnt.h) ---------------------------------------------------------------
export const FILE_SUPERSEDE = 0;
export const FILE_OPEN = 1;
export const FILE_CREATE = 2;
export const FILE_OPEN_IF = 3;
export const FILE_OVERWRITE = 4;
export const FILE_OVERWRITE_IF = 5;
// IO_STATUS_BLOCK.Information of a create
export const FILE_SUPERSEDED = 0;
export const FILE_OPENED = 1;
export const FILE_CREATED = 2;
export const FILE_OVERWRITTEN = 3;

export const FILE_DIRECTORY_FILE = 0x1;
export const FILE_SYNCHRONOUS_IO_ALERT = 0x10;
export const FILE_SYNCHRONOUS_IO_NONALERT = 0x20;
export const FILE_NON_DIRECTORY_FILE = 0x40;

export const FILE_READ_DATA = 0x1;
export const FILE_WRITE_DATA = 0x2;
export const FILE_APPEND_DATA = 0x4;
export const FILE_EXECUTE = 0x20;
export const DELETE = 0x10000;
const EVENT_MODIFY_STATE = 0x2;

const OBJ_VALID_ATTRIBUTES = 0x3f2;
const OBJECT_ATTRIBUTES_SIZE = 0x18;
const OA = {
  Length: offsetOf('OBJECT_ATTRIBUTES', 'Length'),
  RootDirectory: offsetOf('OBJECT_ATTRIBUTES', 'RootDirectory'),
  ObjectName: offsetOf('OBJECT_ATTRIBUTES', 'ObjectName'),
  Attributes: offsetOf('OBJECT_ATTRIBUTES', 'Attributes'),
};

export const VOLUME_DEVICE = '\\Device\\HarddiskVolume1';
const FILE_DEVICE_DISK = 7;

// ---- pure parts: names, paths, dispositions -------------------------------------------------------

/**
 * The object-manager form of a name: Win32 device prefixes `\\.\` and `\\?\` and the aliases
 * `\DosDevices\`, `\GLOBAL??\` become `\??\`. Returns null for a name that is not absolute.
 */
export function normalizeObjectName(name: string): string | null {
  let n = name;
  if (n.startsWith('\\\\.\\') || n.startsWith('\\\\?\\')) n = '\\??\\' + n.slice(4);
  n = canonicalName(n);
  return n.startsWith('\\') ? n : null;
}

const DIRECTORIES = new Set(['??', 'DEVICE', 'DRIVER', 'FILESYSTEM', 'OBJECTTYPES', 'BASENAMEDOBJECTS']);

export type Resolution = { status: 0; object: string; remainder: string } | { status: number };

/**
 * Walk a name through the namespace: the longest prefix naming an object wins; a symbolic link
 * substitutes its target and the walk starts again. `lookup` maps an upper-cased full name to
 * the object's link target (string), to true for another object, or undefined.
 */
export function resolveName(name: string, lookup: (upper: string) => string | true | undefined): Resolution {
  let current = name;
  for (let reparse = 0; reparse < 32; reparse++) {
    const parts = current.split('\\').slice(1);
    let found = -1;
    let target: string | true | undefined;
    for (let i = parts.length; i >= 1; i--) {
      target = lookup(('\\' + parts.slice(0, i).join('\\')).toUpperCase());
      if (target !== undefined) {
        found = i;
        break;
      }
    }
    if (found < 0) {
      // The first missing component: the last one → the name is not there; an earlier one → the path.
      const missing = parts.length > 1 && DIRECTORIES.has(parts[0]!.toUpperCase()) ? 1 : 0;
      return { status: missing === parts.length - 1 ? S.STATUS_OBJECT_NAME_NOT_FOUND : S.STATUS_OBJECT_PATH_NOT_FOUND };
    }
    const prefix = '\\' + parts.slice(0, found).join('\\');
    const rest = parts.length > found ? '\\' + parts.slice(found).join('\\') : '';
    if (target === true) return { status: 0, object: prefix, remainder: rest };
    current = target! + rest;
  }
  return { status: S.STATUS_OBJECT_NAME_NOT_FOUND };
}

export interface VolumePath {
  /** Upper-cased key ('\DIR\FILE.TXT'; the root is '\'). */
  key: string;
  /** As the caller spelled it. */
  display: string;
  parentKey: string | null;
  /** The name ended with '\' (only a directory can be meant). */
  trailingSlash: boolean;
}

/** A path inside the volume; STATUS_OBJECT_NAME_INVALID for empty components, '.'/'..', or <>:"|?* and control characters. */
export function parseVolumePath(remainder: string): VolumePath | { status: number } {
  let path = remainder === '' ? '\\' : remainder;
  if (!path.startsWith('\\')) return { status: S.STATUS_OBJECT_NAME_INVALID };
  const trailingSlash = path.length > 1 && path.endsWith('\\');
  if (trailingSlash) path = path.slice(0, -1);
  if (path === '\\') return { key: '\\', display: '\\', parentKey: null, trailingSlash: false };
  const parts = path.split('\\').slice(1);
  for (const p of parts) {
    if (p === '' || p === '.' || p === '..' || /[<>:"|?*\x00-\x1f]/.test(p)) return { status: S.STATUS_OBJECT_NAME_INVALID };
  }
  const key = path.toUpperCase();
  const parentKey = parts.length === 1 ? '\\' : key.slice(0, key.lastIndexOf('\\'));
  return { key, display: path, parentKey, trailingSlash };
}

export type DispositionOutcome = { status: 0; action: 'open' | 'create' | 'overwrite' | 'supersede'; information: number } | { status: number };

/** What CreateDisposition does with a file that exists or not. */
export function dispositionOutcome(exists: boolean, disposition: number): DispositionOutcome {
  switch (disposition) {
    case FILE_SUPERSEDE:
      return exists ? { status: 0, action: 'supersede', information: FILE_SUPERSEDED } : { status: 0, action: 'create', information: FILE_CREATED };
    case FILE_OPEN:
      return exists ? { status: 0, action: 'open', information: FILE_OPENED } : { status: S.STATUS_OBJECT_NAME_NOT_FOUND };
    case FILE_CREATE:
      return exists ? { status: S.STATUS_OBJECT_NAME_COLLISION } : { status: 0, action: 'create', information: FILE_CREATED };
    case FILE_OPEN_IF:
      return exists ? { status: 0, action: 'open', information: FILE_OPENED } : { status: 0, action: 'create', information: FILE_CREATED };
    case FILE_OVERWRITE:
      return exists ? { status: 0, action: 'overwrite', information: FILE_OVERWRITTEN } : { status: S.STATUS_OBJECT_NAME_NOT_FOUND };
    case FILE_OVERWRITE_IF:
      return exists ? { status: 0, action: 'overwrite', information: FILE_OVERWRITTEN } : { status: 0, action: 'create', information: FILE_CREATED };
    default:
      return { status: S.STATUS_INVALID_PARAMETER };
  }
}

/**
 * The byte offset a read or write uses: FILE_WRITE_TO_END_OF_FILE (−1:−1, writes only) → the end,
 * FILE_USE_FILE_POINTER_POSITION (−2:−1) or no ByteOffset (a synchronous file: readWrite refuses
 * an asynchronous one without a ByteOffset) → the file object's current position,
 * a handle opened for FILE_APPEND_DATA without FILE_WRITE_DATA always writes at the end; any
 * other negative offset → STATUS_INVALID_PARAMETER.
 */
export function ioOffset(byteOffset: { low: number; high: number } | null, current: number, size: number, write: boolean, appendOnly: boolean): number | { status: number } {
  if (write && appendOnly) return size;
  if (byteOffset === null) return current;
  const { low, high } = { low: byteOffset.low >>> 0, high: byteOffset.high >>> 0 };
  if (high === 0xffffffff && low === 0xffffffff) return write ? size : { status: S.STATUS_INVALID_PARAMETER };
  if (high === 0xffffffff && low === 0xfffffffe) return current;
  if (high & 0x80000000) return { status: S.STATUS_INVALID_PARAMETER };
  return high * 0x100000000 + low;
}

// ---- the file system -------------------------------------------------------------------------------

/** Create the volume: `\Device\HarddiskVolume1` (served here) and `\??\C:` pointing at it. */
export function createVolume(k: Kernel): void {
  const st = ntState(k);
  if (st.volume) return;
  const driver = createDriverObject(k, '\\FileSystem\\Ntfs');
  st.volume = createDevice(k, driver, 0, VOLUME_DEVICE, FILE_DEVICE_DISK, 0, false);
  st.volume.fileSystem = true;
  createSymbolicLink(k, '\\??\\C:', VOLUME_DEVICE);
}

/** A volume path from what a tool may pass: 'C:\x', '\??\C:\x', '\DosDevices\C:\x', or '\x'. */
function toVolumeKey(path: string): string | null {
  const m = /^(?:\\\?\?\\|\\DosDevices\\|\\\\\.\\)?C:(.*)$/i.exec(path);
  const rest = m ? m[1]! : path.startsWith('\\Device\\HarddiskVolume1') ? path.slice(VOLUME_DEVICE.length) : path;
  const p = parseVolumePath(rest);
  return 'key' in p ? p.key : null;
}

/** A file's contents (a copy), or null when there is no such file. */
export function fileContents(k: Kernel, path: string): Uint8Array | null {
  const key = toVolumeKey(path);
  const node = key === null ? undefined : ntState(k).fs.get(key);
  return node && !node.directory ? node.data.slice(0, node.size) : null;
}

/** Every file and directory of C:, sorted by path. */
export function listFiles(k: Kernel): { path: string; size: number; directory: boolean }[] {
  return [...ntState(k).fs.values()]
    .filter((n) => n.name !== '\\')
    .map((n) => ({ path: 'C:' + n.name, size: n.size, directory: n.directory }))
    .sort((a, b) => (a.path.toUpperCase() < b.path.toUpperCase() ? -1 : 1));
}

/** Put a file on C: (the loader seeds the files programs read); parent directories are created. */
export function putFile(k: Kernel, path: string, data: Uint8Array | string): void {
  const key = toVolumeKey(path);
  if (key === null || key === '\\') throw new Error(`putFile: bad path '${path}'`);
  const fs = ntState(k).fs;
  const display = (toDisplay(path) ?? key).replace(/\\$/, '');
  const parts = display.split('\\').slice(1);
  for (let i = 1; i < parts.length; i++) {
    const dir = '\\' + parts.slice(0, i).join('\\');
    if (!fs.has(dir.toUpperCase())) fs.set(dir.toUpperCase(), { name: dir, directory: true, data: new Uint8Array(0), size: 0 });
  }
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data.slice();
  fs.set(key, { name: display, directory: false, data: bytes, size: bytes.length });
}
function toDisplay(path: string): string | null {
  const m = /^(?:\\\?\?\\|\\DosDevices\\|\\\\\.\\)?C:(.*)$/i.exec(path);
  return m ? m[1]! : path.startsWith('\\') ? path : null;
}

function writeNode(node: FsNode, offset: number, bytes: Uint8Array): void {
  const end = offset + bytes.length;
  if (end > node.data.length) {
    const grown = new Uint8Array(Math.max(end, node.data.length * 2, 64));
    grown.set(node.data.subarray(0, node.size));
    node.data = grown;
  }
  if (offset > node.size) node.data.fill(0, node.size, offset);
  node.data.set(bytes, offset);
  node.size = Math.max(node.size, end);
}

// ---- opening ---------------------------------------------------------------------------------------

interface Captured {
  name: string;
  rootDirectory: number;
  attributes: number;
}

/**
 * The object manager's capture of OBJECT_ATTRIBUTES (ObpCaptureObjectCreateInformation) and its
 * name: for a UserMode caller ProbeForRead(ObjectAttributes, 0x18, 4), the UNICODE_STRING read
 * with a generic probe, its Buffer ProbeForRead(Buffer, Length, 2).
 */
export function captureObjectAttributes(k: Kernel, oa: number, mode: Mode): Captured {
  if (oa === 0) fail(S.STATUS_INVALID_PARAMETER);
  if (mode === UserMode) check(probeForRead(k, oa, OBJECT_ATTRIBUTES_SIZE, 4));
  if (k.r32(oa + OA.Length) !== OBJECT_ATTRIBUTES_SIZE) fail(S.STATUS_INVALID_PARAMETER);
  const attributes = k.r32(oa + OA.Attributes);
  if (attributes & ~OBJ_VALID_ATTRIBUTES) fail(S.STATUS_INVALID_PARAMETER);
  const rootDirectory = k.r32(oa + OA.RootDirectory);
  const us = k.r32(oa + OA.ObjectName);
  if (us === 0) fail(S.STATUS_OBJECT_NAME_INVALID);
  if (mode === UserMode) check(probeGeneric(k, us, 8, 'read'));
  const h = readUnicodeStringHeader(k, us);
  if (h.length === 0 || h.length & 1) fail(S.STATUS_OBJECT_NAME_INVALID);
  if (mode === UserMode) check(probeForRead(k, h.buffer, h.length, 2));
  return { name: readWString(k, h.buffer, h.length), rootDirectory, attributes };
}

export interface CreateRequest {
  fileHandle: number;
  desiredAccess: number;
  objectAttributes: number;
  ioStatusBlock: number;
  allocationSize: number;
  fileAttributes: number;
  shareAccess: number;
  disposition: number;
  options: number;
  eaBuffer: number;
  eaLength: number;
}

/** IoCreateFile, for NtCreateFile and NtOpenFile. */
export function ioCreateFile(k: Kernel, mode: Mode, r: CreateRequest): number {
  if (mode === UserMode) {
    check(probeGeneric(k, r.fileHandle, 4, 'write'));
    check(probeGeneric(k, r.ioStatusBlock, 8, 'write'));
    if (r.allocationSize !== 0) check(probeGeneric(k, r.allocationSize, 8, 'read'));
    if (r.eaBuffer !== 0 && r.eaLength !== 0) check(probeForRead(k, r.eaBuffer, r.eaLength, 4));
  }
  if (r.disposition > FILE_OVERWRITE_IF) return S.STATUS_INVALID_PARAMETER;
  if (r.options & FILE_DIRECTORY_FILE && r.options & FILE_NON_DIRECTORY_FILE) return S.STATUS_INVALID_PARAMETER;
  if (r.options & FILE_DIRECTORY_FILE && ![FILE_CREATE, FILE_OPEN, FILE_OPEN_IF].includes(r.disposition)) return S.STATUS_INVALID_PARAMETER;
  if ((r.options & (FILE_SYNCHRONOUS_IO_ALERT | FILE_SYNCHRONOUS_IO_NONALERT)) === (FILE_SYNCHRONOUS_IO_ALERT | FILE_SYNCHRONOUS_IO_NONALERT)) return S.STATUS_INVALID_PARAMETER;
  const cap = captureObjectAttributes(k, r.objectAttributes, mode);

  // The full name: relative to RootDirectory (a directory of the volume), or absolute.
  let fullName: string;
  if (cap.rootDirectory !== 0) {
    if (cap.name.startsWith('\\')) return S.STATUS_OBJECT_PATH_SYNTAX_BAD;
    const root = referenceObjectByHandle(k, cap.rootDirectory, 'File', 0, mode);
    if (root.status !== 0) return root.status;
    const rf = root.rec!.file!;
    dereferenceObject(k, root.rec!);
    if (!rf.device.fileSystem) return S.STATUS_OBJECT_TYPE_MISMATCH;
    fullName = `${rf.device.name}${rf.fileName === '\\' ? '' : rf.fileName}\\${cap.name}`;
  } else {
    const n = normalizeObjectName(cap.name);
    if (n === null) return S.STATUS_OBJECT_PATH_SYNTAX_BAD;
    fullName = n;
  }
  const st = ntState(k);
  const res = resolveName(fullName, (upper) => {
    const rec = st.names.get(upper);
    return rec === undefined ? undefined : rec.type === 'SymbolicLink' ? rec.linkTarget! : true;
  });
  if (res.status !== 0 || !('object' in res)) return res.status;
  const device = objectByName(k, res.object)!;
  if (device.type !== 'Device') return S.STATUS_OBJECT_TYPE_MISMATCH;

  const granted = mapGenericAccess('File', r.desiredAccess);
  const file = createFileObject(k, device, res.remainder === '' && device.fileSystem ? '\\' : res.remainder, granted, r.options, r.shareAccess);
  let status: number;
  let information: number;
  if (device.fileSystem) {
    ({ status, information } = fsOpen(k, file, r));
  } else {
    ({ status, information } = sendCreate(k, file, granted, r.disposition, r.options, r.fileAttributes, r.shareAccess, mode));
  }
  if (ntError(status) || status === S.STATUS_PENDING) {
    dereferenceObject(k, file); // a failed open: the FILE_OBJECT goes, no IRP_MJ_CLOSE
    return status;
  }
  file.file!.opened = true;
  try {
    const handle = createHandle(k, file, cap.attributes, granted, mode);
    k.w32(r.fileHandle, handle);
    k.w32(r.ioStatusBlock, status);
    k.w32(r.ioStatusBlock + 4, information);
  } finally {
    dereferenceObject(k, file); // the creator's reference; the handle keeps its own
  }
  return status;
}

/** A FILE_OBJECT (type 5, size 0x70) on `device`, referencing it. */
export function createFileObject(k: Kernel, device: ObjectRecord, fileName: string, granted: number, options: number, share: number): ObjectRecord {
  const rec = createObject(k, 'File', FILE_OBJECT_SIZE, null, {
    file: { device, fsKey: null, fileName, grantedAccess: granted, options, opened: false },
  });
  const f = rec.body;
  referenceObject(k, device);
  k.w16(f + FO.Type, 5);
  k.w16(f + FO.Size, FILE_OBJECT_SIZE);
  k.w32(f + FO.DeviceObject, device.body);
  k.w8(f + FO.ReadAccess, granted & (FILE_READ_DATA | FILE_EXECUTE) ? 1 : 0);
  k.w8(f + FO.WriteAccess, granted & (FILE_WRITE_DATA | FILE_APPEND_DATA) ? 1 : 0);
  k.w8(f + FO.DeleteAccess, granted & DELETE ? 1 : 0);
  k.w8(f + FO.SharedRead, share & 1 ? 1 : 0);
  k.w8(f + FO.SharedWrite, share & 2 ? 1 : 0);
  k.w8(f + FO.SharedDelete, share & 4 ? 1 : 0);
  let flags = 0;
  if (options & (FILE_SYNCHRONOUS_IO_ALERT | FILE_SYNCHRONOUS_IO_NONALERT)) flags |= FO_SYNCHRONOUS_IO;
  if (options & FILE_SYNCHRONOUS_IO_ALERT) flags |= FO_ALERTABLE_IO;
  k.w32(f + FO.Flags, flags);
  k.w8(f + FO.EventType, 0); // NotificationEvent
  k.w8(f + FO.EventSize, 4);
  if (fileName !== '') setUnicodeString(k, f + FO.FileName, fileName);
  return rec;
}

/** The file system's IRP_MJ_CREATE: the disposition rules on the in-memory volume. */
function fsOpen(k: Kernel, file: ObjectRecord, r: CreateRequest): { status: number; information: number } {
  const fs = ntState(k).fs;
  const path = parseVolumePath(file.file!.fileName);
  if (!('key' in path)) return { status: path.status, information: 0 };
  const node = fs.get(path.key);
  if (path.parentKey !== null && !fs.get(path.parentKey)?.directory) return { status: S.STATUS_OBJECT_PATH_NOT_FOUND, information: 0 };
  const wantDir = (r.options & FILE_DIRECTORY_FILE) !== 0 || path.trailingSlash;
  if (node?.directory && r.options & FILE_NON_DIRECTORY_FILE) return { status: S.STATUS_FILE_IS_A_DIRECTORY, information: 0 };
  if (node && !node.directory && wantDir) return { status: S.STATUS_NOT_A_DIRECTORY, information: 0 };
  const outcome = dispositionOutcome(node !== undefined, r.disposition);
  if (outcome.status !== 0 || !('action' in outcome)) return { status: outcome.status, information: 0 };
  if (node?.directory && (outcome.action === 'overwrite' || outcome.action === 'supersede')) return { status: S.STATUS_FILE_IS_A_DIRECTORY, information: 0 };
  if (outcome.action === 'create') {
    fs.set(path.key, { name: path.display, directory: wantDir, data: new Uint8Array(0), size: 0 });
  } else if (outcome.action !== 'open') {
    node!.size = 0;
    node!.data = new Uint8Array(0);
  }
  file.file!.fsKey = path.key;
  return { status: S.STATUS_SUCCESS, information: outcome.information };
}

// ---- reading and writing ---------------------------------------------------------------------------

/**
 * NtReadFile / NtWriteFile. As XP's listing does, the handle is referenced first (ObReferenceObject-
 * ByHandle with the caller's PreviousMode; for a read it asks FILE_READ_DATA, for a write the
 * handle's access is checked for FILE_WRITE_DATA | FILE_APPEND_DATA right after), and only then, for
 * a UserMode caller, the caller's buffers are probed: the IO_STATUS_BLOCK (range and a write, no
 * alignment), the data buffer ProbeForWrite/ProbeForRead(Buffer, Length, 1), ByteOffset and Key;
 * then the event is referenced, and a file opened for asynchronous I/O without a ByteOffset is
 * refused with STATUS_INVALID_PARAMETER.
 */
export function readWrite(c: EscapeCall, write: boolean): number {
  const { k, previousMode: mode } = c;
  const [handle, eventHandle, , , iosb, buffer, length, byteOffsetPtr, keyPtr] = Array.from({ length: 9 }, (_, i) => c.arg(i));
  return run(() => {
    const ref = referenceObjectByHandle(k, handle, 'File', write ? 0 : FILE_READ_DATA, mode);
    if (ref.status !== 0) return ref.status;
    const file = ref.rec!;
    let event: ObjectRecord | null = null;
    try {
      if (write && mode === UserMode && !(ref.grantedAccess! & (FILE_WRITE_DATA | FILE_APPEND_DATA))) return S.STATUS_ACCESS_DENIED;
      if (mode === UserMode) {
        check(probeGeneric(k, iosb, 8, 'write'));
        check(write ? probeForRead(k, buffer, length, 1) : probeForWrite(k, buffer, length, 1));
        if (byteOffsetPtr !== 0) check(probeGeneric(k, byteOffsetPtr, 8, 'read'));
        if (keyPtr !== 0) check(probeGeneric(k, keyPtr, 4, 'read'));
      }
      const byteOffset = byteOffsetPtr !== 0 ? read64(k, byteOffsetPtr) : null;
      const key = keyPtr !== 0 ? k.r32(keyPtr) : 0;
      if (eventHandle !== 0) {
        const ev = referenceObjectByHandle(k, eventHandle, 'Event', EVENT_MODIFY_STATE, mode);
        if (ev.status !== 0) return ev.status;
        event = ev.rec!;
      }
      // A file opened without FILE_SYNCHRONOUS_IO_ALERT / _NONALERT is asynchronous: it keeps no
      // position the I/O manager may use, so the caller must say where (NtReadFile/NtWriteFile in
      // XP's I/O manager; named pipes and mailslots, which are exempt, are not modelled). The rule
      // is a property of the file object (FO_SYNCHRONOUS_IO, read from it in guest memory), so it
      // can only be checked once the handle has been referenced; XP checks it where it chooses
      // between synchronous and asynchronous I/O, after the probes and the event's reference, and
      // so does this: a bad buffer or event handle is reported first.
      if (byteOffset === null && !(k.r32(file.body + FO.Flags) & FO_SYNCHRONOUS_IO)) return S.STATUS_INVALID_PARAMETER;
      const f = file.file!;
      const current = k.r32(file.body + FO.CurrentByteOffset) + k.r32(file.body + FO.CurrentByteOffset + 4) * 0x100000000;
      if (!f.device.fileSystem) {
        // A device gets ByteOffset as given; no ByteOffset or FILE_USE_FILE_POINTER_POSITION → the position.
        const usePosition = byteOffset === null || (byteOffset.high === 0xffffffff && byteOffset.low === 0xfffffffe);
        const offset = usePosition ? { low: current % 0x100000000, high: Math.floor(current / 0x100000000) } : byteOffset;
        return deviceReadWrite(k, { file, mode, iosb, event }, write ? IRP_MJ_WRITE : IRP_MJ_READ, buffer, length, offset, key);
      }
      return fsReadWrite(k, file, write, buffer, length, byteOffset, current, iosb, event);
    } finally {
      if (event) dereferenceObject(k, event);
      dereferenceObject(k, file);
    }
  });
}

function fsReadWrite(k: Kernel, file: ObjectRecord, write: boolean, buffer: number, length: number, byteOffset: { low: number; high: number } | null, current: number, iosb: number, event: ObjectRecord | null): number {
  const f = file.file!;
  const node = f.fsKey !== null ? ntState(k).fs.get(f.fsKey) : undefined;
  if (!node || node.directory) return S.STATUS_INVALID_DEVICE_REQUEST;
  const appendOnly = (f.grantedAccess & FILE_APPEND_DATA) !== 0 && (f.grantedAccess & FILE_WRITE_DATA) === 0;
  const off = ioOffset(byteOffset, current, node.size, write, appendOnly);
  if (typeof off !== 'number') return off.status;
  let status: number = S.STATUS_SUCCESS;
  let information = 0;
  if (write) {
    writeNode(node, off, k.readBytes(buffer, length));
    information = length;
  } else if (length !== 0) {
    if (off >= node.size) status = S.STATUS_END_OF_FILE;
    else {
      information = Math.min(length, node.size - off);
      k.writeBytes(buffer, node.data.subarray(off, off + information));
    }
  }
  if (ntError(status)) return status; // a synchronous error: the IO_STATUS_BLOCK is left alone
  write64(k, file.body + FO.CurrentByteOffset, off + information);
  k.w32(iosb, status);
  k.w32(iosb + 4, information);
  if (event) k.w32(event.body + offsetOf('KEVENT', 'Header.SignalState'), 1);
  return status;
}

// ---- the services ----------------------------------------------------------------------------------

/** NtCreateFile(FileHandle, DesiredAccess, ObjectAttributes, IoStatusBlock, AllocationSize, FileAttributes, ShareAccess, CreateDisposition, CreateOptions, EaBuffer, EaLength) */
export function NtCreateFile(c: EscapeCall): number {
  const a = (i: number) => c.arg(i);
  return run(() =>
    ioCreateFile(c.k, c.previousMode, {
      fileHandle: a(0),
      desiredAccess: a(1),
      objectAttributes: a(2),
      ioStatusBlock: a(3),
      allocationSize: a(4),
      fileAttributes: a(5),
      shareAccess: a(6),
      disposition: a(7),
      options: a(8),
      eaBuffer: a(9),
      eaLength: a(10),
    }),
  );
}

/** NtOpenFile(FileHandle, DesiredAccess, ObjectAttributes, IoStatusBlock, ShareAccess, OpenOptions) = IoCreateFile with FILE_OPEN. */
export function NtOpenFile(c: EscapeCall): number {
  const a = (i: number) => c.arg(i);
  return run(() =>
    ioCreateFile(c.k, c.previousMode, {
      fileHandle: a(0),
      desiredAccess: a(1),
      objectAttributes: a(2),
      ioStatusBlock: a(3),
      allocationSize: 0,
      fileAttributes: 0,
      shareAccess: a(4),
      disposition: FILE_OPEN,
      options: a(5),
      eaBuffer: 0,
      eaLength: 0,
    }),
  );
}

/** NtReadFile(FileHandle, Event, ApcRoutine, ApcContext, IoStatusBlock, Buffer, Length, ByteOffset, Key) */
export const NtReadFile = (c: EscapeCall): number => readWrite(c, false);
/** NtWriteFile(FileHandle, Event, ApcRoutine, ApcContext, IoStatusBlock, Buffer, Length, ByteOffset, Key) */
export const NtWriteFile = (c: EscapeCall): number => readWrite(c, true);

