/* A program importing sample.dll's Hidden by ordinal (7) and Twice by name, through the import
   library i686-w64-mingw32-dlltool makes from lib.def. */
__declspec(dllimport) int Hidden(int);
__declspec(dllimport) int Twice(int);
__declspec(dllimport) void __stdcall ExitProcess(unsigned);

void __stdcall start(void) { ExitProcess((unsigned)(Hidden(3) + Twice(4))); }
