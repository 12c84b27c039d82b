/* A user program for the PE loader's tests, importing only ntdll: absolute addresses everywhere
   (a table of function pointers, pointers to data, a string's address) so that it computes its
   exit status right only when the loader applied its base relocations. NtClose of a bad handle
   fails with STATUS_INVALID_HANDLE, which the status also folds in: the import was bound. */
__declspec(dllimport) long __stdcall NtClose(void *handle);

typedef int (*op)(int);
static int __attribute__((noinline)) twice(int x) { return 2 * x; }
static int __attribute__((noinline)) plusSeven(int x) { return x + 7; }
op ops[] = {twice, plusSeven, twice}; /* not static: the compiler cannot fold the calls */
static const char text[] = "relocated";
const char *textp = text;
int counter = 5;
int *counterp = &counter;

long __stdcall start(void) {
  int v = *counterp;
  for (unsigned i = 0; i < sizeof ops / sizeof ops[0]; i++) v = ops[i](v);
  v += textp[2] == 'l' ? 1000 : 0;           /* 5 → 10 → 17 → 34, + 1000 */
  if (NtClose((void *)0x1234) == (long)0xC0000008) v += 0x10000;
  return v;                                   /* 0x1040A: the thread's exit status */
}
