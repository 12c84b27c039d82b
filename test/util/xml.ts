// XML checks shared by the tests that read SVG (viz-svg, cli-json).

/**
 * A strict well-formedness check (linkedom's parser forgives too much): tags nest and close, one
 * root, attributes quoted with no raw '<' or bare '&', text with no raw '<' or bare '&'.
 */
export function wellFormed(xml: string): string | null {
  const stack: string[] = [];
  let roots = 0;
  const re = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"]*")*)\s*(\/?)>|<!--[\s\S]*?-->|([^<]+)|(<)/g;
  const badAmp = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;
  let m: RegExpExecArray | null;
  while ((m = re.exec(xml))) {
    if (m[6]) return `stray '<' at ${m.index}: ${xml.slice(m.index, m.index + 40)}`;
    if (m[5] !== undefined) {
      if (badAmp.test(m[5])) return `bare '&' in text at ${m.index}`;
      if (stack.length === 0 && m[5].trim() !== '') return `text outside the root at ${m.index}`;
      continue;
    }
    if (m[2] === undefined) continue; // comment
    for (const a of (m[3] ?? '').matchAll(/="([^"]*)"/g)) {
      if (a[1].includes('<') || badAmp.test(a[1])) return `bad attribute value ${a[0]} at ${m.index}`;
    }
    if (m[1]) {
      if (stack.pop() !== m[2]) return `</${m[2]}> closes nothing open at ${m.index}`;
    } else if (!m[4]) {
      if (stack.length === 0) roots++;
      stack.push(m[2]);
    } else if (stack.length === 0) roots++;
  }
  if (stack.length) return `unclosed <${stack[stack.length - 1]}>`;
  return roots === 1 ? null : `${roots} root elements`;
}
