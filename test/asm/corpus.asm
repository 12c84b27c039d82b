; ntflow assembler corpus: every form the assembler accepts, one instruction per line.
; test/asm-nasm.test.ts assembles it with ntflow and with `nasm -f bin` and requires identical bytes.
bits 32
org 0x401000

BUFSIZE equ 0x40
FLAGS   equ (1 << 4) | 3
NEGATIVE equ -8
start:
; --- ALU: every op in 8/16/32 bits, reg/mem/imm
    add al, cl
    add bx, si
    add edi, edi
    add eax, [ebx]
    add [esi+8], edx
    add dl, byte [ebp-4]
    add al, 0x7f
    add ax, 0x1234
    add eax, 0x12345678
    add ecx, -1
    add esi, 0x80
    add byte [eax], 5
    add word [ebx+ecx*2], 0x7f
    add dword [esp+4], 0x1000
    or al, cl
    or bx, si
    or edi, edi
    or eax, [ebx]
    or [esi+8], edx
    or dl, byte [ebp-4]
    or al, 0x7f
    or ax, 0x1234
    or eax, 0x12345678
    or ecx, -1
    or esi, 0x80
    or byte [eax], 5
    or word [ebx+ecx*2], 0x7f
    or dword [esp+4], 0x1000
    adc al, cl
    adc bx, si
    adc edi, edi
    adc eax, [ebx]
    adc [esi+8], edx
    adc dl, byte [ebp-4]
    adc al, 0x7f
    adc ax, 0x1234
    adc eax, 0x12345678
    adc ecx, -1
    adc esi, 0x80
    adc byte [eax], 5
    adc word [ebx+ecx*2], 0x7f
    adc dword [esp+4], 0x1000
    sbb al, cl
    sbb bx, si
    sbb edi, edi
    sbb eax, [ebx]
    sbb [esi+8], edx
    sbb dl, byte [ebp-4]
    sbb al, 0x7f
    sbb ax, 0x1234
    sbb eax, 0x12345678
    sbb ecx, -1
    sbb esi, 0x80
    sbb byte [eax], 5
    sbb word [ebx+ecx*2], 0x7f
    sbb dword [esp+4], 0x1000
    and al, cl
    and bx, si
    and edi, edi
    and eax, [ebx]
    and [esi+8], edx
    and dl, byte [ebp-4]
    and al, 0x7f
    and ax, 0x1234
    and eax, 0x12345678
    and ecx, -1
    and esi, 0x80
    and byte [eax], 5
    and word [ebx+ecx*2], 0x7f
    and dword [esp+4], 0x1000
    sub al, cl
    sub bx, si
    sub edi, edi
    sub eax, [ebx]
    sub [esi+8], edx
    sub dl, byte [ebp-4]
    sub al, 0x7f
    sub ax, 0x1234
    sub eax, 0x12345678
    sub ecx, -1
    sub esi, 0x80
    sub byte [eax], 5
    sub word [ebx+ecx*2], 0x7f
    sub dword [esp+4], 0x1000
    xor al, cl
    xor bx, si
    xor edi, edi
    xor eax, [ebx]
    xor [esi+8], edx
    xor dl, byte [ebp-4]
    xor al, 0x7f
    xor ax, 0x1234
    xor eax, 0x12345678
    xor ecx, -1
    xor esi, 0x80
    xor byte [eax], 5
    xor word [ebx+ecx*2], 0x7f
    xor dword [esp+4], 0x1000
    cmp al, cl
    cmp bx, si
    cmp edi, edi
    cmp eax, [ebx]
    cmp [esi+8], edx
    cmp dl, byte [ebp-4]
    cmp al, 0x7f
    cmp ax, 0x1234
    cmp eax, 0x12345678
    cmp ecx, -1
    cmp esi, 0x80
    cmp byte [eax], 5
    cmp word [ebx+ecx*2], 0x7f
    cmp dword [esp+4], 0x1000
    add eax, 0FFFFFFFFh
    sub esp, BUFSIZE
    and eax, ~FLAGS
    add ebx, NEGATIVE
    test eax, ebx
    test ebx, [eax]
    test al, 1
    test ax, 0x100
    test eax, 0x10000
    test edx, 4
    test byte [eax+0B7h], 80h
    test dword [ebx], 1
; --- addressing: every ModRM/SIB shape
    mov edx, [eax]
    mov edx, [ecx]
    mov edx, [esp]
    mov edx, [ebp]
    mov edx, [esi]
    mov edx, [edi]
    mov edx, [ebp+8]
    mov edx, [ebp-1Ch]
    mov edx, [ebp-80h]
    mov edx, [ebp+80h]
    mov edx, [esp+4]
    mov edx, [esp-4]
    mov edx, [esp+100h]
    mov edx, [eax+ebx]
    mov edx, [eax+ebp]
    mov edx, [ebp+eax]
    mov edx, [eax+esp]
    mov edx, [esp+eax]
    mov edx, [esp+eax*1]
    mov edx, [ebx+ecx*2]
    mov edx, [edx+esi*4]
    mov edx, [edi+eax*8]
    mov edx, [esi+edi*4+10h]
    mov edx, [ebp+ecx*4-4]
    mov edx, [esp+ecx*8+12345678h]
    mov edx, [eax*2]
    mov edx, [eax*3]
    mov edx, [eax*4]
    mov edx, [ecx*8+1000h]
    mov edx, [ebx*4-4]
    mov edx, [0x12345678]
    mov edx, [0B7h]
    mov edx, [ebx+eax]
    mov edx, [eax+0x7f]
    mov edx, [eax+0x80]
    mov edx, [eax-0x80]
    mov edx, [eax-0x81]
    mov edx, [ebp*1]
    mov edx, [ebx*1+ecx]
    mov edx, [dword eax+4]
    mov [eax+ebx*4+BUFSIZE], ecx
    lea eax, [ebp-34h]
    lea edx, [esp+4]
    lea ecx, [eax+eax*4]
    lea esi, [ebx*8]
; --- mov forms, moffs, segment overrides
    mov eax, 0B7h
    mov edx, 7FFE0300h
    mov al, 12h
    mov ah, 0xff
    mov ax, -2
    mov cx, 1234h
    mov ebx, ecx
    mov bl, dh
    mov si, di
    mov eax, [0x1000]
    mov [0x1000], eax
    mov al, [0x2000]
    mov [0x2000], al
    mov ax, [0x3000]
    mov [0x3000], ax
    mov ebx, [0x4000]
    mov eax, fs:[124h]
    mov eax, [fs:124h]
    mov eax, dword ptr fs:[00000124h]
    mov ecx, gs:[eax+4]
    mov eax, ss:[ebp]
    mov eax, ds:[eax]
    mov eax, es:[edi]
    mov eax, cs:[ebx+8]
    mov al, byte ptr [eax+140h]
    mov [ebp-30h], al
    mov dword ptr [ebp-1Ch], edi
    mov byte [eax], 0x12
    mov word [eax], 0x1234
    mov dword [eax], 0x12345678
    mov [eax], dword 5
    mov ds, ax
    mov es, eax
    mov ax, ds
    mov eax, ss
    mov [eax], fs
    mov gs, [ebx]
    mov eax, cr0
    mov cr0, eax
    mov edx, cr2
    mov cr3, ebx
    mov eax, cr4
    mov cr4, ecx
    mov eax, dr7
    mov dr0, edx
    movzx eax, byte [ebx]
    movzx eax, word [ebx]
    movzx ecx, al
    movzx edx, cx
    movsx eax, byte [ebx]
    movsx esi, dx
    movsx ax, bl
    xchg eax, ebx
    xchg ebx, eax
    xchg ax, cx
    xchg al, bl
    xchg [eax], ebx
    xchg ecx, [esi]
    bswap eax
    xadd [eax], ecx
    lock xadd [eax], ecx
    cmpxchg [ebx], edx
    lock cmpxchg8b [esi]
    lock inc dword [eax]
    lock or byte [ebx], 1
; --- shifts and rotates by 1, imm and cl
    rol eax, 1
    rol bl, 3
    rol cx, cl
    rol dword [eax], 1
    rol byte [ebx+4], cl
    rol edx, 31
    ror eax, 1
    ror bl, 3
    ror cx, cl
    ror dword [eax], 1
    ror byte [ebx+4], cl
    ror edx, 31
    rcl eax, 1
    rcl bl, 3
    rcl cx, cl
    rcl dword [eax], 1
    rcl byte [ebx+4], cl
    rcl edx, 31
    rcr eax, 1
    rcr bl, 3
    rcr cx, cl
    rcr dword [eax], 1
    rcr byte [ebx+4], cl
    rcr edx, 31
    shl eax, 1
    shl bl, 3
    shl cx, cl
    shl dword [eax], 1
    shl byte [ebx+4], cl
    shl edx, 31
    shr eax, 1
    shr bl, 3
    shr cx, cl
    shr dword [eax], 1
    shr byte [ebx+4], cl
    shr edx, 31
    sar eax, 1
    sar bl, 3
    sar cx, cl
    sar dword [eax], 1
    sar byte [ebx+4], cl
    sar edx, 31
    sal eax, 1
    sal bl, 3
    sal cx, cl
    sal dword [eax], 1
    sal byte [ebx+4], cl
    sal edx, 31
    shld eax, ebx, 4
    shrd eax, ebx, cl
; --- multiply, divide, unary
    mul ecx
    mul bl
    mul si
    mul dword [ebp+8]
    mul byte [eax]
    imul ecx
    imul bl
    imul si
    imul dword [ebp+8]
    imul byte [eax]
    div ecx
    div bl
    div si
    div dword [ebp+8]
    div byte [eax]
    idiv ecx
    idiv bl
    idiv si
    idiv dword [ebp+8]
    idiv byte [eax]
    neg ecx
    neg bl
    neg si
    neg dword [ebp+8]
    neg byte [eax]
    not ecx
    not bl
    not si
    not dword [ebp+8]
    not byte [eax]
    inc ecx
    inc bl
    inc si
    inc dword [ebp+8]
    inc byte [eax]
    dec ecx
    dec bl
    dec si
    dec dword [ebp+8]
    dec byte [eax]
    imul eax, ebx
    imul edx, [esi]
    imul eax, 5
    imul eax, ebx, 100
    imul eax, ebx, 1000
    imul eax, [ebx], 1000
    imul cx, dx, -3
; --- bit operations
    bt eax, ebx
    bt dword [eax], 5
    bt ecx, 31
    bts eax, ebx
    bts dword [eax], 5
    bts ecx, 31
    btr eax, ebx
    btr dword [eax], 5
    btr ecx, 31
    btc eax, ebx
    btc dword [eax], 5
    btc ecx, 31
    bsf eax, ebx
    bsr edx, [ecx]
; --- setcc, cmovcc, jcc: every condition and alias
    seto al
    setno al
    setb al
    setc al
    setnae al
    setae al
    setnb al
    setnc al
    sete al
    setz al
    setne al
    setnz al
    setbe al
    setna al
    seta al
    setnbe al
    sets al
    setns al
    setp al
    setpe al
    setnp al
    setpo al
    setl al
    setnge al
    setge al
    setnl al
    setle al
    setng al
    setg al
    setnle al
    sete byte [ebx]
    cmovo eax, ebx
    cmovno eax, ebx
    cmovb eax, ebx
    cmovc eax, ebx
    cmovnae eax, ebx
    cmovae eax, ebx
    cmovnb eax, ebx
    cmovnc eax, ebx
    cmove eax, ebx
    cmovz eax, ebx
    cmovne eax, ebx
    cmovnz eax, ebx
    cmovbe eax, ebx
    cmovna eax, ebx
    cmova eax, ebx
    cmovnbe eax, ebx
    cmovs eax, ebx
    cmovns eax, ebx
    cmovp eax, ebx
    cmovpe eax, ebx
    cmovnp eax, ebx
    cmovpo eax, ebx
    cmovl eax, ebx
    cmovnge eax, ebx
    cmovge eax, ebx
    cmovnl eax, ebx
    cmovle eax, ebx
    cmovng eax, ebx
    cmovg eax, ebx
    cmovnle eax, ebx
    cmove ecx, [edx+4]
backward:
    jmp short backward
    jecxz backward
    loop backward
    loope backward
    loopne backward
    jo backward
    jno backward
    jb backward
    jc backward
    jnae backward
    jae backward
    jnb backward
    jnc backward
    je backward
    jz backward
    jne backward
    jnz backward
    jbe backward
    jna backward
    ja backward
    jnbe backward
    js backward
    jns backward
    jp backward
    jpe backward
    jnp backward
    jpo backward
    jl backward
    jnge backward
    jge backward
    jnl backward
    jle backward
    jng backward
    jg backward
    jnle backward
    jo forward
    jno forward
    jb forward
    jc forward
    jnae forward
    jae forward
    jnb forward
    jnc forward
    je forward
    jz forward
    jne forward
    jnz forward
    jbe forward
    jna forward
    ja forward
    jnbe forward
    js forward
    jns forward
    jp forward
    jpe forward
    jnp forward
    jpo forward
    jl forward
    jnge forward
    jge forward
    jnl forward
    jle forward
    jng forward
    jg forward
    jnle forward
    jmp backward
    jmp forward
    jmp near backward
    call backward
    call forward
    call eax
    call dword [ebx+8]
    call [eax]
    jmp ecx
    jmp [eax]
    jmp dword [esi+edi*4]
    jmp far [eax]
    call far [ebx]
    jmp 0x08:forward
    call 0x1B:0x401000
    jmp 0x401000
    call 0x401005
    jz 0x401000
.inner:
    jmp .inner
    jz .inner
    times 200 nop
forward:
    jnz .done
    jmp $+2
    jmp $
.done:
    jmp forward.done
; --- string instructions and prefixes
    movsb
    movsw
    movsd
    cmpsb
    cmpsw
    cmpsd
    scasb
    scasw
    scasd
    lodsb
    lodsw
    lodsd
    stosb
    stosw
    stosd
    insb
    insw
    insd
    outsb
    outsw
    outsd
    rep movsd
    rep movsb
    rep stosd
    rep stosb
    repe cmpsb
    repz cmpsd
    repne scasb
    repnz scasw
    rep lodsb
    fs lodsb
    es movsd
    xlatb
    xlat
; --- push and pop
    push eax
    push ecx
    push edx
    push ebx
    push esp
    push ebp
    push esi
    push edi
    pop eax
    pop ecx
    pop edx
    pop ebx
    pop esp
    pop ebp
    pop esi
    pop edi
    push ax
    pop cx
    push 8
    push 58h
    push -1
    push 80h
    push 804E0458h
    push word 5
    push dword 5
    push byte 5
    push strict dword 5
    push dword [ebp-30h]
    push dword ptr [ebx+ecx*4]
    push word [eax]
    pop dword [eax]
    push es
    push cs
    push ss
    push ds
    push fs
    push gs
    pop es
    pop ss
    pop ds
    pop fs
    pop gs
    push forward
    pushfd
    popfd
    pushf
    popf
    pushad
    popad
    pusha
    popa
    enter 10h, 0
    leave
    ret
    ret 24h
    retf
    retf 8
; --- system instructions
    sysenter
    sysexit
    iretd
    iret
    int3
    into
    cli
    sti
    hlt
    clts
    invd
    wbinvd
    rdmsr
    wrmsr
    rdtsc
    rdpmc
    cpuid
    ud2
    nop
    pause
    cdq
    cwde
    cbw
    cwd
    lahf
    sahf
    clc
    stc
    cmc
    cld
    std
    daa
    das
    aaa
    aas
    wait
    lfence
    mfence
    sfence
    rsm
    int1
    int 2Eh
    int 3
    int 0x80
    lgdt [eax]
    lidt [ebx+8]
    sgdt [eax]
    sidt [esp]
    lldt ax
    sldt eax
    ltr ax
    ltr word [eax]
    str eax
    smsw eax
    lmsw ax
    verr ax
    verw word [ebx]
    lar eax, ecx
    lsl edx, ebx
    invlpg [eax]
    invlpg [0xC0000000]
    in al, 60h
    in eax, 0x71
    in al, dx
    in ax, dx
    in eax, dx
    out 80h, al
    out 0x43, eax
    out dx, al
    out dx, ax
    out dx, eax
    aam
    aad 16
    bound eax, [ebx]
    arpl [eax], bx
; --- x87, MMX, SSE samples
    fld dword [eax]
    fstp qword [ebx]
    fild word [ecx]
    fadd st0, st1
    fxch st1
    fninit
    fnstsw ax
    emms
    movd mm0, eax
    paddd mm1, mm2
    movaps xmm0, xmm1
    movups xmm2, [esi]
    movd xmm0, eax
    pxor xmm3, xmm3
    movdqu [edi], xmm1
; --- data, times, align, expressions
data:
    db 0x12, 34, 0b101, 101b, 0o17, 17q, 0B7h, -1
    db 'hello', 0
    db "world", 13, 10, 0
    db `tab\t nl\n \x41\101`, 0
    dw 1, 0x1234, -2, 'ab'
    dw 'abc'
    dd 0x12345678, start, data - start, $, $$, $ - $$
    dd 'abcd', -1
    dq 0x123456789ABCDEF0, -1, start
    times 5 db 0xCC
    times 3 dw 0x1234
    times BUFSIZE / 16 dd 0
    align 4
    db 1
    align 16
    times 3 push eax
    dd (BUFSIZE * 2 + 1) % 7, BUFSIZE >> 2, 1 << 31, FLAGS & 6, FLAGS ^ 0xff, 17 / 4, -17 // 4
    dd 'A' + 1, ('a' - 'A') * 2
    mov eax, data
    mov eax, data + 4 * 2
    mov ebx, [data + 8]
    mov ecx, (forward - backward) / 2
    mov edx, $ - start
end_of_corpus:
