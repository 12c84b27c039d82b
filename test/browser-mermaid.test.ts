// The Mermaid export in its consumer: Mermaid 11 (node_modules/mermaid/dist/mermaid.min.js, put
// inline into a blank page — no network) running in Debian's Chromium renders the text exported for
// every built-in scenario, a 1,000-call session elided under 50,000 characters, and hostile names:
// no error, the participants' names and the status notes in the SVG, nothing run (no <script>, no
// dialog, no console error, no request). Saves test-artifacts/mermaid-osr-log-user-handle.svg/.png.
//   npx tsc -p tsconfig.json && npx tap dist/test/browser-mermaid.test.js
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { record } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';
import { SCENARIOS } from '../core/guest/scenarios.js';
import { MERMAID_MAX_TEXT, mermaidText, renderSequenceMermaid, sequenceInput, type SequenceInput } from '../viz/index.js';
import { repoPath } from './util/paths.js';
import { HOSTILE_FILE, haveChromium, hostileProgram, launchChromium, watchPage, type PageWatch } from './util/browser.js';
import { THOUSAND_CLOSES, checkMermaid, decodeMermaid } from './util/mermaid.js';

const MERMAID_JS = repoPath('node_modules', 'mermaid', 'dist', 'mermaid.min.js');
const HOSTILE = '</svg><script>alert(1)</script> "q" %%{init: {"securityLevel":"loose"}}%% end; #x\nNote over P1: injected';

interface Rendered {
  error: string | null;
  svg: string;
  /** The text of every <text> and foreignObject in the drawing, as the reader sees it. */
  texts: string[];
  scripts: number;
  /** Elements that could run or load something: img, iframe, object, embed, on* attributes. */
  active: number;
}

/** What the page function uses of the browser (this project compiles without the DOM's types). */
interface DomElement {
  innerHTML: string;
  textContent: string | null;
  attributes: ArrayLike<{ name: string }>;
  querySelectorAll(selector: string): ArrayLike<DomElement>;
}
interface PageGlobals {
  mermaid: { initialize(config: object): void; render(id: string, text: string): Promise<{ svg: string }> };
  document: { getElementById(id: string): DomElement | null; querySelectorAll(selector: string): ArrayLike<DomElement> };
}

if (haveChromium(t)) {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-browser-mermaid-'));
  const trace = join(dir, 'all.db');
  const sessions: { name: string; id: number }[] = [];
  let browser: Browser;
  let page: Page;
  let watch: PageWatch;

  t.before(async () => {
    for (const s of SCENARIOS) sessions.push({ name: s.name, id: (await record({ scenario: s.name }, { output: trace, name: s.name })).sessionId });
    sessions.push({ name: 'closes', id: (await record({ program: THOUSAND_CLOSES }, { output: trace, name: 'closes' })).sessionId });
    sessions.push({ name: 'hostile', id: (await record({ program: hostileProgram() }, { output: trace, name: HOSTILE })).sessionId });
    replayFile(trace);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1600, height: 1200 } });
    watch = watchPage(page);
    await page.setContent('<!doctype html><html><head><meta charset="utf-8"></head><body><div id="out"></div></body></html>');
    await page.addScriptTag({ path: MERMAID_JS });
  });
  t.teardown(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let renders = 0;
  /** mermaid.render in the page (securityLevel as given), the SVG put in #out and read back. */
  const render = (text: string, securityLevel: 'strict' | 'loose' = 'strict'): Promise<Rendered> =>
    page.evaluate(
      async ({ text, id, securityLevel }) => {
        const g = globalThis as unknown as PageGlobals;
        const m = g.mermaid;
        m.initialize({ startOnLoad: false, securityLevel });
        const out = g.document.getElementById('out')!;
        out.innerHTML = '';
        try {
          const { svg } = await m.render(id, text);
          out.innerHTML = svg;
        } catch (e) {
          return { error: String((e as Error)?.message ?? e), svg: '', texts: [], scripts: 0, active: 0 };
        }
        const onAttr = Array.from(out.querySelectorAll('*')).filter((el) => Array.from(el.attributes).some((a) => /^on/i.test(a.name))).length;
        return {
          error: null,
          svg: out.innerHTML,
          texts: Array.from(out.querySelectorAll('text, foreignObject')).map((n) => n.textContent ?? ''),
          scripts: g.document.querySelectorAll('script').length - 1, // the mermaid.min.js tag itself
          active: out.querySelectorAll('img, iframe, object, embed').length + onAttr,
        };
      },
      { text, id: `d${renders++}`, securityLevel },
    );

  const inputOf = (id: number, syscallIds?: number[]): SequenceInput => {
    const db = new Database(trace, { readonly: true });
    try {
      return sequenceInput(db, id, { registerSteps: 0, syscallIds });
    } finally {
      db.close();
    }
  };

  /** What the exported text says its reader must see: participants' names and the notes naming a status. */
  function expectations(text: string): { names: string[]; statusNotes: string[] } {
    const check = checkMermaid(text);
    const names = [...check.participants.values()].map(decodeMermaid);
    const statusNotes = [...text.matchAll(/^Note over [^:]+: (.*STATUS_\w+.*)$/gm)].map((m) => decodeMermaid(m[1]));
    return { names, statusNotes };
  }

  t.test('every built-in scenario: Mermaid renders the export with its participants and status notes', async (t) => {
    for (const s of sessions.filter((x) => x.name !== 'hostile' && x.name !== 'closes')) {
      const out = renderSequenceMermaid(inputOf(s.id));
      t.same(checkMermaid(out.text).errors, [], `${s.name}: the text checks`);
      const r = await render(out.text);
      t.equal(r.error, null, `${s.name}: rendered without error`);
      t.notMatch(r.svg, /Maximum text size/, `${s.name}: not the size error`);
      const shown = r.texts.join('\n');
      const { names, statusNotes } = expectations(out.text);
      t.ok(names.length >= 3 && names.every((n) => shown.includes(n)), `${s.name}: the ${names.length} participants are drawn`);
      t.ok(statusNotes.length > 0, `${s.name}: ${statusNotes.length} status notes exported`);
      const missing = statusNotes.filter((n) => !r.texts.some((x) => x.includes(n)));
      t.same(missing, [], `${s.name}: every status note is drawn`);
      t.ok(shown.includes('Ring 0 (kernel mode)'), `${s.name}: the ring boxes are titled`);
    }
    t.same(watch.errors, [], 'no console error');
  });

  t.test('one call (--syscall) and the 1,000-call session elided under 50,000 characters', async (t) => {
    const osr = sessions.find((s) => s.name === 'osr-log-user-handle')!;
    const one = renderSequenceMermaid(inputOf(osr.id, [4]));
    const r1 = await render(one.text);
    t.equal(r1.error, null, 'osr-log-user-handle call #4 renders');
    t.ok(r1.texts.some((x) => x.includes('SSDT[0xB7] → nt!NtReadFile')), 'its SSDT note is drawn');
    t.ok(r1.texts.some((x) => x.includes('PreviousMode = UserMode')), 'its PreviousMode note is drawn');

    const closes = sessions.find((s) => s.name === 'closes')!;
    const big = renderSequenceMermaid(inputOf(closes.id));
    t.ok(big.text.length <= MERMAID_MAX_TEXT, `${big.text.length} characters`);
    t.equal(big.notes.length, 1, 'something was left out');
    const r = await render(big.text);
    t.equal(r.error, null, 'rendered without error');
    t.notMatch(r.svg, /Maximum text size/, 'under maxTextSize: the diagram, not the size error');
    t.ok(r.texts.some((x) => x.includes(big.notes[0])), `the elision note is drawn: ${big.notes[0]}`);
    t.ok(r.texts.some((x) => /more calls like #1 left out/.test(x)), 'and the note standing for the calls left out');
    t.ok(r.texts.some((x) => x.includes('NtTerminateProcess')), 'the last call is drawn');
    t.same(watch.errors, [], 'no console error');

    // Before the elision existed: the same session at a limit Mermaid's default cannot take.
    const unlimited = renderSequenceMermaid(inputOf(closes.id), { maxChars: 10_000_000 });
    t.ok(unlimited.text.length > MERMAID_MAX_TEXT, `unelided it is ${unlimited.text.length} characters`);
    const over = await render(unlimited.text);
    t.ok(over.error !== null || /Maximum text size/.test(over.svg), 'which Mermaid refuses: the limit is real');
  });

  t.test('hostile names are text in the drawing and run nothing (strict and loose security levels)', async (t) => {
    const hostile = sessions.find((s) => s.name === 'hostile')!;
    const input = inputOf(hostile.id);
    // The recorded program is named <img src=x onerror=alert(1)>.asm; add the other traps by hand.
    input.title = `${HOSTILE}: ${input.title}`;
    input.lanes = input.lanes.map((l) => (l.id === 'ntdll' ? { ...l, label: `ntdll ${HOSTILE}` } : l));
    const out = renderSequenceMermaid(input);
    t.same(checkMermaid(out.text).errors, [], 'the text checks');
    for (const level of ['strict', 'loose'] as const) {
      const before = watch.dialogs.length;
      const r = await render(out.text, level);
      t.equal(r.error, null, `${level}: rendered without error`);
      t.equal(r.scripts, 0, `${level}: no <script> element`);
      t.equal(r.active, 0, `${level}: no img/iframe/object, no on* attribute`);
      const shown = r.texts.join('\n');
      t.ok(shown.includes(`${HOSTILE_FILE}.exe`) || shown.includes(HOSTILE_FILE), `${level}: the program's name is drawn as text`);
      t.ok(shown.includes('<script>alert(1)</script>'), `${level}: <script> is drawn as text`);
      t.ok(shown.includes('%%{init: {"securityLevel":"loose"}}%%'), `${level}: the init directive is drawn as text, not obeyed`);
      t.equal(watch.dialogs.length, before, `${level}: no dialog`);
    }
    t.same(watch.errors, [], 'no console error');
    t.same(watch.requests.filter((u) => !u.startsWith('data:') && u !== 'about:blank'), [], 'no request (src=x never loaded)');
  });

  t.test("the checks' model of Mermaid holds: an unbalanced deactivation and a raw '#' are what Mermaid trips on", async (t) => {
    const head = 'sequenceDiagram\nparticipant P1 as a\nparticipant P2 as b\n';
    const unbalanced = `${head}P1->>+P2: call\nP2-->>-P1: ret\nP2-->>-P1: ret again\n`;
    t.match(checkMermaid(unbalanced).errors.join('\n'), /Trying to inactivate an inactive participant \(P2\)/, 'checkMermaid rejects it');
    const r = await render(unbalanced);
    t.match(r.error ?? '', /Trying to inactivate an inactive participant \(P2\)/, 'and so does Mermaid');
    t.equal((await render(`${head}P1->>+P2: call\nP2-->>-P1: ret\n`)).error, null, 'balanced, it renders');
    // A raw '#' ends a message (the rest is a comment): the status after it would be lost.
    const raw = await render(`${head}P1->>P2: #5 NtClose → STATUS_INVALID_HANDLE\n`);
    t.notOk(raw.texts.some((x) => x.includes('STATUS_INVALID_HANDLE')), "a raw '#' loses the rest of the label");
    const coded = await render(`${head}P1->>P2: ${mermaidText('#5 NtClose → STATUS_INVALID_HANDLE')}\n`);
    t.ok(coded.texts.includes('#5 NtClose → STATUS_INVALID_HANDLE'), 'written by mermaidText it is drawn whole');
    watch.errors.length = 0; // Mermaid logs the parse error it threw above
  });

  t.test('artifact: the osr-log-user-handle session as Mermaid draws it (test-artifacts/mermaid-osr-log-user-handle.svg/.png)', async (t) => {
    const osr = sessions.find((s) => s.name === 'osr-log-user-handle')!;
    const r = await render(renderSequenceMermaid(inputOf(osr.id)).text);
    t.equal(r.error, null);
    const outDir = repoPath('test-artifacts');
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'mermaid-osr-log-user-handle.svg'), r.svg);
    await page.locator('#out svg').screenshot({ path: join(outDir, 'mermaid-osr-log-user-handle.png') });
    t.pass(`saved ${join(outDir, 'mermaid-osr-log-user-handle.svg')} and .png`);
  });
}
