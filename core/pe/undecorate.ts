// The C name behind a 32-bit x86 COFF symbol name, for display: MinGW (like MSVC) prefixes cdecl
// and stdcall names with '_' and suffixes stdcall names with '@<argument bytes>'; fastcall names
// are '@name@<bytes>'.

/** '_DriverEntry@8' → 'DriverEntry', '@IofCompleteRequest@8' → 'IofCompleteRequest', '_DbgPrint' → 'DbgPrint'. */
export function undecorate(name: string): string {
  const fastcall = /^@([^@]+)@\d+$/.exec(name);
  if (fastcall) return fastcall[1]!;
  const stdcall = /^_([^@]+)@\d+$/.exec(name);
  if (stdcall) return stdcall[1]!;
  if (name.startsWith('_') && name.length > 1) return name.slice(1);
  return name;
}
