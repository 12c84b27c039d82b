// Small shared pieces of the NT executive bodies: statuses, the internal "raise a status" used
// where XP's code would leave through its exception handler or an early return, modes, and
// guest string helpers. Everything here touches guest memory only through the Kernel (the MMU).
import type { Kernel } from '../kernel.js';
import { NTSTATUS } from '../ntstatus.js';
import { offsetOf } from '../structs.js';

/** The NTSTATUS values the executive returns (every one is listed in ntstatus.ts). */
export const S = NTSTATUS;

export const KernelMode = 0;
export const UserMode = 1;
export type Mode = 0 | 1;
export const modeName = (m: number): 'UserMode' | 'KernelMode' => (m & 1 ? 'UserMode' : 'KernelMode');

/** NT_SUCCESS / NT_ERROR on an unsigned NTSTATUS. */
export const ntSuccess = (s: number): boolean => (s >>> 31) === 0;
export const ntError = (s: number): boolean => s >>> 30 === 3;

/**
 * A status that ends a body early. XP's services leave through their SEH handler or a `return
 * status`; the bodies here throw NtError and `run` turns it into the routine's EAX. Anything else
 * (a GuestFault the dispatcher maps to STATUS_ACCESS_VIOLATION, MachineStopped) passes through.
 */
export class NtError {
  constructor(readonly status: number) {}
}
export function fail(status: number): never {
  throw new NtError(status >>> 0);
}
/** Raise `status` unless it is STATUS_SUCCESS (for probe results). */
export function check(status: number): void {
  if (status !== 0) fail(status);
}
export function run(body: () => number): number {
  try {
    return body() >>> 0;
  } catch (e) {
    if (e instanceof NtError) return e.status;
    throw e;
  }
}

export const hex = (v: number): string => '0x' + (v >>> 0).toString(16).toUpperCase();

// ---- guest strings ------------------------------------------------------------------------------

const US_LENGTH = offsetOf('UNICODE_STRING', 'Length');
const US_MAX = offsetOf('UNICODE_STRING', 'MaximumLength');
const US_BUFFER = offsetOf('UNICODE_STRING', 'Buffer');

export function readWString(k: Kernel, addr: number, lengthBytes: number): string {
  let s = '';
  for (let i = 0; i + 1 < lengthBytes; i += 2) s += String.fromCharCode(k.r16(addr + i));
  return s;
}

/** A NUL-terminated UTF-16 string (at most `max` characters). */
export function readWStringZ(k: Kernel, addr: number, max = 0x7fff): string {
  let s = '';
  for (let i = 0; i < max; i++) {
    const c = k.r16(addr + 2 * i);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/** A NUL-terminated 8-bit string. */
export function readStringZ(k: Kernel, addr: number, max = 0x1000): string {
  let s = '';
  for (let i = 0; i < max; i++) {
    const c = k.r8(addr + i);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/** The fields of a UNICODE_STRING at `us`. */
export function readUnicodeStringHeader(k: Kernel, us: number): { length: number; maximumLength: number; buffer: number } {
  return { length: k.r16(us + US_LENGTH), maximumLength: k.r16(us + US_MAX), buffer: k.r32(us + US_BUFFER) };
}

/** Fill the UNICODE_STRING at `us` with a pool copy of `text` (NUL-terminated, as the I/O manager keeps names). */
export function setUnicodeString(k: Kernel, us: number, text: string): void {
  const bytes = text.length * 2;
  const buffer = k.allocPool(bytes + 2);
  for (let i = 0; i < text.length; i++) k.w16(buffer + 2 * i, text.charCodeAt(i));
  k.w16(us + US_LENGTH, bytes);
  k.w16(us + US_MAX, bytes + 2);
  k.w32(us + US_BUFFER, buffer);
}

/** A UNICODE_STRING and its buffer in pool; returns the UNICODE_STRING's address. */
export function allocUnicodeString(k: Kernel, text: string): number {
  const us = k.allocPool(8);
  setUnicodeString(k, us, text);
  return us;
}

/** Two u32 halves of a LARGE_INTEGER / u64 field. */
export function read64(k: Kernel, addr: number): { low: number; high: number } {
  return { low: k.r32(addr), high: k.r32(addr + 4) };
}
export function write64(k: Kernel, addr: number, value: number): void {
  k.w32(addr, value % 0x100000000);
  k.w32(addr + 4, Math.floor(value / 0x100000000));
}
