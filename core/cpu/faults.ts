// Guest faults are values the guest sees; emulator gaps are errors. The two never mix: a
// GuestFault is caught by the CPU and delivered through the IDT, an EmulatorError stops the
// machine and reaches the user as "ntflow cannot emulate X".

/** Exception vectors (Intel SDM vol. 3, table 6-1). */
export const enum Vector {
  DE = 0,
  DB = 1,
  NMI = 2,
  BP = 3,
  OF = 4,
  BR = 5,
  UD = 6,
  NM = 7,
  DF = 8,
  TS = 10,
  NP = 11,
  SS = 12,
  GP = 13,
  PF = 14,
  MF = 16,
  AC = 17,
}

export const VECTOR_NAMES: Record<number, string> = {
  0: '#DE', 1: '#DB', 2: 'NMI', 3: '#BP', 4: '#OF', 5: '#BR', 6: '#UD', 7: '#NM', 8: '#DF',
  10: '#TS', 11: '#NP', 12: '#SS', 13: '#GP', 14: '#PF', 16: '#MF', 17: '#AC',
};

/** A fault raised while executing an instruction; the CPU delivers it to the guest. */
export class GuestFault {
  constructor(
    readonly vector: number,
    /** null for exceptions that push no error code. */
    readonly errorCode: number | null = null,
    /** CR2 for #PF. */
    readonly cr2: number | null = null,
  ) {}
}

/** Something ntflow does not emulate (yet). Names the bytes and the address. */
export class EmulatorError extends Error {
  override name = 'EmulatorError';
}

/** Exceptions that push an error code (the SDM's list for protected mode). */
export function pushesErrorCode(vector: number): boolean {
  return vector === 8 || (vector >= 10 && vector <= 14) || vector === 17;
}

// Double-fault classes (SDM vol. 3, table 6-5).
const CONTRIBUTORY = new Set([0, 10, 11, 12, 13]);

/** What delivering `second` while delivering `first` becomes: 'serial', 'double' or 'triple'. */
export function faultCombination(first: number, second: number): 'serial' | 'double' | 'triple' {
  if (first === Vector.DF) return 'triple';
  const firstPf = first === Vector.PF;
  if (CONTRIBUTORY.has(first) && CONTRIBUTORY.has(second)) return 'double';
  if (firstPf && (CONTRIBUTORY.has(second) || second === Vector.PF)) return 'double';
  return 'serial';
}
