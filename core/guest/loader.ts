// The loader: builds physical memory and page tables for the miniature XP — the kernel's images,
// GDT, IDT, TSS, KPCR, SharedUserData, the System process and a program's process, their threads
// — runs each driver's DriverEntry on the System thread, and starts the program's thread in
// user mode. Everything it writes is ordinary guest memory the trace can show.
import { CR0_EM, CR0_PE, CR0_PG, CR0_WP, MSR_SYSENTER_CS, MSR_SYSENTER_EIP, MSR_SYSENTER_ESP, Seg, type CpuModel } from '../cpu/cpu.js';
import { Machine } from '../machine.js';
import { PTE_RW } from '../mmu.js';
import type { RoutineTable, ServiceTable } from './escape.js';
import { EXCEPTION_ROUTINES, EXCEPTION_SERVICES } from './exceptions.js';
import { KERNEL_ROUTINES, KERNEL_SERVICES } from './ke.js';
import { MM_EXECUTE_READ, MM_EXECUTE_READWRITE, MM_EXECUTE_WRITECOPY, MM_READONLY, MM_READWRITE, insertVad, mapRegion, pageToMm, setUserPage, writable } from './mm.js';
import { Kernel, type Process, type Thread, type ThreadContext } from './kernel.js';
import { buildImages, type GuestImages, type Image } from './kernel/build.js';
import * as L from './layout.js';
import { ntExecutive } from './nt-bridge.js';
import { ProgramError, assembleProgram, referencesModule, seedFiles, type AssembledProgram, type ProgramSource } from './program.js';
import { PROGRAM_PLACE, isPeSource, loadPeImage, type LoadedImage } from './pe-loader.js';
import { installProbes } from './probes.js';
import { offsetOf, sizeOf, type FieldPath } from './structs.js';
import type { StandardHandles } from './nt/index.js';
import { SymbolTable } from './symbols.js';

export interface BootOptions {
  cpu?: CpuModel;
  program?: ProgramSource;
  drivers?: ProgramSource[];
  /**
   * Whether the program is a Win32 program (kernel32 mapped, ProcessParameters and a console).
   * By default: an .asm program that calls `kernel32!…` is; a loader of images that name
   * kernel32.dll in their imports says so here.
   */
  win32?: boolean;
}

export interface BootedGuest {
  machine: Machine;
  kernel: Kernel;
  symbols: SymbolTable;
  program: AssembledProgram | null;
  drivers: AssembledProgram[];
  /**
   * The first part of the first run: each driver's DriverEntry on the System thread, then the
   * switch to the program's thread in user mode. Run inside a started run so it is traced.
   */
  startup: () => void;
}

/** Hands out zeroed physical frames above the first MiB. */
class FrameAllocator {
  private next = 0x00100000;
  constructor(private readonly size: number) {}
  alloc = (): number => {
    if (this.next + 0x1000 > this.size) throw new Error('guest physical memory exhausted');
    const f = this.next;
    this.next += 0x1000;
    return f;
  };
  /** Frames not handed out yet. */
  left = (): number => {
    return Math.max(0, Math.floor((this.size - this.next) / 0x1000));
  };
}

function descriptor(base: number, limit: number, access: number, flags: number): [number, number] {
  const lo = ((base & 0xffff) << 16) | (limit & 0xffff);
  const hi = (base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | ((access & 0xff) << 8) | ((base >>> 16) & 0xff);
  return [lo | 0, hi | 0];
}

/** The system modules' symbols, sorted once per set of images (buildImages keeps them): every boot starts from a copy. */
const SYSTEM_SYMBOLS = new WeakMap<GuestImages, SymbolTable>();

function systemSymbols(images: GuestImages, model: CpuModel): SymbolTable {
  let table = SYSTEM_SYMBOLS.get(images);
  if (!table) {
    table = new SymbolTable();
    for (const img of [images.ntoskrnl, images.hal, images.ntdll, images.win32k]) table.addModule(img.module, img.symbols, img.base + img.bytes.length);
    table.addModule(
      'SharedUserData',
      new Map([[model === 'sysenter' ? 'SystemCallStub' : 'KiIntSystemCall', L.SYSTEM_CALL_STUB]]),
      L.SYSTEM_CALL_STUB + images.systemCallStub.length,
    );
    SYSTEM_SYMBOLS.set(images, table);
  }
  return table;
}

export function bootGuestMachine(options: BootOptions): BootedGuest {
  const model = options.cpu ?? 'sysenter';
  const machine = new Machine({ cpu: model, memorySize: L.GUEST_MEMORY });
  const cpu = machine.cpu;
  const mem = machine.mem;
  const frames = new FrameAllocator(mem.size);
  const nt = ntExecutive();
  const services: ServiceTable = { ...nt.services, ...KERNEL_SERVICES, ...EXCEPTION_SERVICES };
  const routines: RoutineTable = { ...KERNEL_ROUTINES, ...EXCEPTION_ROUTINES, ...nt.routines };
  const images = buildImages(model, services, routines, nt.dataSymbols);

  const symbols = systemSymbols(images, model).clone();

  const kernel = new Kernel(machine, images, symbols, services, routines, frames.alloc, frames.left);
  const system: Process = { id: 4, name: 'System', eprocess: 0, pageDirectory: frames.alloc(), isSystem: true, peb: 0 };
  kernel.processes.push(system);
  kernel.systemProcess = system;

  // ---- kernel space: images, descriptor tables, PCR, SharedUserData, pool (shared page tables) ----
  const mapFresh = (p: Process, linear: number, flags: number): number => {
    const f = frames.alloc();
    kernel.mapPage(p, linear, f, flags);
    return f;
  };
  /** An image in user space: a VAD over its pages, each holding its bytes, with one protection. */
  const userImage = (p: Process, img: { base: number; bytes: Uint8Array }, mm: number): void => {
    const end = img.base + Math.ceil(img.bytes.length / 0x1000) * 0x1000;
    mapRegion(kernel, p, img.base, end, mm, (va) => {
      const f = frames.alloc();
      const off = va - img.base;
      mem.load(f, img.bytes.subarray(off, Math.min(off + 0x1000, img.bytes.length)));
      return f;
    });
  };
  /**
   * A PE program's image: one image VAD (not private memory, EXECUTE_WRITECOPY as XP's image
   * views), each page with its section's protection.
   */
  const peUserImage = (p: Process, img: LoadedImage): void => {
    insertVad(kernel, p, img.origin, img.origin + img.pageProtections.length * 0x1000, MM_EXECUTE_WRITECOPY, { committed: true, private: false });
    img.pageProtections.forEach((protect, i) => {
      const f = frames.alloc();
      mem.load(f, img.bytes.subarray(i * 0x1000, (i + 1) * 0x1000));
      setUserPage(kernel, p, img.origin + i * 0x1000, f, pageToMm(protect));
    });
  };
  const loadImage = (p: Process, img: { base: number; bytes: Uint8Array }, flags: number): void => {
    for (let off = 0; off < img.bytes.length; off += 0x1000) {
      const f = mapFresh(p, img.base + off, flags);
      mem.load(f, img.bytes.subarray(off, Math.min(off + 0x1000, img.bytes.length)));
    }
  };
  // Kernel images are read-only, as on XP with CR0.WP set: a hook has to lift WP to patch them.
  // Only ntoskrnl's data section is writable.
  loadImage(system, images.ntoskrnl, 0);
  for (let p = images.ntoskrnl.symbols.get('KernelDataSection')!; p < images.ntoskrnl.symbols.get('KernelDataSectionEnd')!; p += 0x1000) {
    const pde = mem.read32(system.pageDirectory + (p >>> 22) * 4);
    const pteAddr = (pde & ~0xfff) + ((p >>> 12) & 0x3ff) * 4;
    mem.write32(pteAddr, mem.read32(pteAddr) | PTE_RW);
  }
  loadImage(system, images.hal, 0);
  loadImage(system, images.win32k, 0);
  mapFresh(system, L.GDT, PTE_RW); // GDT and IDT share a page
  mapFresh(system, L.TSS, PTE_RW);
  mapFresh(system, L.KPCR, PTE_RW);
  const sharedUserData = mapFresh(system, L.SHARED_USER_DATA_KERNEL, PTE_RW);
  mem.load(sharedUserData + 0x300, images.systemCallStub);
  for (let p = L.POOL_BASE; p < L.POOL_BASE + L.POOL_SIZE; p += 0x1000) mapFresh(system, p, PTE_RW);
  for (let p = L.DPC_STACK_TOP - 0x3000; p < L.DPC_STACK_TOP; p += 0x1000) mapFresh(system, p, PTE_RW);

  // ---- GDT (XP's selectors), IDT, TSS ----
  const gdt: [number, number][] = [
    [0, 0],
    descriptor(0, 0xfffff, 0x9b, 0xc), // 0x08 ring-0 code
    descriptor(0, 0xfffff, 0x93, 0xc), // 0x10 ring-0 data
    descriptor(0, 0xfffff, 0xfb, 0xc), // 0x18 ring-3 code
    descriptor(0, 0xfffff, 0xf3, 0xc), // 0x20 ring-3 data
    descriptor(L.TSS, 0x20ab, 0x89, 0x0), // 0x28 TSS (available 32-bit)
    descriptor(L.KPCR, 0x1, 0x93, 0xc), // 0x30 PCR: two 4 KiB units from 0xFFDFF000
    descriptor(L.TEB, 0xfff, 0xf3, 0x4), // 0x38 TEB of the current user thread
  ];
  gdt.forEach(([lo, hi], i) => {
    mem.write32(frameOf(kernel, L.GDT) + i * 8, lo);
    mem.write32(frameOf(kernel, L.GDT) + i * 8 + 4, hi);
  });
  for (const [vector, gate] of images.idt) {
    const at = frameOf(kernel, L.IDT) + vector * 8;
    const type = gate.trap ? 0x8f : 0x8e;
    mem.write32(at, (L.KGDT_R0_CODE << 16) | (gate.handler & 0xffff));
    mem.write32(at + 4, (gate.handler & 0xffff0000) | ((type | (gate.dpl << 5)) << 8));
  }
  const tss = frameOf(kernel, L.TSS);
  mem.write32(tss + offsetOf('KTSS', 'Ss0'), L.KGDT_R0_DATA);
  mem.write16(tss + offsetOf('KTSS', 'IoMapBase'), 0x20ac); // past the limit: no I/O from ring 3

  cpu.enterFlatProtectedMode({ eip: 0, esp: L.DPC_STACK_TOP, cpl: 0 });
  cpu.gdtrBase = L.GDT;
  cpu.gdtrLimit = gdt.length * 8 - 1;
  cpu.idtrBase = L.IDT;
  cpu.idtrLimit = 0x7ff;
  cpu.cr3 = system.pageDirectory;
  // CR0.EM: this CPU model has no FPU (CPUID says so), so x87 instructions raise #NM (KiTrap07).
  cpu.writeCr(0, CR0_PE | CR0_PG | CR0_WP | CR0_EM);
  cpu.loadTaskRegister(L.KGDT_TSS);
  // The kernel's segments as XP keeps them: CS 8, SS 0x10, DS = ES = flat ring-3 data, FS = the PCR
  // (kernel code reads fs:[0] and fs:[124h] from the first instruction on), GS null.
  for (const [seg, sel] of [[Seg.CS, L.KGDT_R0_CODE], [Seg.SS, L.KGDT_R0_DATA], [Seg.DS, L.KGDT_R3_DATA], [Seg.ES, L.KGDT_R3_DATA], [Seg.FS, L.KGDT_R0_PCR]] as const) {
    cpu.setSegmentCache(seg, sel, cpu.readDescriptor(sel));
  }
  cpu.setSegmentCache(Seg.GS, 0, null);
  cpu.writeMsr(MSR_SYSENTER_CS, BigInt(L.KGDT_R0_CODE));
  cpu.writeMsr(MSR_SYSENTER_ESP, BigInt(L.DPC_STACK_TOP));
  cpu.writeMsr(MSR_SYSENTER_EIP, BigInt(L.KI_FAST_CALL_ENTRY));

  // KiSystemCallExitBranch, patched as XP's boot code does (KiEnableFastSyscallReturn): the
  // image leaves by IRETD; a CPU with SYSENTER leaves by SYSEXIT.
  if (model === 'sysenter') patchExitBranch(kernel, images.ntoskrnl);

  // ---- the KPCR ----
  const pcr = L.KPCR;
  kernel.w32(pcr + offsetOf('KPCR', 'NtTib.ExceptionList'), 0xffffffff);
  kernel.w32(pcr + offsetOf('KPCR', 'SelfPcr'), pcr);
  kernel.w32(pcr + offsetOf('KPCR', 'Prcb'), pcr + offsetOf('KPCR', 'PrcbData'));
  kernel.w32(pcr + offsetOf('KPCR', 'IDT'), L.IDT);
  kernel.w32(pcr + offsetOf('KPCR', 'GDT'), L.GDT);
  kernel.w32(pcr + offsetOf('KPCR', 'TSS'), L.TSS);
  kernel.w32(pcr + offsetOf('KPCR', 'PrcbData.DpcStack'), L.DPC_STACK_TOP);

  // ---- the System process and its worker thread ----
  initProcess(kernel, system, 'System', 0);
  const systemThread = createThread(kernel, system, 'System worker', true, 0);
  kernel.systemThread = systemThread;
  kernel.setCurrent(systemThread);
  kernel.w32(pcr + offsetOf('KPCR', 'PrcbData.CurrentThread'), systemThread.kthread);
  kernel.w32(L.TSS + offsetOf('KTSS', 'Esp0'), systemThread.initialStack - 0x220);
  cpu.regs[4] = systemThread.initialStack - 0x220 - 0x40;

  // ---- wire the escape, the callback trampoline and the probes ----
  machine.io.out = (port, _size, value) => {
    if (port === L.ESCAPE_PORT) kernel.escape(value >>> 0);
    else if (port === L.CALLBACK_RETURN_PORT) cpu.returnFromNested();
  };
  installProbes(kernel);

  // ---- the program's process (created before drivers run, as XP has processes then too) ----
  let program: AssembledProgram | null = null;
  let programThread: Thread | null = null;
  // A program that calls kernel32 is a Win32 program: kernel32 is mapped into its process, and the
  // process gets ProcessParameters and a console. One that calls only ntdll is native, as on XP.
  // A PE program is loaded first: what it imports says whether it is one.
  const src = options.program;
  const pe = src && isPeSource(src) ? loadPeImage(src, 'user', PROGRAM_PLACE, options.win32 === false ? [images.ntdll] : [images.ntdll, images.kernel32]) : null;
  const win32 = src !== undefined && (options.win32 ?? (pe ? pe.imports.some((i) => i.dll === 'kernel32.dll') : referencesModule(src, 'kernel32')));
  if (win32) symbols.addModule('kernel32', images.kernel32.symbols, images.kernel32.base + images.kernel32.bytes.length);
  if (src) {
    program = pe ?? assembleProgram(src, L.PROGRAM_CODE, symbols);
    if (program.kind !== 'user') throw new ProgramError(`${src.fileName}:1:1: this is a driver ('; ntflow: driver'); pass it with --driver, and give a user program to run`);
    const proc: Process = { id: 0x7c8, name: imageName(src.fileName), eprocess: 0, pageDirectory: frames.alloc(), isSystem: false, peb: L.PEB };
    // The kernel half of the address space is shared: copy the System directory's kernel entries.
    for (let i = 512; i < 1024; i++) mem.write32(proc.pageDirectory + i * 4, mem.read32(system.pageDirectory + i * 4));
    kernel.processes.push(proc);
    initProcess(kernel, proc, proc.name, 0x7c8);
    // User space: every region the loader maps has a VAD, as XP's process creation gives one to
    // the image, ntdll, the stack, the PEB and the TEB. SharedUserData has none: it is the
    // kernel's page, shown read-only to every process, and NtProtectVirtualMemory cannot touch it.
    userImage(proc, images.ntdll, MM_EXECUTE_READ);
    setUserPage(kernel, proc, L.SHARED_USER_DATA, sharedUserData, MM_READONLY);
    if (pe) peUserImage(proc, pe);
    else userImage(proc, { base: L.PROGRAM_CODE, bytes: program.bytes }, MM_EXECUTE_READWRITE);
    mapRegion(kernel, proc, L.USER_STACK_TOP - L.USER_STACK_SIZE, L.USER_STACK_TOP, MM_READWRITE);
    mapRegion(kernel, proc, L.PEB, L.PEB + 0x1000, MM_READWRITE);
    mapRegion(kernel, proc, L.TEB, L.TEB + 0x1000, MM_READWRITE);
    if (win32) {
      userImage(proc, images.kernel32, MM_EXECUTE_READ);
      mapRegion(kernel, proc, L.PROCESS_PARAMETERS, L.PROCESS_PARAMETERS + 0x1000, MM_READWRITE);
    }
    programThread = createThread(kernel, proc, 'main', false, 0x7cc);
    symbols.addModule(proc.name.replace(/\.exe$/i, ''), program.symbols, program.origin + program.bytes.length, program.origin);
  }

  // ---- the executive: object types, handle tables, the C: volume; then the files programs expect ----
  nt.boot(kernel);
  if (win32 && programThread) writeProcessParameters(kernel, programThread.process, nt.createConsole(kernel, programThread.process));
  for (const src of [...(options.program ? [options.program] : []), ...(options.drivers ?? [])]) {
    for (const f of seedFiles(src)) nt.seedFile(kernel, f.path, f.content);
  }

  // ---- drivers: loaded into kernel space now; DriverEntry runs at the start of the first run ----
  const drivers: AssembledProgram[] = [];
  const driverEntries: (() => void)[] = [];
  (options.drivers ?? []).forEach((src, i) => {
    const base = L.DRIVER_BASE + i * L.DRIVER_SLOT;
    const name = imageName(src.fileName).replace(/\.\w+$/, '');
    let drv: AssembledProgram;
    if (isPeSource(src)) {
      const pe = loadPeImage(src, 'driver', { base: () => base, regionSize: L.DRIVER_SLOT, regionName: 'a driver slot' }, [images.ntoskrnl, images.hal]);
      // Code and read-only data stay read-only (CR0.WP set): only writable sections get PTE_RW.
      pe.pageProtections.forEach((protect, i) => {
        const off = i * 0x1000;
        const f = mapFresh(system, base + off, writable(pageToMm(protect)) ? PTE_RW : 0);
        mem.load(f, pe.bytes.subarray(off, off + 0x1000));
      });
      drv = pe;
    } else {
      drv = assembleProgram(src, base, symbols);
      if (drv.kind !== 'driver') throw new ProgramError(`${src.fileName}:1:1: not a driver; a driver's first line is '; ntflow: driver'`);
      if (drv.bytes.length > L.DRIVER_SLOT) throw new ProgramError(`${src.fileName}:1:1: the driver is ${drv.bytes.length} bytes; at most ${L.DRIVER_SLOT} fit`);
      loadImage(system, { base, bytes: drv.bytes }, PTE_RW);
    }
    symbols.addModule(name, drv.symbols, base + drv.bytes.length, base);
    drivers.push(drv);
    const driverObject = nt.createDriver(kernel, name, { start: base, size: drv.bytes.length, entry: drv.entry });
    driverEntries.push(() => {
      kernel.inSystemThread(`DriverEntry of ${name}`, () => {
        const status = kernel.callGuest(drv.entry, [driverObject, nt.registryPath(kernel, name)]);
        kernel.log(`${name}!DriverEntry returned ${status.toString(16)}`);
      });
      nt.driverReady(kernel, driverObject);
    });
  });

  // ---- the program: its thread enters user mode at `start`, returning into ntdll ----
  let programStart: (() => void) | null = null;
  if (program && programThread) {
    const thread = programThread;
    const esp = L.USER_STACK_TOP - 0x10;
    mem.write32(frameOfIn(kernel, thread.process, esp), symbols.resolve('ntdll', 'LdrpProgramExit')!);
    const start: ThreadContext = {
      regs: [0, 0, 0, 0, esp, 0, 0, 0],
      eip: program.entry,
      eflags: 0x202,
      selectors: [L.KGDT_R3_DATA, L.KGDT_R3_CODE, L.KGDT_R3_DATA, L.KGDT_R3_DATA, L.KGDT_R3_TEB, 0],
      cr3: thread.process.pageDirectory,
    };
    programStart = () => kernel.switchTo(thread, 'program start', start);
  }
  const startup = () => {
    for (const entry of driverEntries) entry();
    programStart?.();
  };
  return { machine, kernel, symbols, program, drivers, startup };
}

/** The physical address behind a kernel linear address (loader use). */
function frameOf(k: Kernel, linear: number): number {
  return frameOfIn(k, k.systemProcess, linear);
}
function frameOfIn(k: Kernel, p: Process, linear: number): number {
  const mem = k.machine.mem;
  const pde = mem.read32(p.pageDirectory + (linear >>> 22) * 4);
  const pte = mem.read32((pde & ~0xfff) + ((linear >>> 12) & 0x3ff) * 4);
  return (pte & ~0xfff) + (linear & 0xfff);
}

function imageName(fileName: string): string {
  return fileName.split(/[\\/]/).pop()!.replace(/\.asm$/i, '.exe');
}

/** EPROCESS in pool: id, name, directory base (and, from the executive, its handle table). */
function initProcess(k: Kernel, p: Process, name: string, id: number): void {
  const ep = k.allocPool(sizeOf('EPROCESS'));
  p.eprocess = ep;
  k.w32(ep + offsetOf('EPROCESS', 'Pcb.DirectoryTableBase'), p.pageDirectory);
  k.w32(ep + offsetOf('EPROCESS', 'UniqueProcessId'), id || p.id);
  const nameBytes = new TextEncoder().encode(name.slice(0, 15));
  k.writeBytes(ep + offsetOf('EPROCESS', 'ImageFileName'), nameBytes);
  if (p.peb) k.w32(ep + offsetOf('EPROCESS', 'Peb'), p.peb);
}

/** KTHREAD/ETHREAD in pool with its kernel stack; a user thread also gets its TEB. */
function createThread(k: Kernel, p: Process, name: string, system: boolean, id: number): Thread {
  // Stacks follow one another from KERNEL_STACKS, a guard page below each.
  const stackBase = L.KERNEL_STACKS + (k.threads.length + 1) * (0x1000 + L.KERNEL_STACK_SIZE);
  for (let a = stackBase - L.KERNEL_STACK_SIZE; a < stackBase; a += 0x1000) k.mapPage(k.systemProcess, a, k.allocFrame(), PTE_RW);
  const kt = k.allocPool(sizeOf('ETHREAD'));
  const t: Thread = { id: id || 8 + k.threads.length * 4, name, process: p, kthread: kt, teb: system ? 0 : L.TEB, initialStack: stackBase, system, saved: null };
  k.threads.push(t);
  const f = (path: Parameters<typeof offsetOf<'KTHREAD'>>[1]) => kt + offsetOf('KTHREAD', path);
  k.w32(f('InitialStack'), stackBase);
  k.w32(f('StackBase'), stackBase);
  k.w32(f('StackLimit'), stackBase - L.KERNEL_STACK_SIZE);
  k.w32(f('KernelStack'), stackBase - 0x220);
  k.w32(f('Teb'), t.teb);
  k.w32(f('ServiceTable'), k.symbols.resolve('nt', 'KeServiceDescriptorTable')!);
  k.w8(f('PreviousMode'), system ? 0 : 1);
  k.w8(f('ApcQueueable'), 1);
  k.w32(f('ApcState.Process'), p.eprocess);
  k.w32(f('ApcStatePointer'), f('ApcState'));
  for (const mode of [0, 1]) {
    const head = f('ApcState.ApcListHead') + mode * 8;
    k.w32(head, head);
    k.w32(head + 4, head);
  }
  k.w32(kt + offsetOf('ETHREAD', 'Cid.UniqueProcess'), p.id);
  k.w32(kt + offsetOf('ETHREAD', 'Cid.UniqueThread'), t.id);
  k.w32(kt + offsetOf('ETHREAD', 'ThreadsProcess'), p.eprocess);
  if (!system) {
    // The TEB lives in the process's user space; written through its own page tables.
    const mem = k.machine.mem;
    const teb = frameOfIn(k, p, L.TEB);
    mem.write32(teb + offsetOf('TEB', 'NtTib.ExceptionList'), 0xffffffff);
    mem.write32(teb + offsetOf('TEB', 'NtTib.StackBase'), L.USER_STACK_TOP);
    mem.write32(teb + offsetOf('TEB', 'NtTib.StackLimit'), L.USER_STACK_TOP - L.USER_STACK_SIZE);
    mem.write32(teb + offsetOf('TEB', 'NtTib.Self'), L.TEB);
    mem.write32(teb + offsetOf('TEB', 'ClientId.UniqueProcess'), p.id);
    mem.write32(teb + offsetOf('TEB', 'ClientId.UniqueThread'), t.id);
    mem.write32(teb + offsetOf('TEB', 'ProcessEnvironmentBlock'), L.PEB);
    const peb = frameOfIn(k, p, L.PEB);
    mem.write32(peb + offsetOf('PEB', 'ImageBaseAddress'), L.PROGRAM_BASE);
  }
  return t;
}

/**
 * A Win32 program's RTL_USER_PROCESS_PARAMETERS, as XP's CreateProcess leaves them in the new
 * process (normalized: the pointers are addresses), at PROCESS_PARAMETERS with its strings after
 * it in the same page, and PEB.ProcessParameters pointing there: the console's standard handles,
 * the current directory C:\ (where kernel32 resolves relative file names), the image path, command
 * line and window title C:\<program>.exe. There is no environment block.
 */
function writeProcessParameters(k: Kernel, p: Process, std: StandardHandles): void {
  const mem = k.machine.mem;
  const base = L.PROCESS_PARAMETERS;
  const field = (f: FieldPath<'RTL_USER_PROCESS_PARAMETERS'>) => base + offsetOf('RTL_USER_PROCESS_PARAMETERS', f);
  const w16 = (va: number, v: number) => mem.write16(frameOfIn(k, p, va), v);
  const w32 = (va: number, v: number) => mem.write32(frameOfIn(k, p, va), v);
  let strings = base + sizeOf('RTL_USER_PROCESS_PARAMETERS');
  /** A UNICODE_STRING field holding `text` (NUL-terminated), with room for `maximumChars`. */
  const unicode = (f: FieldPath<'RTL_USER_PROCESS_PARAMETERS'>, text: string, maximumChars = text.length + 1): void => {
    const us = field(f);
    w16(us + offsetOf('UNICODE_STRING', 'Length'), text.length * 2);
    w16(us + offsetOf('UNICODE_STRING', 'MaximumLength'), maximumChars * 2);
    w32(us + offsetOf('UNICODE_STRING', 'Buffer'), strings);
    for (let i = 0; i < text.length; i++) w16(strings + 2 * i, text.charCodeAt(i));
    strings += (maximumChars * 2 + 3) & ~3;
  };
  const RTL_USER_PROC_PARAMS_NORMALIZED = 1;
  const MAX_PATH = 260;
  const image = `C:\\${p.name}`;
  w32(field('Flags'), RTL_USER_PROC_PARAMS_NORMALIZED);
  w32(field('StandardInput'), std.input);
  w32(field('StandardOutput'), std.output);
  w32(field('StandardError'), std.error);
  unicode('CurrentDirectory.DosPath', 'C:\\', MAX_PATH + 1);
  unicode('ImagePathName', image);
  unicode('CommandLine', image);
  unicode('WindowTitle', image);
  w32(field('MaximumLength'), strings - base);
  w32(field('Length'), strings - base);
  w32(L.PEB + offsetOf('PEB', 'ProcessParameters'), base);
}

/**
 * KiEnableFastSyscallReturn: add KiSystemCallExitAdjust (KiSystemCallExit2 - KiSystemCallExit) to
 * the displacement byte of KiSystemCallExitBranch's short jump, so returns to user mode go by
 * SYSEXIT.
 */
function patchExitBranch(k: Kernel, nt: Image): void {
  const branch = nt.symbols.get('KiSystemCallExitBranch')!;
  const adjust = nt.symbols.get('KiSystemCallExit2')! - nt.symbols.get('KiSystemCallExit')!;
  const phys = frameOf(k, branch);
  k.machine.mem.write8(phys + 1, (k.machine.mem.read8(phys + 1) + adjust) & 0xff);
}
