/* A DLL for ntflow's PE tests: exports by name (stdcall and cdecl), one by ordinal only (NONAME,
   see lib.def), and a forwarder to ntdll. */
__declspec(dllexport) int __stdcall Add(int a, int b) { return a + b; }
__declspec(dllexport) int Twice(int a) { return 2 * a; }
int Hidden(int a) { return a + 1; }
