// Checking Mermaid sequenceDiagram text the way Mermaid would reject it, without a browser: every
// line one of the statements viz/mermaid.ts writes, text free of the characters Mermaid's lexer
// reads as syntax (outside its `#…;` entity codes), blocks (box, rect) closed, and activations
// counted as Mermaid's sequenceDb counts them (deactivating an inactive participant is its error).
// Also the 1,000-call program of bench/viz.ts.

const STATEMENTS: [string, RegExp][] = [
  ['title', /^title (?<text>.+)$/],
  ['box', /^box (aliceblue|linen) Ring [03] \((user|kernel) mode\)$/],
  ['participant', /^participant (?<id>P\d+) as (?<text>.+)$/],
  ['end', /^end$/],
  ['rect', /^rect rgba\([\d., ]+\)$/],
  ['note', /^Note over (?<id>P\d+)(?:,(?<id2>P\d+))?: (?<text>.+)$/],
  ['arrow', /^(?<from>P\d+)(?<arrow>->>|-->>|-\)|-x)(?<act>[+-]?)(?<to>P\d+): (?<text>.+)$/],
  ['activation', /^(?<verb>activate|deactivate) (?<id>P\d+)$/],
];

/** Characters Mermaid reads as syntax in a message, note, alias or title (outside entity codes). */
const HAZARD = /[#;<>"%&`{}\\\n]/;

export interface MermaidCheck {
  errors: string[];
  /** Participant id → its display text (entity codes as written). */
  participants: Map<string, string>;
  /** The largest number of activations open at once. */
  maxActive: number;
  activations: number;
}

/** The problems Mermaid would have with `text` (empty when none), and what it declares. */
export function checkMermaid(text: string): MermaidCheck {
  const errors: string[] = [];
  const participants = new Map<string, string>();
  const active = new Map<string, number>();
  const blocks: string[] = [];
  let maxActive = 0;
  let activations = 0;
  const lines = text.replace(/\n$/, '').split('\n');
  if (lines[0] !== 'sequenceDiagram') errors.push(`line 1 is ${JSON.stringify(lines[0])}, not sequenceDiagram`);
  const known = (id: string | undefined, n: number) => {
    if (id !== undefined && !participants.has(id)) errors.push(`line ${n}: ${id} is not a declared participant`);
  };
  const open = (id: string) => {
    active.set(id, (active.get(id) ?? 0) + 1);
    activations++;
    maxActive = Math.max(maxActive, [...active.values()].reduce((a, b) => a + b, 0));
  };
  const close = (id: string, n: number) => {
    const c = active.get(id) ?? 0;
    if (c < 1) errors.push(`line ${n}: Trying to inactivate an inactive participant (${id})`);
    else active.set(id, c - 1);
  };
  lines.slice(1).forEach((line, k) => {
    const n = k + 2;
    const hit = STATEMENTS.map(([kind, re]) => [kind, re.exec(line)] as const).find(([, m]) => m);
    if (!hit) {
      errors.push(`line ${n}: not a statement: ${JSON.stringify(line)}`);
      return;
    }
    const [kind, m] = hit;
    const g = m!.groups ?? {};
    if (g.text !== undefined) {
      const bare = g.text.replace(/#\w+;/g, '');
      if (HAZARD.test(bare)) errors.push(`line ${n}: raw ${JSON.stringify(bare.match(HAZARD)![0])} in text: ${line}`);
      if (/\bend\b/i.test(bare)) errors.push(`line ${n}: bare 'end' in text: ${line}`);
      if (/style|classDef/.test(bare)) errors.push(`line ${n}: 'style'/'classDef' in text: ${line}`);
    }
    switch (kind) {
      case 'box':
      case 'rect':
        blocks.push(kind);
        return;
      case 'end':
        if (!blocks.pop()) errors.push(`line ${n}: 'end' closes nothing`);
        return;
      case 'participant':
        if (blocks[blocks.length - 1] !== 'box') errors.push(`line ${n}: participant outside a box`);
        participants.set(g.id, g.text);
        return;
      case 'note':
        known(g.id, n);
        known(g.id2, n);
        return;
      case 'activation':
        known(g.id, n);
        if (g.verb === 'activate') open(g.id);
        else close(g.id, n);
        return;
      case 'arrow':
        known(g.from, n);
        known(g.to, n);
        // Mermaid: `A->>+B` activates B, `A-->>-B` deactivates A (the sender).
        if (g.act === '+') open(g.to);
        if (g.act === '-') close(g.from, n);
        return;
      default:
        return;
    }
  });
  if (blocks.length) errors.push(`${blocks.length} block(s) left open: ${blocks.join(', ')}`);
  for (const [id, c] of active) if (c) errors.push(`${id} left with ${c} open activation(s)`);
  return { errors, participants, maxActive, activations };
}

/** Mermaid's entity codes back to characters, as it draws them (for comparing with trace text). */
export function decodeMermaid(s: string): string {
  const named: Record<string, string> = { lt: '<', gt: '>', quot: '"', amp: '&' };
  return s.replace(/#(\w+);/g, (all, code: string) => (/^\d+$/.test(code) ? String.fromCharCode(Number(code)) : (named[code] ?? all)));
}

/** bench/viz.ts's program: 1,000 system calls, NtClose(0) in a loop (each fails: STATUS_INVALID_HANDLE). */
export { THOUSAND_CLOSES } from '../../bench/viz.js';
