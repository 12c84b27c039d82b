// ProbeForRead / ProbeForWrite, as NT-FACTS §4e gives them (ReactOS ex/exintrin.c, which mirrors
// NT 5.x), and the "generic type" probes of the small fixed-size arguments (IO_STATUS_BLOCK,
// LARGE_INTEGER, ULONG, HANDLE out-parameters): those check only the range and touch the
// location, with no alignment check ("Alignment of the pointers is not verified!").
//
// The services apply a probe only when PreviousMode is UserMode; every probe emits a `probe` event.
import { GuestFault } from '../../cpu/faults.js';
import type { Kernel } from '../kernel.js';
import { MM_USER_PROBE_ADDRESS } from '../layout.js';
import { S } from './util.js';

export { MM_USER_PROBE_ADDRESS };
const PAGE = 0x1000;

/**
 * The address checks of ProbeForRead/ProbeForWrite, without touching memory:
 * length 0 → success at once (no alignment or range check); `address & (alignment-1)` →
 * STATUS_DATATYPE_MISALIGNMENT; `last = address + length - 1` wrapping or ≥ MmUserProbeAddress →
 * STATUS_ACCESS_VIOLATION.
 */
export function probeCheck(address: number, length: number, alignment: number): number {
  address >>>= 0;
  length >>>= 0;
  if (length === 0) return S.STATUS_SUCCESS;
  if ((address & (alignment - 1)) !== 0) return S.STATUS_DATATYPE_MISALIGNMENT;
  const last = address + length - 1; // a double: > 0xFFFFFFFF means the ULONG_PTR sum wrapped
  if (last > 0xffffffff || last >= MM_USER_PROBE_ADDRESS) return S.STATUS_ACCESS_VIOLATION;
  return S.STATUS_SUCCESS;
}

/** Where touching a buffer faulted and why (the page absent, or present but not writable). */
interface Touched {
  status: number;
  faultAddress: number | null;
  fault: 'not-present' | 'read-only' | null;
}

const checked = (status: number): Touched => ({ status, faultAddress: null, fault: null });

function emitProbe(k: Kernel, kind: 'read' | 'write', address: number, length: number, alignment: number, t: Touched): number {
  k.emit<'probe'>({ type: 'probe', kind, address: address >>> 0, length: length >>> 0, alignment, status: t.status >>> 0, faultAddress: t.faultAddress, fault: t.fault });
  return t.status >>> 0;
}

/** ProbeForRead: the checks only — it does not check that the pages are readable. */
export function probeForRead(k: Kernel, address: number, length: number, alignment: number): number {
  return emitProbe(k, 'read', address, length, alignment, checked(probeCheck(address, length, alignment)));
}

/**
 * ProbeForWrite: the checks, then read one byte of every page from `address` to the last byte and
 * write it back through the MMU (`*(volatile CHAR *)p = *p`), so a read-only or absent page faults
 * here and the caller sees STATUS_ACCESS_VIOLATION.
 */
export function probeForWrite(k: Kernel, address: number, length: number, alignment: number): number {
  let t = checked(probeCheck(address, length, alignment));
  if (t.status === S.STATUS_SUCCESS && length >>> 0 !== 0) t = touch(k, address >>> 0, (address >>> 0) + (length >>> 0) - 1, true);
  return emitProbe(k, 'write', address, length, alignment, t);
}

/**
 * ProbeForRead/WriteGenericType (ProbeForWriteIoStatusBlock, ProbeForReadLargeInteger,
 * ProbeForWriteHandle, ProbeForWriteUlong …): a range check against MmUserProbeAddress and a touch
 * of the location (a write-back for the write forms); no alignment check (the event says 1).
 */
export function probeGeneric(k: Kernel, address: number, size: number, kind: 'read' | 'write'): number {
  address >>>= 0;
  const last = address + size - 1;
  let t = checked(last > 0xffffffff || last >= MM_USER_PROBE_ADDRESS ? S.STATUS_ACCESS_VIOLATION : S.STATUS_SUCCESS);
  if (t.status === S.STATUS_SUCCESS) t = touch(k, address, last, kind === 'write');
  return emitProbe(k, kind, address, size, 1, t);
}

/** Touch the first byte and one byte in every following page up to `last`. */
function touch(k: Kernel, address: number, last: number, write: boolean): Touched {
  let p = address;
  try {
    for (;;) {
      const b = k.r8(p);
      if (write) k.w8(p, b);
      p = (p + PAGE) & ~(PAGE - 1);
      p >>>= 0;
      if (p > last || p === 0) break;
    }
    return checked(S.STATUS_SUCCESS);
  } catch (e) {
    if (!(e instanceof GuestFault)) throw e;
    // #PF's error code bit 0: the page was present (so the write hit a read-only page).
    const present = e.vector === 14 && e.errorCode !== null && (e.errorCode & 1) !== 0;
    return { status: S.STATUS_ACCESS_VIOLATION, faultAddress: (e.cr2 ?? p) >>> 0, fault: present ? 'read-only' : 'not-present' };
  }
}
