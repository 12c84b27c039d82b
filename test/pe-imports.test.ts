// resolveImports: the IAT of a mapped MinGW image filled from a guest's exports as XP's loader
// fills it (each slot = the function's address), DLL names without regard to case, imports by
// ordinal, and the one-line errors for a module or function the guest does not have.
import t, { type Test } from 'tap';
import { mapImage, parsePe, resolveImports, type ImportResolver } from '../core/pe/index.js';
import { havePeOracles, lazySamples, u32 } from './util/pe-samples.js';

const mingw = (t: Test) => havePeOracles(t);

const get = lazySamples(t);

/** A made-up guest: each module's exports at consecutive addresses. */
const GUEST: Record<string, string[]> = {
  'ntoskrnl.exe': ['DbgPrint', 'IoCreateDevice', 'IoDeleteDevice', 'IofCompleteRequest', 'KeBugCheckEx', 'ZwReadFile'],
  'hal.dll': ['KeGetCurrentIrql', 'KfRaiseIrql'],
  'KERNEL32.DLL': ['ExitProcess', 'GetStdHandle', 'WriteFile'],
  'sample.dll': ['Twice'],
};
const BASES: Record<string, number> = { 'ntoskrnl.exe': 0x804d7000, 'hal.dll': 0x806d0000, 'KERNEL32.DLL': 0x7c800000, 'sample.dll': 0x10000000 };
const calls: [string, string | number][] = [];
const resolver: ImportResolver = (dll, fn) => {
  calls.push([dll, fn]);
  if (typeof fn === 'number') return dll === 'sample.dll' && fn === 7 ? 0x10001000 : undefined;
  const i = GUEST[dll]?.indexOf(fn) ?? -1;
  return i < 0 ? undefined : BASES[dll]! + 0x100 * (i + 1);
};

t.test('the driver: every IAT slot gets its function address', async (t) => {
  if (!mingw(t)) return;
  const base = 0xf8a00000;
  const pe = parsePe(get().bytes('drv.sys'), 'drv.sys', { expect: 'driver' });
  const { bytes } = mapImage(pe, base);
  calls.length = 0;
  const bound = resolveImports(pe, bytes, resolver, new Map(Object.entries(GUEST)));
  t.same(calls, [
    ['hal.dll', 'KeGetCurrentIrql'],
    ['ntoskrnl.exe', 'DbgPrint'],
    ['ntoskrnl.exe', 'IoCreateDevice'],
    ['ntoskrnl.exe', 'IoDeleteDevice'],
    ['ntoskrnl.exe', 'IofCompleteRequest'],
  ], "HAL.dll matched to the guest's hal.dll: the resolver gets the guest's spelling");
  t.equal(bound.length, 5);
  for (const b of bound) t.equal(u32(bytes, b.iatRva), b.address, `${b.dll}!${b.import} in its IAT slot`);
  t.equal(u32(bytes, pe.imports[0]!.iatRva + 4), 0, 'the IAT terminator stays 0');
  // The code reaches every slot through an absolute address the relocations moved with the image.
  const targets = new Set(pe.relocations.map((rva) => u32(bytes, rva)));
  for (const b of bound) t.ok(targets.has(base + b.iatRva), `the code refers to ${b.import}'s slot at its relocated address`);
});

t.test('the program by ordinal, and a Record of exports with other capitals', async (t) => {
  if (!mingw(t)) return;
  const pe = parsePe(get().bytes('ordprog.exe'), 'ordprog.exe', { expect: 'program' });
  const { bytes } = mapImage(pe, 0x400000);
  calls.length = 0;
  const bound = resolveImports(pe, bytes, resolver, GUEST);
  t.same(calls, [
    ['sample.dll', 7],
    ['sample.dll', 'Twice'],
    ['KERNEL32.DLL', 'ExitProcess'],
  ]);
  t.same(
    bound.map((b) => [b.dll, b.import, b.address]),
    [
      ['sample.dll', 7, 0x10001000],
      ['sample.dll', 'Twice', 0x10000100],
      ['KERNEL32.DLL', 'ExitProcess', 0x7c800100],
    ],
  );
  for (const b of bound) t.equal(u32(bytes, b.iatRva), b.address);
});

t.test('misses: one line, the import and the nearest exports', async (t) => {
  if (!mingw(t)) return;
  // drv.sys with IofCompleteRequest renamed in its hint/name table to IoCreateDeviceX (same room).
  const file = get().bytes('drv.sys');
  const at = Buffer.from(file).indexOf('IofCompleteRequest\0');
  t.ok(at > 0);
  file.set(Buffer.from('IoCreateDeviceX\0\0\0\0'), at);
  const pe = parsePe(file, 'drv.sys');
  const { bytes } = mapImage(pe, 0xf8a00000);
  t.throws(() => resolveImports(pe, bytes, resolver, GUEST), {
    name: 'PeError',
    message: 'drv.sys imports ntoskrnl.exe!IoCreateDeviceX, which the guest does not export; nearest: IoCreateDevice, IoDeleteDevice',
  });

  const drv = parsePe(get().bytes('drv.sys'), 'drv.sys');
  const image = mapImage(drv, 0xf8a00000).bytes;
  t.throws(() => resolveImports(drv, image, resolver, { 'ntoskrnl.exe': GUEST['ntoskrnl.exe']! }), {
    message: 'drv.sys imports HAL.dll!KeGetCurrentIrql, but the guest has no module HAL.dll; guest modules: ntoskrnl.exe',
  });
  t.throws(() => resolveImports(drv, image, resolver, { 'ntoskrnl.exe': [], 'hall.dll': [] }), {
    message: 'drv.sys imports HAL.dll!KeGetCurrentIrql, but the guest has no module HAL.dll; nearest: hall.dll',
  });
  t.throws(() => resolveImports(drv, image, () => undefined, GUEST), {
    message: 'drv.sys imports HAL.dll!KeGetCurrentIrql, which the guest does not export; nearest: KeGetCurrentIrql',
  }, 'a resolver that disagrees with the export list: the message still names the nearest');
  t.throws(() => resolveImports(drv, image, () => undefined, { 'ntoskrnl.exe': ['ZwClose'], 'hal.dll': ['HalDisplayString'] }), {
    message: 'drv.sys imports HAL.dll!KeGetCurrentIrql, which the guest does not export; nearest: HalDisplayString',
  }, 'no near name: the nearest however far');

  const prog = parsePe(get().bytes('ordprog.exe'), 'ordprog.exe');
  t.throws(() => resolveImports(prog, mapImage(prog, 0x400000).bytes, () => undefined, GUEST), {
    message: 'ordprog.exe imports sample.dll!#7 (by ordinal), which the guest does not export',
  });
});
