// Far transfers and segment-pointer loads (issue L §5, points 3 and 4). SDM vol. 2: JMP and CALL
// (protected mode: code segment, call gate, task gate, TSS — each with its privilege, type and
// present checks before anything changes), RET and IRET (a system descriptor where a code
// segment is expected is #GP(selector); IRET with NT = 1 returns to the TSS back link: #TS(link)
// unless it names a busy TSS; 16-bit forms), LDS/LES/LFS/LGS/LSS (the MOV-to-segment checks:
// #GP/#SS/#NP with the selector, the register written only after the segment loaded).
// Task switches and CALL through a call gate to a more privileged segment are emulator gaps
// past those checks; a ring-3 program can never reach them through the guest's GDT (no DPL-3
// system descriptors), which the first group shows. The qemu oracle checks the ring-3 cases too.
//   npx tsc -p tsconfig.json && npx tap dist/test/cpu-far.test.js
import t, { type Test } from 'tap';
import { EmulatorError } from '../core/index.js';
import { TestMachine, UCODE, USTACK, KCODE, KSTACK, UCS, UDS, KCS, KDS, TSS, EXIT_VECTOR, EAX, EBX, ESP } from './util/machine.js';

const GP = 13, NP = 11, SS_ = 12, TS = 10, PF = 14;
const hex = (n: number) => '0x' + (n >>> 0).toString(16).toUpperCase();
const GDT = 0x1000;
const TSS2 = 0x3800;
const LOW = 0xe000; // code reachable with a 16-bit offset (ring 0)

/** Extra GDT entries from 0x40 on (the test machine has 00-38). */
function segment(dpl: number, type: number, present = true): [number, number] {
  const access = (present ? 0x80 : 0) | (dpl << 5) | 0x10 | type;
  return [0x0000ffff, (0x00cf0000 | (access << 8)) >>> 0];
}
function gate(type: number, dpl: number, sel: number, offset: number, present = true): [number, number] {
  return [((sel & 0xffff) << 16) | (offset & 0xffff), ((offset & 0xffff0000) | (present ? 0x8000 : 0) | (dpl << 13) | (type << 8)) >>> 0];
}
function tssDescriptor(base: number, dpl: number, type = 0x9): [number, number] {
  return [((base & 0xffff) << 16) | 0x67, ((base >>> 16) & 0xff) | ((0x80 | (dpl << 5) | type) << 8) | (base & 0xff000000)];
}

const ENTRIES: Record<number, [number, number] | ((labels: Map<string, number>) => [number, number])> = {
  0x40: (l) => gate(0xc, 3, KCS, l.get('ktarget') ?? 0), // DPL-3 call gate to ring-0 code
  0x48: (l) => gate(0xc, 3, UCS, l.get('utarget') ?? 0), // DPL-3 call gate to ring-3 code
  0x50: (l) => gate(0xc, 0, UCS, l.get('utarget') ?? 0), // DPL-0 call gate
  0x58: (l) => gate(0xc, 3, UCS, l.get('utarget') ?? 0, false), // not present
  0x60: gate(0xc, 3, UDS, 0), // to a data segment
  0x68: gate(0xc, 3, 0, 0), // to the null selector
  0x70: gate(0x5, 3, 0x78, 0), // task gate to the available TSS below
  0x78: tssDescriptor(TSS2, 3), // available 32-bit TSS, DPL 3
  0x80: [0x0000ffff, 0x00008200], // an LDT descriptor
  0x88: gate(0x4, 0, KCS, LOW), // 16-bit call gate, DPL 0
  0x90: segment(0, 0xe), // conforming code, DPL 0
  0x98: tssDescriptor(TSS2, 0), // available TSS, DPL 0
  0xa0: segment(3, 0x2, false), // ring-3 data, not present
  0xa8: segment(3, 0x0), // ring-3 data, read-only
  0xb0: gate(0x5, 3, 0x28, 0), // task gate to the busy TSS 28
  0xb8: (l) => gate(0xc, 3, 0x90, l.get('utarget') ?? 0), // DPL-3 gate to the conforming ring-0 code
};

interface Ran {
  tm: TestMachine;
  labels: Map<string, number>;
  stop: { kind: string };
  error: Error | null;
}

function run(src: string, o: { cpl?: 0 | 3; kernel?: string; setup?: (tm: TestMachine) => void } = {}): Ran {
  const tm = new TestMachine();
  const cpl = o.cpl ?? 3;
  const labels = tm.code(cpl === 3 ? UCODE : KCODE, src);
  if (o.kernel !== undefined) for (const [k, v] of tm.code(0x28000, o.kernel)) labels.set(k, v);
  for (const [sel, e] of Object.entries(ENTRIES)) {
    const [lo, hi] = typeof e === 'function' ? e(labels) : e;
    tm.mem.write32(GDT + Number(sel), lo);
    tm.mem.write32(GDT + Number(sel) + 4, hi);
  }
  tm.start({ eip: cpl === 3 ? UCODE : KCODE, cpl });
  tm.cpu.gdtrLimit = 0xff;
  o.setup?.(tm);
  let stop = { kind: 'none' };
  let error: Error | null = null;
  try {
    stop = tm.run(10000);
  } catch (e) {
    error = e as Error;
  }
  return { tm, labels, stop, error };
}

/** A fault from ring 3 with an error code: frame err EIP CS EFLAGS ESP SS on the TSS stack. */
function expectUser(t: Test, r: Ran, vector: number, err: number, label = 'fault', esp = USTACK, eflags = 0x10202): void {
  t.equal(r.error, null, 'no emulator error');
  t.equal(hex(r.tm.vector), hex(vector), `vector ${vector}`);
  t.same(r.tm.stack(6).map(hex), [err, r.labels.get(label)!, UCS, eflags, esp, UDS].map(hex), `error code ${hex(err)}, EIP of the instruction`);
}
function expectKernel(t: Test, r: Ran, vector: number, err: number, label = 'fault'): void {
  t.equal(r.error, null, 'no emulator error');
  t.equal(hex(r.tm.vector), hex(vector), `vector ${vector}`);
  t.same(r.tm.stack(4).map(hex), [err, r.labels.get(label)!, KCS, 0x10202].map(hex), `error code ${hex(err)}, EIP of the instruction`);
}

// ------------------------------------------------------------------------------------------------

t.test('ring 3 through the guest\'s own descriptors: always #GP(selector), never an emulator error', async (t) => {
  // The GDT the guest builds has no DPL-3 system descriptor: 28 is the (busy, DPL-0) TSS.
  const cases: [string, string, number][] = [
    ['jmp 28h:0 (TSS)', 'fault: jmp 0x28:0', 0x28],
    ['call 28h:0 (TSS)', 'fault: call 0x28:0', 0x28],
    ['jmp far [m16:32] naming the TSS', 'mov dword [0x410000], 0\nmov word [0x410004], 0x28\nfault: jmp far [0x410000]', 0x28],
    ['call far [m16:32] naming the TSS', 'mov dword [0x410000], 0\nmov word [0x410004], 0x2b\nfault: call far [0x410000]', 0x28],
    ['call far [m16:16] naming the TSS (66h)', 'mov word [0x410000], 0\nmov word [0x410002], 0x28\nfault: db 0x66, 0xff, 0x1d, 0x00, 0x00, 0x41, 0x00', 0x28],
    ['jmp 08h:0 (ring-0 code)', 'fault: jmp 0x08:0', 0x08],
    ['jmp 10h:0 (data)', 'fault: jmp 0x10:0', 0x10],
    ['jmp 0:0 (null)', 'fault: jmp 0:0', 0],
    ['jmp 0Fh:0 (LDT selector, no LDT)', 'fault: jmp 0x0f:0', 0x0c],
    ['jmp 1000h:0 (past the GDT)', 'fault: jmp 0x1000:0', 0x1000],
    ['call 50h:0 (DPL-0 call gate)', 'fault: call 0x50:0', 0x50],
    ['jmp 98h:0 (DPL-0 available TSS)', 'fault: jmp 0x98:0', 0x98],
    ['jmp 80h:0 (LDT descriptor)', 'fault: jmp 0x80:0', 0x80],
    ['call 63h:0 (a DPL-3 gate whose target is a data segment)', 'fault: call 0x63:0', 0x20],
    ['jmp B0h:0 (task gate to the busy TSS)', 'fault: jmp 0xb3:0', 0x28],
    ['jmp 40h:0 (call gate to ring 0: JMP never changes privilege)', 'fault: jmp 0x43:0', 0x08],
    ['call 68h:0 (gate to the null selector)', 'fault: call 0x6b:0', 0],
  ];
  for (const [name, src, err] of cases) {
    const r = run(`${src}\nint 0x80`);
    t.test(name, async (tt) => expectUser(tt, r, GP, err));
  }
  const np = run('fault: call 0x5b:0\nint 0x80');
  t.test('call 58h:0 (gate not present): #NP(58)', async (tt) => expectUser(tt, np, NP, 0x58));
});

t.test('JMP/CALL through a DPL-3 call gate to ring-3 code: same privilege, CS = the gate\'s selector with RPL = CPL', async (t) => {
  const c = run('mov eax, 1\nfault: call 0x4b:0x12345678\nafter: nop\nutarget: int 0x80');
  t.equal(hex(c.tm.vector), hex(EXIT_VECTOR), 'reached the gate target');
  const frame = c.tm.stack(5);
  t.same([hex(frame[0]!), hex(frame[1]!), hex(frame[3]!)], [hex(c.labels.get('utarget')! + 2), hex(UCS), hex(USTACK - 8)], 'int 80h from the target, CS 1B, ESP - 8');
  t.same([hex(c.tm.mem.read32(USTACK - 8)), hex(c.tm.mem.read32(USTACK - 4))], [hex(c.labels.get('after')!), hex(UCS)], 'CALL pushed EIP then CS on the ring-3 stack');
  const j = run('fault: jmp 0x4b:0\nafter: nop\nutarget: int 0x80');
  t.equal(hex(j.tm.stack(5)[3]!), hex(USTACK), 'JMP through the gate pushes nothing');
  // A conforming ring-0 code segment through a DPL-3 gate: CPL stays 3, CS RPL 3.
  const conf = run('fault: call 0xbb:0\nafter: nop\nutarget: mov ax, cs\nmov [0x410000], eax\nint 0x80');
  t.equal(hex(conf.tm.vector), hex(EXIT_VECTOR), 'conforming target reached');
  t.equal(conf.tm.mem.read32(0x410000) & 0xffff, 0x93, 'CS = 90h | RPL 3');
  t.equal(hex(conf.tm.stack(5)[1]!), hex(0x93), 'CPL still 3 (the int 80h frame has CS 93h)');
  // JMP straight to the conforming segment: allowed too (DPL 0 <= CPL 3).
  const jc = run('fault: jmp 0x90:target\ntarget: int 0x80');
  t.equal(hex(jc.tm.stack(5)[1]!), hex(0x93), 'jmp 90h: CS 93h');
});

t.test('emulator gaps past every check: task switches, inner-privilege call gates', async (t) => {
  const cases: [string, string, 0 | 3, RegExp][] = [
    ['call 40h:0 from ring 3 (DPL-3 gate to ring 0)', 'call 0x43:0', 3, /inner-privilege call gates are not emulated/],
    ['jmp 78h:0 from ring 3 (DPL-3 available TSS)', 'jmp 0x7b:0', 3, /far jmp to TSS 0x007B \(task switches are not emulated\)/],
    ['jmp 70h:0 from ring 3 (task gate to an available TSS)', 'jmp 0x73:0', 3, /task gate 0x0073 to TSS 0x0078/],
    ['call 98h:0 at ring 0 (DPL-0 available TSS)', 'call 0x98:0', 0, /far call to TSS 0x0098/],
  ];
  for (const [name, src, cpl, re] of cases) {
    const r = run(`${src}\nhlt`, { cpl });
    t.test(name, async (tt) => {
      tt.type(r.error, EmulatorError, 'an EmulatorError');
      tt.match(r.error?.message ?? '', re, 'naming the transfer');
    });
  }
  const busy = run('fault: jmp 0x28:0\nhlt', { cpl: 0 });
  t.test('jmp 28h:0 at ring 0: the TSS is busy: #GP(28)', async (tt) => expectKernel(tt, busy, GP, 0x28));
});

t.test('a 16-bit call gate at ring 0 pushes CS:IP as words and jumps to a 16-bit offset', async (t) => {
  const r = run('mov esp, 0x8fff0\ncall 0x88:0\nafter: hlt', {
    cpl: 0,
    setup: (tm) => tm.code(LOW, 'hlt'),
  });
  t.equal(r.stop.kind, 'hlt');
  t.equal(hex(r.tm.cpu.eip), hex(LOW + 1), 'at the gate target');
  t.equal(hex(r.tm.reg(ESP)), hex(0x8fff0 - 4), 'ESP - 4');
  t.same([hex(r.tm.mem.read16(0x8fff0 - 4)), hex(r.tm.mem.read16(0x8fff0 - 2))], [hex(r.labels.get('after')! & 0xffff), hex(KCS)], 'IP then CS, 16 bits each');
});

t.test('RETF / IRETD to a system selector: #GP(selector), not an emulator error', async (t) => {
  const a = run('push dword 0x28\npush dword 0\nfault: retf\nhlt', { cpl: 0 });
  t.test('retf to 28h', async (tt) => expectKernel(tt, a, GP, 0x28));
  const b = run('push dword 0x202\npush dword 0x40\npush dword 0\nfault: iretd\nhlt', { cpl: 0 });
  t.test('iretd to 40h (a call gate)', async (tt) => expectKernel(tt, b, GP, 0x40));
  const c = run('push dword 0x2b\npush dword 0\nfault: retf\nint 0x80');
  t.test('retf to 2Bh from ring 3', async (tt) => expectUser(tt, c, GP, 0x28, 'fault', USTACK - 8));
});

t.test('IRET with EFLAGS.NT: a task return through the TSS back link', async (t) => {
  const nt = 'push dword 0x4202\npopfd\npush dword 0x202\npush dword 0x1b\npush dword 0\nfault: iretd\nint 0x80';
  const r = run(nt);
  t.test('null back link, ring 3: #TS(0)', async (tt) => expectUser(tt, r, TS, 0, 'fault', USTACK - 12, 0x14202));
  const k = (link: number) => run('push dword 0x4002\npopfd\npush dword 0x2\npush dword 0x08\npush dword 0\nfault: iretd\nhlt', { cpl: 0, setup: (tm) => tm.mem.write16(TSS, link) });
  t.test('back link to an available TSS: #TS(98)', async (tt) => {
    const r2 = k(0x98);
    tt.equal(hex(r2.tm.vector), hex(TS));
    tt.equal(hex(r2.tm.stack(1)[0]!), hex(0x98));
  });
  t.test('back link with TI = 1: #TS(link)', async (tt) => {
    const r2 = k(0x2c);
    tt.equal(hex(r2.tm.vector), hex(TS));
    tt.equal(hex(r2.tm.stack(1)[0]!), hex(0x2c));
  });
  t.test('back link to a busy TSS: the task switch itself is an emulator gap', async (tt) => {
    const r2 = k(0x28);
    tt.type(r2.error, EmulatorError);
    tt.match(r2.error?.message ?? '', /IRET with EFLAGS\.NT set to TSS 0x0028/);
  });
});

t.test('16-bit IRET and RETF (66h): IP, CS and FLAGS as words', async (t) => {
  const r = run('mov esp, 0x8fff0\npush word 0x0ad7\npush word 0x08\npush word 0xe000\niretw\nhlt', {
    cpl: 0,
    setup: (tm) => tm.code(LOW, 'pushfd\npop ebx\nhlt'),
  });
  t.equal(hex(r.tm.cpu.eip), hex(LOW + 3), 'IRETW went to 08:E000');
  t.equal(hex(r.tm.reg(EBX) & 0xffff), hex(0x0ad7), 'FLAGS low word loaded');
  t.equal(hex(r.tm.reg(ESP)), hex(0x8fff0), 'ESP + 6');
  const f = run('mov esp, 0x8fff0\npush word 0x08\npush word 0xe000\ndb 0x66, 0xcb\nhlt', { cpl: 0, setup: (tm) => tm.code(LOW, 'hlt') });
  t.same([hex(f.tm.cpu.eip), hex(f.tm.reg(ESP))], [hex(LOW + 1), hex(0x8fff0)], 'RETF (16-bit) went to 08:E000, ESP + 4');
});

// ------------------------------------------------------------------------------------------------
// LDS LES LFS LGS LSS
// ------------------------------------------------------------------------------------------------

const PTR = 0x410000;
function farPointer(tm: TestMachine, offset: number, sel: number, size = 4): void {
  if (size === 4) tm.mem.write32(PTR, offset);
  else tm.mem.write16(PTR, offset);
  tm.mem.write16(PTR + size, sel);
}

t.test('LDS/LES/LFS/LGS/LSS r32, m16:32 and r16, m16:16 load the segment and the register', async (t) => {
  const SEGS: [string, number][] = [['lds', 3], ['les', 0], ['lfs', 4], ['lgs', 5], ['lss', 2]];
  for (const [insn, seg] of SEGS) {
    const reg = insn === 'lss' ? 'esp' : 'ebx';
    const r2 = run(`mov ebx, 0x11110000\n${insn} ${reg}, [${PTR}]\nmov [0x410100], ${reg}\nint 0x80`, { setup: (tm) => farPointer(tm, 0x004ffe00, 0x23) });
    t.test(`${insn} ${reg}, m16:32`, async (tt) => {
      tt.equal(hex(r2.tm.vector), hex(EXIT_VECTOR), 'no fault');
      tt.equal(hex(r2.tm.mem.read32(0x410100)), hex(0x004ffe00), `${reg} = the offset`);
      // (for LSS: the int 80h frame's SS:ESP, the handler runs on the kernel stack)
      if (insn === 'lss') tt.same(r2.tm.stack(5).slice(3).map(hex), [0x004ffe00, 0x23].map(hex), 'SS:ESP = 23h:offset');
      else tt.equal(r2.tm.cpu.segSel[seg], 0x23, 'the segment register = 23h');
    });
  }
  const w = run(`mov ebx, 0x11112222\nlgs bx, [${PTR}]\nint 0x80`, { setup: (tm) => farPointer(tm, 0x3344, 0x1b, 2) });
  t.equal(hex(w.tm.reg(EBX)), hex(0x11113344), 'lgs bx, m16:16: BX = the offset, the high half kept');
  t.equal(w.tm.cpu.segSel[5], 0x1b, 'GS = 1Bh (readable code is allowed)');
  const n = run(`lds ebx, [${PTR}]\nfault: mov eax, [ebx]\nint 0x80`, { setup: (tm) => farPointer(tm, 0x410000, 0) });
  t.equal(hex(n.tm.vector), hex(GP), 'lds with a null selector loads DS = 0; the next DS access is #GP(0)');
  t.equal(hex(n.tm.stack(1)[0]!), hex(0), '... error code 0');
});

t.test('LxS faults: the selector in the error code, and neither register changed', async (t) => {
  const cases: [string, string, number, number, number][] = [
    // [name, instruction, selector, vector, error code]
    ['lds with a DPL-0 data segment at CPL 3', 'lds eax', 0x10, GP, 0x10],
    ['les with ring-0 code (08h)', 'les eax', 0x08, GP, 0x08],
    ['lfs with the TSS', 'lfs eax', 0x28, GP, 0x28],
    ['lgs past the GDT limit', 'lgs eax', 0x400, GP, 0x400],
    ['lgs with an LDT selector', 'lgs eax', 0x27, GP, 0x24],
    ['lds with a not-present segment', 'lds eax', 0xa3, NP, 0xa0],
    ['lss with a null selector', 'lss eax', 0x0, GP, 0],
    ['lss with a read-only data segment', 'lss eax', 0xab, GP, 0xa8],
    ['lss with a code segment', 'lss eax', 0x1b, GP, 0x18],
    ['lss with RPL 3 but DPL 0', 'lss eax', 0x13, GP, 0x10],
    ['lss with a not-present segment', 'lss eax', 0xa3, SS_, 0xa0],
  ];
  for (const [name, insn, sel, vector, err] of cases) {
    const r = run(`mov eax, 0x55aa55aa\nfault: ${insn}, [${PTR}]\nint 0x80`, { setup: (tm) => farPointer(tm, 0x1234, sel) });
    t.test(name, async (tt) => {
      expectUser(tt, r, vector, err);
      tt.equal(hex(r.tm.reg(EAX)), hex(0x55aa55aa), 'EAX unchanged');
    });
  }
  const pf = run('fault: lds eax, [0x600000]\nint 0x80');
  t.equal(hex(pf.tm.vector), hex(PF), 'the far pointer on an unmapped page: #PF');
  void KSTACK;
  void KDS;
});
