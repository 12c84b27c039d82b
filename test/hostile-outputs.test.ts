// Issue K §4: hostile strings in every output. A program whose file name, session name, label and
// guest file name carry markup (<script>, <img onerror>, </svg>, ]]>), quotes, a Mermaid init
// directive, a newline and ESC is recorded through the CLI, then rendered through every output:
// flow's SVG and HTML for each --kind, the diff page, the Mermaid, Perfetto (decoded with the
// project's protobuf schema), Chrome JSON and speedscope exports, and the terminal tables. The
// strings must come out as data (exports) or as text (drawings and pages: checked in Chromium — no
// dialog, no console error, no CSP violation, no request, no script added), and never as raw
// control characters on a terminal or in XML.
//   npx tsc -p tsconfig.json && npx tap dist/test/hostile-outputs.test.js
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { scenarioSource } from '../core/index.js';
import { perfettoTraceType } from '../export/index.js';
import { ntflow, type CliOutput } from './util/cli.js';
import { HOSTILE_FILE, haveChromium, launchChromium, watchPage, foreignRequests } from './util/browser.js';
import { checkMermaid, decodeMermaid } from './util/mermaid.js';
import { wellFormed } from './util/xml.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-hostile-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const at = (name: string) => join(dir, name);

/** The session's name: markup, both quotes, a CDATA end, a Mermaid directive, a newline, ESC. */
const SESSION = `<script>alert(1)</script> "dq" 'sq' </svg> ]]> %%{init: {"securityLevel":"loose"}}%% line1\nline2 \x1b[31mred`;
/** The program file's name (a name cannot hold '/': no closing tags), hence its module and lane. */
const STEM = `${HOSTILE_FILE} "dq" 'sq' ]]> %%{init}%% \x1b[31m nl\nx`;
/** The file the guest opens (\??\C:\…): NT names may hold '/', so closing tags go here. */
const GUEST_FILE = `</script><script>alert(1)</script></svg>]]>"'%%{init}%%`;
/** A label: the assembler takes [A-Za-z0-9_.?@$#~] — '#' and '$' mean something to Mermaid and shells. */
const LABEL = 'sym#lt@x$y~z?';
const SYMBOL = `${STEM}!${LABEL}`;
const PROGRAM = `${STEM}.asm`;
/** The trace file's own name is hostile too: commands echo it. */
const TRACE = at(`trace <b>"x"</b> \x1b[1m.db`);

/** user-nt-readfile opening GUEST_FILE (which does not exist: a failed call, drawn red) and calling LABEL first. */
function hostileSource(): string {
  const source = scenarioSource('user-nt-readfile.asm').source.replace(/^; ntflow-file:.*$/m, ';');
  const codes = [...`\\??\\C:\\${GUEST_FILE}`].map((c) => c.codePointAt(0)).join(', ');
  const out = source
    .replace(/^ {4}dw '\\', '\?'.*$/m, `    dw ${codes}`)
    .replace(/^start:$/m, `start:\n    call ${LABEL}`)
    .concat(`\n${LABEL}:\n    ret\n`);
  if (!out.includes(`dw ${codes}`) || !out.includes(`call ${LABEL}`)) throw new Error('hostileSource: user-nt-readfile.asm changed shape');
  return out;
}

const RAW_CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;
const KINDS = ['sequence', 'flame', 'graph'] as const;
/** Every drawing and page, with the hostile strings each must show as text. */
const DRAWINGS: { file: string; shows: string[] }[] = [
  { file: 'sequence.svg', shows: [HOSTILE_FILE, LABEL, GUEST_FILE] },
  { file: 'flame.svg', shows: [HOSTILE_FILE, LABEL] },
  { file: 'graph.svg', shows: [HOSTILE_FILE, LABEL] },
  { file: 'sequence.html', shows: ['<script>alert(1)</script>', HOSTILE_FILE, LABEL, GUEST_FILE] },
  { file: 'flame.html', shows: ['<script>alert(1)</script>', HOSTILE_FILE, LABEL] },
  { file: 'graph.html', shows: ['<script>alert(1)</script>', HOSTILE_FILE, LABEL] },
  { file: 'diff.html', shows: ['<script>alert(1)</script>', HOSTILE_FILE, LABEL] },
];

const ok = (t: Test, r: CliOutput, what: string) => {
  t.equal(r.code, 0, `${what}: exit 0 (stderr: ${r.stderr.slice(0, 300)})`);
  t.notOk(RAW_CONTROL.test(r.stdout) || RAW_CONTROL.test(r.stderr), `${what}: no raw control character reaches the terminal`);
};

t.before(async () => {
  writeFileSync(at(PROGRAM), hostileSource());
  const r = await ntflow(['record', PROGRAM, '-o', TRACE, '--name', SESSION], dir);
  if (r.code !== 0) throw new Error(`recording the hostile program failed: ${r.stderr}`);
  const plain = await ntflow(['record', 'user-nt-readfile', '-o', TRACE], dir);
  if (plain.code !== 0) throw new Error(`recording user-nt-readfile failed: ${plain.stderr}`);
});

t.test('the terminal: record, sessions, query and explain escape control characters (JSON and CSV keep them)', async (t) => {
  const r = await ntflow(['record', PROGRAM, '-o', TRACE, '--name', SESSION], dir);
  ok(t, r, 'record');
  t.match(r.stdout, /^session 3 '<script>alert\(1\)<\/script> "dq" 'sq' <\/svg> \]\]> %%\{init: \{"securityLevel":"loose"\}\}%% line1\\nline2 \\x1b\[31mred': complete$/m, 'record: the name on one line, \\n and \\x1b written out');
  t.match(r.stdout, /trace <b>"x"<\/b> \\x1b\[1m\.db/, "record: the trace's name escaped in the summary");

  const sessions = await ntflow(['sessions', TRACE]);
  ok(t, sessions, 'sessions');
  t.equal(sessions.stdout.trimEnd().split('\n').length, 5, 'sessions: a header, a rule and three rows — the newline did not split a row');
  t.match(sessions.stdout, /line1\\nline2 \\x1b\[31mred/, 'sessions: the name with \\n and \\x1b written out');

  const table = await ntflow(['query', TRACE, 'SELECT id, name, program FROM sessions WHERE id = 1']);
  ok(t, table, 'query (table)');
  t.match(table.stdout, /line1\\nline2 \\x1b\[31mred/, 'query table: the name escaped');
  t.equal(table.stdout.trimEnd().split('\n').length, 4, 'query table: a header, a rule, one row and the count');
  const json = await ntflow(['query', TRACE, 'SELECT name, program FROM sessions WHERE id = 1', '--format', 'json']);
  t.equal(json.code, 0);
  t.same(JSON.parse(json.stdout), [{ name: SESSION, program: PROGRAM }], 'query --format json: the strings exactly as recorded');
  const csv = await ntflow(['query', TRACE, 'SELECT name FROM sessions WHERE id = 1', '--format', 'csv']);
  t.equal(csv.stdout, `name\n"${SESSION.replace(/"/g, '""')}"\n`, 'query --format csv: the name quoted, whole');

  const explain = await ntflow(['explain', TRACE, '--session', '1']);
  ok(t, explain, 'explain');
  t.match(explain.stdout, /<\/script><script>alert\(1\)<\/script><\/svg>\]\]>/, 'explain names the missing file');

  const diff = await ntflow(['diff', `${TRACE}:1`, `${TRACE}:2`]);
  ok(t, diff, 'diff (text)');

  // A user error quoting the names: still one line, escaped.
  const missing = await ntflow(['flow', TRACE, '--session', 'nope', '-o', at('x.svg')]);
  t.equal(missing.code, 1);
  t.equal(missing.stderr.trimEnd().split('\n').length, 1, 'an error listing the sessions is one line');
  t.notOk(RAW_CONTROL.test(missing.stderr), 'and carries no raw control character');
});

t.test('flow (every --kind, .svg and .html) and diff -o: written, and the SVG is well-formed XML', async (t) => {
  for (const kind of KINDS) {
    for (const ext of ['svg', 'html']) ok(t, await ntflow(['flow', TRACE, '--session', '1', '--kind', kind, '-o', at(`${kind}.${ext}`)]), `flow --kind ${kind} .${ext}`);
  }
  ok(t, await ntflow(['diff', `${TRACE}:1`, `${TRACE}:2`, '-o', at('diff.html')]), 'diff -o');
  // Output files with the program's hostile name: written, and their names echoed escaped.
  const flowOut = await ntflow(['flow', TRACE, '--session', '1', '-o', at(`${STEM}.svg`)]);
  ok(t, flowOut, 'flow -o a hostile name');
  t.match(flowOut.stdout, /\\x1b\[31m nl\\nx\.svg: sequence diagram/, 'flow: the name echoed with \\x1b and \\n written out');
  const exportOut = await ntflow(['export', TRACE, '--session', '1', '--format', 'mermaid', '-o', at(`${STEM}.mmd`)]);
  ok(t, exportOut, 'export -o a hostile name');
  t.ok(readFileSync(at(`${STEM}.svg`), 'utf8').startsWith('<svg') && readFileSync(at(`${STEM}.mmd`), 'utf8').length > 0, 'both files written under their names');
  for (const kind of KINDS) {
    const svg = readFileSync(at(`${kind}.svg`), 'utf8');
    t.equal(wellFormed(svg), null, `${kind}.svg: well-formed`);
    t.notOk(RAW_CONTROL.test(svg), `${kind}.svg: no control character XML forbids (ESC is written \\x1b)`);
    t.notOk(/<script|<img|<[^>]*\son\w+="/i.test(svg), `${kind}.svg: no script, img or on* attribute`);
    t.ok(svg.includes('&lt;img src=x onerror=alert(1)&gt;'), `${kind}.svg: the program's name as escaped text`);
    t.ok(svg.includes(LABEL), `${kind}.svg: the label`);
  }
  for (const page of ['sequence.html', 'flame.html', 'graph.html', 'diff.html']) {
    const html = readFileSync(at(page), 'utf8');
    t.notOk(RAW_CONTROL.test(html), `${page}: no raw control character`);
    t.notOk(html.includes('<script>alert(1)') || html.includes('<img src=x'), `${page}: the markup never appears raw`);
  }
});

// ---- the exports -----------------------------------------------------------------------------------

/** Every string anywhere in a decoded value. */
function stringsIn(value: unknown, into = new Set<string>()): Set<string> {
  if (typeof value === 'string') into.add(value);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) stringsIn(v, into);
  return into;
}

/** The strings a data export must carry exactly (the whole value, or inside a longer one). */
function carries(t: Test, strings: Set<string>, what: string, wanted: { value: string; whole?: boolean }[]): void {
  const all = [...strings];
  for (const { value, whole } of wanted) {
    const found = whole ? strings.has(value) : all.some((s) => s.includes(value));
    t.ok(found, `${what}: carries ${JSON.stringify(value).slice(0, 60)}${whole ? ' as a whole string' : ''}`);
  }
}

const DATA_STRINGS = [
  { value: SESSION },
  { value: `${STEM}.exe`, whole: true },
  { value: SYMBOL, whole: true },
];

t.test('Perfetto, Chrome JSON, speedscope: the strings are intact data', async (t) => {
  const run = async (format: string, file: string) => {
    ok(t, await ntflow(['export', TRACE, '--session', '1', '--format', format, '-o', at(file)]), `export ${format}`);
    return readFileSync(at(file));
  };
  const Trace = perfettoTraceType();
  const perfetto = Trace.toObject(Trace.decode(await run('perfetto', 'out.perfetto-trace')), { longs: Number, enums: Number, defaults: false, arrays: true });
  carries(t, stringsIn(perfetto), 'perfetto', DATA_STRINGS);
  carries(t, stringsIn(JSON.parse((await run('chrome-json', 'out.json')).toString('utf8'))), 'chrome-json', DATA_STRINGS);
  const speedscope = JSON.parse((await run('speedscope', 'out.speedscope.json')).toString('utf8'));
  // speedscope names its profiles after the thread ('<program>.exe thread 1996 (0x7CC)').
  carries(t, stringsIn(speedscope), 'speedscope', DATA_STRINGS.map((s) => ({ value: s.value })));
});

t.test('Mermaid: the text checks, and decoded it reads the names (newline and ESC as spaces)', async (t) => {
  const r = await ntflow(['export', TRACE, '--session', '1', '--format', 'mermaid']);
  ok(t, r, 'export mermaid to stdout');
  t.same(checkMermaid(r.stdout).errors, [], 'well-formed for Mermaid');
  t.notOk(/%%\{init/.test(r.stdout), 'no init directive Mermaid would obey');
  t.notOk(/<script|<img/.test(r.stdout), 'no raw markup');
  const decoded = decodeMermaid(r.stdout);
  t.ok(decoded.includes('<script>alert(1)</script> "dq" \'sq\' </svg> ]]> %%{init: {"securityLevel":"loose"}}%% line1 line2'), 'the session name, decoded');
  t.ok(decoded.includes(HOSTILE_FILE), "the program's name, decoded");
  t.ok(decoded.includes(LABEL), 'the label, decoded');
  t.ok(decoded.includes(GUEST_FILE), "the guest file's name, decoded");
});

// ---- in the browser ------------------------------------------------------------------------------

/** What the page function reads (this project compiles without the DOM's types). */
interface PageDom {
  document: {
    documentElement: { textContent: string | null };
    querySelectorAll(selector: string): ArrayLike<{ textContent: string | null; getAttribute(name: string): string | null }>;
  };
  __cspViolations?: string[];
}

t.test('in Chromium: no dialog, no console error, no CSP violation, no request, the strings shown as text', async (t) => {
  if (!haveChromium(t)) return;
  const browser = await launchChromium();
  t.teardown(() => browser.close());
  for (const { file, shows } of DRAWINGS) {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const watch = watchPage(page);
    // Before any of the page's own scripts: a CSP refusal is an event, not always a console line.
    await page.addInitScript(() => {
      const w = globalThis as unknown as PageDom & { addEventListener(type: string, f: (e: { violatedDirective: string }) => void): void };
      w.__cspViolations = [];
      w.addEventListener('securitypolicyviolation', (e) => w.__cspViolations!.push(e.violatedDirective));
    });
    const url = pathToFileURL(at(file)).href;
    await page.goto(url);
    if (file.endsWith('.html')) await page.waitForSelector('html[data-ntflow-ready="true"]', { timeout: 10_000 });
    const seen = await page.evaluate(() => {
      const w = globalThis as unknown as PageDom;
      const d = w.document;
      const csp = d.querySelectorAll('meta[http-equiv="Content-Security-Policy"]');
      return {
        text: d.documentElement.textContent ?? '',
        // Data blocks (type="application/json") do not run; the rest must each be in the CSP.
        scripts: d.querySelectorAll('script:not([type="application/json"])').length,
        active: d.querySelectorAll('img, iframe, object, embed').length,
        csp: csp.length > 0 ? csp[0]!.getAttribute('content') : null,
        violations: w.__cspViolations ?? [],
      };
    });
    for (const s of shows) t.ok(seen.text.includes(s), `${file}: shows ${JSON.stringify(s)} as text`);
    t.equal(seen.active, 0, `${file}: no img, iframe, object or embed was created`);
    t.same(seen.violations, [], `${file}: the CSP refused nothing (nothing tried to run)`);
    if (file.endsWith('.svg')) t.equal(seen.scripts, 0, `${file}: no script element`);
    else {
      // The page's own scripts, each named in the CSP by its hash; an injected one would be extra.
      const scriptSrc = /script-src ([^;]*)/.exec(seen.csp ?? '')?.[1] ?? '';
      const hashes = scriptSrc.match(/'sha256-[^']+'/g) ?? [];
      t.ok(/^default-src 'none'/.test(seen.csp ?? '') && scriptSrc !== '' && !/unsafe-inline/.test(scriptSrc), `${file}: a CSP whose script-src names hashes, not 'unsafe-inline'`);
      t.equal(seen.scripts, hashes.length, `${file}: as many scripts as the CSP names (${hashes.length})`);
    }
    t.same(watch.dialogs, [], `${file}: no dialog`);
    t.same(watch.errors, [], `${file}: no console error`);
    t.same(foreignRequests(watch, url), [], `${file}: no request (src=x never loaded)`);
    await page.close();
  }
});
