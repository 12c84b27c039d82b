// The built-in scenarios (their names are a contract): each is a program, its drivers and a CPU
// model, shipped as readable, commented `.asm` files in core/guest/scenarios/ — users read them
// as examples and write their own the same way. The `-c` scenarios are the same programs written
// in C (core/guest/scenarios/c/): PE32 images MinGW-w64 built, shipped beside their sources with
// the script that rebuilds them byte for byte, so running them needs no compiler.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CpuModel } from '../cpu/cpu.js';
import type { ProgramSource } from './program.js';

export interface Scenario {
  name: string;
  /** One line for `ntflow scenarios`. */
  summary: string;
  program: string;
  drivers: string[];
  cpu: CpuModel;
}

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'user-nt-readfile',
    summary: 'a program calls ntdll!NtReadFile: SystemCallStub → SYSENTER → KiFastCallEntry → KiSystemService → SSDT[0xB7] → nt!NtReadFile → KiServiceExit → SYSEXIT',
    program: 'user-nt-readfile.asm',
    drivers: [],
    cpu: 'sysenter',
  },
  {
    name: 'user-zw-readfile',
    summary: 'the same through ntdll!ZwReadFile: the same address, the same path, PreviousMode UserMode',
    program: 'user-zw-readfile.asm',
    drivers: [],
    cpu: 'sysenter',
  },
  {
    name: 'kernel-zw-readfile',
    summary: 'a driver calls nt!ZwReadFile: pushfd; push 8; call KiSystemService; PreviousMode KernelMode; success',
    program: 'device-read.asm',
    drivers: ['zw-reader.asm'],
    cpu: 'sysenter',
  },
  {
    name: 'kernel-nt-readfile',
    summary: "a driver serving a program's IRP calls nt!NtReadFile directly: no dispatch, PreviousMode stays UserMode, the call fails",
    program: 'device-read.asm',
    drivers: ['nt-reader.asm'],
    cpu: 'sysenter',
  },
  {
    name: 'osr-log-user-handle',
    summary: 'the OSR log driver opens its log without OBJ_KERNEL_HANDLE and writes with NtWriteFile and ZwWriteFile from the read dispatch routine and a work item',
    program: 'osr-log-user.asm',
    drivers: ['osr-log-user-handle.asm'],
    cpu: 'sysenter',
  },
  {
    name: 'osr-log-kernel-handle',
    summary: 'the OSR log driver with OBJ_KERNEL_HANDLE: the same writes, from the dispatch routine and a work item',
    program: 'osr-log-user.asm',
    drivers: ['osr-log-kernel-handle.asm'],
    cpu: 'sysenter',
  },
  {
    name: 'osr-log-user-handle-c',
    summary: 'osr-log-user-handle written in C and built with MinGW-w64: the client calls kernel32 (CreateFileA, DeviceIoControl, ReadFile, Sleep), the driver is osrlog.sys',
    program: 'c/osrlog-client.exe',
    drivers: ['c/user-handle/osrlog.sys'],
    cpu: 'sysenter',
  },
  {
    name: 'osr-log-kernel-handle-c',
    summary: 'osr-log-kernel-handle written in C: the same client, the driver built with OBJ_KERNEL_HANDLE on its log file',
    program: 'c/osrlog-client.exe',
    drivers: ['c/kernel-handle/osrlog.sys'],
    cpu: 'sysenter',
  },
  {
    name: 'kernel-nt-close',
    summary: "a driver in a program's thread passes a kernel handle to NtClose: STATUS_INVALID_HANDLE, and the handle leaks",
    program: 'device-read.asm',
    drivers: ['nt-close.asm'],
    cpu: 'sysenter',
  },
  {
    name: 'zw-protect-virtual-memory',
    summary: 'ZwProtectVirtualMemory (0x89) → NtProtectVirtualMemory makes a page read-only; the next write faults',
    program: 'zw-protect-virtual-memory.asm',
    drivers: [],
    cpu: 'sysenter',
  },
  {
    name: 'int2e-readfile',
    summary: 'user-nt-readfile on a CPU without SYSENTER: KiIntSystemCall, INT 2Eh, IRETD',
    program: 'user-nt-readfile.asm',
    drivers: [],
    cpu: 'int2e',
  },
  {
    name: 'user-apc',
    summary: "a user APC queued to the program's thread is found by KiServiceExit's check and delivered through KiUserApcDispatcher",
    program: 'user-apc.asm',
    drivers: [],
    cpu: 'sysenter',
  },
  {
    name: 'invalid-service',
    summary: "service numbers past the table's limit → STATUS_INVALID_SYSTEM_SERVICE; a win32k number converts the thread to GUI first",
    program: 'invalid-service.asm',
    drivers: [],
    cpu: 'sysenter',
  },
  {
    name: 'ssdt-hook',
    summary: 'a driver hooks KiServiceTable[0xB7]; NtReadFile then runs through the hook',
    program: 'user-nt-readfile.asm',
    drivers: ['ssdt-hook.asm'],
    cpu: 'sysenter',
  },
  {
    name: 'kifastcallentry-hook',
    summary: 'a driver patches the dispatcher between mov ebx,[edi+eax*4] and call ebx; NtReadFile then runs through the filter',
    program: 'user-nt-readfile.asm',
    drivers: ['kifastcallentry-hook.asm'],
    cpu: 'sysenter',
  },
  {
    name: 'msr-hook',
    summary: 'a driver points MSR 0x176 (SYSENTER_EIP) at its own entry routine, which counts and jumps to the saved KiFastCallEntry; every SYSENTER then lands in the driver',
    program: 'user-nt-readfile.asm',
    drivers: ['msr-hook.asm'],
    cpu: 'sysenter',
  },
  {
    name: 'idt-hook',
    summary: "a driver finds the IDT with SIDT and rewrites gate 0x2E's offset to its own handler, which jumps to KiSystemService; INT 2Eh then enters ring 0 in the driver",
    program: 'user-nt-readfile.asm',
    drivers: ['idt-hook.asm'],
    cpu: 'int2e',
  },
  {
    name: 'ntdll-stub-hook',
    summary: "the program rewrites ntdll!NtReadFile's mov edx,7FFE0300h (NtProtectVirtualMemory around the write) to call its own detour, which counts and jumps to SystemCallStub",
    program: 'ntdll-stub-hook.asm',
    drivers: [],
    cpu: 'sysenter',
  },
  {
    name: 'shadow-ssdt-hook',
    summary: "a driver finds KeServiceDescriptorTableShadow by its contents and hooks win32k's W32pServiceTable[0]; the program's NtGdiAbortDoc (0x1000) runs through the hook",
    program: 'gdi-abort-doc.asm',
    drivers: ['shadow-ssdt-hook.asm'],
    cpu: 'sysenter',
  },
  {
    name: 'thread-table-hook',
    summary: "a driver gives the program's thread a copied KiServiceTable with 0xB7 hooked (KTHREAD.ServiceTable); only that thread's NtReadFile runs through the hook, the global SSDT is untouched",
    program: 'thread-table-client.asm',
    drivers: ['thread-table-hook.asm'],
    cpu: 'sysenter',
  },
];

/** The folder of the scenario sources, found from the compiled module too. */
export function scenarioDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    for (const candidate of [join(dir, 'scenarios'), join(dir, 'core', 'guest', 'scenarios')]) {
      if (existsSync(join(candidate, 'user-nt-readfile.asm'))) return candidate;
    }
    dir = dirname(dir);
  }
  throw new Error('cannot find core/guest/scenarios');
}

/** A scenario's program or driver: assembly source, or a PE image (.exe, .sys) built from C. */
export function scenarioSource(file: string): ProgramSource {
  const path = join(scenarioDir(), file);
  if (/\.(exe|sys)$/i.test(file)) return { fileName: file, source: '', image: new Uint8Array(readFileSync(path)) };
  return { fileName: file, source: readFileSync(path, 'utf8') };
}

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}

/** The Guest options of a built-in scenario: `Guest.boot(scenarioOptions('user-apc'))`. */
export function scenarioOptions(name: string): { cpu: CpuModel; program: ProgramSource; drivers: ProgramSource[] } {
  const s = findScenario(name);
  if (!s) throw new RangeError(`unknown scenario '${name}'`);
  return { cpu: s.cpu, program: scenarioSource(s.program), drivers: s.drivers.map(scenarioSource) };
}
