// The findings and hooks projections: their tables, documented column by column (the trace file
// carries the documentation), and the shapes the rules produce.
import type { Projection, ProjectionTable } from '../projections/table.js';

export type FindingKind = 'failure-cause' | 'handle-leak' | 'hook';
export type Severity = 'error' | 'warning' | 'info';

/** Why a call failed, in a word (findings.cause for kind failure-cause). */
export type FailureCause =
  | 'probe-kernel-address'
  | 'probe-misaligned'
  | 'probe-unmapped'
  | 'probe-read-only'
  | 'handle-kernel-from-user'
  | 'handle-closed'
  | 'handle-never-opened'
  | 'handle-system-thread'
  | 'handle-type-mismatch'
  | 'handle-access-denied'
  | 'service-limit'
  | 'page-fault'
  | 'nested-call'
  | 'irp-status'
  | 'routine';

export type HookType = 'ssdt' | 'shadow-ssdt' | 'inline' | 'msr' | 'idt' | 'ntdll-stub' | 'thread-table';
export type LeakCause = 'close-failed' | 'open-at-end';

export interface Finding {
  kind: FindingKind;
  severity: Severity;
  /** failure-cause: a FailureCause; hook: a HookType; handle-leak: a LeakCause. */
  cause: string;
  syscallId: number | null;
  /** The decisive event. */
  seq: number;
  title: string;
  detail: string;
  /** The seqs of the events that prove it, the decisive one first. */
  evidence: number[];
}

export interface Hook {
  type: HookType;
  /** KiServiceTable, W32pServiceTable, a copied table, IDT, MSR 0x176, or the patched module. */
  tableName: string;
  /** The entry's index (service index, IDT vector, MSR number), null for an inline patch. */
  index: number | null;
  /** The function hooked (nt!NtReadFile, nt!KiFastCallEntry, ntdll!NtReadFile). */
  function: string;
  original: number;
  current: number;
  /** The module that owns the current address (the hook's module), null when none. */
  owner: string | null;
  /** The write that installed it (null: already in place when the session began). */
  installSeq: number | null;
  /** The first event where the hooked path ran (null: it never ran). */
  firstRunSeq: number | null;
  /** Where patched code starts (inline, ntdll-stub), else null. Not a column: original/current say it. */
  patchedAt?: number | null;
  /** Original and current bytes of an inline patch (hex), else null. */
  originalBytes: string | null;
  currentBytes: string | null;
}

export const FINDINGS_TABLE: ProjectionTable = {
  name: 'findings',
  comment:
    "what ntflow concludes from a session's events: why each failed call failed, handles left open, hooks in the system-call path — each with the seqs of the events that prove it (analyzer/findings/)",
  columns: [
    { name: 'id', type: 'INTEGER', notNull: true, comment: 'finding number within the session, 1, 2, … in the order of kind (failure-cause, handle-leak, hook), then seq' },
    { name: 'kind', type: 'TEXT', notNull: true, comment: "'failure-cause' (a call whose NTSTATUS is not NT_SUCCESS), 'handle-leak' (a handle never closed) or 'hook'" },
    { name: 'severity', type: 'TEXT', notNull: true, comment: "'error' (a failure status, 0xC…), 'warning' (a warning status 0x8…, a hook, a handle whose close failed) or 'info' (a handle still open at the end)" },
    {
      name: 'cause',
      type: 'TEXT',
      notNull: true,
      comment:
        "the rule that fired: for failure-cause probe-kernel-address, probe-misaligned, probe-unmapped, probe-read-only, handle-kernel-from-user, handle-closed, handle-never-opened, handle-system-thread, handle-type-mismatch, handle-access-denied, service-limit, page-fault, nested-call, irp-status or routine (the routine decided: no failed probe, lookup or fault on the way); for hook its hooks.hook_type; for handle-leak close-failed or open-at-end",
    },
    { name: 'syscall_id', type: 'INTEGER', comment: 'the call it is about (syscalls.id): the failed call, the call that opened the handle, the first call that ran through the hook; NULL when none' },
    { name: 'seq', type: 'INTEGER', notNull: true, comment: 'the decisive event: the failed probe or lookup, the fault, the rejected lookup, the write that installed the hook, the create of the leaked handle' },
    { name: 'title', type: 'TEXT', notNull: true, comment: 'what was found in one line: the call and its status, the handle, or the hook, and the short reason' },
    { name: 'detail', type: 'TEXT', notNull: true, comment: 'the explanation in sentences, with seqs, module!symbol+offset and values' },
    { name: 'evidence', type: 'TEXT', notNull: true, comment: 'the seqs of the events that prove it, a JSON array, the decisive event first' },
  ],
  key: ['id'],
};

export const HOOKS_TABLE: ProjectionTable = {
  name: 'hooks',
  comment:
    'hooks in the system-call path found from the trace and the machine state it records, with the columns hook detectors report, plus when each was installed and first ran (analyzer/findings/hooks.ts)',
  columns: [
    { name: 'id', type: 'INTEGER', notNull: true, comment: 'hook number within the session' },
    { name: 'finding_id', type: 'INTEGER', notNull: true, comment: 'its finding (findings.id, kind hook)' },
    { name: 'hook_type', type: 'TEXT', notNull: true, comment: "'ssdt', 'shadow-ssdt', 'thread-table' (a thread's KTHREAD.ServiceTable points at a copied table), 'inline' (code bytes of ntoskrnl patched), 'msr' (SYSENTER_EIP), 'idt' (a gate's offset) or 'ntdll-stub'" },
    { name: 'table_name', type: 'TEXT', notNull: true, comment: "KiServiceTable, W32pServiceTable, the copy's address, IDT, MSR, or the patched module (nt, ntdll)" },
    { name: 'entry_index', type: 'INTEGER', comment: "the service index, IDT vector, MSR number or an ntdll stub's service number (NULL for an inline patch)" },
    { name: 'function', type: 'TEXT', notNull: true, comment: 'what was hooked: nt!NtReadFile, nt!KiFastCallEntry+0x…, ntdll!NtReadFile' },
    { name: 'original', type: 'INTEGER', notNull: true, comment: 'the original address (the table entry, gate or MSR value before; for an inline patch the patched address)' },
    { name: 'current', type: 'INTEGER', notNull: true, comment: 'the address now (the hook; for an inline patch the jump target)' },
    { name: 'owner', type: 'TEXT', comment: "the module owning the current address (the hooking driver or program), NULL when none" },
    { name: 'install_seq', type: 'INTEGER', comment: 'the event that installed it (the write, the wrmsr); NULL when it was in place before the session' },
    { name: 'first_run_seq', type: 'INTEGER', comment: 'the first event where the hooked path ran (the lookup, sysenter, int, or instruction); NULL when it never ran' },
    { name: 'original_bytes', type: 'TEXT', comment: 'an inline patch: the bytes before (hex)' },
    { name: 'current_bytes', type: 'TEXT', comment: 'an inline patch: the bytes now (hex)' },
  ],
  key: ['id'],
};

export const FINDINGS: Projection = { name: 'findings', version: 1, table: FINDINGS_TABLE };
export const HOOKS: Projection = { name: 'hooks', version: 1, table: HOOKS_TABLE };

export function findingRow(id: number, f: Finding): unknown[] {
  return [id, f.kind, f.severity, f.cause, f.syscallId, f.seq, f.title, f.detail, JSON.stringify(f.evidence)];
}

export function hookRow(id: number, findingId: number, h: Hook): unknown[] {
  return [id, findingId, h.type, h.tableName, h.index, h.function, h.original, h.current, h.owner, h.installSeq, h.firstRunSeq, h.originalBytes, h.currentBytes];
}
