// core/pe against objdump on images MinGW-w64 builds at test time (test/pe/*.c): what parsePe
// reads — image base, entry, subsystem, sections, imports (by name and by ordinal), base
// relocations, exports, COFF symbols, function symbols — must be what objdump -p/-h/-t print.
// Also what MinGW emits for a program and a driver, and the kinds parsePe accepts.
import t, { type Test } from 'tap';
import { parsePe, PAGE_EXECUTE_READ, PAGE_READONLY, PAGE_READWRITE, undecorate, type PeImage } from '../core/pe/index.js';
import { havePeOracles, lazySamples, objdumpView, offsets, put32, u32, SAMPLES, type SampleName } from './util/pe-samples.js';

const oracles = (t: Test) => havePeOracles(t, true);

const get = lazySamples(t);

const hex = (n: number) => `0x${n.toString(16)}`;
const parse = (name: SampleName): PeImage => parsePe(get().bytes(name), name);

/** Every sample parsePe accepts (tls.exe is refused: see pe-refusals). */
const PARSED = (Object.keys(SAMPLES) as SampleName[]).filter((n) => n !== 'tls.exe');

t.test('parsePe reads what objdump prints, on every sample', async (t) => {
  if (!oracles(t)) return;
  for (const name of PARSED) {
    t.test(name, async (t) => {
      const pe = parse(name);
      const o = objdumpView(get().path(name));
      t.equal(hex(pe.imageBase), hex(o.imageBase), 'ImageBase');
      t.equal(hex(pe.entryRva), hex(o.entry), 'AddressOfEntryPoint');
      t.equal(pe.subsystem, o.subsystem, 'Subsystem');
      t.equal(hex(pe.sizeOfImage), hex(o.sizeOfImage), 'SizeOfImage');
      t.equal(hex(pe.characteristics), hex(o.characteristics), 'Characteristics');

      t.same(
        pe.sections.map((s) => ({ name: s.name, vma: hex(pe.imageBase + s.virtualAddress), size: hex(s.virtualSize), file: hex(s.sizeOfRawData ? s.pointerToRawData : 0) })),
        o.sections.map((s) => ({ name: s.name, vma: hex(s.vma), size: hex(s.size), file: hex(s.fileOffset) })),
        'sections: names, VMAs, sizes, file offsets',
      );
      for (const s of pe.sections) {
        const flags = o.sections.find((x) => x.name === s.name)!.flags;
        t.equal(s.executable, flags.includes('CODE'), `${s.name} executable = objdump CODE`);
        t.equal(s.writable, !flags.includes('READONLY'), `${s.name} writable = not objdump READONLY`);
      }

      t.same(
        pe.imports.map((d) => ({ dll: d.dll, functions: d.functions.map((f) => (f.by === 'name' ? f.name : `#${f.ordinal}`)) })),
        o.imports,
        'imports: DLLs and functions (by name, #ordinal)',
      );

      t.same(
        pe.relocationBlocks.map((b) => ({ page: hex(b.pageRva), fixups: b.fixups + b.padding })),
        o.relocationBlocks.map((b) => ({ page: hex(b.page), fixups: b.fixups })),
        'base relocation blocks and their entry counts',
      );
      t.same(pe.relocations.map(hex), o.relocationBlocks.flatMap((b) => b.highlow).map(hex), 'every HIGHLOW fixup RVA');

      t.same(
        (pe.exports?.functions ?? []).map((f) => ({ ordinal: f.ordinal, rva: hex(f.rva), ...(f.forwarder ? { forwarder: f.forwarder } : {}) })),
        o.exports.map((e) => ({ ordinal: e.ordinal, rva: hex(e.rva), ...(e.forwarder ? { forwarder: e.forwarder } : {}) })),
        'exports: ordinals, RVAs, forwarders',
      );
      t.same((pe.exports?.functions ?? []).flatMap((f) => f.names).sort(), [...o.exportNames].sort(), 'export names');

      t.same(
        pe.symbols.map((s) => ({ name: s.file ?? s.name, section: s.section, type: s.type, scl: s.storageClass, aux: s.auxCount, value: hex(s.value) })),
        o.symbols.map((s) => ({ name: s.name, section: s.section, type: s.type, scl: s.storageClass, aux: s.aux, value: hex(s.value) })),
        'COFF symbols: names (long ones from the string table; a .file symbol\'s file), sections, types, classes, values',
      );
      const fromObjdump = o.symbols
        .filter((s) => s.section >= 1 && (s.type & 0x30) === 0x20 && (s.storageClass === 2 || s.storageClass === 3))
        .map((s) => ({ name: s.name, rva: hex(o.sections[s.section - 1]!.vma - o.imageBase + s.value) }))
        .sort((a, b) => parseInt(a.rva, 16) - parseInt(b.rva, 16) || (a.name < b.name ? -1 : 1));
      t.same(pe.functionSymbols.map((f) => ({ name: f.name, rva: hex(f.rva) })), fromObjdump, 'function symbols = objdump typed functions');
    });
  }
});

t.test('what MinGW emits for the program', async (t) => {
  if (!oracles(t)) return;
  const pe = parse('prog.exe');
  t.equal(pe.subsystemName, 'Windows console');
  t.equal(pe.isDll, false);
  t.equal(hex(pe.imageBase), '0x400000', 'linked for 0x00400000, where ntflow runs programs');
  t.same(pe.sections.map((s) => s.name), ['.text', '.data', '.rdata', '.eh_fram', '.idata', '.reloc']);
  t.same(
    pe.sections.map((s) => s.protection),
    [PAGE_EXECUTE_READ, PAGE_READWRITE, PAGE_READONLY, PAGE_READONLY, PAGE_READWRITE, PAGE_READONLY],
    'code RX, .data and .idata (the IAT) RW, the rest R',
  );
  t.same(pe.imports.map((d) => d.dll), ['KERNEL32.dll']);
  t.ok(pe.imports[0]!.iltRva !== 0, 'MinGW writes an import lookup table (OriginalFirstThunk)');
  t.ok(pe.dllCharacteristics & 0x40, 'binutils 2.40 sets DYNAMIC_BASE by default');
  t.ok(pe.relocations.length > 0, 'and keeps HIGHLOW fixups');
  const entry = pe.functionSymbols.find((f) => f.rva === pe.entryRva);
  t.equal(entry?.name, '_start@0', 'the entry point is the symbol _start@0');
  t.equal(undecorate(entry!.name), 'start');
  t.ok(pe.functionSymbols.some((f) => f.name === '_helper'), 'static functions are function symbols too');
  t.notOk(pe.functionSymbols.some((f) => /CTOR_LIST|DTOR_LIST|__data_start__/.test(f.name)), "ld's untyped .text markers are not functions");

  t.same(parse('prog-dynamicbase.exe').relocations, pe.relocations, '-Wl,--dynamicbase: the same fixups');
  const nodyn = parse('prog-nodynamicbase.exe');
  t.equal(nodyn.dllCharacteristics & 0x40, 0, '--disable-dynamicbase clears DYNAMIC_BASE');
  t.same(nodyn.relocations, pe.relocations, '… and keeps .reloc');
  const fixed = parse('prog-fixed.exe');
  t.equal(fixed.relocsStripped, true, '--disable-reloc-section: IMAGE_FILE_RELOCS_STRIPPED');
  t.same(fixed.relocations, [], '… and no fixups');
  const stripped = parse('prog-stripped.exe');
  t.equal(stripped.pointerToSymbolTable, 0, '-s: no symbol table');
  t.same(stripped.symbols, []);
  t.same(stripped.functionSymbols, []);
  t.same(stripped.imports, pe.imports, '… the same imports');
});

t.test('what MinGW emits for the driver', async (t) => {
  if (!oracles(t)) return;
  const pe = parse('drv.sys');
  t.equal(pe.subsystemName, 'native');
  t.equal(pe.isDll, false, 'an EXE with the native subsystem, not a DLL');
  t.equal(hex(pe.imageBase), '0x400000', 'linked for 0x00400000: it must be relocated to its driver slot');
  t.ok(pe.relocations.length > 0, 'so it has HIGHLOW fixups');
  t.same(pe.sections.map((s) => s.name), ['.text', '.data', '.rdata', '.eh_fram', '.bss', '.idata', '.reloc']);
  const bss = pe.sections.find((s) => s.name === '.bss')!;
  t.equal(bss.sizeOfRawData, 0, '.bss has no raw data');
  t.same(
    pe.imports.map((d) => [d.dll, d.functions.map((f) => (f.by === 'name' ? f.name : f.ordinal))]),
    [
      ['HAL.dll', ['KeGetCurrentIrql']],
      ['ntoskrnl.exe', ['DbgPrint', 'IoCreateDevice', 'IoDeleteDevice', 'IofCompleteRequest']],
    ],
  );
  t.equal(pe.functionSymbols.find((f) => f.rva === pe.entryRva)?.name, '_DriverEntry@8', 'the entry is _DriverEntry@8');
  t.same(
    pe.functionSymbols.map((f) => f.name),
    ['_Unload@4', '_Dispatch@8', '_DriverEntry@8', '_DbgPrint'],
    'its functions, and the import thunk for DbgPrint (not declared dllimport in the DDK headers)',
  );
  t.equal(undecorate('@IofCompleteRequest@8'), 'IofCompleteRequest');
  t.equal(undecorate('_DbgPrint'), 'DbgPrint');

  const dll = parse('drv-dll.sys');
  t.equal(dll.isDll, true, '-shared gives a native-subsystem DLL');
  t.doesNotThrow(() => parsePe(get().bytes('drv-dll.sys'), 'drv-dll.sys', { expect: 'driver' }), 'which loads as a driver');
});

t.test('the DLL and the by-ordinal import', async (t) => {
  if (!oracles(t)) return;
  const dll = parse('sample.dll');
  t.equal(dll.isDll, true);
  t.equal(dll.entryRva, 0, 'no entry point');
  t.same(dll.relocations, [], 'no absolute addresses, so no .reloc at all…');
  t.equal(dll.relocsStripped, false, '… yet not marked relocs-stripped');
  t.equal(dll.exports?.name, 'sample.dll');
  t.equal(dll.exports?.ordinalBase, 1);
  t.same(
    dll.exports?.functions.map((f) => [f.ordinal, f.names, f.forwarder ?? null]),
    [
      [1, ['Add@8'], null],
      [2, ['Twice'], null],
      [7, [], null],
      [9, ['Fwd'], 'ntdll.RtlZeroMemory'],
    ],
  );
  const hidden = dll.exports!.functions.find((f) => f.ordinal === 7)!;
  t.equal(dll.functionSymbols.find((f) => f.rva === hidden.rva)?.name, '_Hidden', 'ordinal 7 is Hidden');

  const prog = parse('ordprog.exe');
  const sample = prog.imports.find((d) => d.dll === 'sample.dll')!;
  t.same(sample.functions[0], { by: 'ordinal', ordinal: 7, iatRva: sample.iatRva }, 'Hidden imported by ordinal 7, IAT slot 0');
  t.match(sample.functions[1], { by: 'name', name: 'Twice', iatRva: sample.iatRva + 4 });
});

t.test('an image with only the IAT (OriginalFirstThunk 0) gives the same imports', async (t) => {
  if (!oracles(t)) return;
  const bytes = get().bytes('drv.sys');
  const original = parsePe(bytes, 'drv.sys');
  // Clear OriginalFirstThunk in every descriptor (the file's IAT holds the same hint/name RVAs).
  const o = offsets(bytes);
  const importRva = u32(bytes, o.directory(1));
  const idata = original.sections.find((s) => importRva >= s.virtualAddress && importRva < s.virtualAddress + s.virtualSize)!;
  const at = idata.pointerToRawData + (importRva - idata.virtualAddress);
  for (let d = 0; d < original.imports.length; d++) put32(bytes, at + 20 * d, 0);
  const patched = parsePe(bytes, 'drv.sys');
  t.same(
    patched.imports.map((d) => ({ ...d, iltRva: 0 })),
    original.imports.map((d) => ({ ...d, iltRva: 0 })),
  );
  t.ok(patched.imports.every((d) => d.iltRva === 0));
});

t.test('kinds: which samples load as a program, which as a driver', async (t) => {
  if (!oracles(t)) return;
  const accepts = (name: SampleName, expect: 'program' | 'driver') => {
    try {
      parsePe(get().bytes(name), name, { expect });
      return 'yes';
    } catch (e) {
      return (e as Error).message;
    }
  };
  for (const name of ['prog.exe', 'prog-fixed.exe', 'prog-stripped.exe', 'native.exe', 'ordprog.exe'] as const) {
    t.equal(accepts(name, 'program'), 'yes', `${name} is a program`);
  }
  for (const name of ['drv.sys', 'drv-dll.sys'] as const) t.equal(accepts(name, 'driver'), 'yes', `${name} is a driver`);
  t.match(accepts('native.exe', 'driver'), /imports ntdll\.dll, a user-mode DLL/, 'a native program importing ntdll is not a driver');
});
