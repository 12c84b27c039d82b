/* A native-subsystem user program (as smss.exe is): it imports only ntdll, so it is a program,
   not a driver. */
__declspec(dllimport) long __stdcall NtTerminateProcess(void *process, long status);

void __stdcall start(void) { NtTerminateProcess((void *)-1, 0); }
