// Seeded PRNG for the differential generators. A failing run is reproduced by its seed, so every
// random choice must come from here (never Math.random) and the seed is printed by the test.

/** sfc32 (Chris Doty-Humphrey's "small fast counting" generator): 128-bit state, good
 *  statistics, 32-bit integer arithmetic only, so it is the same on every JS engine. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.u32(); // spread the seed through the state
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor((this.u32() / 0x1_0000_0000) * (hi - lo + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(0, items.length - 1)]!;
  }

  /** Pick by weight: entries are [weight, value]. */
  weighted<T>(entries: readonly (readonly [number, T])[]): T {
    const total = entries.reduce((s, [w]) => s + w, 0);
    let x = (this.u32() / 0x1_0000_0000) * total;
    for (const [w, v] of entries) {
      if (x < w) return v;
      x -= w;
    }
    return entries[entries.length - 1]![1];
  }
}

/** The seed for this run: NTFLOW_DIFF_SEED (decimal or 0x hex) if set, else a fresh one. */
export function seedFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.NTFLOW_DIFF_SEED?.trim();
  if (text) {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
      throw new Error(`NTFLOW_DIFF_SEED must be an integer 0..0xFFFFFFFF, got '${text}'`);
    }
    return n >>> 0;
  }
  return (Date.now() ^ (process.pid << 16) ^ Math.floor(performance.now() * 1000)) >>> 0;
}

/** The number of cases for this run: NTFLOW_DIFF_CASES if set, else the default. */
export function caseCountFromEnv(fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const text = env.NTFLOW_DIFF_CASES?.trim();
  if (!text) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`NTFLOW_DIFF_CASES must be a positive integer, got '${text}'`);
  }
  return n;
}
