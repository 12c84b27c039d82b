// WinDbg-style formatting: branch targets with and without symbols, memory sizes, segment
// overrides, 16-bit forms, prefixes and bytes that decode to nothing.
import t from 'tap';
import { disassemble, formatBytes, type SymbolLookup } from '../core/disasm/index.js';

const KI_SYSTEM_SERVICE = 0x8053a2fb;
const MM_USER_PROBE_ADDRESS = 0x8053a56c;
const KE_SERVICE_DESCRIPTOR_TABLE = 0x8056c518;
const LOW = 0x8000; // a symbol below 0x10000: its addresses stay numbers
const SYMBOLS: [number, number, string][] = [
  [KI_SYSTEM_SERVICE, 0x100, 'KiSystemService'],
  [MM_USER_PROBE_ADDRESS, 4, 'MmUserProbeAddress'],
  [KE_SERVICE_DESCRIPTOR_TABLE, 0x40, 'KeServiceDescriptorTable'],
  [LOW, 0x100, 'LowData'],
];
const symbols: SymbolLookup = {
  lookup: (address) => {
    const s = SYMBOLS.find(([start, size]) => address >= start && address < start + size);
    return s ? { module: 'nt', name: s[2], offset: address - s[0] } : undefined;
  },
};

const bytes = (hex: string) => Uint8Array.from(Buffer.from(hex.replace(/ /g, ''), 'hex'));

const cases: [string, string, string][] = [
  // [bytes, text at 0x8053a300 with the symbols, why]
  ['e8f6ffffff', 'call nt!KiSystemService (8053a2fb)', 'call to a symbol start: no offset'],
  ['74fe', 'je nt!KiSystemService+0x5 (8053a300)', 'short jcc into a symbol: +0x offset, lowercase address'],
  ['e2fe', 'loop nt!KiSystemService+0x5 (8053a300)', 'loop targets are symbolized too'],
  ['0f84f0ffffff', 'je 8053a2f6', 'near jcc without a symbol: eight lowercase digits, no h'],
  ['ea001040000800', 'jmp 0008:00401000', 'far jump: selector:offset'],
  ['ffd2', 'call edx', 'indirect through a register'],
  ['ff2500104000', 'jmp dword ptr ds:[00401000h]', 'indirect through an absolute address: ds: and eight digits'],
  ['ff10', 'call dword ptr [eax]', 'indirect through memory'],
  ['64a124010000', 'mov eax,dword ptr fs:[00000124h]', 'segment override, absolute address'],
  ['648b0d24010000', 'mov ecx,dword ptr fs:[00000124h]', 'the same through a ModRM form'],
  ['8a8040010000', 'mov al,byte ptr [eax+140h]', 'byte size, displacement without leading zeros'],
  ['897de4', 'mov dword ptr [ebp-1Ch],edi', 'dword ptr even when a register gives the size'],
  ['8b048d00104000', 'mov eax,dword ptr [ecx*4+401000h]', 'index without base'],
  ['8d0440', 'lea eax,[eax+eax*2]', 'lea has no size'],
  ['0fb600', 'movzx eax,byte ptr [eax]', 'movzx source size'],
  ['66b83412', 'mov ax,1234h', '16-bit immediate'],
  ['668b00', 'mov ax,word ptr [eax]', '16-bit load'],
  ['66ff30', 'push word ptr [eax]', '16-bit push'],
  ['c70005000000', 'mov dword ptr [eax],5', 'small immediates in decimal, as WinDbg'],
  ['6aff', 'push 0FFFFFFFFh', 'sign-extended imm8 shown as its 32-bit value'],
  ['f3a5', 'rep movsd', 'rep prefix'],
  ['f2ae', 'repne scasb', 'repne prefix'],
  ['f0ff00', 'lock inc dword ptr [eax]', 'lock prefix'],
  ['cd2e', 'int 2Eh', 'int with a hex vector'],
  ['cc', 'int 3', 'breakpoint'],
  ['0f22d8', 'mov cr3,eax', 'control register'],
  ['0f34', 'sysenter', 'sysenter'],
  ['0f35', 'sysexit', 'sysexit'],
  ['cf', 'iretd', 'iretd'],
  ['9c', 'pushfd', 'pushfd'],
  ['c22400', 'ret 24h', 'ret with a count'],
  ['ff', '???', 'an incomplete instruction'],
  // Data references, as WinDbg shows them: the symbol, then the address in parentheses, no ds:.
  ['3b356ca55380', 'cmp esi,dword ptr [nt!MmUserProbeAddress (8053a56c)]', 'an absolute operand on a symbol'],
  ['a118c55680', 'mov eax,dword ptr [nt!KeServiceDescriptorTable (8056c518)]', 'the moffs form too'],
  ['893d28c55680', 'mov dword ptr [nt!KeServiceDescriptorTable+0x10 (8056c528)],edi', 'inside a symbol: +0x offset'],
  ['3e8b0d6ca55380', 'mov ecx,dword ptr [nt!MmUserProbeAddress (8053a56c)]', 'an explicit ds: is still the flat address'],
  ['648b0d6ca55380', 'mov ecx,dword ptr fs:[8053A56Ch]', 'another segment: the address is not linear, no symbol'],
  ['8b0d00800000', 'mov ecx,dword ptr ds:[00008000h]', 'below 0x10000: a number, whatever covers it'],
  ['8b0d00104000', 'mov ecx,dword ptr ds:[00401000h]', 'no symbol: a number'],
  ['8b886ca55380', 'mov ecx,dword ptr [eax-7FAC5A94h]', 'register-relative: never symbolised'],
  ['6858044e80', 'push 804E0458h', 'an immediate is not a memory operand'],
];

for (const [hex, text, why] of cases) {
  t.test(why, async (t) => {
    t.equal(formatBytes(bytes(hex), 0x8053a300, { symbols }), text);
  });
}

t.test('without a symbol lookup, targets are bare addresses', async (t) => {
  t.equal(formatBytes(bytes('eb5c'), 0x8053a2f9), 'jmp 8053a357');
  t.equal(formatBytes(bytes('eb5c'), 0x8053a2f9, { symbols }), 'jmp nt!KiSystemService+0x5c (8053a357)');
});

t.test('disassemble walks the bytes, one ??? byte at a time where nothing decodes', async (t) => {
  const lines = disassemble(bytes('90 0fff 8bd4 e8'), 0x7ffe0300);
  t.same(
    lines.map((l) => [l.address.toString(16), Buffer.from(l.bytes).toString('hex'), l.length, l.text]),
    [
      ['7ffe0300', '90', 1, 'nop'],
      ['7ffe0301', '0f', 1, '???'],
      ['7ffe0302', 'ff', 1, '???'],
      ['7ffe0303', '8bd4', 2, 'mov edx,esp'],
      ['7ffe0305', 'e8', 1, '???'],
    ],
  );
});

t.test('count limits the number of instructions', async (t) => {
  const lines = disassemble(bytes('b8b7000000 ba0003fe7f ffd2 c22400'), 0x77f761e8, { count: 2 });
  t.same(lines.map((l) => l.text), ['mov eax,0B7h', 'mov edx,7FFE0300h']);
});
