// How wide a label is drawn, estimated without a DOM: layouts size lanes, gaps, frames and nodes by
// it, and the static SVG cuts labels by it (the page measures the drawn text and cuts what still
// does not fit, the whole text in its tooltip).

// Widths of DejaVu Sans (the font Debian's Chromium and most Linux desktops fall back to, and the
// widest of the page's fonts) in em, by character class: an estimate on the generous side, so a
// label usually fits the space laid out for it; the page measures the drawn text and cuts what
// still does not fit (the whole text in its tooltip).
const NARROW = new Set("iljtfrI.,:;|!'()[]{} /\\-");
const WIDE = new Set('mwMWQGOD@%&→←≠✗▸▾·…');
function charEm(c: string): number {
  if (NARROW.has(c)) return 0.36;
  if (WIDE.has(c)) return 0.86;
  if (c >= 'A' && c <= 'Z') return 0.72;
  if (c >= '0' && c <= '9') return 0.64;
  if (c.charCodeAt(0) > 0x7f) return 0.9;
  return 0.62;
}

/** A label's estimated width in pixels at `fontSize` (bold: 10 % wider). Pure: no DOM. */
export function textWidth(text: string, fontSize = 11.5, bold = false): number {
  let em = 0;
  for (const c of text) em += charEm(c);
  return Math.ceil(em * fontSize * (bold ? 1.1 : 1));
}

/**
 * The label cut with an ellipsis to what fits in `room` pixels (by textWidth), or '' when not even
 * two characters do. Binary search: the width grows with the number of characters kept.
 */
export function fitText(label: string, room: number, fontSize = 11, bold = false): string {
  if (textWidth(label, fontSize, bold) <= room) return label;
  const chars = [...label];
  let lo = 0;
  let hi = chars.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (textWidth(chars.slice(0, mid).join('') + '…', fontSize, bold) <= room) lo = mid;
    else hi = mid - 1;
  }
  return lo >= 2 ? `${chars.slice(0, lo).join('')}…` : '';
}
