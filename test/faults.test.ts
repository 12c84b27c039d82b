// Faults (issue A §6): privilege checks, #DE, #UD, software interrupts through the IDT, #NP,
// double and triple faults, and the events fault delivery emits. Every expectation is the Intel
// SDM's (vol. 2 instruction pages, vol. 3 ch. 6 "Interrupt and Exception Handling").
//   npx tsc -p tsconfig.json && npx tap dist/test/faults.test.js
import t, { type Test } from 'tap';
import { runCase, type CpuModel, type TraceEvent } from '../core/index.js';
import {
  TestMachine, UCODE, UDATA, USTACK, KCODE, KSTACK, ESP1, UCS, UDS, KCS, KDS, TSS_SEL, GDT, LOG,
  EXIT_VECTOR, EFLAGS_IF, EFLAGS_RF, CR4_TSD, handler, handlerEnd, P, RW, EAX, EDX, ESP,
} from './util/machine.js';

const GP = 13, NP = 11, DE = 0, UD = 6, DF = 8, PF = 14, SS_ = 12;
const KDATA = 0x30000;

interface Ran {
  tm: TestMachine;
  stop: { kind: string; detail?: string };
  labels: Map<string, number>;
  events: TraceEvent[];
}

/** Assemble `src` at UCODE, run it at CPL 3 (or `cpl`), collect the events. */
function runAt(src: string, o: { cpl?: 0 | 3; cpu?: CpuModel; eflags?: number; cr4?: number; setup?: (tm: TestMachine) => void; max?: number } = {}): Ran {
  const tm = new TestMachine({ cpu: o.cpu });
  const cpl = o.cpl ?? 3;
  const origin = cpl === 3 ? UCODE : KCODE;
  const labels = tm.code(origin, src);
  o.setup?.(tm);
  tm.start({ eip: origin, cpl, eflags: o.eflags, cr4: o.cr4 });
  const events: TraceEvent[] = [];
  const sub = tm.m.events$.subscribe((e) => events.push(e));
  const stop = tm.run(o.max ?? 10000);
  sub.unsubscribe();
  return { tm, stop, labels, events };
}

const hex = (n: number) => '0x' + (n >>> 0).toString(16).toUpperCase();

/**
 * The handler for `vector` ran at ring 0 and halted, with the frame of a fault from ring 3 on the
 * TSS stack (SDM vol. 3 6.12.1, figure 6-4): [error code], EIP of the faulting instruction, CS,
 * EFLAGS (RF set: a fault, SDM 17.3.1.1), ESP, SS.
 */
function expectUserFault(tt: Test, r: Ran, vector: number, err: number | null, eip: number, eflags = 0x202, esp = USTACK): void {
  tt.equal(r.stop.kind, 'hlt', 'the handler halted');
  tt.equal(hex(r.tm.vector), hex(vector), `vector ${vector} delivered`);
  tt.equal(r.tm.cpu.cpl, 0, 'handler at CPL 0');
  tt.equal(hex(r.tm.cpu.eip), hex(handlerEnd(vector)), 'halted at the end of the handler');
  const n = err === null ? 5 : 6;
  tt.equal(hex(r.tm.reg(ESP)), hex(KSTACK - 4 * n), 'frame on the TSS ring-0 stack (ESP0)');
  tt.equal(r.tm.cpu.segSel[2], KDS, 'SS = SS0');
  const frame = r.tm.stack(n);
  const want = [eip, UCS, (eflags | EFLAGS_RF) >>> 0, esp, UDS];
  if (err !== null) want.unshift(err);
  tt.same(frame.map(hex), want.map(hex), `frame ${err === null ? '' : '[err] '}EIP CS EFLAGS ESP SS`);
}

/** The handler for `vector` ran after a fault at ring 0 (no stack switch): [err] EIP CS EFLAGS. */
function expectKernelFault(tt: Test, r: Ran, vector: number, err: number | null, eip: number, eflags = 0x202): void {
  tt.equal(r.stop.kind, 'hlt', 'the handler halted');
  tt.equal(hex(r.tm.vector), hex(vector), `vector ${vector} delivered`);
  const n = err === null ? 3 : 4;
  tt.equal(hex(r.tm.reg(ESP)), hex(KSTACK - 4 * n), 'frame on the same stack');
  const want = [eip, KCS, (eflags | EFLAGS_RF) >>> 0];
  if (err !== null) want.unshift(err);
  tt.same(r.tm.stack(n).map(hex), want.map(hex), 'frame [err] EIP CS EFLAGS');
}

// ------------------------------------------------------------------------------------------------
// #GP(0) for privileged instructions at CPL 3 (SDM vol. 2: each instruction's "Protected Mode
// Exceptions": #GP(0) "if the current privilege level is not 0"; CLI/STI/IN/OUT: "if CPL > IOPL"
// (IN/OUT: and the TSS has no I/O bitmap permitting the port); RDTSC: "if CR4.TSD = 1 and CPL > 0").
// ------------------------------------------------------------------------------------------------

const SENTINEL_EAX = 0x11223344;
const SENTINEL_EDX = 0x55667788;
const PRIVILEGED: [name: string, src: string][] = [
  ['hlt', 'hlt'],
  ['cli (IOPL 0)', 'cli'],
  ['sti (IOPL 0)', 'sti'],
  ['lgdt', 'lgdt [0x410000]'],
  ['lidt', 'lidt [0x410000]'],
  ['ltr', 'ltr cx'],
  ['lldt', 'lldt bx'],
  ['mov cr0, eax', 'mov cr0, eax'],
  ['mov eax, cr0', 'mov eax, cr0'],
  ['mov cr2, eax', 'mov cr2, eax'],
  ['mov eax, cr2', 'mov eax, cr2'],
  ['mov cr3, eax', 'mov cr3, eax'],
  ['mov eax, cr3', 'mov eax, cr3'],
  ['mov cr4, eax', 'mov cr4, eax'],
  ['mov eax, cr4', 'mov eax, cr4'],
  ['invlpg', 'invlpg [0x410000]'],
  ['rdmsr', 'rdmsr'],
  ['wrmsr', 'wrmsr'],
  ['clts', 'clts'],
  ['wbinvd', 'wbinvd'],
  ['invd', 'invd'],
  ['lmsw', 'lmsw bx'],
  ['in al, dx (IOPL 0, no I/O bitmap)', 'in al, dx'],
  ['in eax, imm8', 'in eax, 0x60'],
  ['out dx, al', 'out dx, al'],
  ['out imm8, eax', 'out 0x80, eax'],
  ['sysexit', 'sysexit'],
];

t.test('privileged instructions at CPL 3 raise #GP(0) and change nothing', async (t) => {
  for (const [name, insn] of PRIVILEGED) {
    t.test(name, async (tt) => {
      const ioSeen: string[] = [];
      const r = runAt(
        `mov eax, ${SENTINEL_EAX}\nmov edx, ${SENTINEL_EDX}\nmov ecx, 0x174\nxor ebx, ebx\nfault: ${insn}\nint 0x80`,
        {
          setup: (tm) => {
            tm.m.io.out = (port, size, v) => void ioSeen.push(`out ${port} ${size} ${v}`);
            tm.m.io.in = (port, size) => (ioSeen.push(`in ${port} ${size}`), 0);
          },
        },
      );
      // EFLAGS: IF from the start, ZF and PF from `xor ebx, ebx`.
      expectUserFault(tt, r, GP, 0, r.labels.get('fault')!, 0x246);
      tt.equal(hex(r.tm.reg(EAX)), hex(SENTINEL_EAX), 'EAX unchanged');
      tt.equal(hex(r.tm.reg(EDX)), hex(SENTINEL_EDX), 'EDX unchanged');
      tt.same(ioSeen, [], 'no port access reached the bus');
      const c = r.tm.cpu;
      tt.same(
        [c.cr0 >>> 0, c.cr2, c.cr3, c.cr4, c.gdtrBase, c.gdtrLimit, c.idtrLimit, c.trSel, c.sysenterCs].map(hex),
        [0x80010011, 0, 0x4000, 0, GDT, 0x3f, 0x7ff, TSS_SEL, 0].map(hex),
        'control registers, GDTR, IDTR, TR and MSRs unchanged',
      );
    });
  }
});

t.test('rdtsc at CPL 3: allowed with CR4.TSD=0, #GP(0) with CR4.TSD=1', async (t) => {
  const ok = runAt(`mov eax, ${SENTINEL_EAX}\nmov edx, ${SENTINEL_EDX}\nrdtsc\nint 0x80`);
  t.equal(ok.tm.vector, EXIT_VECTOR, 'rdtsc retired, reached int 80h');
  // TSC = instructions retired (deterministic): two movs retired before rdtsc.
  t.equal(ok.tm.reg(EAX), 2, 'EAX = TSC low = 2 instructions retired');
  t.equal(ok.tm.reg(EDX), 0, 'EDX = TSC high');
  const r = runAt(`mov eax, ${SENTINEL_EAX}\nmov edx, ${SENTINEL_EDX}\nfault: rdtsc\nint 0x80`, { cr4: CR4_TSD });
  expectUserFault(t, r, GP, 0, r.labels.get('fault')!);
  t.equal(hex(r.tm.reg(EAX)), hex(SENTINEL_EAX), 'EAX unchanged');
  t.equal(hex(r.tm.reg(EDX)), hex(SENTINEL_EDX), 'EDX unchanged');
  const k = runAt('rdtsc\nmov [0x30000], eax\nhlt', { cpl: 0, cr4: CR4_TSD });
  t.equal(k.stop.kind, 'hlt', 'CPL 0 with CR4.TSD=1: rdtsc allowed');
  t.equal(k.tm.mem.read32(KDATA), 0, 'TSC read at CPL 0 = 0 instructions retired');
});

t.test('cli/sti/in/out at CPL 3 with IOPL 3 are allowed (IOPL-sensitive, not CPL-0-only)', async (t) => {
  const io: string[] = [];
  const r = runAt('cli\npushfd\npop ebx\nsti\nmov dx, 0x3f8\nmov al, 0x41\nout dx, al\nin al, 0x60\nint 0x80', {
    eflags: 0x3202,
    setup: (tm) => {
      tm.m.io.out = (port, size, v) => void io.push(`out ${hex(port)} ${size} ${hex(v)}`);
      tm.m.io.in = (port, size) => (io.push(`in ${hex(port)} ${size}`), 0x5a);
    },
  });
  t.equal(r.tm.vector, EXIT_VECTOR, 'reached int 80h');
  t.equal(hex(r.tm.reg(3)), hex(0x3002), 'after cli: IF=0 (EFLAGS 0x3002)');
  t.same(io, ['out 0x3F8 1 0x41', 'in 0x60 1'], 'port accesses reached the bus');
  t.equal(r.tm.reg(EAX) & 0xff, 0x5a, 'AL from the port');
  // The frame of int 80h: EFLAGS has IF set again (sti) and IOPL 3.
  t.equal(hex(r.tm.stack(5)[2]), hex(0x3202), 'pushed EFLAGS: IF=1, IOPL=3');
});

t.test('ltr at CPL 0 loads TR and marks the TSS busy; ltr of a busy TSS is #GP(selector)', async (t) => {
  const tm = new TestMachine();
  tm.code(KCODE, 'mov cx, 0x28\nltr cx\nstr word [0x30000]\nfault: ltr cx\nhlt');
  tm.start({ eip: KCODE, cpl: 0, tr: false });
  t.equal(tm.mem.read32(GDT + 0x2c) >>> 8 & 0xff, 0x89, 'TSS descriptor type 9 (available) before');
  const stop = tm.run();
  t.equal(stop.kind, 'hlt');
  t.equal(tm.cpu.trSel, 0x28, 'TR = 0x28');
  t.equal(tm.mem.read32(0x30000) & 0xffff, 0x28, 'str reads 0x28');
  t.equal(tm.mem.read32(GDT + 0x2c) >>> 8 & 0xff, 0x8b, 'TSS descriptor type B (busy) after');
  t.equal(hex(tm.vector), hex(GP), 'second ltr: #GP');
  t.equal(hex(tm.stack(1)[0]), hex(0x28), 'error code = the selector');
});

t.test('system instructions at CPL 0 take effect', async (t) => {
  const io: string[] = [];
  const tm = new TestMachine();
  tm.code(
    KCODE,
    `
      cli
      pushfd
      pop dword [0x30000]
      sti
      pushfd
      pop dword [0x30004]
      lgdt [gdtr]
      lidt [idtr]
      mov cx, 0x28
      ltr cx
      xor bx, bx
      lldt bx
      mov eax, cr3
      mov cr3, eax
      mov ebx, 0xABCDE000
      mov cr2, ebx
      mov eax, cr2
      mov [0x3000C], eax
      mov eax, cr4
      or eax, 0x10
      mov cr4, eax
      mov eax, cr4
      mov [0x30010], eax
      invlpg [0x30000]
      wbinvd
      invd
      smsw bx
      or bx, 8
      lmsw bx
      mov eax, cr0
      mov [0x30014], eax
      clts
      mov eax, cr0
      mov [0x30018], eax
      mov ecx, 0x174
      mov eax, 0x08
      xor edx, edx
      wrmsr
      mov ecx, 0x176
      mov eax, 0x12345678
      wrmsr
      xor eax, eax
      rdmsr
      mov [0x3001C], eax
      mov [0x30020], edx
      mov dx, 0x3f8
      mov al, 0x42
      out dx, al
      in eax, dx
      mov [0x30024], eax
      mov ecx, 0x4FFF00
      mov edx, 0x400000
      sysexit
    gdtr: dw 0x3f
          dd 0x1000
    idtr: dw 0x47f
          dd 0x2000
    `,
  );
  tm.code(UCODE, 'int 0x80');
  tm.m.io.out = (port, size, v) => void io.push(`out ${hex(port)} ${size} ${hex(v)}`);
  tm.m.io.in = (port, size) => (io.push(`in ${hex(port)} ${size}`), 0xcafe1234);
  tm.start({ eip: KCODE, cpl: 0, tr: false });
  tm.cpu.gdtrLimit = 0x2f;
  const stop = tm.run();
  const m = (off: number) => hex(tm.mem.read32(KDATA + off));
  t.equal(stop.kind, 'hlt');
  t.equal(hex(tm.vector), hex(EXIT_VECTOR), 'sysexit reached ring 3, whose int 80h reached the exit handler');
  t.equal(m(0), hex(0x002), 'cli cleared IF');
  t.equal(m(4), hex(0x202), 'sti set IF');
  t.equal(tm.cpu.gdtrLimit, 0x3f, 'lgdt loaded the limit');
  t.equal(tm.cpu.idtrLimit, 0x47f, 'lidt loaded the limit');
  t.equal(tm.cpu.trSel, TSS_SEL, 'ltr loaded TR');
  t.equal(m(0xc), hex(0xabcde000), 'mov cr2 / mov from cr2');
  t.equal(m(0x10), hex(0x10), 'mov cr4 set PSE');
  t.equal(m(0x14), hex(0x80010019), 'lmsw set CR0.TS');
  t.equal(m(0x18), hex(0x80010011), 'clts cleared CR0.TS');
  t.equal(m(0x1c), hex(0x12345678), 'rdmsr 176h = what wrmsr wrote (EAX)');
  t.equal(m(0x20), hex(0), 'rdmsr 176h EDX');
  t.equal(tm.cpu.sysenterCs, 8, 'wrmsr 174h');
  t.same(io, ['out 0x3F8 1 0x42', 'in 0x3F8 4'], 'I/O reached the bus');
  t.equal(m(0x24), hex(0xcafe1234), 'in eax, dx');
  // int 80h from ring 3 after sysexit: SS:ESP pushed = 0x23:ECX, CS = 0x1B, EIP = after int 80h.
  t.same(tm.stack(5).map(hex), [UCODE + 2, UCS, 0x246, 0x4fff00, UDS].map(hex), 'sysexit: CS=SYSENTER_CS+16|3, SS=+24|3, EIP=EDX, ESP=ECX');
});

t.test('rdmsr/wrmsr of an MSR the CPU lacks at CPL 0: #GP(0)', async (t) => {
  for (const insn of ['rdmsr', 'wrmsr']) {
    const r = runAt(`mov ecx, 0xDEAD\nmov eax, ${SENTINEL_EAX}\nmov edx, ${SENTINEL_EDX}\nfault: ${insn}\nhlt`, { cpl: 0 });
    t.test(insn, async (tt) => {
      expectKernelFault(tt, r, GP, 0, r.labels.get('fault')!);
      tt.equal(hex(r.tm.reg(EAX)), hex(SENTINEL_EAX), 'EAX unchanged');
      tt.equal(hex(r.tm.reg(EDX)), hex(SENTINEL_EDX), 'EDX unchanged');
    });
  }
});

t.test('popfd at CPL 3 silently keeps IF and IOPL (SDM POPF: no fault, the bits are not changed)', async (t) => {
  // IF=1 IOPL=0; pop a value with IF=0, IOPL=3, CF=1, DF=1.
  let r = runAt('push dword 0x3403\npopfd\npushfd\npop ebx\nint 0x80', { eflags: 0x202 });
  t.equal(r.tm.vector, EXIT_VECTOR, 'no fault');
  t.equal(hex(r.tm.reg(3)), hex(0x603), 'CF and DF taken, IF stays 1, IOPL stays 0');
  // IF=0: popping IF=1 does not set it.
  r = runAt('push dword 0x3203\npopfd\npushfd\npop ebx\nint 0x80', { eflags: 0x002 });
  t.equal(hex(r.tm.reg(3)), hex(0x003), 'IF stays 0, IOPL stays 0');
  // CPL 3 with IOPL 3: IF may change, IOPL may not.
  r = runAt('push dword 0x0003\npopfd\npushfd\npop ebx\nint 0x80', { eflags: 0x3202 });
  t.equal(hex(r.tm.reg(3)), hex(0x3003), 'IOPL 3 = CPL: IF cleared, IOPL kept');
  // CPL 0: both change.
  r = runAt('push dword 0x3003\npopfd\npushfd\npop ebx\nhlt', { cpl: 0, eflags: 0x202 });
  t.equal(hex(r.tm.reg(3)), hex(0x3003), 'CPL 0: IF and IOPL change');
});

// ------------------------------------------------------------------------------------------------
// #DE and #UD
// ------------------------------------------------------------------------------------------------

t.test('#DE: divide by zero and quotient overflow (no error code, EIP of the div)', async (t) => {
  const cases: [string, string][] = [
    ['div ecx, ecx=0', 'mov eax, 1\nxor edx, edx\nxor ecx, ecx\nfault: div ecx'],
    ['idiv ecx, ecx=0', 'mov eax, 1\nxor edx, edx\nxor ecx, ecx\nfault: idiv ecx'],
    ['div cl, cl=0', 'mov eax, 1\nxor ecx, ecx\nfault: div cl'],
    ['div ecx: EDX:EAX = 1:0 / 1 overflows 32 bits', 'xor eax, eax\nmov edx, 1\nmov ecx, 1\nfault: div ecx'],
    ['div cl: AX = 0x100 / 1 overflows 8 bits', 'mov eax, 0x100\nmov ecx, 1\nfault: div cl'],
    ['idiv ecx: -2^31 / -1', 'mov eax, 0x80000000\nmov edx, 0xFFFFFFFF\nmov ecx, -1\nfault: idiv ecx'],
    ['idiv cl: -128 / -1', 'mov eax, 0xFF80\nmov ecx, 0xFF\nfault: idiv cl'],
    ['idiv ecx: 2^31 / 1 (positive quotient 0x80000000 overflows)', 'mov eax, 0x80000000\nxor edx, edx\nmov ecx, 1\nfault: idiv ecx'],
  ];
  for (const [name, src] of cases) {
    t.test(name, async (tt) => {
      const r = runAt(src + '\nint 0x80');
      // Flags after the mov/xor setup: xor sets PF=1 ZF=1 (0x246) when it ran last before... keep
      // EFLAGS from the frame and check only the non-arithmetic part.
      tt.equal(r.stop.kind, 'hlt');
      tt.equal(hex(r.tm.vector), hex(DE), '#DE');
      const f = r.tm.stack(5);
      tt.same([f[0], f[1], f[3], f[4]].map(hex), [r.labels.get('fault')!, UCS, USTACK, UDS].map(hex), 'frame EIP CS ESP SS (no error code)');
      tt.equal(hex(f[2] & ~0x8d5), hex(0x10202), 'EFLAGS IF=1, RF=1');
      const before = runAt(src.replace(/fault: .*$/, 'int 0x80'));
      tt.equal(hex(r.tm.reg(EAX)), hex(before.tm.reg(EAX)), 'EAX unchanged by the faulting divide');
      tt.equal(hex(r.tm.reg(EDX)), hex(before.tm.reg(EDX)), 'EDX unchanged by the faulting divide');
    });
  }
});

t.test('#UD: ud2, undefined opcodes, sysenter/sysexit without SEP', async (t) => {
  const cases: [string, string, { cpl?: 0 | 3; cpu?: CpuModel }][] = [
    ['ud2', 'fault: ud2', {}],
    ['0F 04 (reserved opcode)', 'fault: db 0x0f, 0x04', {}],
    ['0F FF C0 (UD0 eax, eax: SDM "UD0 — raise invalid opcode exception")', 'fault: db 0x0f, 0xff, 0xc0', {}],
    ['0F B9 C0 (UD1 eax, eax)', 'fault: db 0x0f, 0xb9, 0xc0', {}],
    ['mov cs, ax (8E C8)', 'fault: db 0x8e, 0xc8', {}],
    ['lea with a register source (8D C1)', 'fault: db 0x8d, 0xc1', {}],
    ['lock nop (F0 90)', 'fault: db 0xf0, 0x90', {}],
    ['mov cr1, eax (0F 22 C8)', 'fault: db 0x0f, 0x22, 0xc8', { cpl: 0 }],
    ['sysenter on the int2e CPU', 'fault: sysenter', { cpu: 'int2e' }],
    ['sysexit on the int2e CPU at CPL 3 (#UD before the CPL check)', 'fault: sysexit', { cpu: 'int2e' }],
    ['sysexit on the int2e CPU at CPL 0', 'fault: sysexit', { cpu: 'int2e', cpl: 0 }],
  ];
  for (const [name, src, o] of cases) {
    t.test(name, async (tt) => {
      let r: Ran;
      try {
        r = runAt(src + '\nint 0x80', o);
      } catch (e) {
        tt.fail(`core bug: ${name} must raise #UD to the guest (SDM vol. 2 UD), but the emulator threw: ${(e as Error).message}`);
        return;
      }
      if (o.cpl === 0) expectKernelFault(tt, r, UD, null, r.labels.get('fault')!);
      else expectUserFault(tt, r, UD, null, r.labels.get('fault')!);
    });
  }
  t.test('sysexit at CPL 3 on the sysenter CPU is #GP(0), not #UD', async (tt) => {
    const r = runAt('fault: sysexit');
    expectUserFault(tt, r, GP, 0, r.labels.get('fault')!);
  });
});

// ------------------------------------------------------------------------------------------------
// Software interrupts and gates (SDM vol. 3 6.12.1.1, INT n in vol. 2: #GP(vector*8+2) when the
// gate's DPL < CPL; #NP(vector*8+2) when the gate is not present; EXT=0 for INT n/INT3/INTO)
// ------------------------------------------------------------------------------------------------

t.test('int 41h from ring 3 to a DPL-0 gate: #GP((41h<<3)|2) at the int instruction', async (t) => {
  const r = runAt('fault: int 0x41');
  expectUserFault(t, r, GP, (0x41 << 3) | 2, r.labels.get('fault')!);
});

t.test('int3 and into from ring 3 to DPL-0 gates: #GP(3*8+2), #GP(4*8+2)', async (t) => {
  let r = runAt('fault: int3');
  expectUserFault(t, r, GP, 0x1a, r.labels.get('fault')!);
  // into with OF=1: 0x7FFFFFFF + 1 overflows.
  r = runAt('mov eax, 0x7fffffff\nadd eax, 1\nfault: into');
  t.equal(hex(r.tm.vector), hex(GP));
  t.equal(hex(r.tm.stack(6)[0]), hex(0x22), 'error code (4<<3)|2');
  t.equal(hex(r.tm.stack(6)[1]), hex(r.labels.get('fault')!), 'EIP of into');
});

t.test('int 2Eh through a DPL-3 interrupt gate from ring 3: TSS stack switch and frame', async (t) => {
  const r = runAt('mov esp, 0x4FFF80\nint 0x2e\nafter: nop', { eflags: 0x246 });
  t.equal(r.stop.kind, 'hlt');
  t.equal(hex(r.tm.vector), hex(0x2e), 'the 2Eh handler ran');
  t.equal(r.tm.cpu.cpl, 0, 'CPL 0');
  t.equal(r.tm.cpu.segSel[1], KCS, 'CS = gate selector 08');
  t.equal(r.tm.cpu.segSel[2], KDS, 'SS = TSS.SS0 10');
  t.equal(hex(r.tm.reg(ESP)), hex(KSTACK - 20), 'ESP = TSS.ESP0 - 20');
  // A software interrupt is a trap: EIP after the instruction, EFLAGS as it was (RF clear).
  t.same(r.tm.stack(5).map(hex), [r.labels.get('after')!, UCS, 0x246, 0x4fff80, UDS].map(hex), 'frame EIP CS EFLAGS ESP SS');
  t.equal(r.tm.cpu.getEflags() & EFLAGS_IF, 0, 'interrupt gate cleared IF');
});

t.test('int 2Fh through a DPL-3 trap gate keeps IF', async (t) => {
  const r = runAt('int 0x2f\nafter: nop', { setup: (tm) => tm.setGate(0x2f, { dpl: 3, type: 'trap' }) });
  t.equal(hex(r.tm.vector), hex(0x2f));
  t.equal(r.tm.cpu.getEflags() & EFLAGS_IF, EFLAGS_IF, 'IF still set');
  t.same(r.tm.stack(5).map(hex), [r.labels.get('after')!, UCS, 0x202, USTACK, UDS].map(hex));
});

t.test('int 43h through a not-present DPL-3 gate: #NP((43h<<3)|2)', async (t) => {
  const r = runAt('fault: int 0x43', { setup: (tm) => tm.setGate(0x43, { dpl: 3, present: false }) });
  expectUserFault(t, r, NP, (0x43 << 3) | 2, r.labels.get('fault')!);
});

t.test('a fault whose gate is not present: #NP with EXT=1 ((v<<3)|2|1), delivered serially for a benign first fault', async (t) => {
  // #UD is benign (SDM table 6-4): #NP while delivering it is handled serially, not as #DF.
  const r = runAt('fault: ud2', { setup: (tm) => tm.setGate(UD, { present: false }) });
  expectUserFault(t, r, NP, (UD << 3) | 3, r.labels.get('fault')!);
});

t.test('int n with a vector beyond the IDT limit: #GP((n<<3)|2)', async (t) => {
  const tm = new TestMachine();
  const labels = tm.code(UCODE, 'fault: int 0x90');
  tm.start({ eip: UCODE, cpl: 3 });
  tm.cpu.idtrLimit = 0x47f; // vectors 0..8Fh
  tm.run();
  t.equal(hex(tm.vector), hex(GP));
  t.same(tm.stack(2).map(hex), [(0x90 << 3) | 2, labels.get('fault')!].map(hex), 'error code and EIP');
});

// ------------------------------------------------------------------------------------------------
// Double and triple faults (SDM vol. 3 6.15, interrupt 8, tables 6-4 and 6-5)
// ------------------------------------------------------------------------------------------------

/** Ring-1 handler: its stack (TSS.SS1:ESP1) is on a page that the test unmaps. */
function ring1Gate(tm: TestMachine, v: number): void {
  tm.setGate(v, { selector: 0x30 });
  tm.map(ESP1 - 0x1000, ESP1 - 0x1000, 0); // not present
}

t.test('#GP whose gate is not present: #NP is contributory, so #DF with error code 0', async (t) => {
  const r = runAt('fault: hlt', { setup: (tm) => tm.setGate(GP, { present: false }) });
  t.equal(r.stop.kind, 'hlt');
  t.equal(hex(r.tm.vector), hex(DF), '#DF delivered');
  t.equal(r.tm.cpu.cpl, 0);
  t.equal(hex(r.tm.reg(ESP)), hex(KSTACK - 24), 'frame with error code, SS and ESP on the ring-0 stack');
  const f = r.tm.stack(6);
  t.equal(f[0], 0, 'error code 0');
  // SDM: the saved CS:EIP of a #DF are undefined; SS:ESP are the interrupted ring-3 stack.
  t.same([f[4], f[5]].map(hex), [USTACK, UDS].map(hex), 'SS:ESP of ring 3');
  const ex = r.events.filter((e) => e.type === 'exception');
  t.same(ex.map((e) => e.type === 'exception' && [e.vector, e.errorCode]), [[DF, 0]], 'one exception event: #DF(0)');
});

t.test('#GP whose vector is beyond the IDT limit: #GP while delivering #GP is #DF(0)', async (t) => {
  const tm = new TestMachine();
  tm.code(UCODE, 'fault: hlt');
  tm.start({ eip: UCODE, cpl: 3 });
  tm.cpu.idtrLimit = 8 * 8 + 7; // vectors 0..8
  const stop = tm.run();
  t.equal(stop.kind, 'hlt');
  t.equal(hex(tm.vector), hex(DF));
  t.equal(tm.stack(1)[0], 0, 'error code 0');
});

t.test('#PF whose gate is not present: #NP after #PF is #DF(0)', async (t) => {
  const r = runAt('fault: mov eax, [0x00600000]', { setup: (tm) => tm.setGate(PF, { present: false }) });
  t.equal(hex(r.tm.vector), hex(DF));
  t.equal(r.tm.stack(1)[0], 0, 'error code 0');
  t.equal(hex(r.tm.cpu.cr2), hex(0x00600000), 'CR2 from the first #PF');
});

t.test('#PF while delivering #PF (handler stack not mapped): #DF(0)', async (t) => {
  // The #PF gate leads to a ring-1 handler whose stack (TSS.ESP1) is on a not-present page; the #DF
  // gate leads to ring 0 with a good stack.
  const r = runAt('fault: mov eax, [0x00600000]', { setup: (tm) => ring1Gate(tm, PF) });
  t.equal(r.stop.kind, 'hlt');
  t.equal(hex(r.tm.vector), hex(DF), '#DF delivered');
  t.equal(hex(r.tm.reg(ESP)), hex(KSTACK - 24), 'on the ring-0 stack');
  const f = r.tm.stack(6);
  t.equal(f[0], 0, 'error code 0');
  t.same([f[4], f[5]].map(hex), [USTACK, UDS].map(hex), 'SS:ESP of ring 3');
  // CR2 holds the address of the second #PF: a push of the ring-1 frame (which push faults first
  // the SDM does not say; all six lie on the unmapped page below ESP1).
  const cr2 = r.tm.cpu.cr2 >>> 0;
  t.ok(cr2 >= ESP1 - 24 && cr2 <= ESP1 - 4, `CR2 ${hex(cr2)} is a ring-1 frame slot`);
  t.same(r.events.filter((e) => e.type === 'exception').map((e) => e.type === 'exception' && e.vector), [DF], 'one exception event: #DF');
});

t.test('#PF while delivering #GP (contributory then #PF) is serial', async (t) => {
  // SDM table 6-5: contributory first, page fault second → handle the #PF serially.
  const r = runAt('fault: hlt', { setup: (tm) => ring1Gate(tm, GP) });
  t.equal(hex(r.tm.vector), hex(PF), '#PF delivered, not #DF');
  const f = r.tm.stack(6);
  // The ring-1 frame pushes are implicit supervisor-mode writes to a not-present page: P=0 W=1 U=0.
  t.equal(hex(f[0]), hex(2), 'error code 2 (not present, write, supervisor)');
  t.same(f.slice(1).map(hex), [r.labels.get('fault')!, UCS, 0x10202, USTACK, UDS].map(hex), 'EIP of the hlt, CS, EFLAGS, ESP, SS');
  const cr2 = r.tm.cpu.cr2 >>> 0;
  t.ok(cr2 >= ESP1 - 24 && cr2 <= ESP1 - 4, `CR2 ${hex(cr2)} is a ring-1 frame slot`);
});

t.test('#DE whose gate is not present: contributory + contributory is #DF', async (t) => {
  const r = runAt('xor ecx, ecx\nfault: div ecx', { setup: (tm) => tm.setGate(DE, { present: false }) });
  t.equal(hex(r.tm.vector), hex(DF));
  t.equal(r.tm.stack(1)[0], 0);
});

t.test('a fault while delivering #DF: triple fault, the run stops (recorded, not thrown)', async (t) => {
  t.test('#DF gate not present', async (tt) => {
    const r = runAt('fault: hlt', { setup: (tm) => { tm.setGate(GP, { present: false }); tm.setGate(DF, { present: false }); } });
    tt.equal(r.stop.kind, 'triple-fault');
    tt.match(r.stop.detail ?? '', /#NP.*#DF/, `detail names the faults: ${r.stop.detail}`);
    tt.equal(hex(r.tm.mem.read32(LOG)), hex(0xffffffff), 'no handler ran');
    const stops = r.events.filter((e) => e.type === 'machine-stop');
    tt.same(stops.map((e) => e.type === 'machine-stop' && e.reason), ['triple-fault'], 'machine-stop event');
    tt.same(r.events.filter((e) => e.type === 'exception'), [], 'no exception was delivered');
  });
  t.test('#PF, #PF (unmapped stack), #PF again delivering #DF (unmapped stack)', async (tt) => {
    const r = runAt('fault: mov eax, [0x00600000]', { setup: (tm) => { ring1Gate(tm, PF); ring1Gate(tm, DF); } });
    tt.equal(r.stop.kind, 'triple-fault');
    tt.equal(hex(r.tm.mem.read32(LOG)), hex(0xffffffff), 'no handler ran');
  });
  t.test('all handlers share the unmapped ring-0 stack (the classic kernel-stack overflow)', async (tt) => {
    const r = runAt('fault: mov eax, [0x00600000]', { setup: (tm) => tm.map(KSTACK - 0x1000, KSTACK - 0x1000, 0) });
    tt.equal(r.stop.kind, 'triple-fault');
  });
});

// ------------------------------------------------------------------------------------------------
// Events
// ------------------------------------------------------------------------------------------------

t.test('events: a user #GP emits exception and ring-transition (mechanism exception)', async (t) => {
  const r = runAt('nop\nfault: hlt');
  const fault = r.labels.get('fault')!;
  const ex = r.events.filter((e) => e.type === 'exception');
  const rt = r.events.filter((e) => e.type === 'ring-transition');
  t.equal(ex.length, 1, 'one exception event');
  const e = ex[0];
  if (e?.type === 'exception') {
    t.same({ vector: e.vector, errorCode: e.errorCode, cr2: e.cr2 }, { vector: GP, errorCode: 0, cr2: null }, 'vector, errorCode, cr2');
    t.equal(hex(e.faultEip), hex(fault), 'faultEip = the faulting instruction (events.ts: "The instruction that faulted")');
    t.equal(hex(e.eip), hex(fault), 'eip = the faulting instruction (events.ts: "eip of the event is the same")');
  }
  t.equal(rt.length, 1, 'one ring-transition event');
  const x = rt[0];
  if (x?.type === 'ring-transition') {
    t.same(
      { fromCpl: x.fromCpl, toCpl: x.toCpl, mechanism: x.mechanism, fromEip: hex(x.fromEip), toEip: hex(x.toEip), fromEsp: hex(x.fromEsp), toEsp: hex(x.toEsp), vector: x.vector },
      { fromCpl: 3, toCpl: 0, mechanism: 'exception', fromEip: hex(fault), toEip: hex(handler(GP)), fromEsp: hex(USTACK), toEsp: hex(KSTACK - 24), vector: GP },
    );
  }
});

t.test('events: a #PF carries cr2; a fault at CPL 0 has no ring transition', async (t) => {
  const r = runAt('fault: mov dword [0x00600004], 1\nhlt', { cpl: 0 });
  const ex = r.events.filter((e) => e.type === 'exception');
  t.same(ex.map((e) => e.type === 'exception' && { vector: e.vector, errorCode: e.errorCode, cr2: e.cr2 && hex(e.cr2) }), [{ vector: PF, errorCode: 2, cr2: hex(0x00600004) }]);
  t.same(r.events.filter((e) => e.type === 'ring-transition'), [], 'no ring transition');
});

t.test('events: #DE from ring 3 has errorCode null; int 2Eh is mechanism int, not exception', async (t) => {
  const r = runAt('xor ecx, ecx\ndiv ecx');
  const ex = r.events.filter((e) => e.type === 'exception');
  t.same(ex.map((e) => e.type === 'exception' && [e.vector, e.errorCode, e.cr2]), [[DE, null, null]]);
  const rt = r.events.filter((e) => e.type === 'ring-transition');
  t.same(rt.map((e) => e.type === 'ring-transition' && [e.mechanism, e.vector]), [['exception', DE]]);
  const s = runAt('int 0x2e');
  t.same(s.events.filter((e) => e.type === 'exception'), [], 'int 2Eh is not an exception');
  t.same(s.events.filter((e) => e.type === 'ring-transition').map((e) => e.type === 'ring-transition' && [e.mechanism, e.vector]), [['int', 0x2e]]);
});

t.test('events: benign then #NP delivers #NP only; the ring-3 #PF stream carries the #PF', async (t) => {
  const r = runAt('fault: ud2', { setup: (tm) => tm.setGate(UD, { present: false }) });
  t.same(r.events.filter((e) => e.type === 'exception').map((e) => e.type === 'exception' && [e.vector, e.errorCode]), [[NP, (UD << 3) | 3]]);
  const p = runAt('fault: mov eax, [0x00600010]');
  t.same(
    p.events.filter((e) => e.type !== 'instruction').map((e) => e.type === 'exception' ? ['exception', e.vector, e.errorCode, e.cr2] : e.type === 'ring-transition' ? ['ring', e.mechanism, e.fromCpl, e.toCpl] : [e.type]),
    [['ring', 'exception', 3, 0], ['exception', PF, 4, 0x00600010], ['machine-stop']],
  );
});

// ------------------------------------------------------------------------------------------------
// runCase (ntflow exec's engine): stops at the first exception and reports it
// ------------------------------------------------------------------------------------------------

t.test('runCase reports the first exception: vector, eip, error_code, cr2', async (t) => {
  let r = runCase({ code: '90f4', base: 0x401000 });
  t.same(r.exception, { vector: GP, eip: 0x401001, error_code: 0 }, 'hlt at CPL 3: #GP(0)');
  r = runCase({ code: '0f20d8', base: 0x401000 });
  t.same(r.exception, { vector: GP, eip: 0x401000, error_code: 0 }, 'mov eax, cr3 at CPL 3');
  r = runCase({ code: '8b0500006000', base: 0x401000, automap: false });
  t.same(r.exception, { vector: PF, eip: 0x401000, error_code: 4, cr2: 0x600000 }, 'user read of a not-present page: #PF(4)');
  r = runCase({ code: 'c70500006000' + '01000000', base: 0x401000, automap: false, cpl: 0 });
  t.same(r.exception, { vector: PF, eip: 0x401000, error_code: 2, cr2: 0x600000 }, 'supervisor write to a not-present page: #PF(2)');
  r = runCase({ code: '31c9f7f1', base: 0x401000 });
  t.same(r.exception, { vector: DE, eip: 0x401002 }, '#DE has no error code');
  r = runCase({ code: '0f34', base: 0x401000, cpu: 'int2e' });
  t.same(r.exception, { vector: UD, eip: 0x401000 }, 'sysenter on int2e: #UD');
});

void SS_; void P; void RW; void UDATA; void KCODE;

t.test('segment register loads: #GP(selector) for privilege and table violations', async (t) => {
  const cases: [string, string, number][] = [
    ['mov ds, 0x10 at CPL 3 (DPL 0 < CPL)', 'mov ax, 0x10\nfault: mov ds, ax', 0x10],
    ['mov ds, 0x20 (RPL 0 < ... DPL 3 data: allowed) then mov ss, 0x20 (RPL 0 != CPL 3)', 'mov ax, 0x20\nmov ds, ax\nfault: mov ss, ax', 0x20],
    ['mov ss, 0 at CPL 3: #GP(0)', 'xor eax, eax\nfault: mov ss, ax', 0],
    ['mov es, 0x48 (beyond the GDT limit 3Fh)', 'mov ax, 0x4b\nfault: mov es, ax', 0x48],
    ['mov fs, 0x0F (TI=1, no LDT)', 'mov ax, 0x0f\nfault: mov fs, ax', 0x0c],
    ['mov ds, 0x2B (the TSS: a system descriptor)', 'mov ax, 0x2b\nfault: mov ds, ax', 0x28],
  ];
  for (const [name, src, err] of cases) {
    t.test(name, async (tt) => {
      const r = runAt(src + '\nint 0x80');
      // mov to a segment register does not change the flags: EFLAGS as set by the last xor or 0x202.
      const eflags = src.startsWith('xor') ? 0x246 : 0x202;
      expectUserFault(tt, r, GP, err, r.labels.get('fault')!, eflags);
    });
  }
});
