// The seed listings (DESIGN.md's byte table, from the OSR article's WinDbg session): the assembler
// produces their bytes and the disassembler prints them as WinDbg does.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assemble } from '../core/asm/index.js';
import { disassemble, type SymbolLookup } from '../core/disasm/index.js';
import { haveOracle } from './util/oracle.js';

const SYMBOLS: Record<string, number> = {
  'nt!KiFastCallEntry': 0x8053a270,
  'nt!KiSystemService': 0x8053a2fb,
  'nt!_SEH_prolog': 0x805352d8,
  'nt!ZwReadFile': 0x80504d4c,
  'nt!NtReadFile': 0x8056b2ec,
};
const resolveSymbol = (module: string, name: string) => SYMBOLS[`${module}!${name}`];

/** Nearest symbol at or below the address (within 4 KB), as WinDbg's `ln` finds it. */
const symbols: SymbolLookup = {
  lookup(address) {
    let best: { module: string; name: string; offset: number } | undefined;
    for (const [full, start] of Object.entries(SYMBOLS)) {
      const offset = address - start;
      if (offset < 0 || offset >= 0x1000 || (best && best.offset <= offset)) continue;
      const [module, name] = full.split('!') as [string, string];
      best = { module, name, offset };
    }
    return best;
  },
};

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

interface Seed {
  name: string;
  address: number;
  source: string[];
  bytes: string;
  windbg: string[];
}

const seeds: Seed[] = [
  {
    name: 'ntdll!NtReadFile',
    address: 0x77f761e8,
    source: ['mov eax, 0B7h', 'mov edx, 7FFE0300h', 'call edx', 'ret 24h'],
    bytes: 'b8b7000000 ba0003fe7f ffd2 c22400',
    windbg: ['mov eax,0B7h', 'mov edx,7FFE0300h', 'call edx', 'ret 24h'],
  },
  {
    name: 'SharedUserData!SystemCallStub',
    address: 0x7ffe0300,
    source: ['{load} mov edx, esp', 'sysenter', 'ret'],
    bytes: '8bd4 0f34 c3',
    windbg: ['mov edx,esp', 'sysenter', 'ret'],
  },
  {
    name: 'nt!ZwReadFile',
    address: 0x80504d4c,
    source: ['mov eax, 0B7h', 'lea edx, [esp+4]', 'pushfd', 'push 8', 'call nt!KiSystemService', 'ret 24h'],
    bytes: 'b8b7000000 8d542404 9c 6a08 e89e550300 c22400',
    windbg: ['mov eax,0B7h', 'lea edx,[esp+4]', 'pushfd', 'push 8', 'call nt!KiSystemService (8053a2fb)', 'ret 24h'],
  },
  {
    name: "nt!NtReadFile's prologue",
    address: 0x8056b2ec,
    source: [
      'push 58h',
      'push 804E0458h',
      'call nt!_SEH_prolog',
      // The compiler of XP's kernel chose the reg,r/m form (33 FF); nasm would write 31 FF.
      '{load} xor edi, edi',
      'mov dword ptr [ebp-1Ch], edi',
      'mov [ebp-20h], edi',
      'mov [ebp-28h], edi',
      'mov [ebp-24h], edi',
      'mov eax, fs:[124h]',
      'mov [ebp-2Ch], eax',
      'mov al, byte ptr [eax+140h]',
      'mov [ebp-30h], al',
      'push edi',
      'lea eax, [ebp-34h]',
      'push eax',
      'push dword ptr [ebp-30h]',
    ],
    bytes: '6a58 6858044e80 e8e09ffcff 33ff 897de4 897de0 897dd8 897ddc 64a124010000 8945d4 8a8040010000 8845d0 57 8d45cc 50 ff75d0',
    windbg: [
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
    ],
  },
  {
    name: "KiFastCallEntry's last instruction",
    address: 0x8053a2f9,
    // An absolute target is near by default (as in nasm); the seed has the short form.
    source: ['jmp short nt!KiSystemService+0x5c'],
    bytes: 'eb5c',
    windbg: ['jmp nt!KiSystemService+0x5c (8053a357)'],
  },
];

for (const seed of seeds) {
  t.test(`${seed.name} at ${seed.address.toString(16)}`, async (t) => {
    const source = seed.source.join('\n');
    const assembled = assemble(source, { origin: seed.address, resolveSymbol, fileName: `${seed.name}.asm` });
    t.equal(hex(assembled.bytes), seed.bytes.replace(/ /g, ''), 'the assembler gives the seed bytes');

    const lines = disassemble(assembled.bytes, seed.address, { symbols });
    t.same(lines.map((l) => l.text), seed.windbg, 'the disassembler prints them as WinDbg');
    t.same(
      lines.map((l) => hex(l.bytes)),
      seed.bytes.split(' '),
      'one line per seed instruction',
    );
    t.equal(lines[0]!.address, seed.address, 'starting at the seed address');
  });
}

t.test('nt!ZwReadFile and the prologue encode the same under nasm', async (t: Test) => {
  if (!haveOracle({ skip: (m) => void t.skip(m ?? ''), fail: (m) => void t.fail(m ?? '') }, 'nasm')) return;
  const work = mkdtempSync(join(tmpdir(), 'ntflow-seed-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  for (const seed of seeds) {
    // nasm knows neither module!Name (given as its absolute address), MASM's ptr nor {load}.
    const source = seed.source
      .map((line) => line.replace(/\b(\w+)!(\w+)/g, (m) => `0x${SYMBOLS[m]!.toString(16)}`).replace(/\bptr\b/g, '').replace('{load} ', ''))
      .join('\n');
    writeFileSync(join(work, 'seed.asm'), `bits 32\norg 0x${seed.address.toString(16)}\n${source}\n`);
    const run = spawnSync('nasm', ['-f', 'bin', join(work, 'seed.asm'), '-o', join(work, 'seed.bin')], { encoding: 'utf8' });
    t.equal(run.status, 0, `nasm assembles ${seed.name} ${run.stderr}`);
    const ours = assemble(source, { origin: seed.address });
    t.equal(hex(ours.bytes), hex(readFileSync(join(work, 'seed.bin'))), `${seed.name}: the same bytes as nasm`);
  }
});
