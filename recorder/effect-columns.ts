// The columnar form of a run's effects, what instruction_runs.effects holds before deflate: the
// packed effects of each instruction (core/effects.ts) split into a structure column — per instruction
// its number of items, then each item's tag byte — and a value column where each register value
// is the difference from that register's previous value in the run and each memory address the
// difference from the end of the previous write (zigzag varints), memory bytes and page-table
// updates as they are. A loop's counter moving by one, a stack pointer by four and writes to
// neighbouring addresses become a few repeated bytes that deflate folds away; the packed bytes come
// back exactly (the tags keep each value's packed width).
import { MEMORY_WRITE, TABLE_WRITE } from '../core/index.js';

const EFLAGS_PACKED = 0x68;
const REG8 = 0x40;
const REG16 = 0x20;

class Bytes {
  buf: Uint8Array;
  at = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(Math.max(size, 16));
  }
  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.at + n));
    grown.set(this.buf.subarray(0, this.at));
    this.buf = grown;
  }
  byte(b: number): void {
    this.room(1);
    this.buf[this.at++] = b;
  }
  bytes(src: Uint8Array, from: number, n: number): void {
    this.room(n);
    for (let i = 0; i < n; i++) this.buf[this.at++] = src[from + i];
  }
  varint(n: number): void {
    this.room(5);
    while (n >= 0x80) {
      this.buf[this.at++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.buf[this.at++] = n;
  }
  /** A signed 32-bit difference, zigzag-coded. */
  signed(d: number): void {
    this.varint(((d << 1) ^ (d >> 31)) >>> 0);
  }
}

/** Width of a register value by its tag in the packed form. */
const regWidth = (tag: number) => (tag & REG8 ? 1 : tag & REG16 ? 2 : 4);

/**
 * The columnar form of `count` instructions' packed effects: `ends[from + i]` ends instruction i's
 * bytes in `packed`, the first starting at `start`.
 */
export function toColumns(packed: Uint8Array, ends: Uint32Array, from: number, count: number, start: number): Uint8Array {
  const size = ends[from + count - 1] - start;
  // Upper bounds: a varint of items per instruction and a tag per item (an item is at least 2
  // bytes); a value is at most 5 varint bytes for every 2 packed bytes, plus raw bytes as they are.
  const struct = new Uint8Array(count * 5 + size);
  const values = new Uint8Array(size * 3 + 16);
  let sa = 0;
  let va = 0;
  const last = new Int32Array(32);
  let nextAddr = 0;
  let at = start;
  for (let i = from; i < from + count; i++) {
    const end = ends[i];
    let items = 0;
    for (let p = at; p < end; items++) p += 1 + itemSize(packed, p);
    while (items >= 0x80) {
      struct[sa++] = (items & 0x7f) | 0x80;
      items >>>= 7;
    }
    struct[sa++] = items;
    while (at < end) {
      const tag = packed[at++];
      struct[sa++] = tag;
      let d: number;
      if (tag === TABLE_WRITE) {
        for (let k = 0; k < 8; k++) values[va++] = packed[at++];
        continue;
      } else if (tag & MEMORY_WRITE) {
        const n = tag & 7;
        const addr = packed[at] | (packed[at + 1] << 8) | (packed[at + 2] << 16) | (packed[at + 3] << 24);
        d = (addr - nextAddr) | 0;
        nextAddr = (addr + n) | 0;
        at += 4;
        let z = ((d << 1) ^ (d >> 31)) >>> 0;
        while (z >= 0x80) {
          values[va++] = (z & 0x7f) | 0x80;
          z >>>= 7;
        }
        values[va++] = z;
        for (let k = 0; k < n; k++) values[va++] = packed[at++];
        continue;
      } else if (tag === EFLAGS_PACKED) {
        values[va++] = packed[at++];
        continue;
      } else {
        const w = regWidth(tag);
        const v = w === 1 ? packed[at] : w === 2 ? packed[at] | (packed[at + 1] << 8) : packed[at] | (packed[at + 1] << 8) | (packed[at + 2] << 16) | (packed[at + 3] << 24);
        const id = tag & 0x1f;
        d = (v - last[id]) | 0;
        last[id] = v;
        at += w;
      }
      let z = ((d << 1) ^ (d >> 31)) >>> 0;
      while (z >= 0x80) {
        values[va++] = (z & 0x7f) | 0x80;
        z >>>= 7;
      }
      values[va++] = z;
    }
  }
  const head: number[] = [];
  for (let n = sa; ; n >>>= 7) {
    if (n < 0x80) {
      head.push(n);
      break;
    }
    head.push((n & 0x7f) | 0x80);
  }
  const out = new Uint8Array(head.length + sa + va);
  out.set(head, 0);
  out.set(struct.subarray(0, sa), head.length);
  out.set(values.subarray(0, va), head.length + sa);
  return out;
}

/** Bytes after the tag of the item at `p` in the packed form. */
function itemSize(packed: Uint8Array, p: number): number {
  const tag = packed[p];
  if (tag === TABLE_WRITE) return 8;
  if (tag & MEMORY_WRITE) return 4 + (tag & 7);
  if (tag === EFLAGS_PACKED) return 1;
  return regWidth(tag);
}

export class ColumnsError extends Error {}

/** The packed effects back from the columnar form: the bytes, and count + 1 offsets into them. */
export function fromColumns(col: Uint8Array, count: number): { bytes: Uint8Array; starts: Uint32Array } {
  let s = 0; // in the structure column
  const varintAt = (limit: number): number => {
    let n = 0;
    let shift = 0;
    for (;;) {
      if (s >= limit) throw new ColumnsError('a varint runs past its column');
      const b = col[s++];
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return n;
      shift += 7;
      if (shift > 35) throw new ColumnsError('a varint longer than 5 bytes');
    }
  };
  const structLength = varintAt(col.length);
  const structEnd = s + structLength;
  if (structEnd > col.length) throw new ColumnsError('the structure column is longer than the blob');
  let v = structEnd; // in the value column
  const signed = (): number => {
    let n = 0;
    let shift = 0;
    for (;;) {
      if (v >= col.length) throw new ColumnsError('the value column ends early');
      const b = col[v++];
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
      shift += 7;
      if (shift > 35) throw new ColumnsError('a varint longer than 5 bytes');
    }
    return (n >>> 1) ^ -(n & 1);
  };
  const raw = (n: number): number => {
    if (v + n > col.length) throw new ColumnsError('the value column ends early');
    v += n;
    return v - n;
  };
  const out = new Bytes(col.length * 2);
  const starts = new Uint32Array(count + 1);
  const last = new Array<number>(32).fill(0);
  let nextAddr = 0;
  const put32 = (x: number) => {
    out.byte(x & 0xff);
    out.byte((x >>> 8) & 0xff);
    out.byte((x >>> 16) & 0xff);
    out.byte((x >>> 24) & 0xff);
  };
  for (let i = 0; i < count; i++) {
    starts[i] = out.at;
    const items = varintAt(structEnd);
    for (let k = 0; k < items; k++) {
      if (s >= structEnd) throw new ColumnsError('the structure column ends early');
      const tag = col[s++];
      out.byte(tag);
      if (tag === TABLE_WRITE) {
        out.bytes(col, raw(8), 8);
      } else if (tag & MEMORY_WRITE) {
        const n = tag & 7;
        const addr = (nextAddr + signed()) >>> 0;
        put32(addr);
        nextAddr = (addr + n) >>> 0;
        out.bytes(col, raw(n), n);
      } else if (tag === EFLAGS_PACKED) {
        out.byte(col[raw(1)]);
      } else {
        const id = tag & 0x1f;
        const x = (last[id] + signed()) >>> 0;
        last[id] = x;
        const w = regWidth(tag);
        out.byte(x & 0xff);
        if (w >= 2) out.byte((x >>> 8) & 0xff);
        if (w === 4) {
          out.byte((x >>> 16) & 0xff);
          out.byte((x >>> 24) & 0xff);
        }
      }
    }
  }
  starts[count] = out.at;
  if (s !== structEnd || v !== col.length) throw new ColumnsError('the columns hold more than their instructions');
  return { bytes: out.buf.subarray(0, out.at), starts };
}
