// The CPU model option: `sysenter` (default, a CPU with SEP) and `int2e` (a Pentium without it:
// CPUID does not report SEP and SYSENTER / SYSEXIT raise #UD), on Machine and on `exec` cases.
//   npx tsc -p tsconfig.json && npx tap dist/test/cpu-model.test.js
import t from 'tap';
import { assemble, ExecInputError, Machine, runCase, type CpuModel, type TraceEvent } from '../core/index.js';

const SEP = 1 << 11;

t.test('CPUID leaf 1 EDX.SEP (bit 11) follows the model', async (t) => {
  const sep = runCase({ code: '0fa2', regs: { eax: 1 }, cpu: 'sysenter' });
  const int2e = runCase({ code: '0fa2', regs: { eax: 1 }, cpu: 'int2e' });
  const dflt = runCase({ code: '0fa2', regs: { eax: 1 } });
  t.equal(sep.regs.edx & SEP, SEP, 'sysenter: SEP set');
  t.equal(int2e.regs.edx & SEP, 0, 'int2e: SEP clear');
  t.equal(dflt.regs.edx & SEP, SEP, 'default model is sysenter');
  t.equal(sep.regs.edx & ~SEP, int2e.regs.edx & ~SEP, 'the models differ only in SEP');
  t.equal(sep.regs.eax, int2e.regs.eax, 'same family/model/stepping');
  t.equal(sep.exception, null);
  t.equal(int2e.exception, null);
  // the runner's default model (what `ntflow exec --cpu` passes) applies when the case has none
  t.equal(runCase({ code: '0fa2', regs: { eax: 1 } }, { cpu: 'int2e' }).regs.edx & SEP, 0, 'defaults.cpu int2e');
  t.equal(runCase({ code: '0fa2', regs: { eax: 1 }, cpu: 'sysenter' }, { cpu: 'int2e' }).regs.edx & SEP, SEP, 'the case overrides the default');
});

t.test('CPUID on a Machine, run directly', async (t) => {
  for (const model of ['sysenter', 'int2e'] as CpuModel[]) {
    const m = new Machine({ cpu: model, memorySize: 0x100000 });
    t.equal(m.cpu.model, model);
    m.loadPhysical(0x1000, assemble('  mov eax, 1\n  cpuid\n').bytes);
    m.cpu.enterFlatProtectedMode({ eip: 0x1000, esp: 0x8000, cpl: 3 });
    m.run({ maxInstructions: 2 });
    t.equal(m.cpu.regs[2] & SEP, model === 'sysenter' ? SEP : 0, `${model}: EDX.SEP`);
  }
  t.equal(new Machine({ memorySize: 0x100000 }).cpu.model, 'sysenter', 'Machine defaults to sysenter');
});

t.test('int2e: sysenter and sysexit raise #UD (vector 6) at the instruction', async (t) => {
  // exec stops at the first exception: vector 6 at the faulting instruction's address
  const base = 0x401000;
  const se = runCase({ code: '8bd4 0f34 c3', cpu: 'int2e' });
  t.same(se.exception, { vector: 6, eip: base + 2 }, 'sysenter at ring 3 → #UD');
  t.equal(se.regs.eip, base + 2);
  t.equal(se.error, null);
  const sx = runCase({ code: '0f35', cpu: 'int2e', cpl: 0 });
  t.same(sx.exception, { vector: 6, eip: base }, 'sysexit at ring 0 → #UD');
  const sx3 = runCase({ code: '0f35', cpu: 'int2e', cpl: 3 });
  t.same(sx3.exception, { vector: 6, eip: base }, 'sysexit at ring 3 → #UD (not #GP: the opcode does not exist)');
  // on the sysenter model the same bytes do not raise #UD
  const sx3sep = runCase({ code: '0f35', cpu: 'sysenter', cpl: 3 });
  t.same(sx3sep.exception, { vector: 13, eip: base, error_code: 0 }, 'sysenter model: sysexit at ring 3 → #GP(0)');
  const seSep = runCase({ code: '0f34', cpu: 'sysenter' });
  t.same(seSep.exception, { vector: 13, eip: base, error_code: 0 }, 'sysenter model: sysenter with SYSENTER_CS = 0 → #GP(0)');
  // ud2 is #UD on both (the control)
  t.same(runCase({ code: '0f0b', cpu: 'sysenter' }).exception, { vector: 6, eip: base });
});

t.test('int2e: #UD delivered through the IDT, no MSR reads, no sysenter ring transition', async (t) => {
  // Ring 3 executes sysenter; the #UD handler (ring 0) records the faulting EIP and returns past it.
  const m = new Machine({ cpu: 'int2e', memorySize: 0x100000 });
  const GDT = 0x1000;
  const IDT = 0x2000;
  const TSS = 0x3000;
  const k = assemble('ud_handler:\n  mov ebx, [esp]\n  add dword [esp], 2\n  iretd\n', { origin: 0x20000 });
  m.loadPhysical(0x20000, k.bytes);
  m.loadPhysical(0x10000, assemble('  mov edx, esp\n  sysenter\n  mov eax, 0x2e\n', { origin: 0x10000 }).bytes);
  const gdt = [0, 0, 0x0000ffff, 0x00cf9b00, 0x0000ffff, 0x00cf9300, 0x0000ffff, 0x00cffb00, 0x0000ffff, 0x00cff300, (TSS << 16) | 0x67, 0x8900];
  gdt.forEach((v, i) => m.mem.write32(GDT + i * 4, v));
  m.mem.write32(IDT + 6 * 8, (0x08 << 16) | 0x0000);
  m.mem.write32(IDT + 6 * 8 + 4, 0x00020000 | 0x8e00);
  m.mem.write32(TSS + 4, 0x9000);
  m.mem.write32(TSS + 8, 0x10);
  const cpu = m.cpu;
  cpu.gdtrBase = GDT;
  cpu.gdtrLimit = gdt.length * 4 - 1;
  cpu.idtrBase = IDT;
  cpu.idtrLimit = 0x7ff;
  cpu.enterFlatProtectedMode({ eip: 0x10000, esp: 0x18000, cpl: 3, eflags: 0x202 });
  cpu.loadTaskRegister(0x28);
  // MSRs set as if the OS had programmed them: the model must still refuse the instruction
  cpu.sysenterCs = 0x08;
  cpu.sysenterEsp = 0x28000;
  cpu.sysenterEip = 0x20000;
  const events: TraceEvent[] = [];
  const sub = m.events$.subscribe((e) => events.push(e));
  m.run({ maxInstructions: 5 }); // mov, (sysenter faults), mov ebx, add, iretd, mov eax
  sub.unsubscribe();
  t.equal(cpu.regs[3], 0x10002, 'the #UD frame holds the sysenter address');
  t.equal(cpu.regs[0], 0x2e, 'execution resumed after it, in ring 3');
  t.equal(cpu.cpl, 3);
  t.match(events.filter((e) => e.type === 'exception'), [{ vector: 6, errorCode: null, faultEip: 0x10002 }]);
  t.equal(events.filter((e) => e.type === 'msr-read').length, 0, 'no MSR reads');
  t.same(events.filter((e) => e.type === 'ring-transition').map((e) => e.type === 'ring-transition' && e.mechanism), ['exception', 'iret']);
});

t.test('an unknown model is refused with a clear error', async (t) => {
  t.throws(() => new Machine({ cpu: 'bogus' as CpuModel }), { name: 'RangeError', message: /unknown CPU model 'bogus'.*sysenter.*int2e/ }, 'new Machine({cpu: "bogus"})');
  t.throws(() => new Machine({ cpu: '' as CpuModel }), RangeError, 'empty string');
  t.throws(() => new Machine({ cpu: 'SYSENTER' as CpuModel }), RangeError, 'model names are exact (lower case)');
  t.throws(() => runCase({ code: '90', cpu: 'bogus' as CpuModel }), ExecInputError, 'exec case with cpu "bogus"');
  t.throws(() => runCase({ code: '90', cpu: 'bogus' as CpuModel }), { message: /^cpu: / }, 'exec message names the field');
});
