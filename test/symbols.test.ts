// Guest symbols for images without names (a stripped PE): `module+0xOFFSET`, as WinDbg prints them,
// in the symbol table, the disassembler and the parsers of formatted symbols.
//   npx tsc -p tsconfig.json && npx tap dist/test/symbols.test.js
import t from 'tap';
import { SymbolTable, formatSymbol, splitSymbol } from '../core/index.js';
import { disassemble } from '../core/index.js';

t.test('a module range without names reads module+0xOFFSET; named parts keep module!Name', async (t) => {
  const s = new SymbolTable();
  s.addModule('stripped', new Map(), 0x11000, 0x10000);
  s.addModule('drv', new Map([['DriverEntry', 0x20100]]), 0x21000, 0x20000);
  t.equal(s.format(0x10000), 'stripped+0x0');
  t.equal(s.format(0x1001d), 'stripped+0x1d');
  t.equal(s.format(0x11000), null, 'past the end: nothing');
  t.equal(s.format(0x20010), 'drv+0x10', 'before the first name: the module');
  t.equal(s.format(0x20105), 'drv!DriverEntry+0x5');
  t.same(s.names(), ['drv!DriverEntry'], 'the unnamed base is not a name to suggest');
  t.equal(formatSymbol('m', 'f', 0), 'm!f');
  t.same(splitSymbol('drv+0x10'), { module: 'drv', name: null });
  t.same(splitSymbol('drv!DriverEntry+0x5'), { module: 'drv', name: 'DriverEntry' });
  t.same(splitSymbol('nt!KiFastCallEntry'), { module: 'nt', name: 'KiFastCallEntry' });
  const [line] = disassemble(new Uint8Array([0xe8, 0x18, 0x00, 0x00, 0x00]), 0x10000, { symbols: s });
  t.equal(line!.text, 'call stripped+0x1d (0001001d)', 'branch targets too');
});
