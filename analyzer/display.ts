// How `ntflow query`'s tables show numbers people read in hex — addresses, handles, NTSTATUS,
// access masks, MSRs, vectors and service numbers — as WinDbg does: an address as 8 hex digits
// (8053a270), an NTSTATUS as 0xC0000008, the others 0x-prefixed (0x4, 0x120089, 0x176). Only table output changes: CSV and
// JSON keep the stored integers for tools, and `--decimal` turns it off.
//
// A result column is shown in hex when SQLite says it comes straight from one of these columns of
// the trace's own tables or views (better-sqlite3's Statement#columns() gives each result column's
// origin table and column, through views and the first arm of a UNION ALL), so `SELECT eip FROM
// events` is hex while `SELECT eip + 1 AS next` or a count stays decimal. Text cells are never
// touched.

export type Display = 'address' | 'status' | 'hex';

const ADDRESS_COLUMNS = [
  'eip', 'from_eip', 'to_eip', 'from_esp', 'to_esp', 'cr2', 'fault_eip', 'fault_address', 'table_base', 'target',
  'address', 'object', 'irp', 'device', 'caller', 'original', 'current',
];
const STATUS_COLUMNS = ['status', 'code', 'outcome_code'];
const HEX_COLUMNS = ['handle', 'desired_access', 'granted_access', 'msr', 'value', 'service_number', 'error_code', 'vector', 'entry_index'];

const BY_NAME = new Map<string, Display>([
  ...ADDRESS_COLUMNS.map((c) => [c, 'address'] as const),
  ...STATUS_COLUMNS.map((c) => [c, 'status'] as const),
  ...HEX_COLUMNS.map((c) => [c, 'hex'] as const),
]);

/** Columns of those names that hold something else (TEXT cells are never changed anyway). */
const NOT_HEX = new Set(['meta.value']);

export interface ColumnOrigin {
  /** The table (or view's underlying table) the value comes from, null for an expression. */
  table: string | null;
  column: string | null;
}

/** How a result column with this origin is shown in a table (undefined: as a decimal number). */
export function displayOf(origin: ColumnOrigin): Display | undefined {
  if (origin.table === null || origin.column === null || NOT_HEX.has(`${origin.table}.${origin.column}`)) return undefined;
  return BY_NAME.get(origin.column);
}

const U64 = (1n << 64n) - 1n;

/** An integer cell in its display form; anything else as given (text, blobs and NULL are the caller's). */
export function showNumber(v: number | bigint, display: Display): string {
  // Stored values are unsigned 32-bit, or signed 64-bit for MSRs: print them unsigned.
  const n = typeof v === 'bigint' ? v & U64 : v < 0 ? BigInt(v) & U64 : BigInt(v);
  const h = n.toString(16);
  if (display === 'address') return n <= 0xffffffffn ? h.padStart(8, '0') : h;
  return `0x${display === 'status' ? h.toUpperCase().padStart(8, '0') : h.toUpperCase()}`;
}
