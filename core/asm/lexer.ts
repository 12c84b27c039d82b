// Splits one source line into tokens, NASM's way: identifiers may contain . _ ? @ $ # ~, numbers
// take 0x/0b/0o prefixes or h/b/o/q suffixes, strings are '...', "..." or `...` (with C escapes).
import { fail } from './errors.js';

export type TokenKind = 'ident' | 'number' | 'string' | 'punct' | 'end';

export interface Token {
  kind: TokenKind;
  /** Identifier text as written, punctuation, or the raw number text. */
  text: string;
  /** 1-based column of the first character. */
  column: number;
  /** Numbers: the value. */
  value?: bigint;
  /** Strings: the bytes they stand for. */
  bytes?: Uint8Array;
}

const IDENT_START = /[A-Za-z_.?@]/;
const IDENT_PART = /[A-Za-z0-9_.?@$#~]/;
// Longest first so that "<<" wins over "<".
const PUNCTUATION = ['<<', '>>', '//', '%%', '$$', '+', '-', '*', '/', '%', '&', '|', '^', '~', '!', '(', ')', '[', ']', '{', '}', ',', ':', '$'];

export function tokenize(text: string, line: number): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === ';') break;
    if (ch === ' ' || ch === '\t' || ch === '\r') {
      i++;
      continue;
    }
    const column = i + 1;
    if (/[0-9]/.test(ch) || (ch === '$' && /[0-9]/.test(text[i + 1] ?? ''))) {
      let end = i + 1;
      while (end < text.length && /[0-9A-Za-z_]/.test(text[end]!)) end++;
      const raw = text.slice(i, end);
      if (text[end] === '.' && /[0-9]/.test(text[end + 1] ?? '')) fail({ line, column }, `floating-point constants are not supported; write the value's bytes with dd/dq`);
      tokens.push({ kind: 'number', text: raw, column, value: parseNumber(raw, { line, column }) });
      i = end;
      continue;
    }
    if (IDENT_START.test(ch)) {
      let end = i + 1;
      while (end < text.length && IDENT_PART.test(text[end]!)) end++;
      tokens.push({ kind: 'ident', text: text.slice(i, end), column });
      i = end;
      continue;
    }
    if (ch === "'" || ch === '"' || ch === '`') {
      const { bytes, end } = readString(text, i, { line, column });
      tokens.push({ kind: 'string', text: text.slice(i, end), column, bytes });
      i = end;
      continue;
    }
    const punct = PUNCTUATION.find((p) => text.startsWith(p, i));
    if (punct === undefined) fail({ line, column }, `unexpected character '${ch}'; remove it or start a comment with ';'`);
    tokens.push({ kind: 'punct', text: punct, column });
    i += punct.length;
  }
  tokens.push({ kind: 'end', text: '', column: text.length + 1 });
  return tokens;
}

function parseNumber(raw: string, pos: { line: number; column: number }): bigint {
  const digits = (s: string) => s.replace(/_/g, '');
  const lower = raw.toLowerCase();
  const attempt = (text: string, radix: number, pattern: RegExp): bigint | undefined => {
    const clean = digits(text);
    if (clean === '' || !pattern.test(clean)) return undefined;
    const prefix = radix === 16 ? '0x' : radix === 2 ? '0b' : radix === 8 ? '0o' : '';
    return BigInt(prefix + clean);
  };
  const hex = /^[0-9a-f]+$/;
  const bin = /^[01]+$/;
  const oct = /^[0-7]+$/;
  const dec = /^[0-9]+$/;
  let value: bigint | undefined;
  if (lower.startsWith('$')) value = attempt(lower.slice(1), 16, hex);
  else if (lower.startsWith('0x') || lower.startsWith('0h')) value = attempt(lower.slice(2), 16, hex);
  else if (lower.endsWith('h') || lower.endsWith('x')) value = attempt(lower.slice(0, -1), 16, hex);
  else if (lower.startsWith('0b') || lower.startsWith('0y')) value = attempt(lower.slice(2), 2, bin);
  else if (lower.endsWith('b') || lower.endsWith('y')) value = attempt(lower.slice(0, -1), 2, bin);
  else if (lower.startsWith('0o') || lower.startsWith('0q')) value = attempt(lower.slice(2), 8, oct);
  else if (lower.endsWith('o') || lower.endsWith('q')) value = attempt(lower.slice(0, -1), 8, oct);
  else if (lower.startsWith('0d') || lower.startsWith('0t')) value = attempt(lower.slice(2), 10, dec);
  else if (lower.endsWith('d') || lower.endsWith('t')) value = attempt(lower.slice(0, -1), 10, dec);
  else value = attempt(lower, 10, dec);
  if (value === undefined) {
    fail(pos, `'${raw}' is not a number; write hex as 0x1F or 1Fh (a leading 0 when it starts with a letter: 0B7h), binary as 101b`);
  }
  return value;
}

const ESCAPES: Record<string, number> = { n: 10, t: 9, r: 13, '0': 0, a: 7, b: 8, f: 12, v: 11, e: 27, '\\': 92, '`': 96, "'": 39, '"': 34, '?': 63 };

function readString(text: string, start: number, pos: { line: number; column: number }): { bytes: Uint8Array; end: number } {
  const quote = text[start]!;
  const out: number[] = [];
  let i = start + 1;
  const pushUtf8 = (s: string) => out.push(...new TextEncoder().encode(s));
  while (i < text.length && text[i] !== quote) {
    if (quote === '`' && text[i] === '\\') {
      const next = text[i + 1] ?? '';
      if (next === 'x') {
        const hex = /^[0-9a-fA-F]{1,2}/.exec(text.slice(i + 2))?.[0] ?? '';
        if (hex === '') fail({ line: pos.line, column: i + 1 }, 'expected hex digits after \\x in a backquoted string');
        out.push(parseInt(hex, 16));
        i += 2 + hex.length;
        continue;
      }
      const octal = /^[0-7]{1,3}/.exec(text.slice(i + 1))?.[0];
      if (octal !== undefined && octal !== '0') {
        out.push(parseInt(octal, 8) & 0xff);
        i += 1 + octal.length;
        continue;
      }
      const code = ESCAPES[next];
      if (code === undefined) fail({ line: pos.line, column: i + 1 }, `unknown escape '\\${next}' in a backquoted string`);
      out.push(code);
      i += 2;
      continue;
    }
    pushUtf8(text[i]!);
    i++;
  }
  if (i >= text.length) fail(pos, `unterminated string; close it with ${quote}`);
  return { bytes: Uint8Array.from(out), end: i + 1 };
}
