// The seam between the system-call path (loader, ke.ts) and the NT executive's bodies
// (core/guest/nt): which services and routines have TypeScript bodies, and the executive's hooks
// the loader needs.
import type { RoutineTable, ServiceTable } from './escape.js';
import type { Kernel } from './kernel.js';
import {
  ROUTINES,
  SERVICES,
  TYPE_EXPORTS,
  bootNt,
  createConsole,
  createDriverObject,
  finishDriverInit,
  putFile,
  type StandardHandles,
} from './nt/index.js';
import type { Process } from './kernel.js';

export interface NtExecutive {
  services: ServiceTable;
  routines: RoutineTable;
  /** Writable ntoskrnl data the executive fills at boot (object type pointers, the kernel table). */
  dataSymbols: string[];
  /** Object types, handle tables, the C: volume; after processes and threads exist, before drivers. */
  boot(k: Kernel): void;
  /** The DRIVER_OBJECT for a loaded driver image. */
  createDriver(k: Kernel, name: string, image: { start: number; size: number; entry: number }): number;
  /** DriverEntry returned: the driver's devices are ready. */
  driverReady(k: Kernel, driverObject: number): void;
  /** The RegistryPath UNICODE_STRING DriverEntry receives. */
  registryPath(k: Kernel, name: string): number;
  seedFile(k: Kernel, path: string, content: Uint8Array): void;
  /** A Win32 process's console: its standard input, output and error handles. */
  createConsole(k: Kernel, process: Process): StandardHandles;
}

export function ntExecutive(): NtExecutive {
  return {
    services: SERVICES,
    routines: ROUTINES,
    dataSymbols: [...Object.keys(TYPE_EXPORTS), 'ObpKernelHandleTable'],
    boot: bootNt,
    createDriver: (k, name, image) => createDriverObject(k, name, image),
    driverReady: finishDriverInit,
    registryPath: (k, name) => {
      const text = `\\Registry\\Machine\\System\\CurrentControlSet\\Services\\${name}`;
      const buffer = k.allocPool(text.length * 2);
      for (let i = 0; i < text.length; i++) k.w16(buffer + 2 * i, text.charCodeAt(i));
      const us = k.allocPool(8);
      k.w16(us, text.length * 2);
      k.w16(us + 2, text.length * 2);
      k.w32(us + 4, buffer);
      return us;
    },
    seedFile: (k, path, content) => putFile(k, path, content),
    createConsole,
  };
}
