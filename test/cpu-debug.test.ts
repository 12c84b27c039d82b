// Debug registers, EFLAGS.TF single-stepping and DR7 breakpoints (issue L §5, points 1 and 5).
// Expectations are the Intel SDM's: vol. 2B "MOV—Move to/from Debug Registers"; vol. 3 chapter 17
// (17.2 debug registers, 17.3.1 #DB conditions: 17.3.1.1 instruction breakpoints and RF,
// 17.3.1.2 data and I/O breakpoints, 17.3.1.4 single step), 6.8.3 (MOV SS / POP SS hold debug
// exceptions one instruction), and the SYSENTER, INT n/INT1, IRET and POPF pages. The qemu oracle
// (test/qemu-rings.test.ts) checks the ring-3 cases against qemu-system-i386 as well.
//   npx tsc -p tsconfig.json && npx tap dist/test/cpu-debug.test.js
import t, { type Test } from 'tap';
import { runCase, type TraceEvent } from '../core/index.js';
import {
  TestMachine, UCODE, UDATA, USTACK, KCODE, KSTACK, UCS, UDS, KCS, KDS, EXIT_VECTOR, handler, handlerEnd, ESP, EAX, ECX,
} from './util/machine.js';

const DB = 1, GP = 13, UD = 6;
const TF = 0x100, IF = 0x200, RF = 0x10000;
const DR6_INIT = 0xffff0ff0, DR6_BS = 0x4000, DR6_BD = 0x2000;
const CR4_DE = 8;
const hex = (n: number) => '0x' + (n >>> 0).toString(16).toUpperCase();

interface Ran {
  tm: TestMachine;
  stop: { kind: string; detail?: string };
  labels: Map<string, number>;
  events: TraceEvent[];
}

/** Assemble `src` at UCODE (or KCODE for CPL 0), run it, collect the events. */
function runAt(
  src: string,
  o: { cpl?: 0 | 3; eflags?: number; cr4?: number; paging?: boolean; setup?: (tm: TestMachine, labels: Map<string, number>) => void; max?: number; kernel?: string } = {},
): Ran {
  const tm = new TestMachine();
  const cpl = o.cpl ?? 3;
  const labels = tm.code(cpl === 3 ? UCODE : KCODE, src);
  if (o.kernel !== undefined) for (const [k, v] of tm.code(0x28000, o.kernel)) labels.set(k, v);
  tm.start({ eip: cpl === 3 ? UCODE : KCODE, cpl, eflags: o.eflags, cr4: o.cr4, paging: o.paging });
  o.setup?.(tm, labels);
  const events: TraceEvent[] = [];
  const sub = tm.m.events$.subscribe((e) => events.push(e));
  const stop = tm.run(o.max ?? 10000);
  sub.unsubscribe();
  return { tm, stop, labels, events };
}

/** The #DB (or other) handler ran for a trap/fault from ring 3: frame EIP CS EFLAGS ESP SS on the TSS stack. */
function expectFromRing3(tt: Test, r: Ran, vector: number, eip: number, eflags: number, esp = USTACK): void {
  tt.equal(r.stop.kind, 'hlt', 'a handler halted');
  tt.equal(hex(r.tm.vector), hex(vector), `vector ${vector} delivered`);
  tt.equal(hex(r.tm.reg(ESP)), hex(KSTACK - 20), 'frame on the TSS ring-0 stack, no error code');
  tt.same(r.tm.stack(5).map(hex), [eip, UCS, eflags, esp, UDS].map(hex), 'frame EIP CS EFLAGS ESP SS');
}

// ------------------------------------------------------------------------------------------------
// MOV to and from debug registers
// ------------------------------------------------------------------------------------------------

t.test('MOV DRn at CPL 3: #GP(0) for every register, both directions; nothing changes', async (t) => {
  const forms: string[] = [];
  for (let n = 0; n < 8; n++) forms.push(`mov dr${n}, eax`, `mov ecx, dr${n}`);
  for (const insn of forms) {
    const r = runAt(`mov eax, 0x401\nmov ebx, 0x400000\nmov ecx, 0x55\nfault: ${insn}\nint 0x80`);
    t.equal(hex(r.tm.vector), hex(GP), `${insn}: #GP`);
    t.same(r.tm.stack(6).map(hex), [0, r.labels.get('fault')!, UCS, 0x10202, USTACK, UDS].map(hex), `${insn}: frame 0 EIP CS EFLAGS(RF) ESP SS`);
    t.same([r.tm.reg(EAX), r.tm.reg(ECX)].map(hex), [0x401, 0x55].map(hex), `${insn}: EAX, ECX unchanged`);
    t.same(Array.from(r.tm.cpu.dr, hex), [0, 0, 0, 0, 0, 0, DR6_INIT, 0x400].map(hex), `${insn}: debug registers unchanged`);
  }
});

t.test('MOV DRn at CPL 0: reset values, DR4/DR5 alias DR6/DR7 (CR4.DE = 0), fixed bits', async (t) => {
  const r = runAt(
    `
      mov eax, dr0
      mov [0x30000], eax
      mov eax, dr1
      mov [0x30004], eax
      mov eax, dr2
      mov [0x30008], eax
      mov eax, dr3
      mov [0x3000C], eax
      mov eax, dr4
      mov [0x30010], eax
      mov eax, dr5
      mov [0x30014], eax
      mov eax, dr6
      mov [0x30018], eax
      mov eax, dr7
      mov [0x3001C], eax
      ; writes
      mov eax, 0x11111111
      mov dr0, eax
      mov eax, 0x22222222
      mov dr3, eax
      xor eax, eax
      mov dr6, eax                      ; reserved bits read back as 1 (4-11, 16-31), bit 12 as 0
      mov eax, dr6
      mov [0x30020], eax
      mov eax, 0xFFFFFFFF
      mov dr4, eax                      ; DR4 is DR6
      mov eax, dr6
      mov [0x30024], eax
      mov eax, 0xFFFFDFFF               ; everything but GD
      mov dr5, eax                      ; DR5 is DR7: bit 10 reads 1, bits 11, 12, 14, 15 read 0
      mov eax, dr7
      mov [0x30028], eax
      mov eax, dr0
      mov [0x3002C], eax
      mov eax, dr3
      mov [0x30030], eax
      mov eax, 0x400
      mov dr7, eax
      hlt
    `,
    { cpl: 0 },
  );
  t.equal(r.stop.kind, 'hlt');
  const m = (off: number) => hex(r.tm.mem.read32(0x30000 + off));
  t.same([0, 4, 8, 12].map(m), [0, 0, 0, 0].map(hex), 'DR0-DR3 reset to 0');
  t.same([0x10, 0x14].map(m), [DR6_INIT, 0x400].map(hex), 'DR4 reads DR6, DR5 reads DR7');
  t.same([0x18, 0x1c].map(m), [DR6_INIT, 0x400].map(hex), 'DR6 = FFFF0FF0, DR7 = 400 at reset');
  t.equal(m(0x20), hex(DR6_INIT), 'DR6 written with 0 reads FFFF0FF0');
  t.equal(m(0x24), hex(0xffffefff), 'DR6 written with all ones (through DR4): bit 12 stays 0');
  t.equal(m(0x28), hex(0xffff07ff), 'DR7 written through DR5: 11, 12, 14, 15 clear, 10 set');
  t.same([m(0x2c), m(0x30)], [hex(0x11111111), hex(0x22222222)], 'DR0 and DR3 hold what was written');
  t.equal(hex(r.tm.cpu.dr[0]), hex(0x11111111), 'cpu.dr exposes DR0');
  t.equal(hex(r.tm.cpu.dr[7]), hex(0x400), 'cpu.dr exposes DR7');
});

t.test('MOV DR4/DR5 with CR4.DE = 1: #UD; DR6/DR7 still work', async (t) => {
  for (const insn of ['mov eax, dr4', 'mov dr5, eax']) {
    const r = runAt(`fault: ${insn}\nhlt`, { cpl: 0, cr4: CR4_DE });
    t.equal(hex(r.tm.vector), hex(UD), `${insn}: #UD`);
    t.equal(hex(r.tm.stack(1)[0]), hex(r.labels.get('fault')!), `${insn}: EIP of the mov`);
  }
  const ok = runAt('mov eax, dr6\nmov ebx, dr7\nhlt', { cpl: 0, cr4: CR4_DE });
  t.same([ok.tm.reg(EAX), ok.tm.reg(3)].map(hex), [DR6_INIT, 0x400].map(hex), 'DR6 and DR7 readable');
});

t.test('DR7.GD: the next MOV DRn is a #DB fault with DR6.BD, and GD is cleared for the handler', async (t) => {
  const r = runAt('mov eax, 0x2400\nmov dr7, eax\nfault: mov ebx, dr0\nhlt', { cpl: 0 });
  t.equal(hex(r.tm.vector), hex(DB), '#DB');
  t.same(r.tm.stack(3).map(hex), [r.labels.get('fault')!, KCS, 0x10202].map(hex), 'a fault: EIP of the MOV (RF set in the image)');
  t.equal(hex(r.tm.cpu.dr[6]), hex(DR6_INIT | DR6_BD), 'DR6.BD');
  t.equal(hex(r.tm.cpu.dr[7]), hex(0x400), 'DR7.GD cleared');
});

t.test('snapshot/restore/reset carry the debug registers', async (t) => {
  const tm = new TestMachine();
  const cpu = tm.cpu;
  cpu.writeDebugRegister(0, 0x401000);
  cpu.writeDebugRegister(7, 0x401);
  cpu.writeDebugRegister(6, 0x4001);
  const snap = cpu.snapshot();
  t.same(snap.debug, { dr0: 0x401000, dr1: 0, dr2: 0, dr3: 0, dr6: (DR6_INIT | 0x4001) >>> 0, dr7: 0x401 }, 'snapshot().debug');
  cpu.reset();
  t.same(Array.from(cpu.dr, hex), [0, 0, 0, 0, 0, 0, DR6_INIT, 0x400].map(hex), 'reset: power-on values');
  cpu.restore(snap);
  t.equal(hex(cpu.dr[0]), hex(0x401000), 'restore: DR0');
  t.equal(hex(cpu.dr[7]), hex(0x401), 'restore: DR7');
  t.not(cpu.debugArmed, 0, 'restore re-arms the breakpoint');
  const { debug: _omit, ...old } = snap;
  cpu.restore(old);
  t.same(Array.from(cpu.dr, hex), [0, 0, 0, 0, 0, 0, DR6_INIT, 0x400].map(hex), 'a snapshot without debug restores the reset values');
  t.equal(cpu.debugArmed, 0, 'nothing armed');
});

// ------------------------------------------------------------------------------------------------
// Single step (EFLAGS.TF)
// ------------------------------------------------------------------------------------------------

t.test('TF set by POPFD at ring 3: no trap after the POPFD, #DB after the next instruction', async (t) => {
  const r = runAt('pushfd\nor dword [esp], 0x100\npopfd\nstepped: mov eax, 7\nafter: nop\nint 0x80');
  expectFromRing3(t, r, DB, r.labels.get('after')!, 0x302);
  t.equal(r.tm.reg(EAX), 7, 'the stepped instruction ran');
  t.equal(hex(r.tm.cpu.dr[6]), hex(DR6_INIT | DR6_BS), 'DR6.BS, B0-B3 clear');
  t.equal(r.tm.cpu.getEflags() & TF, 0, 'the handler runs with TF clear');
  // Traced: the instruction event, then the exception event (vector 1, no error code, at the
  // boundary the frame names), then the ring transition it caused.
  const ev = r.events.filter((e) => e.type !== 'machine-stop');
  const i = ev.findIndex((e) => e.type === 'exception');
  t.ok(i > 0, 'an exception event');
  // Between them only the ring transition the delivery made (ring 3 to 0), as for every exception.
  t.same(ev.slice(i - 2, i).map((e) => e.type), ['instruction', 'ring-transition'], 'right after the stepped instruction and the delivery\'s ring transition');
  const before = ev[i - 2]!;
  if (before.type === 'instruction') t.equal(hex(before.eip), hex(r.labels.get('stepped')!), '... which is the mov');
  const ex = ev[i]!;
  if (ex.type === 'exception') {
    t.same([ex.vector, ex.errorCode, hex(ex.eip), ex.cpl], [DB, null, hex(r.labels.get('after')!), 3], 'exception: vector 1, no error code, at the next instruction, CPL 3');
  }
  t.equal(ev.filter((e) => e.type === 'exception').length, 1, 'only one #DB (none after the POPFD)');
  const rt = ev.find((e) => e.type === 'ring-transition');
  t.ok(rt && rt.type === 'ring-transition' && rt.mechanism === 'exception' && rt.vector === DB, 'ring transition: exception, vector 1');
});

t.test('TF set when the program starts: the first instruction is stepped', async (t) => {
  const r = runAt('nop\nafter: nop\nint 0x80', { eflags: 0x302 });
  expectFromRing3(t, r, DB, r.labels.get('after')!, 0x302);
});

t.test('POPFD that clears TF is itself stepped (TF was set when it began)', async (t) => {
  // Enter ring 3 by IRETD with TF set, straight at a POPFD whose value has TF clear.
  const tm = new TestMachine();
  const u = tm.code(UCODE, 'popfd\nafter: nop\nint 0x80');
  tm.code(KCODE, 'push dword 0x23\npush dword 0x4FFEFC\npush dword 0x302\npush dword 0x1B\npush dword 0x400000\niretd');
  tm.mem.write32(0x4ffefc, 0x202);
  tm.start({ eip: KCODE, cpl: 0 });
  tm.run(100);
  t.equal(hex(tm.vector), hex(DB), '#DB after the POPFD that cleared TF');
  t.same(tm.stack(5).map(hex), [u.get('after')!, UCS, 0x202, 0x4fff00, UDS].map(hex), 'EIP after the POPFD; the image has TF clear (POPFD cleared it)');
});

t.test('IRETD to ring 3 with TF in the popped EFLAGS: no trap after the IRETD, one after the first ring-3 instruction', async (t) => {
  const tm = new TestMachine();
  const u = tm.code(UCODE, 'first: mov eax, 5\nsecond: nop\nint 0x80');
  tm.code(KCODE, 'push dword 0x23\npush dword 0x4FFF00\npush dword 0x346\npush dword 0x1B\npush dword 0x400000\nmov eax, 1\niretd');
  tm.start({ eip: KCODE, cpl: 0 });
  const events: TraceEvent[] = [];
  const sub = tm.m.events$.subscribe((e) => events.push(e));
  tm.run(100);
  sub.unsubscribe();
  t.equal(hex(tm.vector), hex(DB), '#DB');
  t.same(tm.stack(5).map(hex), [u.get('second')!, UCS, 0x346, 0x4fff00, UDS].map(hex), 'EIP after the first ring-3 instruction; EFLAGS image with TF');
  t.equal(tm.reg(EAX), 5, 'the first instruction ran');
  const ex = events.filter((e) => e.type === 'exception');
  t.equal(ex.length, 1, 'one #DB');
});

t.test('INT n, INT3 and INTO invoke their handler with TF clear and no single-step trap of their own', async (t) => {
  // POPFD sets TF (and OF for INTO); the INT instruction right after it runs with TF set.
  for (const [name, src, vector, setup] of [
    ['int 2Eh', 'push dword 0x302\npopfd\nfault: int 0x2e\nafter: nop', 0x2e, undefined],
    ['int3', 'push dword 0x302\npopfd\nfault: int3\nafter: nop', 3, (tm: TestMachine) => tm.setGate(3, { dpl: 3 })],
    ['into (OF = 1)', 'push dword 0xB02\npopfd\nfault: into\nafter: nop', 4, (tm: TestMachine) => tm.setGate(4, { dpl: 3 })],
  ] as [string, string, number, ((tm: TestMachine) => void) | undefined][]) {
    const r = runAt(`${src}\nint 0x80`, { setup: (tm) => setup?.(tm) });
    t.test(name, async (tt) => {
      tt.equal(hex(r.tm.vector), hex(vector), `the ${hex(vector)} handler ran, not #DB`);
      const frame = r.tm.stack(5);
      tt.equal(hex(frame[0]!), hex(r.labels.get('after')!), 'EIP after the instruction');
      tt.equal(frame[2]! & TF, TF, 'the image has TF set');
      tt.equal(r.tm.cpu.getEflags() & TF, 0, 'the handler runs with TF clear');
      tt.equal(r.events.filter((e) => e.type === 'exception').length, 0, 'no #DB event');
    });
  }
  // INTO with OF = 0 is an ordinary instruction: it is stepped.
  const r = runAt('push dword 0x302\npopfd\ninto\nafter: nop\nint 0x80');
  t.equal(hex(r.tm.vector), hex(DB), 'into with OF = 0: #DB');
  t.equal(hex(r.tm.stack(1)[0]!), hex(r.labels.get('after')!), 'into with OF = 0: after it');
});

t.test('a faulting instruction is not stepped: the fault is delivered, with TF in the image', async (t) => {
  const r = runAt('fault: ud2\nint 0x80', { eflags: 0x302 });
  expectFromRing3(t, r, UD, r.labels.get('fault')!, 0x302 | RF);
  t.equal(r.tm.cpu.dr[6] >>> 0, DR6_INIT, 'DR6 untouched');
  t.same(r.events.filter((e) => e.type === 'exception').map((e) => (e.type === 'exception' ? e.vector : -1)), [UD], 'only the #UD');
});

t.test('MOV SS and POP SS hold the single-step trap until after the next instruction; LSS does not', async (t) => {
  for (const [name, src] of [
    ['mov ss, ax', 'mov ax, 0x23\npushfd\nor dword [esp], 0x100\npopfd\nload: mov ss, ax\nnext: nop\nafter: nop\nint 0x80'],
    ['pop ss', 'push dword 0x23\npushfd\nor dword [esp], 0x100\npopfd\nload: pop ss\nnext: nop\nafter: nop\nint 0x80'],
  ]) {
    const r = runAt(src!);
    t.equal(hex(r.tm.vector), hex(DB), `${name}: #DB`);
    t.equal(hex(r.tm.stack(1)[0]!), hex(r.labels.get('after')!), `${name}: EIP after the instruction that follows (one trap for both)`);
    t.equal(r.events.filter((e) => e.type === 'exception').length, 1, `${name}: one #DB`);
    t.equal(hex(r.tm.cpu.dr[6]), hex(DR6_INIT | DR6_BS), `${name}: DR6.BS`);
  }
  const r = runAt(
    'pushfd\nor dword [esp], 0x100\npopfd\nload: lss esp, [0x410000]\nnext: nop\nint 0x80',
    { setup: (tm) => (tm.mem.write32(0x410000, 0x4ffe00), tm.mem.write32(0x410004, 0x23)) },
  );
  t.equal(hex(r.tm.vector), hex(DB), 'lss: #DB');
  t.same(r.tm.stack(5).map(hex), [r.labels.get('next')!, UCS, 0x302, 0x4ffe00, UDS].map(hex), 'lss: stepped itself (no MOV SS shadow); the frame has the new SS:ESP');
});

/** A #DB handler at 0x28000 that logs (EIP, ECX) pairs at 0x31004 (count at 0x31000) and returns. */
const DB_LOGGER = `
db_logger:
  push eax
  push ebx
  mov ebx, [ss:0x31000]
  mov eax, [esp + 8]
  mov [ss:0x31004 + ebx*8], eax
  mov [ss:0x31008 + ebx*8], ecx
  inc dword [ss:0x31000]
  pop ebx
  pop eax
  iretd
`;
function dbLog(tm: TestMachine): [number, number][] {
  const n = tm.mem.read32(0x31000);
  return Array.from({ length: n }, (_, i) => [tm.mem.read32(0x31004 + i * 8) >>> 0, tm.mem.read32(0x31008 + i * 8) >>> 0]);
}

t.test('REP string instructions with TF: one iteration per step; EIP stays on the instruction until the last', async (t) => {
  const r = runAt(
    `
      mov esi, 0x410000
      mov edi, 0x410100
      mov ecx, 3
      pushfd
      or dword [esp], 0x100
      popfd
      rep_: rep movsb
      after: int 0x80
    `,
    { kernel: DB_LOGGER, setup: (tm, l) => tm.setGate(1, { offset: l.get('db_logger')! }) },
  );
  const rep = r.labels.get('rep_')!;
  const after = r.labels.get('after')!;
  t.equal(hex(r.tm.vector), hex(EXIT_VECTOR), 'ran to the end');
  t.same(dbLog(r.tm).map(([e, c]) => `${hex(e)}/${c}`), [`${hex(rep)}/2`, `${hex(rep)}/1`, `${hex(after)}/0`], 'traps: (rep, ECX 2), (rep, ECX 1), (next, ECX 0)');
  // With ECX = 0 the instruction does nothing and is stepped once.
  const z = runAt('xor ecx, ecx\npushfd\nor dword [esp], 0x100\npopfd\nrep stosb\nafter: int 0x80', {
    kernel: DB_LOGGER,
    setup: (tm, l) => tm.setGate(1, { offset: l.get('db_logger')! }),
  });
  t.same(dbLog(z.tm).map(([e, c]) => `${hex(e)}/${c}`), [`${hex(z.labels.get('after')!)}/0`], 'ECX = 0: one trap, past the instruction');
  // REPE CMPSB that stops on a mismatch at the first iteration: one trap, past the instruction.
  const c = runAt(
    'mov esi, 0x410000\nmov edi, 0x410100\nmov byte [0x410000], 1\nmov ecx, 5\npushfd\nor dword [esp], 0x100\npopfd\nrepe cmpsb\nafter: int 0x80',
    { kernel: DB_LOGGER, setup: (tm, l) => tm.setGate(1, { offset: l.get('db_logger')! }) },
  );
  t.same(dbLog(c.tm).map(([e, cx]) => `${hex(e)}/${cx}`), [`${hex(c.labels.get('after')!)}/4`], 'REPE CMPSB ending on a mismatch: one trap, past it');
});

t.test('SYSENTER with TF: the trap is taken at ring 0, before the first instruction at SYSENTER_EIP', async (t) => {
  const SYSENTER_ESP = 0x8f000;
  const r = runAt('pushfd\nor dword [esp], 0x100\nlea edx, [esp + 4]\npopfd\nsysenter\nint 0x80', {
    kernel: 'entry: mov eax, 1\nhlt',
    setup: (tm, l) => {
      tm.cpu.sysenterCs = KCS;
      tm.cpu.sysenterEsp = SYSENTER_ESP;
      tm.cpu.sysenterEip = l.get('entry')!;
    },
  });
  t.equal(hex(r.tm.vector), hex(DB), '#DB');
  t.equal(hex(r.tm.reg(ESP)), hex(SYSENTER_ESP - 12), 'on the SYSENTER stack: no stack switch (already ring 0)');
  t.same(r.tm.stack(3).map(hex), [r.labels.get('entry')!, KCS, 0x102].map(hex), 'frame EIP = SYSENTER_EIP, CS 08, EFLAGS TF set and IF clear');
  t.not(r.tm.reg(EAX), 1, 'the kernel entry has not run');
  t.equal(hex(r.tm.cpu.dr[6]), hex(DR6_INIT | DR6_BS), 'DR6.BS');
  const ex = r.events.find((e) => e.type === 'exception');
  t.ok(ex && ex.type === 'exception' && ex.cpl === 0 && ex.vector === DB, 'the exception event is at CPL 0');
});

t.test('SYSEXIT with TF: the trap is taken at ring 3 at EDX, through the TSS stack', async (t) => {
  const r = runAt('mov ecx, 0x4FFE00\nmov edx, 0x400000\npushfd\nor dword [esp], 0x100\npopfd\nsysexit', {
    cpl: 0,
    setup: (tm) => {
      tm.code(UCODE, 'nop\nint 0x80');
      tm.cpu.sysenterCs = KCS;
    },
  });
  expectFromRing3(t, r, DB, UCODE, 0x302, 0x4ffe00);
});

t.test('INT1 (F1): #DB as a trap, no check of the gate DPL, DR6 untouched; EXT = 1 in error codes', async (t) => {
  const r = runAt('fault: int1\nafter: nop\nint 0x80');
  expectFromRing3(t, r, DB, r.labels.get('after')!, 0x202);
  t.equal(hex(r.tm.cpu.dr[6]), hex(DR6_INIT), 'DR6 not changed by INT1');
  const ex = r.events.filter((e) => e.type === 'exception');
  t.ok(ex.length === 1 && ex[0]!.type === 'exception' && ex[0]!.vector === DB, 'traced as an exception event, vector 1');
  const np = runAt('fault: int1\nint 0x80', { setup: (tm) => tm.setGate(1, { present: false }) });
  t.equal(hex(np.tm.vector), hex(11), 'gate 1 not present: #NP');
  t.equal(hex(np.tm.stack(1)[0]!), hex(1 * 8 + 2 + 1), 'error code 1*8 + IDT + EXT');
  // exec reports it like the other traps
  t.same(runCase({ code: 'f1 90' }).exception, { vector: 1, eip: 0x401001 }, 'ntflow exec: vector 1 at the next instruction');
});

t.test('ntflow exec: a single-step trap stops the case at the next instruction', async (t) => {
  const res = runCase({ code: '9c 810c2400010000 9d 90 90' }); // pushfd; or [esp],100h; popfd; nop; nop
  t.same(res.exception, { vector: 1, eip: 0x40100a }, '#DB after the first nop');
  t.equal(res.flags.TF, 1, 'TF still set (the exception is not delivered on the bare machine)');
});

t.test('a run that stops on its instruction limit after a stepped instruction has delivered the trap', async (t) => {
  const tm = new TestMachine();
  tm.code(UCODE, 'nop\nnop\nint 0x80');
  tm.start({ eip: UCODE, cpl: 3, eflags: 0x302 });
  const stop = tm.run(1);
  t.equal(stop.kind, 'instruction-limit');
  t.equal(hex(tm.cpu.eip), hex(handler(DB)), 'EIP at the #DB handler after one instruction');
  t.equal(tm.cpu.icount, 1, 'one instruction retired');
});

// ------------------------------------------------------------------------------------------------
// Breakpoints
// ------------------------------------------------------------------------------------------------

t.test('instruction breakpoint: #DB fault before the instruction, RF clear in the image, DR6.Bn', async (t) => {
  for (const [name, dr7, n] of [['DR0, L0', 0x401, 0], ['DR2, G2', 0x420, 2]] as [string, number, number][]) {
    const r = runAt('mov eax, 1\nbp: mov eax, 2\nint 0x80', {
      setup: (tm, l) => {
        tm.cpu.writeDebugRegister(n, l.get('bp')!);
        tm.cpu.writeDebugRegister(7, dr7);
      },
    });
    t.test(name, async (tt) => {
      expectFromRing3(tt, r, DB, r.labels.get('bp')!, 0x202);
      tt.equal(r.tm.reg(EAX), 1, 'the instruction did not run');
      tt.equal(hex(r.tm.cpu.dr[6]), hex(DR6_INIT | (1 << n)), `DR6.B${n}`);
    });
  }
  const off = runAt('mov eax, 1\nbp: mov eax, 2\nint 0x80', {
    setup: (tm, l) => {
      tm.cpu.writeDebugRegister(0, l.get('bp')!);
      tm.cpu.writeDebugRegister(7, 0x400 | (1 << 16)); // R/W0 = 01 but not enabled
    },
  });
  t.equal(hex(off.tm.vector), hex(EXIT_VECTOR), 'not enabled: no #DB');
});

t.test('instruction breakpoint: a handler that sets RF in the image resumes past it, once', async (t) => {
  const r = runAt('mov eax, 1\nbp: add eax, 2\nbp2: add eax, 4\nint 0x80', {
    kernel: `
      db_rf:
        or dword [esp + 8], 0x10000   ; RF in the image
        inc dword [ss:0x31000]
        iretd
    `,
    setup: (tm, l) => {
      tm.setGate(1, { offset: l.get('db_rf')! });
      tm.cpu.writeDebugRegister(0, l.get('bp')!);
      tm.cpu.writeDebugRegister(1, l.get('bp2')!);
      tm.cpu.writeDebugRegister(7, 0x405);
    },
  });
  t.equal(hex(r.tm.vector), hex(EXIT_VECTOR), 'ran to the end');
  t.equal(r.tm.reg(EAX), 7, 'each instruction ran once');
  t.equal(r.tm.mem.read32(0x31000), 2, 'two #DB: RF suppressed the first breakpoint for one instruction only');
});

t.test('data breakpoints: write / read-write, lengths and alignment; traps after the instruction', async (t) => {
  const D = 0x410010;
  const cases: [string, number, number, string, boolean][] = [
    // [name, DR1, DR7, access, traps]
    ['write bp, dword write', D, 0x400 | 0x4 | (1 << 20) | (3 << 22), 'mov [0x410010], eax', true],
    ['write bp, byte write at +3', D, 0x400 | 0x4 | (1 << 20) | (3 << 22), 'mov [0x410013], al', true],
    ['write bp, byte write at +4 (outside)', D, 0x400 | 0x4 | (1 << 20) | (3 << 22), 'mov [0x410014], al', false],
    ['write bp, word write straddling the start', D, 0x400 | 0x4 | (1 << 20) | (3 << 22), 'mov [0x41000F], ax', true],
    ['write bp, read', D, 0x400 | 0x4 | (1 << 20) | (3 << 22), 'mov eax, [0x410010]', false],
    ['read/write bp, read', D, 0x400 | 0x4 | (3 << 20) | (3 << 22), 'mov eax, [0x410010]', true],
    ['read/write bp, push to it', D + 4, 0x400 | 0x4 | (3 << 20) | (3 << 22), 'mov esp, 0x410018\npush eax', true],
    ['1-byte bp at +1, dword write', D + 1, 0x400 | 0x4 | (1 << 20) | (0 << 22), 'mov [0x410010], eax', true],
    ['1-byte bp at +1, byte write at +2', D + 1, 0x400 | 0x4 | (1 << 20) | (0 << 22), 'mov [0x410012], al', false],
    ['4-byte bp, DR1 unaligned (low bits ignored)', D + 2, 0x400 | 0x4 | (1 << 20) | (3 << 22), 'mov [0x410010], al', true],
    ['2-byte bp, RMW (add [m], eax)', D, 0x400 | 0x4 | (1 << 20) | (1 << 22), 'add [0x410011], eax', true],
    ['write bp, not enabled', D, 0x400 | (1 << 20) | (3 << 22), 'mov [0x410010], eax', false],
  ];
  for (const [name, dr1, dr7, access, traps] of cases) {
    for (const paging of [true, false]) {
      const r = runAt(`mov eax, [0x410040]\naccess: ${access}\nafter: nop\nint 0x80`, {
        paging,
        setup: (tm) => {
          tm.cpu.writeDebugRegister(1, dr1);
          tm.cpu.writeDebugRegister(7, dr7);
        },
      });
      t.test(`${name}${paging ? '' : ' (paging off)'}`, async (tt) => {
        if (!traps) {
          tt.equal(hex(r.tm.vector), hex(EXIT_VECTOR), 'no #DB');
          return;
        }
        tt.equal(hex(r.tm.vector), hex(DB), '#DB');
        tt.equal(hex(r.tm.stack(1)[0]!), hex(r.labels.get('after')!), 'a trap: EIP of the next instruction');
        tt.equal(hex(r.tm.cpu.dr[6]), hex(DR6_INIT | 2), 'DR6.B1 only');
      });
    }
  }
});

t.test('data breakpoint: a page already in the TLB is watched from the DR7 write on', async (t) => {
  const r = runAt('mov eax, [0x410010]\nmov [0x410010], eax\nmov eax, 0x4\nint 0x2e\naccess: mov [0x410010], eax\nafter: int 0x80', {
    kernel: 'svc: mov eax, 0x410010\nmov dr0, eax\nmov eax, 0x400 | 1 | (1 << 16) | (3 << 18)\nmov dr7, eax\niretd',
    setup: (tm, l) => tm.setGate(0x2e, { dpl: 3, offset: l.get('svc')! }),
  });
  t.equal(hex(r.tm.vector), hex(DB), '#DB');
  t.equal(hex(r.tm.stack(1)[0]!), hex(r.labels.get('after')!), 'after the write');
});

t.test('data breakpoint in REP MOVSD: the trap comes after the iteration that touched it', async (t) => {
  const r = runAt('mov esi, 0x410100\nmov edi, 0x410000\nmov ecx, 8\nrep_: rep movsd\nafter: int 0x80', {
    kernel: DB_LOGGER,
    setup: (tm, l) => {
      tm.setGate(1, { offset: l.get('db_logger')! });
      tm.cpu.writeDebugRegister(3, 0x410008); // the third dword written
      tm.cpu.writeDebugRegister(7, 0x400 | 0x40 | (1 << 28) | (3 << 30));
    },
  });
  t.equal(hex(r.tm.vector), hex(EXIT_VECTOR), 'ran to the end');
  t.same(dbLog(r.tm).map(([e, c]) => `${hex(e)}/${c}`), [`${hex(r.labels.get('rep_')!)}/5`], 'one trap, EIP on the REP MOVSD, ECX = 5 left');
  t.equal(hex(r.tm.mem.read32(0x410000 + 28)), hex(r.tm.mem.read32(0x410100 + 28)), 'the copy completed after the handler returned');
});

t.test('I/O breakpoints need CR4.DE: IN/OUT to the port trap after the instruction', async (t) => {
  const DR7_IO = 0x400 | 0x10 | (2 << 24) | (0 << 26); // L2, R/W2 = 10, LEN2 = 1 byte
  for (const [name, cr4, traps] of [['CR4.DE = 1', CR4_DE, true], ['CR4.DE = 0 (R/W = 10 undefined: no breakpoint)', 0, false]] as [string, number, boolean][]) {
    const r = runAt('mov dx, 0x3F8\nmov al, 0x41\nout dx, al\nafter: hlt', {
      cpl: 0,
      cr4,
      setup: (tm) => {
        tm.cpu.writeDebugRegister(2, 0x3f8);
        tm.cpu.writeDebugRegister(7, DR7_IO);
      },
    });
    if (traps) {
      t.equal(hex(r.tm.vector), hex(DB), `${name}: #DB`);
      t.equal(hex(r.tm.stack(1)[0]!), hex(r.labels.get('after')!), `${name}: after the OUT`);
      t.equal(hex(r.tm.cpu.dr[6]), hex(DR6_INIT | 4), `${name}: DR6.B2`);
    } else {
      t.equal(hex(r.tm.cpu.eip), hex(r.labels.get('after')! + 1), `${name}: no #DB`);
    }
  }
  // a word access at 3F7h covers 3F8h
  const w = runAt('mov dx, 0x3F7\nin ax, dx\nafter: hlt', {
    cpl: 0,
    cr4: CR4_DE,
    setup: (tm) => (tm.cpu.writeDebugRegister(2, 0x3f8), tm.cpu.writeDebugRegister(7, DR7_IO)),
  });
  t.equal(hex(w.tm.vector), hex(DB), 'IN AX from 3F7h overlaps 3F8h: #DB');
});

t.test('single step and a data breakpoint in one instruction: one #DB with BS and Bn', async (t) => {
  const r = runAt('access: mov [0x410010], eax\nafter: nop\nint 0x80', {
    eflags: 0x302,
    setup: (tm) => {
      tm.cpu.writeDebugRegister(0, 0x410010);
      tm.cpu.writeDebugRegister(7, 0x401 | (1 << 16) | (3 << 18));
    },
  });
  expectFromRing3(t, r, DB, r.labels.get('after')!, 0x302);
  t.equal(hex(r.tm.cpu.dr[6]), hex(DR6_INIT | DR6_BS | 1), 'DR6: BS and B0');
  t.equal(r.events.filter((e) => e.type === 'exception').length, 1, 'one #DB');
});

t.test('nothing armed: the fast loop does not look at debug state (debugArmed = 0)', async (t) => {
  const tm = new TestMachine();
  tm.code(KCODE, 'mov ecx, 100\nl: dec ecx\njnz l\nhlt');
  tm.start({ eip: KCODE, cpl: 0 });
  t.equal(tm.cpu.debugArmed, 0, 'TF, RF clear, DR7 = 400: nothing armed');
  tm.run(1000);
  t.equal(hex(tm.cpu.eip), hex(KCODE + 9), 'ran to the hlt');
  void handlerEnd;
  void UDATA;
  void KDS;
  void IF;
});
