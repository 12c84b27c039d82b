/* A user program for ntflow's PE tests: console subsystem, entry start, kernel32 imports, a static
   function, initialized data (HIGHLOW fixups for &msg and counter). */
#include <windows.h>

static char msg[] = "hello from a MinGW program\r\n";
int counter = 5;

static int helper(int x) { return x * counter; }

void __stdcall start(void) {
  HANDLE out = GetStdHandle(STD_OUTPUT_HANDLE);
  DWORD written = 0;
  WriteFile(out, msg, sizeof msg - 1, &written, NULL);
  ExitProcess(helper((int)written));
}
