// The one line for an output file that could not be written: what the system said, without the
// temporary file's name (a regular file is written beside and renamed into place), and what to do.

const REMEDY: Record<string, string> = {
  ENOSPC: 'free some space or write somewhere else',
  EDQUOT: 'free some space or write somewhere else',
  EACCES: 'choose a location you can write',
  EPERM: 'choose a location you can write',
  EROFS: 'the file system is read-only; choose a location you can write',
  ENOENT: 'the folder does not exist or cannot hold new files; choose another location',
  ENOTDIR: 'a part of the path is a file, not a folder; choose another location',
  EISDIR: 'give a file name, not a folder',
};

/** `cannot write FILE: ERROR; REMEDY` for a failed write of -o FILE. */
export function cannotWrite(output: string, e: unknown): string {
  const message = String((e as Error)?.message ?? e).split('\n')[0]!.replace(/, open '[^']*'$/, '');
  const code = (e as { code?: unknown } | null)?.code;
  const remedy = typeof code === 'string' ? REMEDY[code] : undefined;
  return `cannot write ${output}: ${message}; ${remedy ?? 'choose another location with -o'}`;
}
