// One test per kind of bad input: the assembler throws an AsmError whose message is
// "file:line:col: what is wrong and how to fix it" — never a stack trace of its own.
import t from 'tap';
import { AsmError, assemble, type AsmOptions } from '../core/asm/index.js';

interface BadInput {
  what: string;
  source: string;
  options?: AsmOptions;
  message: string;
}

const cases: BadInput[] = [
  { what: 'unknown mnemonic, with the nearest name', source: 'nop\nmovx eax, 1', message: "bad.asm:2:1: unknown instruction 'movx'; did you mean 'mov'?" },
  {
    what: 'unknown mnemonic with nothing near it: what a line may hold',
    source: 'nop\nfrobnicate eax',
    message: "bad.asm:2:1: unknown instruction 'frobnicate'; a line holds an x86 instruction in NASM syntax (mov eax,[ebx+4]; call ntdll!NtClose; int 2Eh), data (db, dw, dd, times N db 0), a label, equ, org or align",
  },
  {
    what: 'operands no form takes',
    source: 'mov eax, bx',
    message:
      "bad.asm:1:5: 'mov' cannot take eax, bx; accepted forms: mov r/m8, r8 | mov r/m16, r16 | mov r/m32, r32 | mov r8, r/m8 | mov r16, r/m16 | mov r32, r/m32 | mov r/m16, sreg | mov r32/m16, sreg …",
  },
  { what: 'undefined label', source: 'jmp nowhere', message: "bad.asm:1:5: undefined label 'nowhere'; define it with 'nowhere:' or 'nowhere equ value'" },
  { what: 'duplicate label', source: 'a: nop\n  a: nop', message: "bad.asm:2:3: duplicate label 'a' (first defined on line 1); rename one of them" },
  { what: 'immediate out of range', source: 'mov al, 300', message: 'bad.asm:1:9: value 0x12c is out of range: this operand holds 8 bits (-128 to 255)' },
  { what: 'data value out of range', source: 'db 1, 256', message: 'bad.asm:1:7: value 256 does not fit in 8 bits; use a wider directive (dw, dd, dq) or a smaller value' },
  {
    what: 'module!Name without a resolver',
    source: 'call nt!ZwWriteFile',
    message: 'bad.asm:1:6: nt!ZwWriteFile needs a symbol resolver; pass resolveSymbol in the assembler options',
  },
  {
    what: 'module!Name the resolver does not know',
    source: 'call nt!ZwWriteFlie',
    options: { resolveSymbol: () => undefined },
    message: 'bad.asm:1:6: unknown symbol nt!ZwWriteFlie; check the module and symbol name',
  },
  { what: 'memory operand without a size', source: 'inc [eax]', message: "bad.asm:1:5: operation size not specified; write byte, word or dword before the memory operand (e.g. 'dword [eax]')" },
  { what: 'scale that does not exist', source: 'mov eax, [ebx+eax*3]', message: 'bad.asm:1:15: scale 3 is not allowed; an index register is multiplied by 1, 2, 4 or 8' },
  { what: 'esp as an index', source: 'mov eax, [esp*4]', message: 'bad.asm:1:11: esp cannot be an index register; use it as the base ([esp+...]) or pick another register' },
  { what: 'three registers in an address', source: 'mov eax, [eax+ebx+ecx]', message: 'bad.asm:1:19: an address has at most two registers (base + index*scale)' },
  { what: '16-bit address register', source: 'mov eax, [bx]', message: 'bad.asm:1:11: bx cannot address memory in 32-bit code; use a 32-bit register such as eax' },
  { what: 'register outside brackets', source: 'push eax+1', message: 'bad.asm:1:6: register eax is not allowed here; registers go inside [ ] in an address' },
  {
    what: 'malformed number',
    source: 'mov eax, B7h',
    message: "bad.asm:1:10: undefined label 'B7h'; define it with 'B7h:' or 'B7h equ value'",
  },
  {
    what: 'bad digits',
    source: 'mov eax, 12g',
    message: "bad.asm:1:10: '12g' is not a number; write hex as 0x1F or 1Fh (a leading 0 when it starts with a letter: 0B7h), binary as 101b",
  },
  { what: 'unterminated string', source: "db 'abc", message: "bad.asm:1:4: unterminated string; close it with '" },
  { what: 'floating point', source: 'dd 1.5', message: "bad.asm:1:4: floating-point constants are not supported; write the value's bytes with dd/dq" },
  {
    what: 'lock on an instruction that cannot take it',
    source: 'lock mov eax, ebx',
    message: "bad.asm:1:6: 'lock' cannot be used with 'mov' in this form; lock works with read-modify-write instructions on memory",
  },
  {
    what: 'short jump that does not reach',
    source: 'jmp short there\ntimes 200 nop\nthere:',
    message: "bad.asm:1:5: short jump target is out of range for 'jmp'; remove 'short' (or bring the target within 127 bytes)",
  },
  { what: 'local label before any global one', source: '.loop: nop', message: "bad.asm:1:1: local label '.loop' has no global label before it; add one (e.g. 'start:') above" },
  { what: 'another bitness', source: 'bits 16', message: "bad.asm:1:6: only 'bits 32' is supported; ntflow assembles 32-bit code" },
  { what: 'trailing junk', source: 'add eax, ebx ecx', message: "bad.asm:1:14: unexpected 'ecx'; one statement per line, comments start with ';'" },
  { what: 'missing operand', source: 'mov eax,', message: 'bad.asm:1:9: expected an expression, found end of line' },
  { what: 'align to a non-power of two', source: 'align 3', message: 'bad.asm:1:1: align needs a power of two, got 3' },
  { what: 'negative times', source: 'times -1 nop', message: 'bad.asm:1:1: count -1 is negative' },
  { what: 'division by zero', source: 'mov eax, 1/0', message: 'bad.asm:1:11: division by zero' },
  { what: 'unknown pseudo-prefix', source: '{foo} mov eax, ebx', message: "bad.asm:1:2: unknown pseudo-prefix 'foo'; use {load} or {store}" },
  { what: 'org after code', source: 'nop\norg 0x1000', message: "bad.asm:2:1: 'org' must come once, before any code or data" },
  { what: 'stray character', source: 'mov eax, 1 \\ 2', message: "bad.asm:1:12: unexpected character '\\'; remove it or start a comment with ';'" },
];

for (const bad of cases) {
  t.test(bad.what, async (t) => {
    let thrown: unknown;
    try {
      assemble(bad.source, { fileName: 'bad.asm', ...bad.options });
    } catch (error) {
      thrown = error;
    }
    t.ok(thrown instanceof AsmError, 'an AsmError');
    if (!(thrown instanceof AsmError)) return;
    t.equal(thrown.message, bad.message);
    const [, line, column] = /^bad\.asm:(\d+):(\d+):/.exec(bad.message)!;
    t.same([thrown.file, thrown.line, thrown.column], ['bad.asm', Number(line), Number(column)], 'file, line and column fields');
  });
}

t.test('the default file name is <input>', async (t) => {
  t.throws(() => assemble('movx eax, 1'), { message: "<input>:1:1: unknown instruction 'movx'; did you mean 'mov'?" });
});
