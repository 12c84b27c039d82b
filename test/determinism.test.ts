// Determinism: the same program and options on fresh machines give the same event stream, event for
// event and field for field — including RDTSC, which counts retired instructions, never the clock.
//   npx tsc -p tsconfig.json && npx tap dist/test/determinism.test.js
import t from 'tap';
import { assemble, Machine, runCase, type CpuModel, type TraceEvent } from '../core/index.js';

const GDT = 0x1000;
const IDT = 0x2000;
const TSS = 0x3000;
const ESP0 = 0x9000;
const USER = 0x10000;
const KERNEL = 0x20000;
const USTACK = 0x18000;
const KSTACK = 0x28000;

/** Ring-3 program with a ring-0 kernel behind SYSENTER, INT 2Eh and a #UD handler (paging off). */
function boot(userSrc: string, kernelSrc: string, cpu: CpuModel = 'sysenter'): Machine {
  const m = new Machine({ memorySize: 0x100000, cpu });
  const u = assemble(userSrc, { origin: USER });
  const k = assemble(kernelSrc, { origin: KERNEL });
  m.loadPhysical(USER, u.bytes);
  m.loadPhysical(KERNEL, k.bytes);
  const w32 = (a: number, v: number): void => m.mem.write32(a, v);
  const gdt: [number, number][] = [
    [0, 0],
    [0x0000ffff, 0x00cf9a00],
    [0x0000ffff, 0x00cf9200],
    [0x0000ffff, 0x00cffa00],
    [0x0000ffff, 0x00cff200],
    [((TSS & 0xffff) << 16) | 0x67, 0x8900],
  ];
  gdt.forEach(([lo, hi], i) => (w32(GDT + i * 8, lo), w32(GDT + i * 8 + 4, hi)));
  const gate = (vector: number, target: number, dpl: number): void => {
    w32(IDT + vector * 8, (0x08 << 16) | (target & 0xffff));
    w32(IDT + vector * 8 + 4, (target & 0xffff0000) | 0x8e00 | (dpl << 13));
  };
  gate(6, k.labels.get('ud_handler')!, 0);
  gate(0x2e, k.labels.get('int2e_handler')!, 3);
  w32(TSS + 4, ESP0);
  w32(TSS + 8, 0x10);
  const c = m.cpu;
  c.gdtrBase = GDT;
  c.gdtrLimit = gdt.length * 8 - 1;
  c.idtrBase = IDT;
  c.idtrLimit = 0x7ff;
  c.enterFlatProtectedMode({ eip: USER, esp: USTACK, cpl: 3, eflags: 0x202 });
  c.loadTaskRegister(0x28);
  c.sysenterCs = 0x08;
  c.sysenterEsp = KSTACK;
  c.sysenterEip = k.labels.get('sysenter_entry')!;
  return m;
}

const KERNEL_SRC = `
sysenter_entry:
  mov ecx, 0x176
  rdmsr                 ; msr-read 'rdmsr' inside the kernel
  rdtsc
  mov [tsc_log + ebx*4], eax
  mov ecx, esi          ; user ESP saved in ESI by the caller
  mov edx, [ecx]
  add ecx, 4
  sysexit
int2e_handler:
  rdtsc
  iretd
ud_handler:
  add dword [esp], 2
  iretd
tsc_log: times 64 dd 0
`;

const USER_SRC = `
  xor ebx, ebx
again:
  rdtsc
  mov edi, eax
  push back
  mov esi, esp
  mov edx, esp
  sysenter
back:
  int 0x2e
  ud2
  inc ebx
  cmp ebx, 20
  jb again
  rdtsc
`;

function record(cpu: CpuModel = 'sysenter'): { events: TraceEvent[]; final: unknown } {
  const m = boot(USER_SRC, KERNEL_SRC, cpu);
  const events: TraceEvent[] = [];
  const sub = m.events$.subscribe((e) => events.push(e));
  m.run({ maxInstructions: 600 });
  sub.unsubscribe();
  return { events, final: { ...m.cpu.snapshot(), mem: Buffer.from(m.mem.bytes).toString('base64') } };
}

/** Byte-for-byte text of an event stream (bigints and typed arrays spelled out). */
function serialize(events: TraceEvent[]): string {
  return JSON.stringify(events, (_k, v: unknown) =>
    typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
  );
}

t.test('two fresh machines, same program and options: identical event streams', async (t) => {
  const a = record();
  // something in between, so a stream that depended on the clock or on global state would differ
  await new Promise((r) => setTimeout(r, 30));
  const b = record();
  t.ok(a.events.length > 800, `${a.events.length} events`);
  const types = new Set(a.events.map((e) => e.type));
  t.same([...types].sort(), ['exception', 'instruction', 'machine-stop', 'msr-read', 'ring-transition'], 'every kind of CPU event but msr-write is in the stream');
  t.equal(b.events.length, a.events.length, 'same number of events');
  t.same(b.events, a.events, 'deep-equal event streams');
  t.equal(serialize(b.events), serialize(a.events), 'byte-for-byte equal serialization');
  t.same(b.final, a.final, 'same final CPU state and memory');
});

t.test('rdtsc values come from icount, not the clock', async (t) => {
  const { events } = record();
  // each rdtsc's EAX (in its instruction event's effects) equals the instructions retired before it
  const rdtscs = events.filter((e) => e.type === 'instruction' && e.bytes[0] === 0x0f && e.bytes[1] === 0x31);
  t.ok(rdtscs.length >= 40, `${rdtscs.length} rdtsc instructions`);
  for (const e of rdtscs) {
    if (e.type !== 'instruction') continue;
    const eaxAt = e.regs.findIndex((v, i) => i % 2 === 0 && v === 0);
    const eax = eaxAt >= 0 ? e.regs[eaxAt + 1] : undefined;
    if (eax !== undefined && eax !== e.icount) t.fail(`rdtsc at icount ${e.icount} read ${eax}`);
  }
  // the TSC MSR read agrees: 0x10 is icount (+ offset)
  const m = boot('', '');
  m.cpu.enterFlatProtectedMode({ eip: KERNEL, esp: KSTACK, cpl: 0 });
  m.loadPhysical(KERNEL, assemble('  nop\n  nop\n  nop\n  mov ecx, 0x10\n  rdmsr\n  rdtsc\n').bytes);
  m.run({ maxInstructions: 6 });
  t.equal(m.cpu.regs[0], 5, 'rdtsc after 5 instructions reads 5');
  t.equal(m.cpu.regs[2], 0, 'EDX high half 0');
});

t.test('determinism also holds on the int2e CPU model (where sysenter faults)', async (t) => {
  const a = record('int2e');
  const b = record('int2e');
  t.ok(a.events.some((e) => e.type === 'exception' && e.vector === 6), '#UD events');
  t.equal(serialize(b.events), serialize(a.events));
  t.notSame(serialize(a.events), serialize(record('sysenter').events), 'the model changes the stream');
});

t.test('tracing does not change what the machine does', async (t) => {
  const traced = record().final;
  const m = boot(USER_SRC, KERNEL_SRC);
  m.run({ maxInstructions: 600 });
  t.same({ ...m.cpu.snapshot(), mem: Buffer.from(m.mem.bytes).toString('base64') }, traced, 'untraced run ends in the same state');
});

t.test('exec: the same case twice (the bare machine is reused) gives the same result', async (t) => {
  const c = {
    code: '0f31 89c3 0f31 01c8 c1e104 50 8b0424 e8 00000000 58',
    regs: { ecx: 3 },
    trace: true,
  };
  const first = runCase(c);
  // a different case in between must leave no trace in the reused machine
  runCase({ code: 'b8 78563412 a3 00204000 0f31 0f31 0f31', mem: [{ addr: 0x402000, data: 'ffffffff' }] });
  const second = runCase(c);
  t.same(second, first);
  t.equal(first.regs.ebx, 0, 'first rdtsc reads 0 on a fresh case');
  t.equal(first.error, null);
  t.equal(first.icount, 9);
});
