// A long-lived Unicorn oracle process for differential tests. Starting Python per case costs
// ~0.3 s; one process fed JSON lines costs ~1 ms per case. Cases are pipelined: the answers come
// back in the order the cases went in, so a FIFO of pending promises pairs them up.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { DEBIAN_PYTHON } from '../util/oracle.js';
import { repoPath } from '../util/paths.js';

export type Num = number | string;

/** The case JSON of `ntflow exec` and the oracle (see test/oracle/unicorn_oracle.py). */
export interface OracleCase {
  code: string;
  base?: Num;
  regs?: Partial<Record<'eax' | 'ecx' | 'edx' | 'ebx' | 'esp' | 'ebp' | 'esi' | 'edi' | 'eflags', Num>>;
  mem?: { addr: Num; data: string }[];
  map?: [Num, number][];
  fs_base?: Num;
  read?: [Num, number][];
  count?: number;
  automap?: boolean;
  trace?: boolean;
}

export interface OracleResult {
  regs: Record<'eax' | 'ecx' | 'edx' | 'ebx' | 'esp' | 'ebp' | 'esi' | 'edi' | 'eip', number>;
  eflags: number;
  flags: Record<string, number>;
  mem: { addr: number; data: string | null; error?: string }[];
  writes: [number, number, number][];
  exception: { vector: number; eip: number } | null;
  error: string | null;
  automapped: number[];
  trace?: number[];
}

export const ORACLE_SCRIPT = repoPath('test', 'oracle', 'unicorn_oracle.py');

export class UnicornOracle {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly pending: { resolve: (r: OracleResult) => void; reject: (e: Error) => void }[] = [];
  private stderr = '';
  private exited: Error | null = null;

  constructor(python = DEBIAN_PYTHON, script = ORACLE_SCRIPT) {
    this.proc = spawn(python, [script, '--jsonl'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.setEncoding('utf8').on('data', (s: string) => { this.stderr += s; });
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const waiter = this.pending.shift();
      if (!waiter) return;
      try {
        waiter.resolve(JSON.parse(line) as OracleResult);
      } catch (e) {
        waiter.reject(new Error(`unicorn oracle printed a non-JSON line: ${line.slice(0, 200)}`));
      }
    });
    this.proc.on('exit', (code, signal) => {
      // Anything still waiting would hang forever; fail it with whatever Python said.
      this.exited = new Error(`unicorn oracle exited (${code ?? signal}): ${this.stderr.trim().slice(-2000)}`);
      for (const w of this.pending.splice(0)) w.reject(this.exited);
    });
    this.proc.on('error', (e) => {
      this.exited = e;
      for (const w of this.pending.splice(0)) w.reject(e);
    });
  }

  /** Run one case; many may be in flight at once. */
  run(c: OracleCase): Promise<OracleResult> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.proc.stdin.write(JSON.stringify(c) + '\n');
    });
  }

  /** End the process once every case sent so far has been answered. */
  close(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      this.proc.once('exit', () => resolve());
      this.proc.stdin.end();
    });
  }
}
