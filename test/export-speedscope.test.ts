// The speedscope export: valid against the package's own file-format-schema.json (a small
// validator for the JSON-schema keywords that file uses), O/C balanced per profile with `at`
// non-decreasing and within [startValue, endValue], frames named module!symbol; and the consumer:
// the speedscope app shipped in node_modules, served with the file from a local HTTP server and
// opened in Chromium (#profileURL=), loads the profile and lists its frame names.
import t, { type Test } from 'tap';
import { createServer, type Server } from 'node:http';
import { mkdirSync, readFileSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SPEEDSCOPE_SCHEMA } from '../export/index.js';
import { exportToBuffer, queryTrace, recordExportTrace } from './util/export.js';
import { haveChromium, launchChromium, watchPage } from './util/browser.js';
import { repoPath } from './util/paths.js';

const RELEASE = repoPath('node_modules', 'speedscope', 'dist', 'release');
const dir = t.testdir();
let trace = '';
t.before(async () => {
  trace = await recordExportTrace(dir);
});

type Schema = Record<string, any>;

/** JSON-schema (draft 7) for the keywords file-format-schema.json uses: $ref, anyOf, const, enum, type, required, properties, items. */
function validate(root: Schema, schema: Schema, value: unknown, path: string, errors: string[]): void {
  if (errors.length > 20) return;
  if (schema.$ref) {
    const name = decodeURIComponent(String(schema.$ref).replace('#/definitions/', ''));
    const target = root.definitions?.[name];
    if (!target) throw new Error(`schema: unknown $ref ${schema.$ref}`);
    validate(root, target, value, path, errors);
  }
  if (schema.anyOf) {
    const ok = (schema.anyOf as Schema[]).some((s) => {
      const e: string[] = [];
      validate(root, s, value, path, e);
      return e.length === 0;
    });
    if (!ok) errors.push(`${path}: matches none of anyOf`);
  }
  if ('const' in schema && value !== schema.const) errors.push(`${path}: ${JSON.stringify(value)} is not ${JSON.stringify(schema.const)}`);
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) errors.push(`${path}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`);
  if (schema.type) {
    const actual = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
    if (actual !== schema.type && !(schema.type === 'integer' && Number.isInteger(value))) {
      errors.push(`${path}: ${actual}, expected ${schema.type}`);
      return;
    }
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const r of (schema.required as string[] | undefined) ?? []) if (!(r in value)) errors.push(`${path}: missing ${r}`);
    for (const [k, s] of Object.entries((schema.properties as Record<string, Schema> | undefined) ?? {})) {
      if (k in value) validate(root, s, (value as Record<string, unknown>)[k], `${path}.${k}`, errors);
    }
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => validate(root, schema.items, v, `${path}[${i}]`, errors));
}

interface SpeedscopeFile {
  $schema: string;
  name: string;
  activeProfileIndex?: number;
  shared: { frames: { name: string; file?: string }[] };
  profiles: { type: string; name: string; unit: string; startValue: number; endValue: number; events: { type: 'O' | 'C'; at: number; frame: number }[] }[];
}

function checkFile(t: Test, file: SpeedscopeFile): void {
  const schema = JSON.parse(readFileSync(join(RELEASE, 'file-format-schema.json'), 'utf8')) as Schema;
  const errors: string[] = [];
  validate(schema, { $ref: schema.$ref ?? '#/definitions/FileFormat.File' }, file, '$', errors);
  t.same(errors, [], "valid against speedscope's file-format-schema.json");
  t.equal(file.$schema, SPEEDSCOPE_SCHEMA);
  const problems: string[] = [];
  for (const p of file.profiles) {
    if (p.type !== 'evented' || p.unit !== 'none') problems.push(`${p.name}: ${p.type} ${p.unit}`);
    const stack: number[] = [];
    let at = p.startValue;
    for (const e of p.events) {
      if (e.at < at) problems.push(`${p.name}: at goes back to ${e.at}`);
      if (e.at > p.endValue) problems.push(`${p.name}: at ${e.at} past endValue`);
      at = e.at;
      if (!file.shared.frames[e.frame]) problems.push(`${p.name}: frame ${e.frame} not in shared.frames`);
      if (e.type === 'O') stack.push(e.frame);
      else if (stack.pop() !== e.frame) problems.push(`${p.name}: C of frame ${e.frame} is not the innermost open frame`);
    }
    if (stack.length) problems.push(`${p.name}: ${stack.length} frames never closed`);
  }
  t.same(problems, [], 'every profile evented, O/C balanced and nested, at non-decreasing within [startValue, endValue]');
}

t.test('osr-log-user-handle: one profile per thread and lane, frames module!symbol', async (t) => {
  const { bytes, stats } = exportToBuffer(trace, 'speedscope', 'osr-log-user-handle');
  const file = JSON.parse(bytes.toString('utf8')) as SpeedscopeFile;
  checkFile(t, file);
  t.same(
    file.profiles.map((p) => p.name),
    ['System thread 8 (0x8)', 'System thread 8 (0x8): system calls', 'osr-log-user.exe thread 1996 (0x7CC)', 'osr-log-user.exe thread 1996 (0x7CC): system calls'],
  );
  t.equal(file.activeProfileIndex, 2, "it opens on the program's thread (the busiest profile)");
  const calls = queryTrace<{ n: number }>(trace, 'SELECT count(*) AS n FROM calls WHERE session_id = 1')[0].n;
  const syscalls = queryTrace<{ n: number }>(trace, 'SELECT count(*) AS n FROM syscalls WHERE session_id = 1')[0].n;
  const opens = file.profiles.flatMap((p) => p.events).filter((e) => e.type === 'O').length;
  t.equal(opens, calls + syscalls, 'an O per call frame and per system call');
  t.equal(stats.items, opens * 2, 'items = events');
  const names = file.shared.frames.map((f) => f.name);
  t.ok(names.includes('nt!KiFastCallEntry') && names.includes('osr-log-user-handle!WorkItemRoutine'), 'frames named module!symbol');
  t.equal(file.shared.frames.find((f) => f.name === 'nt!KiFastCallEntry')?.file, 'nt', 'with the module as file');
  t.equal(new Set(names).size + file.shared.frames.filter((f, i) => names.indexOf(f.name) !== i).length, names.length, 'frames shared, not repeated');
});

t.test('user-apc, kernel-zw-readfile and --syscall are valid too', async (t) => {
  for (const [s, id] of [['user-apc', undefined], ['kernel-zw-readfile', undefined], ['kernel-zw-readfile', 3]] as const) {
    const file = JSON.parse(exportToBuffer(trace, 'speedscope', s, id).bytes.toString('utf8')) as SpeedscopeFile;
    t.test(`${s}${id ? ` --syscall ${id}` : ''}`, async (t) => checkFile(t, file));
    if (id) t.notOk(file.shared.frames.some((f) => f.name === 'device-read!start' || f.name === 'ntdll!NtCreateFile'), '--syscall: frames outside the call are left out');
  }
});

t.test('the speedscope app loads the exported file and lists its frames', async (t) => {
  if (!haveChromium(t)) return;
  const profile = exportToBuffer(trace, 'speedscope', 'osr-log-user-handle').bytes;
  const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png', '.woff2': 'font/woff2' };
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (path === '/osr.speedscope.json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(profile);
      return;
    }
    const file = normalize(join(RELEASE, path === '/' ? 'index.html' : path));
    if (!file.startsWith(RELEASE)) return void res.writeHead(403).end();
    try {
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const browser = await launchChromium();
  t.teardown(async () => {
    await browser.close();
    server.close();
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  const watch = watchPage(page);
  await page.goto(`${base}/index.html#profileURL=${encodeURIComponent(`${base}/osr.speedscope.json`)}`);
  // The app names the page after the loaded file's profile.
  await page.waitForFunction(() => (globalThis as any).document.title.includes('ntflow'), undefined, { timeout: 30000 });
  t.match(await page.title(), /ntflow osr-log-user-handle/, 'the profile loaded (the title is its name)');
  const body = await page.locator('body').innerText();
  t.match(body, /osr-log-user\.exe thread 1996/, "the toolbar names the active profile (the program's thread, the busiest)");
  // The sandwich view lists every frame of the profile by name in a table.
  await page.getByText('Sandwich').first().click();
  await page.waitForFunction(() => (globalThis as any).document.body.innerText.includes('ntdll!NtReadFile'), undefined, { timeout: 30000 });
  const table = await page.locator('body').innerText();
  t.match(table, /ntdll!NtReadFile/, 'the frame names are listed');
  t.match(table, /nt!KiFastCallEntry/);
  t.same(watch.errors, [], 'no console error');
  const out = repoPath('test-artifacts');
  mkdirSync(out, { recursive: true });
  await page.getByText('Time Order').first().click();
  await page.screenshot({ path: join(out, 'export-speedscope.png') });
  t.pass(`saved ${join(out, 'export-speedscope.png')}`);
});
