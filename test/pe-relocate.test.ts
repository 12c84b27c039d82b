// mapImage and pageProtection on MinGW-built images: the layout against objdump -h, base
// relocation at another base (the two mappings differ only at HIGHLOW fixup sites, each by exactly
// the delta), the relocs-stripped and region refusals, and the page protections.
import t, { type Test } from 'tap';
import {
  mapImage,
  pageProtection,
  parsePe,
  PeError,
  PAGE_EXECUTE_READ,
  PAGE_NOACCESS,
  PAGE_READONLY,
  PAGE_READWRITE,
  PAGE_SIZE,
} from '../core/pe/index.js';
import { havePeOracles, lazySamples, objdumpView, u32, type SampleName } from './util/pe-samples.js';

const oracles = (t: Test) => havePeOracles(t, true);

const get = lazySamples(t);

const hex = (n: number) => `0x${n.toString(16)}`;
const MAPPED: SampleName[] = ['prog.exe', 'prog-stripped.exe', 'native.exe', 'drv.sys', 'drv-dll.sys', 'ordprog.exe', 'sample.dll'];

t.test('mapped at ImageBase: headers and each section at its RVA, zeros elsewhere (objdump -h)', async (t) => {
  if (!oracles(t)) return;
  for (const name of MAPPED) {
    const file = get().bytes(name);
    const pe = parsePe(file, name);
    const o = objdumpView(get().path(name));
    const { bytes, relocationsApplied } = mapImage(pe, pe.imageBase);
    t.equal(bytes.length, pe.sizeOfImage, `${name}: SizeOfImage bytes`);
    t.equal(relocationsApplied, 0, `${name}: nothing to relocate at its own base`);
    const expected = new Uint8Array(o.sizeOfImage);
    expected.set(file.subarray(0, pe.sizeOfHeaders));
    for (const s of o.sections) {
      if (s.flags.includes('CONTENTS')) expected.set(file.subarray(s.fileOffset, s.fileOffset + s.size), s.vma - o.imageBase);
    }
    t.ok(Buffer.from(bytes).equals(Buffer.from(expected)), `${name}: the layout objdump -h describes, byte for byte`);
  }
});

t.test('relocated: differences only at HIGHLOW fixup sites, each by exactly the delta', async (t) => {
  if (!oracles(t)) return;
  const cases: [SampleName, number][] = [
    ['drv.sys', 0xf8a00000], // the first driver slot
    ['drv.sys', 0xf8a10000],
    ['drv-dll.sys', 0xf8a00000],
    ['prog.exe', 0x10000000],
    ['prog.exe', 0x00010000], // a base below ImageBase: a negative delta
    ['ordprog.exe', 0x7ff00000],
  ];
  for (const [name, base] of cases) {
    const pe = parsePe(get().bytes(name), name);
    const o = objdumpView(get().path(name));
    const fixups = o.relocationBlocks.flatMap((b) => b.highlow);
    t.ok(fixups.length > 0, `${name}: objdump lists ${fixups.length} HIGHLOW fixups`);
    const home = mapImage(pe, pe.imageBase).bytes;
    const moved = mapImage(pe, base);
    t.equal(moved.relocationsApplied, fixups.length, `${name} at ${hex(base)}: every fixup applied`);
    const delta = (base - pe.imageBase) >>> 0;
    const sites = new Set<number>();
    for (const rva of fixups) for (let i = 0; i < 4; i++) sites.add(rva + i);
    let outside = 0;
    for (let i = 0; i < home.length; i++) if (home[i] !== moved.bytes[i] && !sites.has(i)) outside++;
    t.equal(outside, 0, `${name} at ${hex(base)}: no byte changed outside a fixup site`);
    const wrong = fixups.filter((rva) => ((u32(home, rva) + delta) >>> 0) !== u32(moved.bytes, rva));
    t.same(wrong.map(hex), [], `${name} at ${hex(base)}: each fixup moved by ${hex(delta)}`);
    const inImage = fixups.filter((rva) => u32(home, rva) - pe.imageBase < pe.sizeOfImage);
    t.equal(inImage.length, fixups.length, `${name}: every fixup holds an address inside the image (as linked)`);
    const movedInImage = fixups.filter((rva) => u32(moved.bytes, rva) - base < pe.sizeOfImage);
    t.equal(movedInImage.length, fixups.length, `${name} at ${hex(base)}: … and inside the moved image`);
  }
});

t.test('an image without relocations: at its ImageBase only', async (t) => {
  if (!oracles(t)) return;
  const pe = parsePe(get().bytes('prog-fixed.exe'), 'prog-fixed.exe');
  t.equal(mapImage(pe, 0x400000).relocationsApplied, 0, 'at 0x00400000 it maps');
  t.throws(() => mapImage(pe, 0x10000000), {
    name: 'PeError',
    message:
      'prog-fixed.exe has no base relocations (they were stripped), so it runs only at its ImageBase 0x400000, and ntflow loads it at 0x10000000: link it with -Wl,--dynamicbase (and without --disable-reloc-section)',
  });
  // A DLL with nothing to fix has no .reloc but is not relocs-stripped: it maps anywhere unchanged.
  const dll = parsePe(get().bytes('sample.dll'), 'sample.dll');
  const a = mapImage(dll, dll.imageBase).bytes;
  const b = mapImage(dll, 0x10000000);
  t.equal(b.relocationsApplied, 0);
  t.ok(Buffer.from(a).equals(Buffer.from(b.bytes)), 'sample.dll is the same at any base');
});

t.test('an image too big for its region', async (t) => {
  if (!oracles(t)) return;
  const pe = parsePe(get().bytes('drv.sys'), 'drv.sys');
  t.doesNotThrow(() => mapImage(pe, 0xf8a00000, { regionSize: 0x10000, regionName: 'a driver slot' }), 'the driver fits a 64 KiB slot');
  const error = (() => {
    try {
      mapImage(pe, 0xf8a00000, { regionSize: 0x4000, regionName: 'a driver slot' });
    } catch (e) {
      return e;
    }
  })();
  t.ok(error instanceof PeError);
  t.equal((error as PeError).message, `drv.sys is too big: its image needs 0x${pe.sizeOfImage.toString(16).toUpperCase()} bytes (SizeOfImage) and a driver slot holds 0x4000`);
  t.throws(() => mapImage(pe, 0x400000, { regionSize: 0x1000 }), { message: /and its region holds 0x1000$/ });
  t.throws(() => mapImage(pe, 0x400800), { name: 'Error', message: /not a page-aligned address/ }, 'a misaligned base is the caller\'s bug');
});

t.test('page protections: headers R, code RX, read-only data R, writable data RW', async (t) => {
  if (!oracles(t)) return;
  for (const name of MAPPED) {
    const pe = parsePe(get().bytes(name), name);
    const o = objdumpView(get().path(name));
    const expected = (rva: number) => {
      if (rva < PAGE_SIZE) return PAGE_READONLY;
      const s = o.sections.find((x) => rva >= x.vma - o.imageBase && rva < x.vma - o.imageBase + Math.ceil(x.size / PAGE_SIZE) * PAGE_SIZE);
      if (!s) return PAGE_NOACCESS;
      if (s.flags.includes('CODE')) return PAGE_EXECUTE_READ;
      return s.flags.includes('READONLY') ? PAGE_READONLY : PAGE_READWRITE;
    };
    const got: string[] = [];
    const want: string[] = [];
    for (let rva = 0; rva < pe.sizeOfImage; rva += PAGE_SIZE) {
      got.push(`${hex(rva)} ${pageProtection(pe, rva + 0x123)}`);
      want.push(`${hex(rva)} ${expected(rva)}`);
    }
    t.same(got, want, `${name}: every page`);
    t.equal(pageProtection(pe, pe.sizeOfImage), PAGE_NOACCESS, `${name}: past SizeOfImage`);
  }
});
