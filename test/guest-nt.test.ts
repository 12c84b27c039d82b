// The NT executive's bodies (core/guest/nt) without the full guest: the pure rules (probes, names,
// dispositions, offsets), and the services on a small fake Kernel — the real CPU and MMU over
// real page tables (program and System address spaces, shared kernel pool), KTHREADs whose
// PreviousMode the bodies read from guest memory, and "drivers" written as TypeScript functions
// that the fake's callGuest runs in place of x86 dispatch routines.
//   npx tsc -p tsconfig.json && npx tap dist/test/guest-nt.test.js
import t from 'tap';
import { CPU } from '../core/cpu/cpu.js';
import { GuestFault } from '../core/cpu/faults.js';
import { PhysicalMemory, PTE_P, PTE_RW, PTE_US } from '../core/mmu.js';
import type { EscapeCall } from '../core/guest/escape.js';
import type { Kernel } from '../core/guest/kernel.js';
import { NTSTATUS as S } from '../core/guest/ntstatus.js';
import { offsetOf } from '../core/guest/structs.js';
import {
  bootNt,
  createDriverObject,
  dequeueUserApc,
  dispositionOutcome,
  fileContents,
  formatDbgPrint,
  ioOffset,
  listFiles,
  listHandles,
  normalizeObjectName,
  parseVolumePath,
  probeCheck,
  putFile,
  resolveName,
  ROUTINES,
  SERVICES,
} from '../core/guest/nt/index.js';

// ---- the fake kernel --------------------------------------------------------------------------------

const POOL = 0x81000000;
const PAGE = 0x1000;
type Ev = Record<string, unknown> & { type: string };

interface FProcess {
  id: number;
  name: string;
  eprocess: number;
  pageDirectory: number;
  isSystem: boolean;
  peb: number;
}
interface FThread {
  id: number;
  name: string;
  process: FProcess;
  kthread: number;
  teb: number;
  initialStack: number;
  system: boolean;
  saved: null;
}

class Stop extends Error {}

class FakeKernel {
  readonly mem = new PhysicalMemory(8 * 1024 * 1024);
  readonly cpu = new CPU(this.mem);
  readonly machine = { mem: this.mem };
  readonly processes: FProcess[] = [];
  readonly threads: FThread[] = [];
  systemProcess!: FProcess;
  systemThread!: FThread;
  program!: FThread;
  private current!: FThread;
  private nextFrame = 0x100000;
  private poolNext = POOL;
  private poolPt: number;
  private readonly idle: (() => void)[] = [];
  readonly events: Ev[] = [];
  readonly guest = new Map<number, (...args: number[]) => number>();
  readonly symbols = { resolve: (_m: string, _n: string): number | undefined => undefined };
  outcome: unknown = null;

  constructor() {
    this.poolPt = this.allocFrame();
    const sysPd = this.newDirectory();
    const progPd = this.newDirectory();
    this.mem.write32(sysPd + (POOL >>> 22) * 4, this.poolPt | PTE_P | PTE_RW);
    this.mem.write32(progPd + (POOL >>> 22) * 4, this.poolPt | PTE_P | PTE_RW);
    this.cpu.mmu.ctl.paging = true;
    this.cpu.mmu.ctl.writeProtect = true;
    this.cpu.mmu.ctl.cr3 = progPd;
    this.systemProcess = this.makeProcess(4, 'System', sysPd, true);
    const prog = this.makeProcess(0x1a4, 'app.exe', progPd, false);
    this.systemThread = this.makeThread(8, 'System worker', this.systemProcess, true);
    this.program = this.makeThread(0x1a8, 'app.exe main', prog, false);
    this.current = this.program;
  }
  allocFrame(): number {
    const f = this.nextFrame;
    this.nextFrame += PAGE;
    return f;
  }
  /** Kernel.framesLeft: what NtAllocateVirtualMemory charges a commit against. */
  framesLeft(): number {
    return Math.max(0, Math.floor((this.mem.size - this.nextFrame) / PAGE));
  }
  private newDirectory(): number {
    return this.allocFrame();
  }
  private makeProcess(id: number, name: string, pd: number, isSystem: boolean): FProcess {
    const p = { id, name, eprocess: this.allocPool(0x260), pageDirectory: pd, isSystem, peb: 0 };
    this.processes.push(p);
    return p;
  }
  private makeThread(id: number, name: string, process: FProcess, system: boolean): FThread {
    const kthread = this.allocPool(0x258);
    this.w8(kthread + offsetOf('KTHREAD', 'PreviousMode'), system ? 0 : 1);
    this.w8(kthread + offsetOf('KTHREAD', 'ApcQueueable'), 1);
    const head = kthread + offsetOf('KTHREAD', 'ApcState.ApcListHead');
    for (const h of [head, head + 8]) {
      this.w32(h, h);
      this.w32(h + 4, h);
    }
    const th = { id, name, process, kthread, teb: 0, initialStack: 0, system, saved: null };
    this.threads.push(th);
    return th;
  }
  // memory
  r8(a: number): number {
    return this.cpu.read8(a | 0);
  }
  r16(a: number): number {
    return this.cpu.read16(a | 0);
  }
  r32(a: number): number {
    return this.cpu.read32(a | 0) >>> 0;
  }
  w8(a: number, v: number): void {
    this.cpu.write8(a | 0, v);
  }
  w16(a: number, v: number): void {
    this.cpu.write16(a | 0, v);
  }
  w32(a: number, v: number): void {
    this.cpu.write32(a | 0, v | 0);
  }
  readBytes(a: number, n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.r8(a + i);
    return out;
  }
  writeBytes(a: number, b: Uint8Array): void {
    for (let i = 0; i < b.length; i++) this.w8(a + i, b[i]!);
  }
  allocPool(size: number): number {
    const a = this.poolNext;
    const rounded = (size + 7) & ~7;
    for (let p = a & ~0xfff; p < a + rounded; p += PAGE) {
      const pte = this.poolPt + ((p >>> 12) & 0x3ff) * 4;
      if (!(this.mem.read32(pte) & PTE_P)) this.mem.write32(pte, this.allocFrame() | PTE_P | PTE_RW);
    }
    this.poolNext += rounded;
    return a;
  }
  freePool(_a: number): void {}
  // threads
  currentThread(): FThread {
    return this.current;
  }
  currentProcess(): FProcess {
    return this.current.process;
  }
  previousMode(): 0 | 1 {
    return (this.r8(this.current.kthread + offsetOf('KTHREAD', 'PreviousMode')) & 1) as 0 | 1;
  }
  private switchTo(t: FThread): void {
    this.current = t;
    this.cpu.mmu.ctl.cr3 = t.process.pageDirectory;
    this.cpu.mmu.flush();
  }
  inSystemThread(_reason: string, fn: () => void): void {
    const back = this.current;
    this.switchTo(this.systemThread);
    try {
      fn();
    } finally {
      this.switchTo(back);
    }
  }
  onIdle(fn: () => void): void {
    this.idle.push(fn);
  }
  runIdleWork(): void {
    while (this.idle.length > 0) this.idle.shift()!();
  }
  callGuest(address: number, args: number[]): number {
    const fn = this.guest.get(address);
    if (!fn) throw new Error(`no guest routine at ${address.toString(16)}`);
    return fn(...args) >>> 0;
  }
  finish(outcome: unknown): never {
    this.outcome = outcome;
    throw new Stop(JSON.stringify(outcome));
  }
  // pages
  mapUserPages(p: FProcess, addr: number, size: number, protect: number): void {
    for (let a = addr & ~0xfff; a < addr + size; a += PAGE) this.setPte(p, a, this.allocFrame() | PTE_P | flagsOf(protect));
  }
  /** Kernel.mapPage: what core/guest/mm.ts builds user pages with. */
  mapPage(p: FProcess, linear: number, frame: number, flags: number): void {
    this.setPte(p, linear, frame | PTE_P | flags);
  }
  private pteAddr(p: FProcess, a: number): number {
    const pdeAddr = p.pageDirectory + (a >>> 22) * 4;
    let pde = this.mem.read32(pdeAddr);
    if (!(pde & PTE_P)) {
      pde = this.allocFrame() | PTE_P | PTE_RW | PTE_US;
      this.mem.write32(pdeAddr, pde);
    }
    return (pde & ~0xfff) + ((a >>> 12) & 0x3ff) * 4;
  }
  private setPte(p: FProcess, a: number, v: number): void {
    this.mem.write32(this.pteAddr(p, a), v);
    this.cpu.mmu.invalidate(a);
  }
  emit(body: Ev): void {
    this.events.push({ ...body, thread: this.current.id });
  }
  symbolAt(): string | null {
    return null;
  }
  log(_m: string): void {}
}
function flagsOf(protect: number): number {
  if (protect & 1) return 0;
  return PTE_US | (protect & 0x44 ? PTE_RW : 0);
}

/** Boot a fake kernel with nt and some user memory in the program: 0x10000–0x1FFFF read/write, 0x20000 read-only. */
function boot(): { fk: FakeKernel; k: Kernel } {
  const fk = new FakeKernel();
  const k = fk as unknown as Kernel;
  bootNt(k);
  fk.mapUserPages(fk.program.process, 0x10000, 0x10000, 4);
  fk.mapUserPages(fk.program.process, 0x20000, 0x1000, 2);
  return { fk, k };
}

/** Run a service body as the escape dispatcher does (a GuestFault is the service's STATUS_ACCESS_VIOLATION). */
function nt(k: Kernel, name: string, ...args: number[]): number {
  const c: EscapeCall = { k, previousMode: k.previousMode(), arg: (i) => (args[i] ?? 0) >>> 0 };
  try {
    return SERVICES[name]!(c) >>> 0;
  } catch (e) {
    if (e instanceof GuestFault) return S.STATUS_ACCESS_VIOLATION;
    throw e;
  }
}
/** A kernel-mode Zw call: KiSystemService sets PreviousMode = KernelMode around the service. */
function zw(k: Kernel, name: string, ...args: number[]): number {
  const pm = k.currentThread().kthread + offsetOf('KTHREAD', 'PreviousMode');
  const saved = k.r8(pm);
  k.w8(pm, 0);
  try {
    return nt(k, name, ...args);
  } finally {
    k.w8(pm, saved);
  }
}
function routine(k: Kernel, name: string, ...args: number[]): number {
  return ROUTINES[name]!.body({ k, previousMode: k.previousMode(), arg: (i) => (args[i] ?? 0) >>> 0 }) >>> 0;
}

/** Build OBJECT_ATTRIBUTES + UNICODE_STRING + name at `at` (any memory the current thread can write). */
function objectAttributes(k: Kernel, at: number, name: string, attributes = 0x40): number {
  const us = at + 0x18;
  const buf = at + 0x20;
  for (let i = 0; i < name.length; i++) k.w16(buf + 2 * i, name.charCodeAt(i));
  k.w16(us, name.length * 2);
  k.w16(us + 2, name.length * 2);
  k.w32(us + 4, buf);
  k.w32(at, 0x18);
  k.w32(at + 4, 0);
  k.w32(at + 8, us);
  k.w32(at + 12, attributes);
  k.w32(at + 16, 0);
  k.w32(at + 20, 0);
  return at;
}
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | null): string | null => (b === null ? null : new TextDecoder().decode(b));

// ---- pure rules --------------------------------------------------------------------------------------

t.test('probeCheck: length 0, alignment, range against MmUserProbeAddress', async (t) => {
  t.equal(probeCheck(0x80000001, 0, 4), S.STATUS_SUCCESS, 'length 0: no alignment or range check');
  t.equal(probeCheck(0x10001, 4, 4), S.STATUS_DATATYPE_MISALIGNMENT);
  t.equal(probeCheck(0x10001, 4, 1), S.STATUS_SUCCESS);
  t.equal(probeCheck(0x7ffeffff, 1, 1), S.STATUS_SUCCESS, 'last byte below MmUserProbeAddress');
  t.equal(probeCheck(0x7ffeffff, 2, 1), S.STATUS_ACCESS_VIOLATION, 'last byte at MmUserProbeAddress');
  t.equal(probeCheck(0x81000000, 8, 4), S.STATUS_ACCESS_VIOLATION, 'a kernel buffer');
  t.equal(probeCheck(0x10000, 0xffffffff, 1), S.STATUS_ACCESS_VIOLATION, 'wraps');
  t.equal(probeCheck(0x81000002, 8, 4), S.STATUS_DATATYPE_MISALIGNMENT, 'alignment is checked before the range');
});

t.test('object names: Win32 prefixes, symbolic links, not-found statuses', async (t) => {
  t.equal(normalizeObjectName('\\\\.\\OsrLog'), '\\??\\OsrLog');
  t.equal(normalizeObjectName('\\DosDevices\\C:\\x'), '\\??\\C:\\x');
  t.equal(normalizeObjectName('C:\\x'), null);
  const names = new Map<string, string | true>([
    ['\\??\\C:', '\\Device\\HarddiskVolume1'],
    ['\\DEVICE\\HARDDISKVOLUME1', true],
    ['\\??\\OSRLOG', '\\Device\\OsrLog'],
    ['\\DEVICE\\OSRLOG', true],
  ]);
  const lookup = (u: string) => names.get(u) ?? (u === '\\??\\C:' ? undefined : names.get(u));
  names.set('\\??\\C:'.toUpperCase(), '\\Device\\HarddiskVolume1');
  t.same(resolveName('\\??\\c:\\Dir\\a.txt', lookup), { status: 0, object: '\\Device\\HarddiskVolume1', remainder: '\\Dir\\a.txt' });
  t.same(resolveName('\\??\\OsrLog', lookup), { status: 0, object: '\\Device\\OsrLog', remainder: '' });
  t.same(resolveName('\\??\\Nope', lookup), { status: S.STATUS_OBJECT_NAME_NOT_FOUND });
  t.same(resolveName('\\??\\Q:\\x.txt', lookup), { status: S.STATUS_OBJECT_PATH_NOT_FOUND });
  t.same(parseVolumePath('\\Dir\\File.txt'), { key: '\\DIR\\FILE.TXT', display: '\\Dir\\File.txt', parentKey: '\\DIR', trailingSlash: false });
  t.same(parseVolumePath('\\a?b'), { status: S.STATUS_OBJECT_NAME_INVALID });
  t.same(parseVolumePath('\\a\\\\b'), { status: S.STATUS_OBJECT_NAME_INVALID });
});

t.test('CreateDisposition and byte offsets', async (t) => {
  const d = (exists: boolean, disp: number) => {
    const o = dispositionOutcome(exists, disp);
    return 'action' in o ? `${o.action}/${o.information}` : o.status;
  };
  t.same([0, 1, 2, 3, 4, 5].map((x) => d(true, x)), ['supersede/0', 'open/1', S.STATUS_OBJECT_NAME_COLLISION, 'open/1', 'overwrite/3', 'overwrite/3']);
  t.same([0, 1, 2, 3, 4, 5].map((x) => d(false, x)), ['create/2', S.STATUS_OBJECT_NAME_NOT_FOUND, 'create/2', 'create/2', S.STATUS_OBJECT_NAME_NOT_FOUND, 'create/2']);
  t.equal(d(false, 6), S.STATUS_INVALID_PARAMETER);
  t.equal(ioOffset({ low: 0xffffffff, high: 0xffffffff }, 3, 10, true, false), 10, 'FILE_WRITE_TO_END_OF_FILE');
  t.equal(ioOffset({ low: 0xfffffffe, high: 0xffffffff }, 3, 10, true, false), 3, 'FILE_USE_FILE_POINTER_POSITION');
  t.equal(ioOffset(null, 3, 10, false, false), 3);
  t.equal(ioOffset({ low: 5, high: 0 }, 3, 10, true, true), 10, 'append-only handles write at the end');
  t.same(ioOffset({ low: 0xffffffff, high: 0xffffffff }, 3, 10, false, false), { status: S.STATUS_INVALID_PARAMETER });
});

// ---- services on the fake kernel ---------------------------------------------------------------------

t.test('handles: values from 4 per table, LIFO reuse, OBJ_KERNEL_HANDLE only for KernelMode', async (t) => {
  const { fk, k } = boot();
  putFile(k, 'C:\\a.txt', 'a');
  const open = (attrs: number, viaZw: boolean): number => {
    const oa = objectAttributes(k, viaZw ? k.allocPool(0x100) : 0x10100, '\\??\\C:\\a.txt', attrs);
    const out = viaZw ? k.allocPool(16) : 0x10000;
    const st = (viaZw ? zw : nt)(k, 'NtOpenFile', out, 0x80100000, oa, out + 8, 1, 0x20);
    t.equal(st, S.STATUS_SUCCESS);
    return k.r32(out);
  };
  t.same([open(0x40, false), open(0x40, false), open(0x240, false)], [4, 8, 12], 'UserMode: OBJ_KERNEL_HANDLE ignored');
  t.equal(open(0x240, true), 0x80000004, 'KernelMode + OBJ_KERNEL_HANDLE: the kernel table, bit 31');
  t.equal(nt(k, 'NtClose', 8), S.STATUS_SUCCESS);
  t.equal(open(0x40, false), 8, 'a closed value is handed out next');
  t.same(listHandles(k, fk.program.process).map((h) => h.handle), [4, 8, 12]);
  t.same(listHandles(k, fk.systemProcess).map((h) => h.handle), [0x80000004]);

  // NtClose of a kernel handle from UserMode looks in the process table: not found, the handle leaks.
  fk.events.length = 0;
  t.equal(nt(k, 'NtClose', 0x80000004), S.STATUS_INVALID_HANDLE);
  t.match(fk.events.at(-1), { type: 'handle-lookup', handle: 0x80000004, table: 'process', previousMode: 'UserMode', status: S.STATUS_INVALID_HANDLE });
  t.equal(listHandles(k, fk.systemProcess).length, 1, 'still in the kernel table');
  t.equal(zw(k, 'NtClose', 0x80000004), S.STATUS_SUCCESS, 'ZwClose closes it');
  t.equal(zw(k, 'NtClose', 0xffffffff), S.STATUS_INVALID_HANDLE, 'KernelMode NtClose(-1)');
  // Reading with a kernel handle from UserMode: STATUS_INVALID_HANDLE without a table.
  fk.events.length = 0;
  t.equal(nt(k, 'NtReadFile', 0x80000008, 0, 0, 0, 0x10000, 0x10200, 4, 0, 0), S.STATUS_INVALID_HANDLE);
  t.match(fk.events[0], { type: 'handle-lookup', table: 'none' });
});

t.test('files: create, write, append, read, end of file, probes of user arguments', async (t) => {
  const { fk, k } = boot();
  const oa = objectAttributes(k, 0x10100, '\\??\\C:\\Logs\\out.txt');
  // A misaligned OBJECT_ATTRIBUTES from UserMode fails its ProbeForRead(…, 4); a misaligned IO_STATUS_BLOCK does not matter.
  const mis = objectAttributes(k, 0x10302, '\\??\\C:\\x.txt');
  t.equal(nt(k, 'NtCreateFile', 0x10000, 0x40100000, mis, 0x10009, 0, 0, 0, 2, 0x20, 0, 0), S.STATUS_DATATYPE_MISALIGNMENT);
  t.equal(nt(k, 'NtCreateFile', 0x10000, 0x40100000, oa, 0x10008, 0, 0, 0, 2, 0x20, 0, 0), S.STATUS_OBJECT_PATH_NOT_FOUND, 'no such directory');
  putFile(k, 'C:\\Logs\\old.txt', 'x');
  t.equal(nt(k, 'NtCreateFile', 0x10000, 0x40100000, oa, 0x10009, 0, 0, 0, 2, 0x20, 0, 0), S.STATUS_SUCCESS);
  t.same([k.r32(0x10009), k.r32(0x1000d)], [S.STATUS_SUCCESS, 2], 'IO_STATUS_BLOCK: FILE_CREATED');
  const h = k.r32(0x10000);
  t.equal(nt(k, 'NtCreateFile', 0x10000, 0x40100000, oa, 0x10008, 0, 0, 0, 2, 0x20, 0, 0), S.STATUS_OBJECT_NAME_COLLISION);
  k.writeBytes(0x10200, ascii('hello '));
  t.equal(nt(k, 'NtWriteFile', h, 0, 0, 0, 0x10008, 0x10200, 6, 0, 0), S.STATUS_SUCCESS);
  k.writeBytes(0x10200, ascii('world'));
  k.w32(0x10210, 0xffffffff);
  k.w32(0x10214, 0xffffffff);
  t.equal(nt(k, 'NtWriteFile', h, 0, 0, 0, 0x10008, 0x10200, 5, 0x10210, 0), S.STATUS_SUCCESS);
  t.equal(text(fileContents(k, '\\??\\c:\\logs\\OUT.TXT')), 'hello world');
  t.same(listFiles(k).map((f) => f.path), ['C:\\Logs', 'C:\\Logs\\old.txt', 'C:\\Logs\\out.txt']);
  // Read it back through a second handle (read access), from offset 0, then at the end.
  const oa2 = objectAttributes(k, 0x10400, '\\??\\C:\\LOGS\\out.txt');
  t.equal(nt(k, 'NtOpenFile', 0x10000, 0x80100000, oa2, 0x10008, 1, 0x20), S.STATUS_SUCCESS);
  const r = k.r32(0x10000);
  t.equal(nt(k, 'NtReadFile', r, 0, 0, 0, 0x10008, 0x10600, 100, 0, 0), S.STATUS_SUCCESS);
  t.equal(k.r32(0x1000c), 11);
  t.equal(text(k.readBytes(0x10600, 11)), 'hello world');
  t.equal(nt(k, 'NtReadFile', r, 0, 0, 0, 0x10008, 0x10600, 100, 0, 0), S.STATUS_END_OF_FILE);
  // The read handle cannot write; the write handle cannot read (UserMode access checks).
  t.equal(nt(k, 'NtWriteFile', r, 0, 0, 0, 0x10008, 0x10200, 1, 0, 0), S.STATUS_ACCESS_DENIED);
  t.equal(nt(k, 'NtReadFile', h, 0, 0, 0, 0x10008, 0x10600, 1, 0, 0), S.STATUS_ACCESS_DENIED);
  // Reading into a read-only page: ProbeForWrite touches it and fails.
  fk.events.length = 0;
  t.equal(nt(k, 'NtReadFile', r, 0, 0, 0, 0x10008, 0x20000, 4, 0, 0), S.STATUS_ACCESS_VIOLATION);
  t.same(
    fk.events.map((e) => e.type),
    ['handle-lookup', 'probe', 'probe'],
    'the handle is referenced before the buffers are probed',
  );
  t.match(fk.events[2], { kind: 'write', address: 0x20000, length: 4, alignment: 1, status: S.STATUS_ACCESS_VIOLATION });
  t.equal(nt(k, 'NtClose', r), S.STATUS_SUCCESS);
  t.equal(nt(k, 'NtClose', r), S.STATUS_INVALID_HANDLE);
});

t.test('the OSR log driver: NtWriteFile vs ZwWriteFile, dispatch vs work item, user vs kernel handle', async (t) => {
  for (const kernelHandle of [false, true]) {
    const { fk, k } = boot();
    const results: Record<string, number> = {};
    const DISPATCH_CREATE = 0xf8a01000;
    const DISPATCH_IOCTL = 0xf8a01100;
    const DISPATCH_READ = 0xf8a01200;
    const WORK = 0xf8a01300;
    const driver = createDriverObject(k, 'OsrLog');
    const mj = offsetOf('DRIVER_OBJECT', 'MajorFunction');
    k.w32(driver + mj + 4 * 0x00, DISPATCH_CREATE);
    k.w32(driver + mj + 4 * 0x0e, DISPATCH_IOCTL);
    k.w32(driver + mj + 4 * 0x03, DISPATCH_READ);
    // DriverEntry's part: the device, its link, buffered I/O.
    const scratch = k.allocPool(0x400);
    objectAttributes(k, scratch, '\\Device\\OsrLog');
    const devName = scratch + 0x18;
    t.equal(routine(k, 'IoCreateDevice', driver, 0, devName, 0x22, 0, 0, scratch + 0x100), S.STATUS_SUCCESS);
    const device = k.r32(scratch + 0x100);
    k.w32(device + offsetOf('DEVICE_OBJECT', 'Flags'), k.r32(device + offsetOf('DEVICE_OBJECT', 'Flags')) | 4);
    objectAttributes(k, scratch + 0x200, '\\DosDevices\\OsrLog');
    t.equal(routine(k, 'IoCreateSymbolicLink', scratch + 0x218, devName), S.STATUS_SUCCESS);

    let logHandle = 0;
    const complete = (irp: number, status: number, info = 0) => {
      k.w32(irp + offsetOf('IRP', 'IoStatus.Status'), status);
      k.w32(irp + offsetOf('IRP', 'IoStatus.Information'), info);
      routine(k, 'IoCompleteRequest', irp, 0);
      return status;
    };
    const line = k.allocPool(0x40);
    k.writeBytes(line, ascii('line\n'));
    const writeBoth = (where: string) => {
      const iosb = k.allocPool(8);
      results[`${where} NtWriteFile`] = nt(k, 'NtWriteFile', logHandle, 0, 0, 0, iosb, line, 5, 0, 0);
      results[`${where} ZwWriteFile`] = zw(k, 'NtWriteFile', logHandle, 0, 0, 0, iosb, line, 5, 0, 0);
    };
    fk.guest.set(DISPATCH_CREATE, (_dev, irp) => complete(irp!, S.STATUS_SUCCESS));
    fk.guest.set(DISPATCH_IOCTL, (_dev, irp) => {
      t.equal(k.r8(irp! + offsetOf('IRP', 'RequestorMode')), 1, 'the IRP carries the caller\'s PreviousMode');
      const oa = objectAttributes(k, k.allocPool(0x100), '\\??\\C:\\osrlog.txt', kernelHandle ? 0x240 : 0x40);
      const out = k.allocPool(16);
      results.ZwCreateFile = zw(k, 'NtCreateFile', out, 0x40100004, oa, out + 8, 0, 0x80, 3, 3, 0x20, 0, 0);
      logHandle = k.r32(out);
      return complete(irp!, S.STATUS_SUCCESS);
    });
    fk.guest.set(DISPATCH_READ, (dev, irp) => {
      writeBoth('dispatch');
      const item = routine(k, 'IoAllocateWorkItem', dev!);
      routine(k, 'IoQueueWorkItem', item, WORK, 1, 0x1234);
      const sys = k.r32(irp! + offsetOf('IRP', 'AssociatedIrp.SystemBuffer'));
      k.writeBytes(sys, ascii('ok'));
      return complete(irp!, S.STATUS_SUCCESS, 2);
    });
    fk.guest.set(WORK, (dev, ctx) => {
      t.equal(ctx, 0x1234);
      t.equal(dev, device);
      t.equal(k.previousMode(), 0, 'work items run with PreviousMode KernelMode');
      t.equal(k.currentProcess().isSystem, true, 'in the System process');
      writeBoth('work item');
      return 0;
    });

    // The program: open \\.\OsrLog, send the IOCTL, read.
    const oa = objectAttributes(k, 0x10100, '\\\\.\\OsrLog');
    t.equal(nt(k, 'NtCreateFile', 0x10000, 0xc0100000, oa, 0x10008, 0, 0, 0, 1, 0x20, 0, 0), S.STATUS_SUCCESS);
    const dev = k.r32(0x10000);
    t.equal(dev, 4);
    t.equal(nt(k, 'NtDeviceIoControlFile', dev, 0, 0, 0, 0x10008, 0x222000, 0, 0, 0, 0), S.STATUS_SUCCESS);
    t.equal(nt(k, 'NtReadFile', dev, 0, 0, 0, 0x10008, 0x10800, 16, 0, 0), S.STATUS_SUCCESS);
    t.equal(text(k.readBytes(0x10800, 2)), 'ok', 'buffered output copied back at completion');
    t.same([k.r32(0x10008), k.r32(0x1000c)], [0, 2]);
    fk.runIdleWork(); // the program waits or exits
    t.equal(results.ZwCreateFile, S.STATUS_SUCCESS);
    t.equal(logHandle, kernelHandle ? 0x80000004 : 8, 'the log handle');
    t.same(
      results,
      kernelHandle
        ? { ZwCreateFile: 0, 'dispatch NtWriteFile': S.STATUS_INVALID_HANDLE, 'dispatch ZwWriteFile': 0, 'work item NtWriteFile': 0, 'work item ZwWriteFile': 0 }
        : { ZwCreateFile: 0, 'dispatch NtWriteFile': S.STATUS_ACCESS_VIOLATION, 'dispatch ZwWriteFile': 0, 'work item NtWriteFile': S.STATUS_INVALID_HANDLE, 'work item ZwWriteFile': S.STATUS_INVALID_HANDLE },
      kernelHandle ? 'kernel handle' : 'user handle',
    );
    t.equal(text(fileContents(k, 'C:\\osrlog.txt')), kernelHandle ? 'line\nline\nline\n' : 'line\n');
    const irps = fk.events.filter((e) => e.type === 'irp').map((e) => `${e.phase} ${e.majorFunctionName} ${e.requestorMode}`);
    t.same(irps.slice(0, 6), [
      'dispatch IRP_MJ_CREATE UserMode',
      'complete IRP_MJ_CREATE UserMode',
      'dispatch IRP_MJ_DEVICE_CONTROL UserMode',
      'complete IRP_MJ_DEVICE_CONTROL UserMode',
      'dispatch IRP_MJ_READ UserMode',
      'complete IRP_MJ_READ UserMode',
    ]);
    // Closing the device handle: IRP_MJ_CLEANUP, then IRP_MJ_CLOSE (no handlers: invalid device request, ignored).
    fk.events.length = 0;
    t.equal(nt(k, 'NtClose', dev), S.STATUS_SUCCESS);
    t.same(
      fk.events.filter((e) => e.type === 'irp' && e.phase === 'dispatch').map((e) => `${e.majorFunctionName} ${e.requestorMode}`),
      ['IRP_MJ_CLEANUP KernelMode', 'IRP_MJ_CLOSE KernelMode'],
    );
  }
});

t.test('a device without a handler: STATUS_INVALID_DEVICE_REQUEST', async (t) => {
  const { k } = boot();
  const driver = createDriverObject(k, 'Null');
  const s = k.allocPool(0x200);
  objectAttributes(k, s, '\\Device\\Null');
  t.equal(routine(k, 'IoCreateDevice', driver, 0, s + 0x18, 0x22, 0, 0, s + 0x100), S.STATUS_SUCCESS);
  t.equal(routine(k, 'IoCreateDevice', driver, 0, s + 0x18, 0x22, 0, 0, s + 0x100), S.STATUS_OBJECT_NAME_COLLISION);
  const oa = objectAttributes(k, 0x10100, '\\Device\\Null');
  t.equal(nt(k, 'NtOpenFile', 0x10000, 0x80100000, oa, 0x10008, 0, 0x20), S.STATUS_INVALID_DEVICE_REQUEST);
});

t.test('virtual memory: allocate, protect, and the MMU sees it', async (t) => {
  const { fk, k } = boot();
  k.w32(0x10000, 0);
  k.w32(0x10004, 0x2000);
  t.equal(nt(k, 'NtAllocateVirtualMemory', 0xffffffff, 0x10000, 0, 0x10004, 0x3000, 4), S.STATUS_SUCCESS);
  const base = k.r32(0x10000);
  t.equal(base & 0xffff, 0, '64 KiB aligned');
  t.equal(k.r32(0x10004), 0x2000);
  k.w32(base + 0x1ffc, 0xdeadbeef);
  t.equal(k.r32(base + 0x1ffc), 0xdeadbeef);
  k.w32(0x10008, base + 0x1800);
  k.w32(0x1000c, 0x10);
  t.equal(nt(k, 'NtProtectVirtualMemory', 0xffffffff, 0x10008, 0x1000c, 2, 0x10010), S.STATUS_SUCCESS);
  t.same([k.r32(0x10008), k.r32(0x1000c), k.r32(0x10010)], [base + 0x1000, 0x1000, 4], 'rounded to the page; old protection PAGE_READWRITE');
  t.throws(() => k.w32(base + 0x1000, 1), GuestFault, 'the page is read-only now (CR0.WP)');
  k.w32(base, 1); // the first page is still writable
  t.equal(nt(k, 'NtProtectVirtualMemory', 0xffffffff, 0x10008, 0x1000c, 0x08, 0x10010), 0xc0000045, 'write-copy private memory');
  // NtProtectVirtualMemory's out-parameters are probed for UserMode: OldProtect in a read-only page.
  t.equal(nt(k, 'NtProtectVirtualMemory', 0xffffffff, 0x10008, 0x1000c, 4, 0x20000), S.STATUS_ACCESS_VIOLATION);
  k.w32(0x10008, 0x00fff000);
  t.equal(nt(k, 'NtProtectVirtualMemory', 0xffffffff, 0x10008, 0x1000c, 4, 0x10010), 0xc0000018, 'no VAD there: STATUS_CONFLICTING_ADDRESSES');
  // Reserved, not committed: STATUS_NOT_COMMITTED.
  k.w32(0x10000, 0);
  k.w32(0x10004, 0x1000);
  t.equal(nt(k, 'NtAllocateVirtualMemory', 0xffffffff, 0x10000, 0, 0x10004, 0x2000, 4), S.STATUS_SUCCESS, 'MEM_RESERVE');
  k.w32(0x10008, k.r32(0x10000));
  k.w32(0x1000c, 0x1000);
  t.equal(nt(k, 'NtProtectVirtualMemory', 0xffffffff, 0x10008, 0x1000c, 4, 0x10010), 0xc000002d, 'STATUS_NOT_COMMITTED');
  t.equal(fk.program.process.isSystem, false);
});

t.test('user APCs: NtQueueApcThread only inserts; NtTestAlert and an alertable delay set UserApcPending', async (t) => {
  const { fk, k } = boot();
  const kt = fk.program.kthread;
  const pending = () => k.r8(kt + offsetOf('KTHREAD', 'ApcState.UserApcPending'));
  t.equal(nt(k, 'NtQueueApcThread', 0xfffffffe, 0x401000, 1, 2, 3), S.STATUS_SUCCESS);
  t.equal(pending(), 0, 'inserted, not pending');
  t.equal(nt(k, 'NtTestAlert'), S.STATUS_SUCCESS);
  t.equal(pending(), 1);
  t.same(dequeueUserApc(k, fk.program as never), { normalRoutine: 0x401000, normalContext: 1, arg1: 2, arg2: 3 });
  t.equal(pending(), 0);
  t.equal(dequeueUserApc(k, fk.program as never), null);
  // Alertable delay with an APC queued.
  k.w32(0x10000, 0xffffff00);
  k.w32(0x10004, 0xffffffff);
  t.equal(nt(k, 'NtDelayExecution', 0, 0x10000), S.STATUS_SUCCESS);
  nt(k, 'NtQueueApcThread', 0xfffffffe, 0x401000, 0, 0, 0);
  t.equal(nt(k, 'NtDelayExecution', 0, 0x10000), S.STATUS_SUCCESS, 'not alertable');
  t.equal(pending(), 0);
  t.equal(nt(k, 'NtDelayExecution', 1, 0x10000), S.STATUS_USER_APC);
  t.equal(pending(), 1);
  // Alerted[UserMode] wins over the queue in NtTestAlert.
  k.w8(kt + offsetOf('KTHREAD', 'Alerted') + 1, 1);
  t.equal(nt(k, 'NtTestAlert'), S.STATUS_ALERTED);
  t.equal(k.r8(kt + offsetOf('KTHREAD', 'Alerted') + 1), 0);
  t.equal(nt(k, 'NtQueueApcThread', 0x1234, 0x401000, 0, 0, 0), S.STATUS_INVALID_HANDLE);
  t.equal(nt(k, 'NtQueueApcThread', 0xffffffff, 0x401000, 0, 0, 0), S.STATUS_OBJECT_TYPE_MISMATCH, 'a process handle');
});

t.test('DbgPrint formatting', async (t) => {
  const { k } = boot();
  const s = k.allocPool(0x40);
  k.writeBytes(s, ascii('drv\0'));
  const args = [s, 0x2a, 0xc0000005];
  let i = 0;
  t.equal(formatDbgPrint(k, '%s: %d %08X %%\n', () => args[i++]!), 'drv: 42 C0000005 %\n');
});
