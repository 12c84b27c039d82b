// Building C with Debian's MinGW-w64 at test time: the command lines the README documents for a
// user program and a driver (no C runtime, no timestamps, COFF symbols kept), into a temporary
// folder. Call haveOracle(t, 'mingw') first.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const GCC = 'i686-w64-mingw32-gcc';
export const DLLTOOL = 'i686-w64-mingw32-dlltool';
export const DDK = '/usr/share/mingw-w64/include/ddk';

/** A user program: `void __stdcall start(void)` (or returning the exit status) is its entry. */
export const PROGRAM = ['-nostdlib', '-Wl,--no-insert-timestamp', '-e', '_start@0'];
/** A driver: DriverEntry, the native subsystem, the DDK headers. */
export const DRIVER = ['-I', DDK, '-nostdlib', '-Wl,--subsystem,native', '-Wl,--no-insert-timestamp', '-e', '_DriverEntry@8'];

/** Runs a tool in `cwd`; a failure throws with its output. */
export function run(command: string, args: readonly string[], cwd: string): void {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${r.stderr}${r.stdout}`);
}

/** A temporary folder to build in, and the bytes of what was built there. */
export interface BuildDir {
  dir: string;
  /** gcc `args` -o `output`; returns the output's bytes. */
  gcc(output: string, args: readonly string[]): Uint8Array;
  path(name: string): string;
  remove(): void;
}

export function buildDir(prefix = 'ntflow-mingw-'): BuildDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    gcc: (output, args) => {
      run(GCC, [...args, '-o', output], dir);
      return new Uint8Array(readFileSync(join(dir, output)));
    },
    path: (name) => join(dir, name),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
