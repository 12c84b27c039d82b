// Running the real CLI (`node bin/ntflow …`) from a test, as a user would.
import { spawn } from 'node:child_process';
import { repoPath } from './paths.js';

export const NTFLOW = repoPath('bin', 'ntflow');

/**
 * How to start the CLI: `node bin/ntflow …`, with NODE_OPTIONS removed by env(1) on the way.
 * Under tap, @tapjs/processinfo injects its --import hook into every child (it rewrites the env
 * of each spawn), and with that hook's CommonJS require hook (pirates) installed, Node 20 fails to
 * load the extensionless ESM file bin/ntflow (ERR_REQUIRE_CYCLE_MODULE). `env -u` runs after the
 * injection, so the CLI starts exactly as a user's shell would start it.
 */
export const cliArgs = (args: string[]): [string, string[]] => ['/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, NTFLOW, ...args]];

export interface CliOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `ntflow args…` to the end (with `input` on stdin, if given) and collects its output. */
export function ntflow(args: string[], cwd?: string, input?: string): Promise<CliOutput> {
  return new Promise((resolve, reject) => {
    const p = spawn(...cliArgs(args), { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], cwd });
    if (input !== undefined) p.stdin!.end(input);
    let stdout = '';
    let stderr = '';
    p.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
