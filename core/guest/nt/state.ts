// The executive's TypeScript-side state, one per Kernel (a WeakMap, not fields on Kernel). The
// guest-visible state (object headers and their counts, handle tables, FILE_OBJECTs, IRPs, KAPCs)
// lives in guest memory; this holds what a real kernel would keep in structures ntflow does not
// describe: the typed side-map from object bodies to records, the object namespace, the in-memory
// file system's contents, IRPs in flight.
import type { Kernel, Process, Thread } from '../kernel.js';

export type ObTypeName = 'Type' | 'Directory' | 'SymbolicLink' | 'Process' | 'Thread' | 'Event' | 'File' | 'Device' | 'Driver';

/** A file of the in-memory file system. */
export interface FsNode {
  /** The path inside the volume as created ('\osrlog.txt'). */
  name: string;
  directory: boolean;
  data: Uint8Array;
  size: number;
}

export interface FileData {
  /** The device the FILE_OBJECT is open on (a driver's device, or the volume). */
  device: ObjectRecord;
  /** For files of the volume: the node's key in the file system, else null. */
  fsKey: string | null;
  /** FILE_OBJECT.FileName: the part of the name after the device. */
  fileName: string;
  grantedAccess: number;
  options: number;
  /** The open succeeded (a failed open's FILE_OBJECT is deleted without IRP_MJ_CLEANUP/CLOSE). */
  opened: boolean;
}

export interface ObjectRecord {
  /** Address of the object body (what handles and ObReferenceObjectByHandle hand out). */
  body: number;
  /** Its OBJECT_HEADER (body − 0x18). */
  header: number;
  type: ObTypeName;
  /** Full name in the object namespace, or null for unnamed objects. */
  name: string | null;
  /**
   * Objects the loader built (EPROCESS, ETHREAD) without an OBJECT_HEADER in front: their
   * counts are kept here instead of in guest memory.
   */
  external: boolean;
  pointerCount: number;
  handleCount: number;
  deleted: boolean;
  file?: FileData;
  /** SymbolicLink: the target name. */
  linkTarget?: string;
  process?: Process;
  thread?: Thread;
  /** Type objects: the type they describe. */
  describes?: ObTypeName;
  /** Devices: the volume's device is served by the TypeScript file system, not by an IRP. */
  fileSystem?: boolean;
}

export interface IrpRecord {
  irp: number;
  majorFunction: number;
  device: number;
  file: ObjectRecord | null;
  process: Process;
  requestorMode: 0 | 1;
  /** The dispatch routine has not returned yet (the I/O manager frees the IRP after it). */
  inDispatch: boolean;
  completed: boolean;
  event: ObjectRecord | null;
}

export interface NtState {
  types: Map<ObTypeName, ObjectRecord>;
  typeByObject: Map<number, ObTypeName>;
  objects: Map<number, ObjectRecord>;
  /** The object namespace: upper-cased full name → object. */
  names: Map<string, ObjectRecord>;
  /** In-memory file system of C: — upper-cased volume path ('\OSRLOG.TXT') → node. */
  fs: Map<string, FsNode>;
  volume: ObjectRecord | null;
  irps: Map<number, IrpRecord>;
  kernelHandleTable: number;
  booted: boolean;
}

const states = new WeakMap<object, NtState>();

export function ntState(k: Kernel): NtState {
  let s = states.get(k);
  if (!s) {
    s = {
      types: new Map(),
      typeByObject: new Map(),
      objects: new Map(),
      names: new Map(),
      fs: new Map([['\\', { name: '\\', directory: true, data: new Uint8Array(0), size: 0 }]]),
      volume: null,
      irps: new Map(),
      kernelHandleTable: 0,
      booted: false,
    };
    states.set(k, s);
  }
  return s;
}
