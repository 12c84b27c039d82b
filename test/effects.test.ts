// The packed effects of the trace file: every form round-trips, and the compact forms are used.
import t from 'tap';
import { packEffects, unpackEffects } from '../recorder/index.js';
import { packedSize } from '../core/index.js';

const pack = (regs: number[], writes: number[] = [], tableWrites: number[] = []) => {
  const e = { regs, writes, tableWrites };
  const out = new Uint8Array(packedSize(e));
  t.equal(packEffects(e, out, 0), out.length, 'packedSize is exact');
  return out;
};

t.test('registers: 4-, 2- and 1-byte values, packed EFLAGS', async (t) => {
  const regs = [0, 0x12345678, 1, 0xffff, 2, 0x10000, 3, 0xff, 4, 0, 8, 0x202, 8, 0x00000ad7, 8, 0x00010202, 8, 0x3202, 15, 0x80010031];
  const buf = pack(regs);
  t.same(unpackEffects(buf).regs, regs.reduce<[number, number][]>((a, v, i) => (i % 2 ? a : [...a, [v, regs[i + 1]]]), []));
  t.equal(pack([8, 0x246]).length, 2, 'EFLAGS with only the everyday bits: 2 bytes');
  t.equal(pack([8, 0x10246]).length, 5, 'EFLAGS with RF: the full form');
  t.equal(pack([0, 0x7f]).length, 2, 'a small value: 2 bytes');
  t.equal(pack([0, 0x1234]).length, 3, 'a 16-bit value: 3 bytes');
});

t.test('memory writes of 1, 2 and 4 bytes and page-table updates', async (t) => {
  const buf = pack([], [0x12ff00, 4, 0xdeadbeef, 0x401000, 1, 0x7f, 0xffdf0300, 2, 0xd48b], [0x101000, 0x401067]);
  const u = unpackEffects(buf);
  t.same(u.writes, [
    [0x12ff00, 4, 0xdeadbeef],
    [0x401000, 1, 0x7f],
    [0xffdf0300, 2, 0xd48b],
  ]);
  t.same(u.tableWrites, [[0x101000, 0x401067]]);
  t.same(unpackEffects(null), { regs: [], writes: [], tableWrites: [] }, 'NULL: nothing changed');
});
