// The seam between the system-call path (loader, ke.ts) and the NT executive's bodies
// (core/guest/nt): which services and routines have TypeScript bodies, and the executive's hooks
// the loader and KiDeliverApc need.
import type { RoutineTable, ServiceTable } from './escape.js';
import type { UserApc } from './ke.js';
import type { Kernel } from './kernel.js';
import { NTSTATUS } from './ntstatus.js';

export interface NtExecutive {
  services: ServiceTable;
  routines: RoutineTable;
  /** Create the DRIVER_OBJECT for a loaded driver image; returns its address. */
  createDriver(k: Kernel, name: string, base: number, size: number): number;
  /** The RegistryPath UNICODE_STRING DriverEntry receives. */
  registryPath(k: Kernel, name: string): number;
  /** After drivers ran: object types, the file system root, … */
  boot(k: Kernel): void;
  dequeueUserApc(k: Kernel): UserApc | null;
  testAlert(k: Kernel): void;
}

export function ntExecutive(): NtExecutive {
  return {
    services: { NtReadFile: () => NTSTATUS.STATUS_NOT_IMPLEMENTED },
    routines: {},
    createDriver: (k) => k.allocPool(0xa8),
    registryPath: (k) => k.allocPool(8),
    boot: () => {},
    dequeueUserApc: () => null,
    testAlert: () => {},
  };
}
