// Every address and byte sequence of DESIGN.md's table, read back from a booted guest through its
// page tables (both CPU models), plus the WinDbg rendering of the seed listings.
import t from 'tap';
import { Guest, disassemble, type ProgramSource } from '../core/index.js';

const PROGRAM: ProgramSource = { fileName: 'noop.asm', source: '; ntflow: user\nstart:\n    xor eax, eax\n    ret\n' };

function hexBytes(s: string): number[] {
  return s.split(/\s+/).filter(Boolean).map((b) => parseInt(b, 16));
}

function boot(cpu: 'sysenter' | 'int2e'): { g: Guest; peek: (addr: number, n: number) => number[] } {
  const g = Guest.boot({ cpu, program: PROGRAM });
  // Run the (empty) program: the first run switches to its thread and address space, where the
  // user-mode views (ntdll, SharedUserData) are mapped.
  g.run(10_000);
  const peek = (addr: number, n: number) => g.machine.cpu.mmu.peekBytes(addr, n).map((b) => (b === null ? -1 : b));
  return { g, peek };
}

const SEED: [string, number, string][] = [
  ['ntdll!NtReadFile', 0x77f761e8, 'b8 b7 00 00 00 ba 00 03 fe 7f ff d2 c2 24 00'],
  ['SharedUserData!SystemCallStub (user view)', 0x7ffe0300, '8b d4 0f 34 c3'],
  ['SharedUserData!SystemCallStub (kernel view)', 0xffdf0300, '8b d4 0f 34 c3'],
  ['nt!KiFastCallEntry last instruction', 0x8053a2f9, 'eb 5c'],
  [
    'nt!NtReadFile prologue',
    0x8056b2ec,
    '6a 58 68 58 04 4e 80 e8 e0 9f fc ff 33 ff 89 7d e4 89 7d e0 89 7d d8 89 7d dc 64 a1 24 01 00 00 89 45 d4 8a 80 40 01 00 00 88 45 d0 57 8d 45 cc 50 ff 75 d0',
  ],
  ['nt!ZwReadFile', 0x80504d4c, 'b8 b7 00 00 00 8d 54 24 04 9c 6a 08 e8 9e 55 03 00 c2 24 00'],
];

t.test('the seed bytes at the seed addresses (sysenter CPU)', async (t) => {
  const { g, peek } = boot('sysenter');
  for (const [what, addr, bytes] of SEED) t.same(peek(addr, hexBytes(bytes).length), hexBytes(bytes), what);
  t.equal(g.symbols.resolve('ntdll', 'NtReadFile'), 0x77f761e8, 'ntdll!NtReadFile');
  t.equal(g.symbols.resolve('ntdll', 'ZwReadFile'), 0x77f761e8, 'ntdll!ZwReadFile is the same address');
  t.equal(g.symbols.resolve('nt', 'KiFastCallEntry'), 0x8053a270, 'nt!KiFastCallEntry');
  t.equal(g.symbols.resolve('nt', 'KiSystemService'), 0x8053a2fb, 'nt!KiSystemService');
  t.equal(g.symbols.resolve('nt', 'NtReadFile'), 0x8056b2ec, 'nt!NtReadFile');
  t.equal(g.symbols.resolve('nt', 'ZwReadFile'), 0x80504d4c, 'nt!ZwReadFile');
  t.equal(g.symbols.resolve('nt', '_SEH_prolog'), 0x805352d8, 'nt!_SEH_prolog');
  t.equal(g.machine.cpu.sysenterEip >>> 0, 0x8053a270, 'MSR 0x176 = nt!KiFastCallEntry');
  t.equal(g.machine.cpu.sysenterCs, 8, 'MSR 0x174 = 8');
  const mmUserProbeAddress = g.symbols.resolve('nt', 'MmUserProbeAddress')!;
  t.same(peek(mmUserProbeAddress, 4), [0x00, 0x00, 0xff, 0x7f], 'nt!MmUserProbeAddress holds 0x7FFF0000');
  // The KPCR: fs:[124h] is the current thread's KTHREAD (the program's, after boot).
  const current = peek(0xffdff124, 4).reduce((v, b, i) => v + b * 256 ** i, 0);
  t.equal(current, g.kernel.currentThread().kthread, 'KPCR+0x124 = the current KTHREAD');
  t.equal(g.kernel.currentThread().process.name, 'noop.exe', 'the program thread ran');
});

t.test('SharedUserData: one physical page, user read-only and kernel writable', async (t) => {
  const { g } = boot('sysenter');
  const mmu = g.machine.cpu.mmu;
  t.equal(mmu.peek(0x7ffe0000), mmu.peek(0xffdf0000), 'both views map the same physical page');
  const r = (lin: number) => mmu.translate(lin, false, true);
  const w = (lin: number, user: boolean) => mmu.translate(lin, true, user);
  t.type(r(0x7ffe0300), 'number', 'user may read 0x7FFE0300');
  t.not(typeof w(0x7ffe0300, true), 'number', 'user may not write 0x7FFE0300');
  t.not(typeof r(0xffdf0300), 'number', 'user may not read 0xFFDF0300');
  t.type(w(0xffdf0300, false), 'number', 'the kernel may write 0xFFDF0300');
});

t.test('without SYSENTER SharedUserData+0x300 holds KiIntSystemCall', async (t) => {
  const { g, peek } = boot('int2e');
  t.same(peek(0x7ffe0300, 7), hexBytes('8d 54 24 08 cd 2e c3'), 'lea edx,[esp+8]; int 2Eh; ret');
  t.same(peek(0x77f761e8, 15), hexBytes('b8 b7 00 00 00 ba 00 03 fe 7f ff d2 c2 24 00'), 'the ntdll stub is the same');
  t.equal(g.symbols.resolve('SharedUserData', 'KiIntSystemCall'), 0x7ffe0300);
});

t.test('the seed listings print in WinDbg form, with symbols', async (t) => {
  const { g, peek } = boot('sysenter');
  const listing = (addr: number, count: number) =>
    disassemble(Uint8Array.from(peek(addr, 64)), addr, { symbols: g.symbols, count }).map((l) => l.text);
  t.same(listing(0x77f761e8, 4), ['mov eax,0B7h', 'mov edx,7FFE0300h', 'call edx', 'ret 24h']);
  t.same(listing(0x7ffe0300, 3), ['mov edx,esp', 'sysenter', 'ret']);
  t.same(listing(0x80504d4c, 6), ['mov eax,0B7h', 'lea edx,[esp+4]', 'pushfd', 'push 8', 'call nt!KiSystemService (8053a2fb)', 'ret 24h']);
  t.same(listing(0x8053a2f9, 1), ['jmp nt!KiSystemService+0x5c (8053a357)']);
  t.same(listing(0x8056b2ec, 16), [
    'push 58h',
    'push 804E0458h',
    'call nt!_SEH_prolog (805352d8)',
    'xor edi,edi',
    'mov dword ptr [ebp-1Ch],edi',
    'mov dword ptr [ebp-20h],edi',
    'mov dword ptr [ebp-28h],edi',
    'mov dword ptr [ebp-24h],edi',
    'mov eax,dword ptr fs:[00000124h]',
    'mov dword ptr [ebp-2Ch],eax',
    'mov al,byte ptr [eax+140h]',
    'mov byte ptr [ebp-30h],al',
    'push edi',
    'lea eax,[ebp-34h]',
    'push eax',
    'push dword ptr [ebp-30h]',
  ]);
});

t.test('KiSystemService builds its frame in exactly 0x5C bytes; KiFastCallEntry does the same in 0x89', async (t) => {
  const { g, peek } = boot('sysenter');
  const ks = 0x8053a2fb;
  const lines = disassemble(Uint8Array.from(peek(ks, 0x80)), ks, { symbols: g.symbols, count: 40 });
  const sti = lines.find((l) => l.text === 'sti');
  t.ok(sti, 'KiSystemService enables interrupts');
  t.equal(sti!.address + sti!.length, ks + 0x5c, 'the dispatch starts right after sti, at KiSystemService+0x5C');
  const fast = disassemble(Uint8Array.from(peek(0x8053a270, 0x8b)), 0x8053a270, { symbols: g.symbols });
  t.equal(fast.at(-1)!.address, 0x8053a2f9, 'KiFastCallEntry ends with its jmp at +0x89');
  t.equal(fast.at(-2)!.text, 'sti', 'after sti, with the frame complete');
});
