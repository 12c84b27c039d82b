// Every refusal of core/pe, with its exact one-line message: not a PE image, truncated or corrupt
// headers, 64-bit and non-x86 images, the wrong kind of image for what the caller expects, TLS,
// unsupported relocations, overlapping sections, sections past SizeOfImage, and the rest. The
// images are MinGW samples, patched where no compiler option makes the broken file.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { mapImage, parsePe, PeError, type ParseOptions } from '../core/pe/index.js';
import { havePeOracles, lazySamples, offsets, put16, put32, u16, u32, type SampleName } from './util/pe-samples.js';
import { repoPath } from './util/paths.js';

const mingw = (t: Test) => havePeOracles(t);

const get = lazySamples(t);

/** The PeError message parsePe gives, or 'accepted'. Anything but a PeError fails the test. */
function refusal(bytes: Uint8Array, name: string, options?: ParseOptions): string {
  try {
    parsePe(bytes, name, options);
    return 'accepted';
  } catch (e) {
    if (!(e instanceof PeError)) throw e;
    if (e.message.includes('\n')) throw new Error(`a PeError of more than one line: ${e.message}`);
    if (e.fileName !== name) throw new Error(`PeError.fileName ${e.fileName}, not ${name}`);
    return e.message;
  }
}

/** A sample with a patch applied. */
function patched(name: SampleName, patch: (b: Uint8Array, o: ReturnType<typeof offsets>) => void): Uint8Array {
  const b = get().bytes(name);
  patch(b, offsets(b));
  return b;
}

t.test('not a PE image', async (t) => {
  t.equal(refusal(new Uint8Array(0), 'empty.exe'), 'empty.exe is not a PE image: no MZ header');
  t.equal(refusal(new TextEncoder().encode('#include <windows.h>\n'), 'prog.c'), 'prog.c is not a PE image: no MZ header');
  t.equal(refusal(new TextEncoder().encode('\x7fELF\x01\x01\x01'), 'a.out'), 'a.out is not a PE image: no MZ header');
  t.equal(refusal(new TextEncoder().encode('MZ'), 'tiny.exe'), 'tiny.exe is truncated or corrupt: the MS-DOS header runs past the end of the file (2 bytes)');
  const dos = new Uint8Array(0x80);
  dos.set([0x4d, 0x5a]);
  put32(dos, 0x3c, 0x1000);
  t.equal(refusal(dos, 'dos.exe'), 'dos.exe is not a PE image: e_lfanew (0x1000) points past the end of the file (an MS-DOS program?)');
  put32(dos, 0x3c, 0x40);
  dos.set([0x4e, 0x45], 0x40);
  t.equal(refusal(dos, 'win16.exe'), "win16.exe is not a PE image: no 'PE\\0\\0' signature at e_lfanew (0x40) (an MS-DOS, NE or LE program?)");
  // A COFF object file (what gcc -c writes) has no MS-DOS header either.
  if (!mingw(t)) return;
  const object = join(get().dir, 'prog.o');
  const r = spawnSync('i686-w64-mingw32-gcc', ['-c', repoPath('test', 'pe', 'prog.c'), '-o', object]);
  t.equal(r.status, 0);
  t.equal(refusal(new Uint8Array(readFileSync(object)), 'prog.o'), 'prog.o is not a PE image: no MZ header');
});

t.test('truncated files', async (t) => {
  if (!mingw(t)) return;
  const whole = get().bytes('prog-stripped.exe');
  const o = offsets(whole);
  const cut = (n: number) => refusal(whole.slice(0, n), 'prog.exe');
  t.equal(cut(0x3e), 'prog.exe is truncated or corrupt: the MS-DOS header runs past the end of the file (62 bytes)');
  t.equal(cut(o.pe + 2), `prog.exe is not a PE image: e_lfanew (0x${o.pe.toString(16).toUpperCase()}) points past the end of the file (an MS-DOS program?)`);
  t.equal(cut(o.coff + 10), `prog.exe is truncated or corrupt: the COFF file header runs past the end of the file (${o.coff + 10} bytes)`);
  t.equal(cut(o.opt + 50), `prog.exe is truncated or corrupt: the optional header runs past the end of the file (${o.opt + 50} bytes)`);
  t.equal(cut(o.sections + 50), `prog.exe is truncated or corrupt: the section table runs past the end of the file (${o.sections + 50} bytes)`);
  t.equal(cut(0x300), 'prog.exe is truncated or corrupt: the header block (SizeOfHeaders 0x400) runs past the end of the file (768 bytes)');
  const last = o.section(o.numberOfSections - 1);
  const lastRaw = u32(whole, last + 20);
  t.equal(
    cut(lastRaw + 0x10),
    `prog.exe is truncated or corrupt: section .reloc's raw data (file offset 0x${lastRaw.toString(16).toUpperCase()}, 0x200 bytes) runs past the end of the file (${lastRaw + 0x10} bytes)`,
  );
  // The unstripped program's symbol table is at the end of the file.
  const full = get().bytes('prog.exe');
  const symbols = u32(full, offsets(full).coff + 8);
  t.equal(refusal(full.slice(0, symbols + 100), 'prog.exe'), `prog.exe is truncated or corrupt: the COFF symbol table runs past the end of the file (${symbols + 100} bytes)`);
  t.equal(refusal(full.slice(0, full.length - 3), 'prog.exe'), `prog.exe is truncated or corrupt: the COFF string table runs past the end of the file (${full.length - 3} bytes)`);
  // Every length short of the whole file: a PeError (refusal() rethrows anything else).
  let refused = 0;
  for (let n = 0; n < whole.length; n += 7) if (cut(n) !== 'accepted') refused++;
  t.equal(refused, Math.ceil(whole.length / 7), 'every cut of the file is refused with a PeError');
});

const X64 = 'prog64.exe is a 64-bit (PE32+) image; ntflow runs 32-bit x86 images: build with i686-w64-mingw32-gcc';

t.test('64-bit (PE32+) and non-x86 images', async (t) => {
  if (!mingw(t)) return;
  // No x86_64 MinGW here (or not needed): a 32-bit image with the machine and magic of PE32+.
  const x64 = patched('prog.exe', (b, o) => {
    put16(b, o.coff, 0x8664);
    put16(b, o.opt, 0x20b);
  });
  t.equal(refusal(x64, 'prog64.exe'), X64, 'machine AMD64 + magic 0x20B');
  t.equal(refusal(patched('prog.exe', (b, o) => put16(b, o.opt, 0x20b)), 'prog64.exe'), X64, 'magic 0x20B alone');
  t.equal(
    refusal(patched('prog.exe', (b, o) => put16(b, o.coff, 0x8664)), 'prog.exe'),
    'prog.exe is built for machine 0x8664 (x64); ntflow runs 32-bit x86 (i386) images: build with i686-w64-mingw32-gcc',
  );
  t.equal(
    refusal(patched('prog.exe', (b, o) => put16(b, o.coff, 0x1c4)), 'arm.exe'),
    'arm.exe is built for machine 0x1C4 (ARMv7); ntflow runs 32-bit x86 (i386) images: build with i686-w64-mingw32-gcc',
  );
  t.equal(refusal(patched('prog.exe', (b, o) => put16(b, o.opt, 0x107)), 'rom.exe'), "rom.exe is truncated or corrupt: the optional header's magic is 0x107, not 0x10B (PE32)");
  t.equal(refusal(patched('prog.exe', (b, o) => put16(b, o.coff + 16, 0)), 'prog.exe'), 'prog.exe is truncated or corrupt: there is no optional header (SizeOfOptionalHeader is 0)');
});

t.test('a real x64 image, when x86_64-w64-mingw32-gcc is installed', async (t) => {
  if (spawnSync('x86_64-w64-mingw32-gcc', ['--version'], { stdio: 'ignore' }).status !== 0) {
    if (process.env.CI === 'true') t.fail('x86_64-w64-mingw32-gcc is missing; .ci/run installs gcc-mingw-w64-x86-64');
    void t.skip('x86_64-w64-mingw32-gcc is not installed: the 64-bit image above is a patched 32-bit one', () => {});
    return;
  }
  const out = join(get().dir, 'prog64.exe');
  const r = spawnSync('x86_64-w64-mingw32-gcc', ['-nostdlib', '-e', 'start', repoPath('test', 'pe', 'native.c'), '-lntdll', '-o', out], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.equal(refusal(new Uint8Array(readFileSync(out)), 'prog64.exe'), X64);
});

t.test('the wrong kind of image', async (t) => {
  if (!mingw(t)) return;
  const as = (name: SampleName, expect: 'program' | 'driver') => refusal(get().bytes(name), name, { expect });
  t.equal(as('sample.dll', 'program'), 'sample.dll is a DLL, not a program: build the program as an .exe (without -shared)');
  t.equal(as('drv-dll.sys', 'program'), 'drv-dll.sys is a DLL, not a program: build the program as an .exe (without -shared)');
  t.equal(as('drv.sys', 'program'), 'drv.sys is a driver (native subsystem, imports HAL.dll), not a program: load it with --driver (ntflow record prog.exe --driver drv.sys)');
  t.equal(as('prog.exe', 'driver'), 'prog.exe is a program for the Windows console subsystem (3), not a driver: link a driver with -Wl,--subsystem,native');
  t.equal(as('sample.dll', 'driver'), 'sample.dll is a DLL for the Windows console subsystem (3), not a driver: link a driver with -Wl,--subsystem,native');
  t.equal(
    as('userdrv.sys', 'driver'),
    'userdrv.sys imports KERNEL32.dll, a user-mode DLL, so it cannot be a driver: link a driver with -nostdlib and only kernel libraries (-lntoskrnl -lhal)',
  );
  t.equal(
    refusal(patched('prog.exe', (b, o) => put16(b, o.opt + 68, 10)), 'efi.exe', { expect: 'program' }),
    'efi.exe is a program for the EFI application subsystem (10), not a Windows program: link it with -Wl,--subsystem,console',
  );
  t.equal(
    refusal(patched('prog.exe', (b, o) => put32(b, o.opt + 16, 0)), 'prog.exe', { expect: 'program' }),
    'prog.exe has no entry point (AddressOfEntryPoint is 0): link it with -e _start@0',
  );
  t.equal(
    refusal(patched('drv.sys', (b, o) => put32(b, o.opt + 16, 0)), 'drv.sys', { expect: 'driver' }),
    'drv.sys has no entry point (AddressOfEntryPoint is 0): link it with -e _DriverEntry@8',
  );
  t.equal(refusal(get().bytes('sample.dll'), 'sample.dll'), 'accepted', 'without expect, a DLL is read (to inspect its exports)');
});

t.test('what ntflow does not support', async (t) => {
  if (!mingw(t)) return;
  t.equal(
    refusal(get().bytes('tls.exe'), 'tls.exe'),
    'tls.exe uses thread-local storage (it has a TLS directory); ntflow does not support TLS: remove __thread / __declspec(thread) variables and TLS callbacks',
  );
  t.equal(
    refusal(patched('prog.exe', (b, o) => put32(b, o.directory(14), 0x3000)), 'managed.exe'),
    'managed.exe is a .NET assembly (it has a CLR header); ntflow runs native x86 code only',
  );
  t.equal(
    refusal(patched('prog.exe', (b, o) => put32(b, o.opt + 32, 0x200)), 'prog.exe'),
    "prog.exe has SectionAlignment 0x200; ntflow maps images with page-aligned sections (0x1000, the linker's default)",
  );
  t.equal(
    refusal(patched('prog.exe', (b, o) => put32(b, o.opt + 56, 0x4001000)), 'prog.exe'),
    "prog.exe is too large: SizeOfImage 0x4001000 is more than the guest's 64 MiB of memory",
  );
  t.equal(
    refusal(patched('prog.exe', (b, o) => put16(b, o.coff + 18, u16(b, o.coff + 18) & ~2)), 'prog.exe'),
    'prog.exe is not marked executable (IMAGE_FILE_EXECUTABLE_IMAGE is clear: did the link fail?)',
  );
  // Unsupported base relocation types: the first entry of .reloc retyped.
  const pe = parsePe(get().bytes('prog.exe'), 'prog.exe');
  const reloc = pe.sections.find((s) => s.name === '.reloc')!;
  const first = pe.relocations[0]!.toString(16).toUpperCase();
  for (const [type, name] of [
    [10, ' (DIR64)'],
    [1, ' (HIGH)'],
    [4, ' (HIGHADJ)'],
    [9, ''],
  ] as const) {
    const b = patched('prog.exe', (b) => put16(b, reloc.pointerToRawData + 8, (u16(b, reloc.pointerToRawData + 8) & 0xfff) | (type << 12)));
    t.equal(
      refusal(b, 'prog.exe'),
      `prog.exe has a base relocation of type ${type}${name} at RVA 0x${first}; ntflow applies only HIGHLOW (3) and ABSOLUTE (0), all a 32-bit x86 image needs`,
    );
  }
  // Bound imports without a lookup table: the IAT holds addresses, not names.
  const importRva = pe.dataDirectories[1]!.rva;
  const idata = pe.sections.find((s) => s.name === '.idata')!;
  const descriptor = idata.pointerToRawData + importRva - idata.virtualAddress;
  const bound = patched('prog.exe', (b) => {
    put32(b, descriptor, 0);
    put32(b, descriptor + 4, 0xffffffff);
  });
  t.equal(refusal(bound, 'prog.exe'), 'prog.exe is bound to KERNEL32.dll and has no import lookup table, so its imports cannot be read: relink it without binding');
});

t.test('sections: overlapping, past SizeOfImage, misaligned', async (t) => {
  if (!mingw(t)) return;
  t.equal(
    refusal(patched('prog.exe', (b, o) => put32(b, o.section(1) + 12, 0x1000)), 'prog.exe'),
    'prog.exe is truncated or corrupt: section .data starts at RVA 0x1000, inside section .text (RVA 0x1000 to 0x2000)',
  );
  t.equal(
    refusal(patched('prog.exe', (b, o) => put32(b, o.section(0) + 12, 0)), 'prog.exe'),
    'prog.exe is truncated or corrupt: section .text starts at RVA 0x0, inside the headers (RVA 0x0 to 0x1000)',
  );
  t.equal(
    refusal(patched('prog.exe', (b, o) => put32(b, o.section(0) + 8, 0x1800)), 'prog.exe'),
    'prog.exe is truncated or corrupt: section .data starts at RVA 0x2000, inside section .text (RVA 0x1000 to 0x3000)',
    'a VirtualSize that runs into the next section',
  );
  t.equal(
    refusal(patched('prog.exe', (b, o) => put32(b, o.opt + 56, 0x6000)), 'prog.exe'),
    'prog.exe is truncated or corrupt: section .reloc (RVA 0x6000, 0x14 bytes) extends beyond SizeOfImage (0x6000)',
  );
  t.equal(
    refusal(
      patched('prog.exe', (b, o) => {
        b.set(new TextEncoder().encode('.d\nta\r'), o.section(1));
        put32(b, o.section(1) + 12, 0x1000);
      }),
      'prog.exe',
    ),
    'prog.exe is truncated or corrupt: section .d\\x0ata\\x0d starts at RVA 0x1000, inside section .text (RVA 0x1000 to 0x2000)',
    'control characters in a name are shown as \\xNN: the message stays one line',
  );
  t.equal(
    refusal(patched('prog.exe', (b, o) => put32(b, o.section(1) + 12, 0x2800)), 'prog.exe'),
    'prog.exe is truncated or corrupt: section .data starts at RVA 0x2800, not a multiple of SectionAlignment (0x1000)',
  );
});

t.test('loading refusals: relocations stripped, region too small', async (t) => {
  if (!mingw(t)) return;
  const fixed = parsePe(get().bytes('prog-fixed.exe'), 'prog-fixed.exe', { expect: 'program' });
  t.throws(() => mapImage(fixed, 0xf8a00000), {
    message:
      'prog-fixed.exe has no base relocations (they were stripped), so it runs only at its ImageBase 0x400000, and ntflow loads it at 0xF8A00000: link it with -Wl,--dynamicbase (and without --disable-reloc-section)',
  });
  const drv = parsePe(get().bytes('drv.sys'), 'drv.sys', { expect: 'driver' });
  t.throws(() => mapImage(drv, 0xf8a00000, { regionSize: 0x2000, regionName: 'a driver slot' }), {
    message: 'drv.sys is too big: its image needs 0x8000 bytes (SizeOfImage) and a driver slot holds 0x2000',
  });
});
