// Code written at run time executes as written: the decoded-instruction cache (keyed by physical
// page) is dropped when guest code, another linear alias of the same page, or the loader writes it.
// Every case runs twice: untraced (the fast loop) and traced (the tracing loop).
//   npx tsc -p tsconfig.json && npx tap dist/test/smc.test.js
import t from 'tap';
import { assemble, Machine, type TraceEvent } from '../core/index.js';

const CODE = 0x10000;
const STACK = 0x80000;
const hex = (v: number): string => '0x' + (v >>> 0).toString(16);

interface Run {
  m: Machine;
  labels: Map<string, number>;
  events: TraceEvent[];
}

/** Assemble `src` at CODE on a flat ring-0 machine (paging off) and run it until `done` or the limit. */
function runFlat(src: string, traced: boolean, opts: { max?: number; setup?: (m: Machine) => void } = {}): Run {
  const m = new Machine({ memorySize: 0x400000 });
  const a = assemble(src, { origin: CODE });
  m.loadPhysical(CODE, a.bytes);
  m.cpu.enterFlatProtectedMode({ eip: CODE, esp: STACK, cpl: 0 });
  opts.setup?.(m);
  const events: TraceEvent[] = [];
  const sub = traced ? m.events$.subscribe((e) => events.push(e)) : null;
  untilDone(m, a.labels.get('done'), opts.max ?? 1000);
  sub?.unsubscribe();
  return { m, labels: a.labels, events };
}

/** Run until EIP reaches `done` (checked after each instruction... in chunks small enough to stop there). */
function untilDone(m: Machine, done: number | undefined, max: number): void {
  if (done === undefined) {
    m.run({ maxInstructions: max });
    return;
  }
  for (let n = 0; n < max && m.cpu.eip >>> 0 !== done; n++) {
    const r = m.run({ maxInstructions: 1 });
    if (r.kind !== 'instruction-limit') throw new Error(`machine stopped: ${r.kind} ${r.detail ?? ''} at ${hex(m.cpu.eip)}`);
  }
  if (m.cpu.eip >>> 0 !== done) throw new Error(`did not reach done (${hex(done)}); eip ${hex(m.cpu.eip)}`);
}

/** A one-shot run (a single m.run call) so the loop never leaves the hot path between the write and the re-execution. */
function runFlatOneShot(src: string, traced: boolean, instructions: number): Run {
  const m = new Machine({ memorySize: 0x400000 });
  const a = assemble(src, { origin: CODE });
  m.loadPhysical(CODE, a.bytes);
  m.cpu.enterFlatProtectedMode({ eip: CODE, esp: STACK, cpl: 0 });
  const events: TraceEvent[] = [];
  const sub = traced ? m.events$.subscribe((e) => events.push(e)) : null;
  m.run({ maxInstructions: instructions });
  sub?.unsubscribe();
  return { m, labels: a.labels, events };
}

for (const traced of [false, true]) {
  const mode = traced ? 'traced' : 'untraced';

  t.test(`${mode}: an executed add patched into a sub runs as sub the second time`, async (t) => {
    // Pass 1 executes `add eax, ebx` (01 d8), then the code turns its opcode into 29 (sub) and
    // loops: pass 2 must subtract. 10 + 3 - 3 = 10; a stale cache gives 16.
    const src = `
  mov eax, 10
  mov ebx, 3
  mov ecx, 2
again:
op:
  add eax, ebx
  mov byte [op], 0x29
  dec ecx
  jnz again
  hlt
`;
    // count: 3 + 2 * 4 = 11 instructions, then hlt
    const r = runFlatOneShot(src, traced, 11);
    t.equal(r.m.cpu.regs[0], 10, 'eax = 10 + 3 - 3');
    t.equal(r.m.mem.read8(r.labels.get('op')!), 0x29);
    if (traced) {
      const atOp = r.events.filter((e) => e.type === 'instruction' && e.eip === r.labels.get('op'));
      t.same(atOp.map((e) => e.type === 'instruction' && [...e.bytes]), [[0x01, 0xd8], [0x29, 0xd8]], 'instruction events show the bytes that ran');
    }
  });

  t.test(`${mode}: patching the very next instruction, already decoded on an earlier pass`, async (t) => {
    // Pass 1 stores 0x90 over `target` (a nop, unchanged) and runs it; pass 2 stores 0x40
    // (inc eax) right before `target` executes again.
    const src = `
  xor eax, eax
  mov dl, 0x90
  mov ecx, 2
top:
  mov [target], dl
target:
  nop
  mov dl, 0x40
  dec ecx
  jnz top
done:
  nop
`;
    const r = runFlatOneShot(src, traced, 3 + 2 * 5);
    t.equal(r.m.cpu.eip >>> 0, r.labels.get('done'), 'reached done');
    t.equal(r.m.cpu.regs[0], 1, 'the patched byte ran as inc eax');
  });

  t.test(`${mode}: a hooked jmp (KiFastCallEntry-style inline hook) goes to the new target`, async (t) => {
    // `entry` jumps to `original` (jmp rel32); after one call, the "driver" rewrites the rel32 to
    // reach `hook`, which records the call and chains to `original`.
    const src = `
  xor esi, esi
  xor edi, edi
  call entry
  ; install the hook: rel32 = hook - (patch + 5)
  mov eax, hook
  sub eax, patch + 5
  mov [patch + 1], eax
  call entry
  call entry
done:
  nop
entry:
patch:
  jmp near original   ; e9 rel32
original:
  inc esi
  ret
hook:
  inc edi
  jmp original
`;
    const r = runFlat(src, traced);
    t.equal(r.m.cpu.regs[6], 3, 'original ran three times');
    t.equal(r.m.cpu.regs[7], 2, 'the hook ran for the two calls after patching');
    if (traced) {
      const jmps = r.events.filter((e) => e.type === 'instruction' && e.eip === r.labels.get('patch'));
      t.same(jmps.map((e) => e.type === 'instruction' && hex(e.nextEip)), [hex(r.labels.get('original')!), hex(r.labels.get('hook')!), hex(r.labels.get('hook')!)]);
    }
  });

  t.test(`${mode}: a rep stosb / rep movsb over code that already ran`, async (t) => {
    // `body` (mov eax, 1; nop...) is overwritten with `mov eax, 2` by rep movsb from `newbody`.
    const src = `
  mov ebx, 2
again:
  call body
  add ebp, eax
  mov esi, newbody
  mov edi, body
  mov ecx, 6
  rep movsb
  dec ebx
  jnz again
done:
  nop
body:
  mov eax, 1
  ret
newbody:
  mov eax, 100
  ret
`;
    const r = runFlat(src, traced);
    t.equal(r.m.cpu.regs[5], 101, 'ebp = 1 + 100');
  });

  t.test(`${mode}: a write through a second linear mapping (alias) of the code page invalidates`, async (t) => {
    // Paging on. Linear 0x00400000 (executable view) and 0x00800000 (alias) map the same physical
    // page 0x10000; the code patches its own `add` through the alias, then runs it again.
    const src = `
  mov eax, 10
  mov ebx, 3
  mov ecx, 2
again:
op:
  add eax, ebx
  mov byte [op - 0x00400000 + 0x00800000], 0x29
  dec ecx
  jnz again
done:
  nop
`;
    const m = new Machine({ memorySize: 0x400000 });
    const a = assemble(src, { origin: 0x00400000 });
    m.loadPhysical(0x10000, a.bytes);
    const PD = 0x100000;
    const PT_CODE = 0x101000; // 0x00400000..
    const PT_ALIAS = 0x102000; // 0x00800000..
    const PT_LOW = 0x103000; // stack: identity 0..4 MiB
    m.mem.write32(PD + 0 * 4, PT_LOW | 3);
    m.mem.write32(PD + 1 * 4, PT_CODE | 3);
    m.mem.write32(PD + 2 * 4, PT_ALIAS | 3);
    for (let i = 0; i < 1024; i++) m.mem.write32(PT_LOW + i * 4, (i << 12) | 3);
    m.mem.write32(PT_CODE, 0x10000 | 3);
    m.mem.write32(PT_ALIAS, 0x10000 | 3);
    m.cpu.enterFlatProtectedMode({ eip: 0x00400000, esp: STACK, cpl: 0 });
    m.cpu.cr3 = PD;
    m.cpu.writeCr(0, m.cpu.cr0 | 0x80000000);
    const events: TraceEvent[] = [];
    const sub = traced ? m.events$.subscribe((e) => events.push(e)) : null;
    m.run({ maxInstructions: 3 + 2 * 4 });
    sub?.unsubscribe();
    t.equal(m.cpu.eip >>> 0, a.labels.get('done'), 'reached done');
    t.equal(m.cpu.regs[0], 10, 'eax = 10 + 3 - 3: the alias write was seen');
    t.equal(m.mem.read8(0x10000 + (a.labels.get('op')! - 0x00400000)), 0x29);
    if (traced) {
      const w = events.filter((e) => e.type === 'instruction' && e.writes.length > 0).map((e) => (e.type === 'instruction' ? e.writes.slice(0, 2) : []));
      t.same(w[0], [a.labels.get('op')! - 0x00400000 + 0x00800000, 1], 'the write is reported at its linear (alias) address');
    }
  });

  t.test(`${mode}: the same physical code run through two linear mappings branches within each`, async (t) => {
    // The code page is mapped at 0x00400000 and 0x00800000. Run the code (a relative call and a
    // short jmp) at the first address, then at the second: relative branches are relative to where
    // the code runs, so the second run must stay in 0x008xxxxx.
    const src = `
start:
  call here
here:
  pop eax            ; eax = address of 'here' as executed
  jmp short skip
  nop
skip:
  mov ebx, skip_mark ; not used for control flow
skip_mark:
  nop
done:
  nop
`;
    const m = new Machine({ memorySize: 0x400000 });
    const a = assemble(src, { origin: 0 });
    m.loadPhysical(0x10000, a.bytes);
    const PD = 0x100000;
    const PT_LOW = 0x103000;
    const PT_A = 0x101000;
    const PT_B = 0x102000;
    m.mem.write32(PD + 0 * 4, PT_LOW | 3);
    m.mem.write32(PD + 1 * 4, PT_A | 3);
    m.mem.write32(PD + 2 * 4, PT_B | 3);
    for (let i = 0; i < 1024; i++) m.mem.write32(PT_LOW + i * 4, (i << 12) | 3);
    m.mem.write32(PT_A, 0x10000 | 3);
    m.mem.write32(PT_B, 0x10000 | 3);
    const events: TraceEvent[] = [];
    const sub = traced ? m.events$.subscribe((e) => events.push(e)) : null;
    for (const base of [0x00400000, 0x00800000]) {
      m.cpu.enterFlatProtectedMode({ eip: base, esp: STACK, cpl: 0 });
      m.cpu.cr3 = PD;
      m.cpu.writeCr(0, m.cpu.cr0 | 0x80000000);
      m.run({ maxInstructions: 4 }); // call, pop, jmp, mov
      t.equal(hex(m.cpu.regs[0]), hex(base + a.labels.get('here')!), `run at ${hex(base)}: call pushed the return address in this mapping`);
      t.equal(hex(m.cpu.eip), hex(base + a.labels.get('skip_mark')!), `run at ${hex(base)}: call and jmp short stayed in this mapping (a cached Op's absolute branch target, decoded at the other mapping, must not be reused)`);
    }
    sub?.unsubscribe();
  });

  t.test(`${mode}: m.loadPhysical over code that already ran invalidates it`, async (t) => {
    const m = new Machine({ memorySize: 0x400000 });
    m.loadPhysical(CODE, assemble('  mov eax, 1\n  nop\n').bytes);
    m.cpu.enterFlatProtectedMode({ eip: CODE, esp: STACK, cpl: 0 });
    const events: TraceEvent[] = [];
    const sub = traced ? m.events$.subscribe((e) => events.push(e)) : null;
    m.run({ maxInstructions: 2 });
    t.equal(m.cpu.regs[0], 1);
    m.loadPhysical(CODE, assemble('  mov eax, 2\n  nop\n').bytes);
    m.cpu.eip = CODE;
    m.run({ maxInstructions: 2 });
    t.equal(m.cpu.regs[0], 2, 'the reloaded bytes ran');
    // the loader writing one byte into the middle of an instruction also counts
    m.loadPhysical(CODE + 1, Uint8Array.of(3));
    m.cpu.eip = CODE;
    m.run({ maxInstructions: 1 });
    t.equal(m.cpu.regs[0], 3, 'a one-byte reload inside the immediate');
    // and a direct physical write (m.mem.write8, as a DMA-like device or service body would)
    m.mem.write8(CODE + 1, 4);
    m.cpu.eip = CODE;
    m.run({ maxInstructions: 1 });
    t.equal(m.cpu.regs[0], 4, 'm.mem.write8 into cached code');
    sub?.unsubscribe();
    if (traced) {
      t.same(
        events.filter((e) => e.type === 'instruction' && e.eip === CODE).map((e) => e.type === 'instruction' && [...e.bytes]),
        [[0xb8, 1, 0, 0, 0], [0xb8, 2, 0, 0, 0], [0xb8, 3, 0, 0, 0], [0xb8, 4, 0, 0, 0]],
      );
    }
  });

  t.test(`${mode}: an instruction straddling a page boundary is dropped when its second page is written`, async (t) => {
    // `mov eax, imm32` starting 2 bytes before a page end: its immediate's last 3 bytes are on the
    // next page. The code patches the immediate's top byte (on the second page) and reruns it.
    const start = CODE + 0x1000 - 2 - 20;
    const src = `
  mov ecx, 2
again:
  jmp short straddle
  times 13 db 0x90
straddle:
  mov eax, 0x11223344   ; b8 44 33 22 11: b8 44 on the first page, 33 22 11 on the second
  mov byte [straddle + 4], 0x99
  dec ecx
  jnz again
done:
  nop
`;
    const a = assemble(src, { origin: start });
    t.equal(a.labels.get('straddle'), CODE + 0x1000 - 2, 'layout: the mov starts 2 bytes before the page end');
    const m = new Machine({ memorySize: 0x400000 });
    m.loadPhysical(start, a.bytes);
    m.cpu.enterFlatProtectedMode({ eip: start, esp: STACK, cpl: 0 });
    const sub = traced ? m.events$.subscribe(() => {}) : null;
    m.run({ maxInstructions: 1 + 2 * 5 });
    sub?.unsubscribe();
    t.equal(hex(m.cpu.eip), hex(a.labels.get('done')!));
    t.equal(hex(m.cpu.regs[0]), hex(0x99223344), 'the second run saw the patched byte on the next page');
  });

  t.test(`${mode}: a page-table change (with invlpg) runs the newly mapped code`, async (t) => {
    // Linear 0x00400000 maps physical 0x10000 (mov eax, 1) and then 0x11000 (mov eax, 2).
    const m = new Machine({ memorySize: 0x400000 });
    m.loadPhysical(0x10000, assemble('  mov eax, 1\n').bytes);
    m.loadPhysical(0x11000, assemble('  mov eax, 2\n').bytes);
    const PD = 0x100000;
    const PT = 0x101000;
    const PT_LOW = 0x103000;
    m.mem.write32(PD, PT_LOW | 3);
    m.mem.write32(PD + 4, PT | 3);
    for (let i = 0; i < 1024; i++) m.mem.write32(PT_LOW + i * 4, (i << 12) | 3);
    m.mem.write32(PT, 0x10000 | 3);
    m.cpu.enterFlatProtectedMode({ eip: 0x00400000, esp: STACK, cpl: 0 });
    m.cpu.cr3 = PD;
    m.cpu.writeCr(0, m.cpu.cr0 | 0x80000000);
    const sub = traced ? m.events$.subscribe(() => {}) : null;
    m.run({ maxInstructions: 1 });
    t.equal(m.cpu.regs[0], 1);
    m.mem.write32(PT, 0x11000 | 3);
    m.cpu.invlpg(0x00400000);
    m.cpu.eip = 0x00400000;
    m.run({ maxInstructions: 1 });
    t.equal(m.cpu.regs[0], 2, 'the new physical page ran');
    sub?.unsubscribe();
  });
}
