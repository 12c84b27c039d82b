// mapImage: the image as the loader lays it out in memory at a base, with its base relocations
// applied for the difference between that base and the ImageBase it was linked for.
import { extent, hex } from './parse.js';
import { PeError, type PeImage } from './types.js';

export interface MapOptions {
  /** The size of the region the image must fit in (a driver's 64 KiB slot, say). */
  regionSize?: number;
  /** What that region is called in the error ('a driver slot'); default 'its region'. */
  regionName?: string;
}

export interface MappedImage {
  /** SizeOfImage bytes: the headers (SizeOfHeaders from the file), each section's raw data at its RVA, zeros elsewhere. */
  bytes: Uint8Array;
  /** HIGHLOW fixups changed (0 when the image is mapped at its own ImageBase). */
  relocationsApplied: number;
}

/**
 * Lays the image out at `base` and relocates it. Refuses with a PeError an image bigger than the
 * region, and one whose relocations were stripped when `base` is not its ImageBase. The mapped
 * headers are the file's: ImageBase in them still says where the image was linked for. `base`
 * must be page-aligned (a caller's mistake otherwise, thrown as a plain Error).
 */
export function mapImage(pe: PeImage, base: number, options: MapOptions = {}): MappedImage {
  const f = pe.fileName;
  if (!Number.isInteger(base) || base < 0 || base % 0x1000 !== 0 || base + pe.sizeOfImage > 0x1_0000_0000) {
    throw new Error(`mapImage: base ${hex(base)} is not a page-aligned address with room for ${hex(pe.sizeOfImage)} bytes`);
  }
  if (options.regionSize !== undefined && pe.sizeOfImage > options.regionSize) {
    throw new PeError(f, `${f} is too big: its image needs ${hex(pe.sizeOfImage)} bytes (SizeOfImage) and ${options.regionName ?? 'its region'} holds ${hex(options.regionSize)}`);
  }
  const delta = (base - pe.imageBase) >>> 0;
  if (delta !== 0 && pe.relocsStripped) {
    throw new PeError(
      f,
      `${f} has no base relocations (they were stripped), so it runs only at its ImageBase ${hex(pe.imageBase)}, and ntflow loads it at ${hex(base)}: link it with -Wl,--dynamicbase (and without --disable-reloc-section)`,
    );
  }
  const bytes = new Uint8Array(pe.sizeOfImage);
  bytes.set(pe.file.subarray(0, pe.sizeOfHeaders), 0);
  for (const s of pe.sections) {
    const length = Math.min(s.sizeOfRawData, extent(s));
    if (length > 0) bytes.set(pe.file.subarray(s.pointerToRawData, s.pointerToRawData + length), s.virtualAddress);
  }
  let relocationsApplied = 0;
  if (delta !== 0) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (const rva of pe.relocations) {
      view.setUint32(rva, (view.getUint32(rva, true) + delta) >>> 0, true);
      relocationsApplied++;
    }
  }
  return { bytes, relocationsApplied };
}
