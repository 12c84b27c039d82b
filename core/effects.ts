// The packed form of an event's effects: how the machine hands each instruction's effects to a
// batch consumer (batches$, core/batches.ts) and how the trace keeps them (exceptions.effects;
// each instruction's, in columns, in instruction_runs.effects):
//   register:   1 byte RegId (0-18), 4 bytes value LE; or 0x20|RegId with 2 bytes when the value
//               is below 0x10000, 0x40|RegId with 1 byte below 0x100; EFLAGS holding only CF PF AF
//               ZF SF OF IF DF (and the fixed bit 1) is 0x68 + 1 byte of those eight bits
//   memory:     1 byte 0x80 | size (1, 2, 4), 4 bytes linear address LE, `size` bytes value LE
//   page table: 1 byte 0xC0, 4 bytes physical address LE, 4 bytes value LE (accessed/dirty bits)
// Replaying every row's effects in seq order rebuilds registers and memory (the analyzer does).
import type { Effects } from './events.js';

export const MEMORY_WRITE = 0x80;
export const TABLE_WRITE = 0xc0;
const REG16 = 0x20;
const REG8 = 0x40;
const EFLAGS_PACKED = 0x68;
const EFLAGS_ID = 8;
// The eight EFLAGS bits that change all the time, in the packed byte's order.
const FLAG_BITS = [0, 2, 4, 6, 7, 11, 9, 10]; // CF PF AF ZF SF OF IF DF
const FLAG_MASK = FLAG_BITS.reduce((m, b) => m | (1 << b), 0) | 2;

/** FLAG_BITS gathered into one byte, written out: it runs for nearly every instruction recorded. */
function packFlags(v: number): number {
  return (v & 1) | ((v >>> 1) & 2) | ((v >>> 2) & 4) | ((v >>> 3) & 8) | ((v >>> 3) & 0x10) | ((v >>> 6) & 0x20) | ((v >>> 3) & 0x40) | ((v >>> 3) & 0x80);
}
function unpackFlags(b: number): number {
  let v = 2;
  FLAG_BITS.forEach((bit, i) => (v |= ((b >>> i) & 1) << bit));
  return v >>> 0;
}

function regSize(id: number, v: number): number {
  if (id === EFLAGS_ID && (v & ~FLAG_MASK) === 0) return 2;
  return v < 0x100 ? 2 : v < 0x10000 ? 3 : 5;
}

/** Bytes the packed form of these effects takes. */
export function packedSize(e: Effects): number {
  let n = (e.tableWrites.length / 2) * 9;
  for (let i = 1; i < e.regs.length; i += 2) n += regSize(e.regs[i - 1], e.regs[i]);
  for (let i = 1; i < e.writes.length; i += 3) n += 5 + e.writes[i];
  return n;
}

/** At most this many bytes for effect lists of these lengths (a bound that needs no look at the values). */
export function packedBound(regsLength: number, writesLength: number, tableWritesLength: number): number {
  return (regsLength >> 1) * 5 + (writesLength / 3) * 9 + (tableWritesLength >> 1) * 9;
}

/** Write the packed effects into `out` at `at`; returns the new offset. */
export function packEffects(e: Effects, out: Uint8Array, at: number): number {
  return packLists(e.regs, e.regs.length, e.writes, e.writes.length, e.tableWrites, e.tableWrites.length, out, at);
}

/**
 * packEffects from the lists themselves, each the first `…Length` entries of its array (the
 * machine's batches pack from its reused buffers, without an event object).
 */
export function packLists(r: ArrayLike<number>, rLength: number, w: ArrayLike<number>, wLength: number, t: ArrayLike<number>, tLength: number, out: Uint8Array, at: number): number {
  const put32 = (v: number) => {
    out[at] = v;
    out[at + 1] = v >>> 8;
    out[at + 2] = v >>> 16;
    out[at + 3] = v >>> 24;
    at += 4;
  };
  for (let i = 0; i < rLength; i += 2) {
    const v = r[i + 1];
    if (r[i] === EFLAGS_ID && (v & ~FLAG_MASK) === 0) {
      out[at++] = EFLAGS_PACKED;
      out[at++] = packFlags(v);
    } else if (v < 0x100) {
      out[at++] = REG8 | r[i];
      out[at++] = v;
    } else if (v < 0x10000) {
      out[at++] = REG16 | r[i];
      out[at++] = v;
      out[at++] = v >>> 8;
    } else {
      out[at++] = r[i];
      put32(v);
    }
  }
  for (let i = 0; i < wLength; i += 3) {
    const size = w[i + 1];
    out[at++] = MEMORY_WRITE | size;
    put32(w[i]);
    const v = w[i + 2];
    for (let b = 0; b < size; b++) out[at++] = (v >>> (8 * b)) & 0xff;
  }
  for (let i = 0; i < tLength; i += 2) {
    out[at++] = TABLE_WRITE;
    put32(t[i]);
    put32(t[i + 1]);
  }
  return at;
}

export interface UnpackedEffects {
  regs: [number, number][];
  writes: [number, number, number][];
  tableWrites: [number, number][];
}

/** The inverse of packEffects (for the analyzer and tools). */
export function unpackEffects(buf: Uint8Array | null): UnpackedEffects {
  const out: UnpackedEffects = { regs: [], writes: [], tableWrites: [] };
  if (!buf) return out;
  const u32 = (at: number) => (buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16) | (buf[at + 3] << 24)) >>> 0;
  let at = 0;
  while (at < buf.length) {
    const tag = buf[at++];
    if (tag === TABLE_WRITE) {
      out.tableWrites.push([u32(at), u32(at + 4)]);
      at += 8;
    } else if (tag & MEMORY_WRITE) {
      const size = tag & 7;
      let v = 0;
      for (let b = 0; b < size; b++) v += buf[at + 4 + b] * 2 ** (8 * b);
      out.writes.push([u32(at), size, v]);
      at += 4 + size;
    } else if (tag === EFLAGS_PACKED) {
      out.regs.push([EFLAGS_ID, unpackFlags(buf[at])]);
      at += 1;
    } else if (tag & REG8) {
      out.regs.push([tag & 0x1f, buf[at]]);
      at += 1;
    } else if (tag & REG16) {
      out.regs.push([tag & 0x1f, buf[at] | (buf[at + 1] << 8)]);
      at += 2;
    } else {
      out.regs.push([tag, u32(at)]);
      at += 4;
    }
  }
  return out;
}
