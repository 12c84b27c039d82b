// Independent oracles (Unicorn, nasm, qemu-system-i386, MinGW-w64, objdump) are installed by
// .ci/run. A developer without them sees a visible skip; in CI (CI=true) a missing oracle is a
// failure, never a skip.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export type OracleName = 'unicorn' | 'nasm' | 'qemu' | 'mingw' | 'objdump';

/** The Debian python that sees python3-unicorn (the pyenv python3 on PATH does not). */
export const DEBIAN_PYTHON = '/usr/bin/python3';

const probes: Record<OracleName, () => boolean> = {
  unicorn: () => spawnSync(DEBIAN_PYTHON, ['-c', 'import unicorn'], { stdio: 'ignore' }).status === 0,
  nasm: () => spawnSync('nasm', ['-v'], { stdio: 'ignore' }).status === 0,
  qemu: () => spawnSync('qemu-system-i386', ['--version'], { stdio: 'ignore' }).status === 0,
  // The compiler, its import libraries and DDK headers, and dlltool (the PE tests build their samples).
  mingw: () =>
    spawnSync('i686-w64-mingw32-gcc', ['--version'], { stdio: 'ignore' }).status === 0 &&
    spawnSync('i686-w64-mingw32-dlltool', ['--version'], { stdio: 'ignore' }).status === 0 &&
    existsSync('/usr/share/mingw-w64/include/ddk/ntddk.h'),
  // binutils' objdump, which must know the pei-i386 format.
  objdump: () => /pei-i386/.test(spawnSync('objdump', ['--help'], { encoding: 'utf8' }).stdout ?? ''),
};

const install: Record<OracleName, string> = {
  unicorn: 'apt-get install -y python3-unicorn',
  nasm: 'apt-get install -y nasm',
  qemu: 'apt-get install -y --no-install-recommends qemu-system-x86',
  mingw: 'apt-get install -y gcc-mingw-w64-i686',
  objdump: 'apt-get install -y binutils',
};

const cache = new Map<OracleName, boolean>();

/** null when the oracle is usable, else the reason it is not (with the install command). */
export function oracleMissing(name: OracleName): string | null {
  if (!cache.has(name)) cache.set(name, probes[name]());
  return cache.get(name) ? null : `${name} oracle not installed (${install[name]})`;
}

/** The part of a tap Test this needs (tap's skip() is overloaded; any of its forms takes a message). */
interface SkippableTest {
  skip(...args: any[]): unknown;
  fail(...args: any[]): unknown;
}

/**
 * Call at the top of a tap test: true when the oracle is there. Otherwise the test is skipped with
 * the reason, or failed when CI=true (CI installs every oracle, so absence there is a broken setup).
 */
export function haveOracle(t: SkippableTest, name: OracleName): boolean {
  const missing = oracleMissing(name);
  if (missing === null) return true;
  if (process.env.CI === 'true') t.fail(`${missing}; CI must install it (.ci/run)`);
  else t.skip(missing);
  return false;
}
