// Running the real CLI (`node bin/ntflow …`) from a test, as a user would.
import { spawn } from 'node:child_process';
import { repoPath } from './paths.js';

export const NTFLOW = repoPath('bin', 'ntflow');

/** `node bin/ntflow …` with NODE_OPTIONS removed (tap's loader breaks the extension-less ESM entry). */
export const cliArgs = (args: string[]): [string, string[]] => ['/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, NTFLOW, ...args]];

export interface CliOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `ntflow args…` to the end and collects its output. */
export function ntflow(args: string[], cwd?: string): Promise<CliOutput> {
  return new Promise((resolve, reject) => {
    const p = spawn(...cliArgs(args), { stdio: ['ignore', 'pipe', 'pipe'], cwd });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
