; ntoskrnl: the trampoline guest code called from the TypeScript side returns through.

; The target of the return address ntflow pushes when its TypeScript side calls a guest routine
; (a driver's DriverEntry or dispatch routine, a work item): the routine's `ret` lands here.
KiCallbackReturnTrampoline:
    out CALLBACK_RETURN_PORT, eax
    hlt
