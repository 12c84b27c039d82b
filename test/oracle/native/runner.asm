; ntflow's hardware oracle: run IA-32 test cases natively as 32-bit Linux code (IA-32 compat mode).
; A static ELF with no libc: nasm -f elf32 runner.asm -o runner.o && ld -m elf_i386 -o runner runner.o
; test/oracle/native.ts builds it into a temporary directory and speaks the record format below.
;
; Fixed pages (mmap'd at start, MAP_FIXED_NOREPLACE so nothing of the runner is overwritten):
;   code  0x00401000  RWX  (the case's code, then `jmp rel32` back into the runner)
;   data  0x10000000  RW
;   stack 0x1000F000  RW
; Nothing else is mapped near them, so a stray access faults.
;
; stdin, one record per case (little-endian dwords), IN_SIZE bytes:
;   +0   eax ecx edx ebx esp ebp esi edi  (8 x u32)
;   +32  eflags (only CF PF AF ZF SF DF OF are loaded; IF is always 1)
;   +36  code length (0..CODE_MAX)
;   +40  code bytes (CODE_MAX)
;   +296 data page (4096), +4392 stack page (4096)
; stdout, one record per case, OUT_SIZE bytes:
;   +0   signal (0: the code ran to its end)   +4 trap number (CPU vector)   +8 error code
;   +12  magic 'NTFR'
;   +16  eax ecx edx ebx esp ebp esi edi   +48 eip   +52 eflags
;   +56  fault address (siginfo si_addr: CR2 for a page fault)   +60 zero
;   +64  data page (4096), +4160 stack page (4096)
; For a fault the registers are those at the faulting instruction (from the signal's ucontext).
; Faults are caught (SA_SIGINFO|SA_ONSTACK|SA_NODEFER on an alternate stack) and the runner goes
; on with the next record. A fault inside the runner itself exits with status 99.
BITS 32

%define CODE_ADDR   0x00401000
%define DATA_ADDR   0x10000000
%define STACK_ADDR  0x1000F000
%define PAGE        4096
%define CODE_MAX    256
%define IN_SIZE     (40 + CODE_MAX + 2 * PAGE)
%define OUT_SIZE    (64 + 2 * PAGE)

%define SYS_exit         1
%define SYS_fcntl        55
%define F_GETFL          3
%define F_SETFL          4
%define O_NONBLOCK       0x800
%define SYS_read         3
%define SYS_write        4
%define SYS_sigreturn    173
%define SYS_rt_sigaction 174
%define SYS_sigaltstack  186
%define SYS_mmap2        192

%define PROT_RW     3
%define PROT_RWX    7
%define MAP_FLAGS   0x100022        ; MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE
%define SA_FLAGS    0x4C000004      ; SA_SIGINFO | SA_RESTORER | SA_ONSTACK | SA_NODEFER
%define ALT_SIZE    65536
%define UC_MCONTEXT 20              ; offsetof(ucontext_t, uc_mcontext) on i386

section .bss
alignb 16
inrec:     resb IN_SIZE
alignb 16
outrec:    resb OUT_SIZE
alignb 16
altstack:  resb ALT_SIZE
host_esp:  resd 1
sigact:    resd 5                   ; handler, flags, restorer, mask (2 dwords)
stackt:    resd 3                   ; ss_sp, ss_flags, ss_size

section .text
global _start

; map one page: ebx = address, edx = protection; exits with 2 if it did not land at ebx
map_page:
  push ebx
  mov eax, SYS_mmap2
  mov ecx, PAGE
  mov esi, MAP_FLAGS
  mov edi, -1
  xor ebp, ebp
  int 0x80
  pop ebx
  cmp eax, ebx
  jne .bad
  ret
.bad:
  mov eax, SYS_exit
  mov ebx, 2
  int 0x80

; clear O_NONBLOCK on fd ebx: the pipes node hands the runner may be non-blocking, and a read
; before the parent has written (or a write into a full pipe) on a loaded machine would return
; -EAGAIN, which the runner would take for a broken pipe
make_blocking:
  push ebx
  mov eax, SYS_fcntl
  mov ecx, F_GETFL
  int 0x80
  pop ebx
  test eax, eax
  js .done                          ; not a file descriptor we can change: leave it
  and eax, ~O_NONBLOCK
  mov edx, eax
  mov eax, SYS_fcntl
  mov ecx, F_SETFL
  int 0x80
.done:
  ret

_start:
  xor ebx, ebx
  call make_blocking                ; stdin
  mov ebx, 1
  call make_blocking                ; stdout
  mov ebx, CODE_ADDR
  mov edx, PROT_RWX
  call map_page
  mov ebx, DATA_ADDR
  mov edx, PROT_RW
  call map_page
  mov ebx, STACK_ADDR
  mov edx, PROT_RW
  call map_page

  ; alternate signal stack: the case's ESP may point anywhere
  mov dword [stackt], altstack
  mov dword [stackt + 4], 0
  mov dword [stackt + 8], ALT_SIZE
  mov eax, SYS_sigaltstack
  mov ebx, stackt
  xor ecx, ecx
  int 0x80
  test eax, eax
  jnz fatal

  mov dword [sigact], on_signal
  mov dword [sigact + 4], SA_FLAGS
  mov dword [sigact + 8], restorer
  mov dword [sigact + 12], 0
  mov dword [sigact + 16], 0
  mov ebx, 4                        ; SIGILL
  call catch
  mov ebx, 5                        ; SIGTRAP
  call catch
  mov ebx, 7                        ; SIGBUS
  call catch
  mov ebx, 8                        ; SIGFPE
  call catch
  mov ebx, 11                       ; SIGSEGV
  call catch
  mov ebx, 16                       ; SIGSTKFLT
  call catch

case_loop:
  ; read one whole record (pipes deliver it in pieces)
  xor esi, esi
.read_more:
  mov eax, SYS_read
  xor ebx, ebx
  lea ecx, [inrec + esi]
  mov edx, IN_SIZE
  sub edx, esi
  int 0x80
  test eax, eax
  jz .eof
  js fatal
  add esi, eax
  cmp esi, IN_SIZE
  jb .read_more
  jmp .have_record
.eof:
  test esi, esi                     ; EOF between records: done; inside one: truncated input
  jnz fatal
  mov eax, SYS_exit
  xor ebx, ebx
  int 0x80

.have_record:
  cld
  mov ecx, [inrec + 36]
  cmp ecx, CODE_MAX - 8
  ja fatal
  lea esi, [inrec + 40]
  mov edi, CODE_ADDR
  rep movsb
  ; jmp rel32 from the end of the code to case_done
  mov byte [edi], 0xE9
  mov eax, case_done
  lea edx, [edi + 5]
  sub eax, edx
  mov [edi + 1], eax
  mov ecx, (PAGE / 4)
  lea esi, [inrec + 40 + CODE_MAX]
  mov edi, DATA_ADDR
  rep movsd
  mov ecx, (PAGE / 4)
  mov edi, STACK_ADDR
  rep movsd

  ; the default answer: ran to the end, eip = code address + length
  mov dword [outrec], 0
  mov dword [outrec + 4], 0
  mov dword [outrec + 8], 0
  mov dword [outrec + 12], 'NTFR'
  mov eax, [inrec + 36]
  add eax, CODE_ADDR
  mov [outrec + 48], eax
  mov dword [outrec + 56], 0
  mov dword [outrec + 60], 0

  mov [host_esp], esp
  mov eax, [inrec + 32]
  and eax, 0x0CD5                   ; CF PF AF ZF SF DF OF
  or eax, 0x0202
  push eax
  popfd
  ; from here on only MOVs (they leave EFLAGS alone)
  mov eax, [inrec + 0]
  mov ecx, [inrec + 4]
  mov edx, [inrec + 8]
  mov ebx, [inrec + 12]
  mov esp, [inrec + 16]
  mov ebp, [inrec + 20]
  mov esi, [inrec + 24]
  mov edi, [inrec + 28]
  jmp CODE_ADDR

case_done:
  mov [outrec + 16], eax
  mov [outrec + 20], ecx
  mov [outrec + 24], edx
  mov [outrec + 28], ebx
  mov [outrec + 32], esp
  mov [outrec + 36], ebp
  mov [outrec + 40], esi
  mov [outrec + 44], edi
  mov esp, [host_esp]
  pushfd
  pop dword [outrec + 52]
  cld

send_result:
  mov ecx, (PAGE / 4)
  mov esi, DATA_ADDR
  lea edi, [outrec + 64]
  rep movsd
  mov ecx, (PAGE / 4)
  mov esi, STACK_ADDR
  rep movsd
  xor esi, esi
.write_more:
  mov eax, SYS_write
  mov ebx, 1
  lea ecx, [outrec + esi]
  mov edx, OUT_SIZE
  sub edx, esi
  int 0x80
  test eax, eax
  jle fatal
  add esi, eax
  cmp esi, OUT_SIZE
  jb .write_more
  jmp case_loop

; void on_signal(int sig, siginfo_t *info, ucontext_t *uc), on the alternate stack
on_signal:
  cld
  mov eax, [esp + 8]
  mov eax, [eax + 12]               ; info->si_addr
  mov [outrec + 56], eax
  mov eax, [esp + 4]
  mov edx, [esp + 12]
  add edx, UC_MCONTEXT
  mov ecx, [edx + 56]               ; eip
  cmp ecx, CODE_ADDR
  jb .in_runner
  cmp ecx, CODE_ADDR + PAGE
  jae .in_runner
  mov [outrec], eax
  mov [outrec + 48], ecx
  mov eax, [edx + 48]               ; trapno
  mov [outrec + 4], eax
  mov eax, [edx + 52]               ; err
  mov [outrec + 8], eax
  mov eax, [edx + 64]               ; eflags
  mov [outrec + 52], eax
  mov eax, [edx + 44]
  mov [outrec + 16], eax            ; eax
  mov eax, [edx + 40]
  mov [outrec + 20], eax            ; ecx
  mov eax, [edx + 36]
  mov [outrec + 24], eax            ; edx
  mov eax, [edx + 32]
  mov [outrec + 28], eax            ; ebx
  mov eax, [edx + 28]
  mov [outrec + 32], eax            ; esp
  mov eax, [edx + 24]
  mov [outrec + 36], eax            ; ebp
  mov eax, [edx + 20]
  mov [outrec + 40], eax            ; esi
  mov eax, [edx + 16]
  mov [outrec + 44], eax            ; edi
  ; never return into the case: back onto the runner's stack (SA_NODEFER left the signal unblocked)
  mov esp, [host_esp]
  jmp send_result
.in_runner:
  mov eax, SYS_exit
  mov ebx, 99
  int 0x80

; unused (the handler never returns) but SA_RESTORER wants one
restorer:
  mov eax, SYS_sigreturn
  int 0x80

; rt_sigaction(ebx, &sigact, NULL, 8)
catch:
  mov eax, SYS_rt_sigaction
  mov ecx, sigact
  xor edx, edx
  mov esi, 8
  int 0x80
  test eax, eax
  jnz fatal
  ret

fatal:
  mov eax, SYS_exit
  mov ebx, 3
  int 0x80
