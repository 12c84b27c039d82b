// Port I/O above IOPL (issue L §5, point 2): IN, OUT, INS, OUTS (all sizes, REP) consult the TSS
// I/O permission bitmap when CPL > IOPL (SDM vol. 1 19.5.2 "I/O Permission Bit Map", vol. 3 and
// the IN/OUT/INS/OUTS pages): every bit of the accessed bytes must be clear, the two bitmap bytes
// read must lie within the TSS limit, otherwise #GP(0) before any port or memory access. Also the
// string forms' ES:[E]DI / DS:[E]SI, DF, REP and 0x67 (16-bit SI/DI/CX) handling.
//   npx tsc -p tsconfig.json && npx tap dist/test/cpu-io.test.js
import t, { type Test } from 'tap';
import { runCase } from '../core/index.js';
import { TestMachine, UCODE, USTACK, UCS, UDS, GDT, TSS, EXIT_VECTOR, EAX, ECX, ESI, EDI } from './util/machine.js';

const GP = 13, PF = 14;
const hex = (n: number) => '0x' + (n >>> 0).toString(16).toUpperCase();
const BUF = 0x410000;
/** Ports 0-3FFh have bitmap bits; the byte after them is the required all-ones byte. */
const MAP_BASE = 0x68;
const MAP_BYTES = 0x80;

interface Ran {
  tm: TestMachine;
  labels: Map<string, number>;
  bus: string[];
}

/**
 * Run `src` at CPL 3 (or 0). `denied` (ports) builds an I/O bitmap covering ports 0-3FFh in the
 * TSS (limit 68h + 80h); without it the TSS has no bitmap (map base = limit + 1). Port reads
 * return the bytes A0h, A1h, A2h, A3h.
 */
function run(src: string, o: { cpl?: 0 | 3; eflags?: number; denied?: number[]; setup?: (tm: TestMachine) => void } = {}): Ran {
  const tm = new TestMachine();
  const labels = tm.code(o.cpl === 0 ? 0x20000 : UCODE, src);
  if (o.denied !== undefined) {
    const limit = MAP_BASE + MAP_BYTES; // the 0xFF byte is the last one inside the limit
    tm.mem.write32(GDT + 0x28, ((TSS & 0xffff) << 16) | limit);
    tm.mem.write32(TSS + 0x64, MAP_BASE << 16);
    for (let i = 0; i < MAP_BYTES; i++) tm.mem.write8(TSS + MAP_BASE + i, 0);
    tm.mem.write8(TSS + MAP_BASE + MAP_BYTES, 0xff);
    for (const p of o.denied) tm.mem.write8(TSS + MAP_BASE + (p >> 3), tm.mem.read8(TSS + MAP_BASE + (p >> 3)) | (1 << (p & 7)));
  }
  const bus: string[] = [];
  tm.m.io.out = (port, size, v) => void bus.push(`out ${hex(port)}/${size} ${hex(v)}`);
  tm.m.io.in = (port, size) => {
    bus.push(`in ${hex(port)}/${size}`);
    let v = 0;
    for (let i = 0; i < size; i++) v |= (0xa0 + i) << (8 * i);
    return v >>> 0;
  };
  tm.start({ eip: o.cpl === 0 ? 0x20000 : UCODE, cpl: o.cpl ?? 3, eflags: o.eflags });
  o.setup?.(tm);
  tm.run(10000);
  return { tm, labels, bus };
}

function expectGp(t: Test, r: Ran, label = 'fault'): void {
  t.equal(hex(r.tm.vector), hex(GP), '#GP');
  t.same(r.tm.stack(6).map(hex), [0, r.labels.get(label)!, UCS, 0x10202, USTACK, UDS].map(hex), 'frame: error code 0, EIP of the instruction');
  t.same(r.bus, [], 'no port access reached the bus');
}

// Every form, on a permitted and on a denied port.
const FORMS: [name: string, src: (port: number) => string, bus: (port: number) => string[]][] = [
  ['in al, dx', (p) => `mov dx, ${p}\nfault: in al, dx`, (p) => [`in ${hex(p)}/1`]],
  ['in ax, dx', (p) => `mov dx, ${p}\nfault: in ax, dx`, (p) => [`in ${hex(p)}/2`]],
  ['in eax, dx', (p) => `mov dx, ${p}\nfault: in eax, dx`, (p) => [`in ${hex(p)}/4`]],
  ['in al, imm8', (p) => `fault: in al, ${p}`, (p) => [`in ${hex(p)}/1`]],
  ['out dx, al', (p) => `mov dx, ${p}\nmov al, 0x11\nfault: out dx, al`, (p) => [`out ${hex(p)}/1 0x11`]],
  ['out imm8, eax', (p) => `mov eax, 0x11223344\nfault: out ${p}, eax`, (p) => [`out ${hex(p)}/4 0x11223344`]],
  ['insb', (p) => `mov dx, ${p}\nmov edi, ${BUF}\nfault: insb`, (p) => [`in ${hex(p)}/1`]],
  ['insw', (p) => `mov dx, ${p}\nmov edi, ${BUF}\nfault: insw`, (p) => [`in ${hex(p)}/2`]],
  ['insd', (p) => `mov dx, ${p}\nmov edi, ${BUF}\nfault: insd`, (p) => [`in ${hex(p)}/4`]],
  ['outsb', (p) => `mov dx, ${p}\nmov esi, ${BUF}\nmov dword [${BUF}], 0x44332211\nfault: outsb`, (p) => [`out ${hex(p)}/1 0x11`]],
  ['outsw', (p) => `mov dx, ${p}\nmov esi, ${BUF}\nmov dword [${BUF}], 0x44332211\nfault: outsw`, (p) => [`out ${hex(p)}/2 0x2211`]],
  ['outsd', (p) => `mov dx, ${p}\nmov esi, ${BUF}\nmov dword [${BUF}], 0x44332211\nfault: outsd`, (p) => [`out ${hex(p)}/4 0x44332211`]],
  ['rep insb', (p) => `mov dx, ${p}\nmov edi, ${BUF}\nmov ecx, 2\nfault: rep insb`, (p) => [`in ${hex(p)}/1`, `in ${hex(p)}/1`]],
  ['rep outsd', (p) => `mov dx, ${p}\nmov esi, ${BUF}\nmov ecx, 2\nfault: rep outsd`, (p) => [`out ${hex(p)}/4 0x0`, `out ${hex(p)}/4 0x0`]],
];

t.test('CPL 3, IOPL 0, bitmap permits the port: every form reaches the bus', async (t) => {
  for (const [name, src, bus] of FORMS) {
    const r = run(`${src(0x60)}\nint 0x80`, { denied: [0x64, 0x5f] });
    t.test(name, async (tt) => {
      tt.equal(hex(r.tm.vector), hex(EXIT_VECTOR), 'no fault');
      tt.same(r.bus, bus(0x60), 'the port access');
    });
  }
});

t.test('CPL 3, IOPL 0, the port bit set: #GP(0) before any access, registers unchanged', async (t) => {
  for (const [name, src] of FORMS) {
    const r = run(`${src(0x60)}\nint 0x80`, { denied: [0x60] });
    t.test(name, async (tt) => {
      expectGp(tt, r);
      tt.same([r.tm.reg(ESI), r.tm.reg(EDI)].map(hex), [name.includes('outs') ? BUF : 0, name.includes('ins') ? BUF : 0].map(hex), 'ESI/EDI not advanced');
      if (name.startsWith('rep')) tt.equal(r.tm.reg(ECX), 2, 'ECX not counted down');
      if (name.startsWith('ins') || name === 'rep insb') tt.equal(r.tm.mem.read32(BUF), 0, 'nothing stored');
    });
  }
});

t.test('CPL 3 without an I/O bitmap (map base past the TSS limit): every form is #GP(0)', async (t) => {
  for (const [name, src] of FORMS) {
    const r = run(`${src(0x60)}\nint 0x80`);
    t.test(name, async (tt) => expectGp(tt, r));
  }
});

t.test('multi-byte accesses need every byte\'s bit; the two bitmap bytes must be inside the limit', async (t) => {
  const cases: [string, string, number[], boolean][] = [
    ['in eax, dx at 3Eh with 41h denied', 'mov dx, 0x3e\nfault: in eax, dx', [0x41], false],
    ['in eax, dx at 3Eh with 42h denied', 'mov dx, 0x3e\nfault: in eax, dx', [0x42], true],
    ['in ax, dx at 47h with 48h denied (the next bitmap byte)', 'mov dx, 0x47\nfault: in ax, dx', [0x48], false],
    ['in al, dx at 3FFh (last port of the map)', 'mov dx, 0x3ff\nfault: in al, dx', [], true],
    ['in ax, dx at 3FFh (400h: the all-ones byte)', 'mov dx, 0x3ff\nfault: in ax, dx', [], false],
    ['in al, dx at 400h (past the limit)', 'mov dx, 0x400\nfault: in al, dx', [], false],
    ['out dx, al at FFFFh', 'mov dx, 0xffff\nfault: out dx, al', [], false],
  ];
  for (const [name, src, denied, ok] of cases) {
    const r = run(`${src}\nint 0x80`, { denied });
    t.test(name, async (tt) => {
      if (ok) tt.equal(hex(r.tm.vector), hex(EXIT_VECTOR), 'permitted');
      else expectGp(tt, r);
    });
  }
});

t.test('IOPL 3 at CPL 3, and CPL 0: no bitmap check', async (t) => {
  const a = run(`mov dx, 0x60\nmov edi, ${BUF}\ninsb\nint 0x80`, { eflags: 0x3202, denied: [0x60] });
  t.same(a.bus, ['in 0x60/1'], 'IOPL 3: insb reads the denied port');
  const b = run(`mov dx, 0x60\nmov esi, ${BUF}\noutsb\nhlt`, { cpl: 0, denied: [0x60] });
  t.same(b.bus, ['out 0x60/1 0x0'], 'CPL 0: outsb writes the denied port');
});

t.test('INS stores at ES:EDI and steps EDI by the size, down with DF; REP counts ECX', async (t) => {
  const r = run(`mov dx, 0x60\nmov edi, ${BUF + 8}\nmov ecx, 3\nstd\nrep insw\ncld\nint 0x80`, { denied: [] });
  t.same(r.bus, ['in 0x60/2', 'in 0x60/2', 'in 0x60/2'], 'three word reads');
  t.same([r.tm.reg(EDI), r.tm.reg(ECX)].map(hex), [BUF + 2, 0].map(hex), 'EDI moved down by 6, ECX = 0');
  t.same([BUF + 4, BUF + 6, BUF + 8].map((a) => hex(r.tm.mem.read16(a))), [0x0a1a0, 0x0a1a0, 0x0a1a0].map(hex), 'AX values stored downwards');
  const d = run(`mov dx, 0x60\nmov edi, ${BUF}\ninsd\nint 0x80`, { denied: [] });
  t.same([hex(d.tm.mem.read32(BUF)), hex(d.tm.reg(EDI))], [hex(0xa3a2a1a0), hex(BUF + 4)], 'insd: dword stored, EDI + 4');
});

t.test('OUTS reads DS:ESI (a segment override applies); INS always writes ES:EDI', async (t) => {
  const r = run(`mov dx, 0x60\nmov esi, 0x10\nmov ecx, 2\ndb 0x64, 0xf3, 0x6e\nint 0x80`, {
    denied: [],
    setup: (tm) => {
      tm.cpu.setSegmentDirect(4, 0x23, BUF, 0xffffffff, 3); // FS base BUF
      tm.mem.write32(BUF + 0x10, 0x00005a4b);
    },
  });
  t.same(r.bus, ['out 0x60/1 0x4B', 'out 0x60/1 0x5A'], 'fs: rep outsb reads from FS base + ESI');
  t.equal(hex(r.tm.reg(ESI)), hex(0x12), 'ESI + 2');
  const w = run(`mov dx, 0x60\nmov edi, ${BUF}\ndb 0x64, 0x6c\nint 0x80`, {
    denied: [],
    setup: (tm) => tm.cpu.setSegmentDirect(4, 0x23, 0x1000, 0xffffffff, 3),
  });
  t.equal(w.tm.mem.read8(BUF), 0xa0, 'fs: insb still stores at ES:EDI');
});

t.test('0x67 prefix: 16-bit SI/DI/CX, wrapping at 64 KiB, the high halves kept', async (t) => {
  const r = run(`mov dx, 0x60\nmov esi, 0x0041FFFF\nmov ecx, 0x00070002\ndb 0x67, 0xf3, 0x6e\nint 0x80`, {
    denied: [],
    setup: (tm) => {
      tm.map(0xf000, 0xf000, 7); // user pages for DS:FFFFh and DS:0
      tm.map(0, 0, 7);
      tm.mem.write8(0xffff, 0x77);
      tm.mem.write8(0x0, 0x66);
    },
  });
  t.same(r.bus, ['out 0x60/1 0x77', 'out 0x60/1 0x66'], 'reads DS:FFFFh then DS:0000h');
  t.same([r.tm.reg(ESI), r.tm.reg(ECX)].map(hex), [0x00410001, 0x00070000].map(hex), 'SI wrapped to 1 (ESI high half kept), CX = 0 (ECX high half kept)');
  const i = run(`mov dx, 0x60\nmov edi, 0x00410010\ndb 0x67, 0x6c\nint 0x80`, { denied: [], setup: (tm) => tm.map(0, 0, 7) });
  t.equal(i.tm.mem.read8(0x10), 0xa0, 'a16 insb stores at ES:DI = 10h');
  t.equal(hex(i.tm.reg(EDI)), hex(0x00410011), 'DI + 1, high half kept');
});

t.test('INS to an unwritable destination: #PF before the port is read (restartable)', async (t) => {
  const r = run(`mov dx, 0x60\nmov edi, 0x600000\nfault: insb\nint 0x80`, { denied: [] });
  t.equal(hex(r.tm.vector), hex(PF), '#PF');
  t.equal(hex(r.tm.cpu.cr2), hex(0x600000), 'CR2');
  t.same(r.bus, [], 'the port was not read');
  t.equal(hex(r.tm.reg(EDI)), hex(0x600000), 'EDI unchanged');
});

t.test('the permission check comes first: a denied port with an unmapped buffer is #GP, not #PF', async (t) => {
  const r = run(`mov dx, 0x60\nmov esi, 0x600000\nfault: outsb\nint 0x80`, { denied: [0x60] });
  expectGp(t, r);
  const z = run(`mov dx, 0x60\nxor ecx, ecx\nfault: rep outsb\nint 0x80`, { denied: [0x60] });
  t.equal(hex(z.tm.vector), hex(GP), 'REP with ECX = 0 on a denied port: still #GP (checked before the count, as qemu does)');
  const ok = run(`mov dx, 0x60\nxor ecx, ecx\nrep outsb\nint 0x80`, { denied: [] });
  t.same([hex(ok.tm.vector), ok.bus.length], [hex(EXIT_VECTOR), 0], 'REP with ECX = 0 on a permitted port: nothing');
});

t.test('ntflow exec (CPL 3, no TSS): string port instructions are #GP(0)', async (t) => {
  for (const code of ['6c', '6d', '6e', '6f', 'f36e', '666d']) {
    t.same(runCase({ code }).exception, { vector: 13, eip: 0x401000, error_code: 0 }, code);
  }
  void EAX;
});
