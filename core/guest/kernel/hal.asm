; hal.dll: the hardware abstraction layer's IRQL routines, which XP's kernel and drivers import
; from it. This machine has no interrupt controller to program: the IRQL is the PCR's Irql byte.

; KfRaiseIrql (fastcall): CL = the new IRQL; returns the old one in AL.
KfRaiseIrql:
    movzx eax, byte [PCR_Irql]
    mov [PCR_Irql], cl
    ret

; KfLowerIrql (fastcall): CL = the new IRQL.
KfLowerIrql:
    mov [PCR_Irql], cl
    ret

; KeGetCurrentIrql: the IRQL in AL.
KeGetCurrentIrql:
    movzx eax, byte [PCR_Irql]
    ret

; KeRaiseIrqlToDpcLevel: DISPATCH_LEVEL; returns the old IRQL in AL.
KeRaiseIrqlToDpcLevel:
    movzx eax, byte [PCR_Irql]
    mov byte [PCR_Irql], 2
    ret
