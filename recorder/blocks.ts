// How a run's instructions are listed (schema 6): not one code id per instruction but the run's
// straight-line blocks, each stored once per session in code_blocks, with repeat counts. A block is
// a sequence of instructions each at the address where the one before it ended; a taken branch,
// a call, a return or an interrupt ends it. A loop body executed 1 000 times in a row is one item.
//
//   instruction_runs.blocks   JSON array of items [offset, block, times]: from the run's
//                             offset-th instruction, block (code_blocks.id) executed `times` times
//   code_blocks.codes         JSON array of code ids (code.id), `length` of them
//
// The instructions view expands them with core SQLite alone: json_each over the items, the block
// row, a `counting` table (0 … 4095) for the repeats, json_each over the block's codes.
export interface NewBlock {
  id: number;
  /** JSON array of code ids. */
  codes: string;
  length: number;
}

/** Turns runs of code ids into block items, numbering each distinct block once per session. */
export class BlockEncoder {
  /** Each code id's address and the address after it (eip + length). */
  private readonly eip: number[] = [];
  private readonly next: number[] = [];
  private readonly ids = new Map<string, number>();
  private nextId = 0;

  constructor(firstBlockId = 0) {
    this.nextId = firstBlockId;
  }

  /** A distinct instruction: where it starts and how long it is. */
  addCode(id: number, eip: number, length: number): void {
    this.eip[id] = eip >>> 0;
    this.next[id] = (eip + length) >>> 0;
  }

  /** A block already in the file (an encoder continuing a session). */
  knowBlock(id: number, codes: string): void {
    this.ids.set(codes, id);
    this.nextId = Math.max(this.nextId, id + 1);
  }

  /**
   * The items of the run codes[from … from + count) as JSON, and the blocks first seen in it
   * (to insert before the run).
   */
  encode(codes: ArrayLike<number>, from: number, count: number, fresh: NewBlock[]): string {
    const items: string[] = [];
    let prevStart = -1; // the current item's block: where it starts in codes, its length
    let prevLength = 0;
    let times = 0;
    let itemOffset = 0;
    let itemBlock = -1;
    const end = from + count;
    for (let i = from; i < end; ) {
      // The block from i: up to the first instruction whose successor is not at its end.
      let j = i + 1;
      while (j < end && this.next[codes[j - 1]] === this.eip[codes[j]]) j++;
      const length = j - i;
      // The same block as the item's: one more time (the common case in a loop, no key built).
      if (itemBlock >= 0 && length === prevLength && sameCodes(codes, prevStart, i, length)) {
        times++;
      } else {
        if (itemBlock >= 0) items.push(`[${itemOffset},${itemBlock},${times}]`);
        itemBlock = this.blockId(codes, i, length, fresh);
        itemOffset = i - from;
        prevStart = i;
        prevLength = length;
        times = 1;
      }
      i = j;
    }
    if (itemBlock >= 0) items.push(`[${itemOffset},${itemBlock},${times}]`);
    return `[${items.join(',')}]`;
  }

  private blockId(codes: ArrayLike<number>, at: number, length: number, fresh: NewBlock[]): number {
    let key = '[';
    for (let k = 0; k < length; k++) key += (k ? ',' : '') + codes[at + k];
    key += ']';
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(key, id);
      fresh.push({ id, codes: key, length });
    }
    return id;
  }
}

function sameCodes(codes: ArrayLike<number>, a: number, b: number, length: number): boolean {
  for (let k = 0; k < length; k++) if (codes[a + k] !== codes[b + k]) return false;
  return true;
}

/** A run's code ids from its block items; `block(id)` gives a block's code ids. Throws BlockFormatError on a list that does not add up. */
export function expandBlocks(items: string, count: number, block: (id: number) => number[] | undefined): number[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(items);
  } catch {
    throw new BlockFormatError('its block list is not JSON');
  }
  if (!Array.isArray(parsed)) throw new BlockFormatError('its block list is not a JSON array');
  const out = new Array<number>(count);
  let at = 0;
  for (const item of parsed as unknown[]) {
    if (!Array.isArray(item) || item.length !== 3) throw new BlockFormatError('a block item is not [offset, block, times]');
    const [offset, id, times] = item as number[];
    const codes = block(id);
    if (codes === undefined) throw new BlockFormatError(`block ${id} is not in code_blocks`);
    if (offset !== at || !(times >= 1) || at + times * codes.length > count) throw new BlockFormatError(`block item [${offset},${id},${times}] does not follow on from instruction ${at} of ${count}`);
    for (let t = 0; t < times; t++) for (let k = 0; k < codes.length; k++) out[at++] = codes[k];
  }
  if (at !== count) throw new BlockFormatError(`its blocks hold ${at} instructions, not ${count}`);
  return out;
}

export class BlockFormatError extends Error {}

/**
 * SQL: the instructions of the runs `r` (an alias in the caller's FROM), one row each, in seq
 * order — after `FROM instruction_runs r`; RUN_INDEX_SQL and RUN_CODE_SQL give each one's index in
 * its run and code id. CROSS JOIN fixes the nesting: runs, their items, each repeat, each code of
 * the block. The aliases (run_item, run_block, run_repeat, run_code) are long so as not to hide a
 * correlated outer query's. `schema` names the tables' schema (a TEMP view over the file's tables).
 */
export function expandRunsSql(schema: 'main' | '' = ''): string {
  const at = schema ? `${schema}.` : '';
  return `CROSS JOIN json_each(r.blocks) run_item
  CROSS JOIN ${at}code_blocks run_block ON run_block.session_id = r.session_id AND run_block.id = run_item.value ->> 1
  CROSS JOIN ${at}counting run_repeat ON run_repeat.n < run_item.value ->> 2
  CROSS JOIN json_each(run_block.codes) run_code`;
}
/** The instruction's index in its run, with expandRunsSql. */
export const RUN_INDEX_SQL = `(run_item.value ->> 0) + run_repeat.n * run_block.length + run_code.key`;
/** Its code id, with expandRunsSql. */
export const RUN_CODE_SQL = 'run_code.value';
