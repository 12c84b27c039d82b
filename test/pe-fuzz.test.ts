// Fuzzing core/pe: valid MinGW images mutated at random (bytes flipped, header fields and table
// words overwritten with edge values, files cut short) go through parsePe, mapImage,
// pageProtection and resolveImports. Each may refuse with a PeError; no other exception (a
// RangeError from an unchecked offset, a TypeError) may escape. The seed is printed; rerun one
// with NTFLOW_DIFF_SEED=<seed>, more cases with NTFLOW_DIFF_CASES=<n> (per sample).
import t, { type Test } from 'tap';
import { mapImage, pageProtection, parsePe, PeError, resolveImports, PAGE_SIZE, type PeImage } from '../core/pe/index.js';
import { caseCountFromEnv, Rng, seedFromEnv } from './gen/prng.js';
import { havePeOracles, lazySamples, offsets, u32, type SampleName } from './util/pe-samples.js';

const mingw = (t: Test) => havePeOracles(t);

const get = lazySamples(t);

const EDGE = [0, 1, 2, 4, 0x7f, 0x80, 0xff, 0x100, 0x1000, 0xfff, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff];

/** One mutant of `original`, and what was done to it (for the failure report). */
function mutate(rng: Rng, original: Uint8Array): { bytes: Uint8Array; how: string } {
  const b = original.slice();
  const o = offsets(original);
  const put = (at: number, value: number, width: number) => {
    for (let i = 0; i < width && at + i < b.length; i++) b[at + i] = (value >>> (8 * i)) & 0xff;
  };
  const value = () => (rng.chance(0.6) ? rng.pick(EDGE) : rng.chance(0.5) ? rng.int(0, original.length + 0x2000) : rng.u32());
  const steps: string[] = [];
  const n = rng.int(1, 4);
  for (let k = 0; k < n; k++) {
    const kind = rng.weighted([
      [3, 'flip'],
      [4, 'header'],
      [3, 'table'],
      [1, 'cut'],
    ] as const);
    if (kind === 'flip') {
      const at = rng.int(0, b.length - 1);
      b[at] = b[at]! ^ (1 << rng.int(0, 7));
      steps.push(`flip ${at.toString(16)}`);
    } else if (kind === 'header') {
      // A field of the COFF or optional header, a data directory or a section header.
      const end = o.sections + 40 * o.numberOfSections;
      const at = rng.chance(0.1) ? rng.int(0, 0x40) : rng.int(o.coff, end - 1) & ~1;
      const width = rng.pick([2, 4]);
      const v = value();
      put(at, v, width);
      steps.push(`header ${at.toString(16)}=${v.toString(16)}/${width}`);
    } else if (kind === 'table') {
      // A word in the body: import/export tables, relocation blocks, the symbol table.
      const at = rng.int(0x400, b.length - 4) & ~1;
      const v = value();
      put(at, v, rng.pick([2, 4]));
      steps.push(`table ${at.toString(16)}=${v.toString(16)}`);
    } else {
      const length = rng.int(0, b.length);
      steps.push(`cut ${length.toString(16)}`);
      return { bytes: b.slice(0, length), how: steps.join(', ') };
    }
  }
  return { bytes: b, how: steps.join(', ') };
}

/** Everything the loader would do with an image; a PeError is fine, anything else is not. */
function exercise(bytes: Uint8Array, name: string): 'accepted' | 'refused' {
  let pe: PeImage;
  try {
    pe = parsePe(bytes, name);
    for (const expect of ['program', 'driver'] as const) {
      try {
        parsePe(bytes, name, { expect });
      } catch (e) {
        if (!(e instanceof PeError)) throw e;
      }
    }
  } catch (e) {
    if (e instanceof PeError) {
      if (e.message.includes('\n') || !e.message.startsWith(name)) throw new Error(`a PeError not of one line naming the file: ${e.message}`);
      return 'refused';
    }
    throw e;
  }
  for (let rva = 0; rva < pe.sizeOfImage; rva += PAGE_SIZE) pageProtection(pe, rva);
  const exports = new Map(pe.imports.map((d) => [d.dll, d.functions.flatMap((f) => (f.by === 'name' ? [f.name] : []))]));
  for (const base of [pe.imageBase, 0xf8a00000, 0x10000]) {
    if (base + pe.sizeOfImage > 0x1_0000_0000) continue;
    try {
      const { bytes: image } = mapImage(pe, base, { regionSize: 0x10000, regionName: 'a driver slot' });
      resolveImports(pe, image, () => 0x80001000, exports);
      try {
        resolveImports(pe, image, () => undefined, exports);
      } catch (e) {
        if (!(e instanceof PeError)) throw e;
      }
    } catch (e) {
      if (!(e instanceof PeError)) throw e;
    }
  }
  return 'accepted';
}

t.test('mutated MinGW images give PeError or load, never another exception', async (t) => {
  if (!mingw(t)) return;
  const seed = seedFromEnv();
  const count = caseCountFromEnv(1500);
  t.comment(`seed ${seed} (rerun with NTFLOW_DIFF_SEED=${seed}), ${count} mutants per sample`);
  const names: SampleName[] = ['prog.exe', 'prog-stripped.exe', 'drv.sys', 'sample.dll', 'ordprog.exe'];
  for (const name of names) {
    const original = get().bytes(name);
    t.equal(exercise(original, name), 'accepted', `${name} itself loads`);
    const rng = new Rng((seed ^ u32(original, 0x3c) ^ name.length * 0x9e3779b9) >>> 0);
    const tally = { accepted: 0, refused: 0 };
    const failures: string[] = [];
    for (let i = 0; i < count; i++) {
      const { bytes, how } = mutate(rng, original);
      try {
        tally[exercise(bytes, name)]++;
      } catch (e) {
        if (failures.length < 5) failures.push(`mutant ${i} (${how}): ${(e as Error).stack ?? e}`);
      }
    }
    t.same(failures, [], `${name}: ${tally.accepted} mutants loaded, ${tally.refused} refused with a PeError, no other exception`);
    t.ok(tally.refused > 0 && tally.accepted > 0, `${name}: the mutants reach both outcomes`);
  }
});
