#!/usr/bin/python3
"""Unicorn (QEMU TCG) oracle for ntflow's differential tests.

Runs a short piece of 32-bit x86 code on a bare flat machine and prints the final state, in the
same case/result JSON that `ntflow exec` speaks, so one case runs on both sides.

    /usr/bin/python3 test/oracle/unicorn_oracle.py < case.json        one case -> one result
    /usr/bin/python3 test/oracle/unicorn_oracle.py < cases.json       array -> array
    /usr/bin/python3 test/oracle/unicorn_oracle.py --jsonl            one case per line -> one
                                                                      result per line, flushed

Case (numbers are ints or "0x.." strings; only "code" is required):
  code     hex machine code, spaces ignored
  base     load address                          (default 0x00401000)
  regs     eax..edi and eflags                   (default 0; esp 0x0012FF00; eflags 0x202)
  mem      [{"addr", "data"}]  bytes to place    (their pages are mapped, zero-filled)
  map      [[addr, size]]      extra zero-filled memory
  fs_base  linear base of FS   (builds a GDT so fs:[x] reads fs_base+x)
  read     [[addr, size]]      what to dump afterwards (default: every "mem" region)
  count    instruction limit   (default: run until EIP = base + len(code))
  automap  true (default): an unmapped access maps a zero page and goes on; false: stop
  trace    true: also list the EIP of every executed instruction
Other keys (e.g. the generator's flag masks) are ignored.

Result: regs {eax..edi, eip}, eflags, flags {CF..OF}, mem [{addr, data}], writes
[[addr, size, value]], exception null | {vector, eip} (eip of the faulting instruction, or of the
next one for INT n), error null | text, automapped [page...], and trace/icount when asked.

Must run under Debian's /usr/bin/python3: the pyenv python3 on PATH does not see python3-unicorn.
"""
import json
import struct
import sys

from unicorn import (UC_ARCH_X86, UC_HOOK_CODE, UC_HOOK_INTR, UC_HOOK_MEM_UNMAPPED,
                     UC_HOOK_MEM_WRITE, UC_MODE_32, Uc, UcError)
from unicorn import x86_const as X

GPRS = [("eax", X.UC_X86_REG_EAX), ("ecx", X.UC_X86_REG_ECX), ("edx", X.UC_X86_REG_EDX),
        ("ebx", X.UC_X86_REG_EBX), ("esp", X.UC_X86_REG_ESP), ("ebp", X.UC_X86_REG_EBP),
        ("esi", X.UC_X86_REG_ESI), ("edi", X.UC_X86_REG_EDI)]
FLAGS = [("CF", 0), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9),
         ("DF", 10), ("OF", 11)]
PAGE = 0x1000
DEFAULT_BASE = 0x00401000
DEFAULT_ESP = 0x0012FF00
STACK_LOW, STACK_HIGH = 0x00120000, 0x00130000   # always mapped, holds the default ESP
GDT_AT = 0x00002000


def num(v):
    return int(v, 0) if isinstance(v, str) else int(v)


def unhex(s):
    return bytes.fromhex("".join(s.split()))


def descriptor(base, limit, access, gran_flags):
    """One 8-byte GDT descriptor (Intel SDM vol. 3 3.4.5)."""
    lo = (limit & 0xFFFF) | ((base & 0xFFFF) << 16)
    hi = (((base >> 16) & 0xFF) | (access << 8) | (limit & 0xF0000)
          | (gran_flags << 20) | (base & 0xFF000000))
    return struct.pack("<II", lo, hi)


class Memory:
    """Maps pages on first use; Unicorn needs page-aligned, non-overlapping mappings."""

    def __init__(self, uc):
        self.uc = uc
        self.pages = set()

    def map(self, addr, size):
        page = addr & ~(PAGE - 1)
        end = addr + max(size, 1)
        while page < end:
            if page not in self.pages:
                self.uc.mem_map(page, PAGE)
                self.pages.add(page)
            page += PAGE


def run(case):
    code = unhex(case["code"])
    base = num(case.get("base", DEFAULT_BASE)) & 0xFFFFFFFF
    automap = bool(case.get("automap", True))
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    memory = Memory(uc)
    out = {"regs": {}, "eflags": 0, "flags": {}, "mem": [], "writes": [], "exception": None,
           "error": None, "automapped": []}

    memory.map(base, len(code))
    uc.mem_write(base, code)
    memory.map(STACK_LOW, STACK_HIGH - STACK_LOW)
    for addr, size in case.get("map", []):
        memory.map(num(addr), num(size))
    for region in case.get("mem", []):
        addr, data = num(region["addr"]), unhex(region["data"])
        memory.map(addr, len(data))
        uc.mem_write(addr, data)

    if "fs_base" in case:
        # Unicorn ignores FS_BASE in 32-bit mode, so give FS a real descriptor: null, flat code,
        # flat data, then a 4 KiB data segment at fs_base (selector 0x18).
        gdt = (bytes(8) + descriptor(0, 0xFFFFF, 0x9B, 0xC) + descriptor(0, 0xFFFFF, 0x93, 0xC)
               + descriptor(num(case["fs_base"]), 0xFFF, 0x93, 0x4))
        memory.map(GDT_AT, len(gdt))
        uc.mem_write(GDT_AT, gdt)
        uc.reg_write(X.UC_X86_REG_GDTR, (0, GDT_AT, len(gdt) - 1, 0))
        uc.reg_write(X.UC_X86_REG_FS, 0x18)

    regs = {k.lower(): num(v) for k, v in case.get("regs", {}).items()}
    for name, reg in GPRS:
        uc.reg_write(reg, regs.get(name, DEFAULT_ESP if name == "esp" else 0) & 0xFFFFFFFF)
    uc.reg_write(X.UC_X86_REG_EFLAGS, regs.get("eflags", 0x202) & 0xFFFFFFFF)

    fault = []

    def on_interrupt(u, vector, _data):
        # Unicorn does not deliver through an IDT: record the vector and stop, like ntflow's
        # bare machine does. EIP is at the faulting instruction (after it for INT n).
        fault.append({"vector": vector, "eip": u.reg_read(X.UC_X86_REG_EIP)})
        u.emu_stop()

    def on_write(_u, _access, addr, size, value, _data):
        out["writes"].append([addr, size, value & ((1 << (8 * size)) - 1)])

    def on_unmapped(_u, _access, addr, size, _value, _data):
        if not automap:
            return False
        out["automapped"].append(addr & ~(PAGE - 1))
        memory.map(addr, size)
        return True

    trace = []
    uc.hook_add(UC_HOOK_INTR, on_interrupt)
    uc.hook_add(UC_HOOK_MEM_WRITE, on_write)
    uc.hook_add(UC_HOOK_MEM_UNMAPPED, on_unmapped)
    if case.get("trace"):
        uc.hook_add(UC_HOOK_CODE, lambda _u, addr, _size, _d: trace.append(addr))

    try:
        uc.emu_start(base, base + len(code), 0, num(case.get("count", 0)))
    except UcError as e:
        out["error"] = str(e)
    out["exception"] = fault[0] if fault else None

    for name, reg in GPRS:
        out["regs"][name] = uc.reg_read(reg)
    out["regs"]["eip"] = uc.reg_read(X.UC_X86_REG_EIP)
    eflags = uc.reg_read(X.UC_X86_REG_EFLAGS)
    out["eflags"] = eflags
    out["flags"] = {name: (eflags >> bit) & 1 for name, bit in FLAGS}

    reads = case.get("read")
    if reads is None:
        reads = [[region["addr"], len(unhex(region["data"]))] for region in case.get("mem", [])]
    for addr, size in reads:
        addr, size = num(addr), num(size)
        try:
            out["mem"].append({"addr": addr, "data": bytes(uc.mem_read(addr, size)).hex()})
        except UcError as e:
            out["mem"].append({"addr": addr, "data": None, "error": str(e)})
    if case.get("trace"):
        out["trace"] = trace
        out["icount"] = len(trace)
    return out


def main():
    if "--jsonl" in sys.argv[1:]:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                result = run(json.loads(line))
            except Exception as e:  # a bad case must not end the stream the test is waiting on
                result = {"error": "bad case: %s: %s" % (type(e).__name__, e)}
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
        return
    data = json.load(sys.stdin)
    result = [run(c) for c in data] if isinstance(data, list) else run(data)
    json.dump(result, sys.stdout, indent=None if isinstance(data, list) else 1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
