// Turns source lines into statements: labels, directives, data and instructions with their
// operands still as expressions (labels get their values later, pass by pass).
import { fail, type SourcePos } from './errors.js';
import { describe, parseExpr, TokenStream, type Expr } from './expr.js';
import { tokenize } from './lexer.js';
import { isRegisterName, SIZE_KEYWORDS } from './registers.js';

export type OperandSyntax =
  | { kind: 'register'; name: string; pos: SourcePos }
  | {
      kind: 'memory';
      /** Size in bytes from byte/word/dword..., 0 when not written. */
      size: number;
      far: boolean;
      segment?: string;
      address: Expr;
      /** `[dword eax+1]` forces a 32-bit displacement, `[byte ...]` an 8-bit one. */
      displacementSize: number;
      pos: SourcePos;
    }
  | { kind: 'immediate'; expr: Expr; size: number; strict: boolean; distance?: 'short' | 'near' | 'far'; pos: SourcePos }
  | { kind: 'farPointer'; selector: Expr; offset: Expr; pos: SourcePos };

export type DataItem = { kind: 'bytes'; bytes: Uint8Array; pos: SourcePos } | { kind: 'value'; expr: Expr; pos: SourcePos };

export type Body =
  | {
      kind: 'instruction';
      mnemonic: string;
      prefixes: string[];
      /** GNU as's {load}/{store} pseudo-prefixes: pick the reg,r/m or r/m,reg encoding. */
      direction?: 'load' | 'store';
      operands: OperandSyntax[];
      pos: SourcePos;
    }
  | { kind: 'data'; unit: number; items: DataItem[]; pos: SourcePos }
  | { kind: 'reserve'; unit: number; count: Expr; pos: SourcePos }
  | { kind: 'times'; count: Expr; body: Body; pos: SourcePos }
  | { kind: 'align'; boundary: Expr; pos: SourcePos }
  | { kind: 'equ'; name: string; expr: Expr; pos: SourcePos }
  | { kind: 'org'; expr: Expr; pos: SourcePos }
  | { kind: 'ignored'; pos: SourcePos };

export interface Statement {
  line: number;
  text: string;
  /** Label defined on this line (already qualified when local), if any. */
  label?: { name: string; pos: SourcePos };
  body?: Body;
}

const PREFIXES = new Set(['lock', 'rep', 'repe', 'repz', 'repne', 'repnz', 'es', 'cs', 'ss', 'ds', 'fs', 'gs']);
const DATA_UNITS: Record<string, number> = { db: 1, dw: 2, dd: 4, dq: 8 };
const RESERVE_UNITS: Record<string, number> = { resb: 1, resw: 2, resd: 4, resq: 8, rest: 10, reso: 16 };
// Accepted for NASM compatibility; they change nothing in a flat 32-bit binary.
const IGNORED = new Set(['section', 'segment', 'global', 'extern', 'default', 'cpu', 'use32']);

/** Parses the whole source; local labels (.name) are qualified by the last global label. */
export function parseSource(source: string): Statement[] {
  const statements: Statement[] = [];
  let scope: string | undefined;
  source.split('\n').forEach((text, i) => {
    const line = i + 1;
    const stream = new TokenStream(tokenize(text, line), line);
    const statement: Statement = { line, text: text.replace(/\r$/, '') };
    if (stream.atEnd()) {
      statements.push(statement);
      return;
    }
    const first = stream.peek();
    if (first.kind === 'ident' && stream.isPunct(':', 1)) {
      const name = qualify(first.text, scope, stream.pos(first));
      if (!first.text.startsWith('.')) scope = first.text;
      statement.label = { name, pos: stream.pos(first) };
      stream.next();
      stream.next();
    } else if (first.kind === 'ident' && stream.isKeyword('equ', 1)) {
      const name = qualify(first.text, scope, stream.pos(first));
      stream.next();
      const equPos = stream.pos();
      stream.next();
      statement.body = { kind: 'equ', name, expr: parseExpr(stream, isRegisterName), pos: equPos };
      expectEnd(stream);
      statements.push(statement);
      return;
    }
    if (!stream.atEnd()) statement.body = parseBody(stream, (name, pos) => qualify(name, scope, pos));
    expectEnd(stream);
    statements.push(statement);
  });
  return statements;
}

function qualify(name: string, scope: string | undefined, pos: SourcePos): string {
  if (!name.startsWith('.') || name.startsWith('..')) return name;
  if (scope === undefined) fail(pos, `local label '${name}' has no global label before it; add one (e.g. 'start:') above`);
  return scope + name;
}

function expectEnd(stream: TokenStream): void {
  if (!stream.atEnd()) fail(stream.pos(), `unexpected ${describe(stream.peek())}; one statement per line, comments start with ';'`);
}

type Qualify = (name: string, pos: SourcePos) => string;

function parseBody(stream: TokenStream, qualifyName: Qualify): Body {
  let direction: 'load' | 'store' | undefined;
  if (stream.isPunct('{')) {
    // NASM always picks the r/m,reg form (xor edi,edi = 31 FF); compilers of XP's era emitted the
    // reg,r/m form (33 FF), which the seed listings show. GNU as spells the choice {load}.
    const open = stream.next();
    const word = stream.next();
    if (word.kind !== 'ident' || !['load', 'store'].includes(word.text.toLowerCase())) {
      fail(stream.pos(word), `unknown pseudo-prefix ${describe(word)}; use {load} or {store}`);
    }
    stream.expect('}', `to close '${open.text}${word.text}'`);
    direction = word.text.toLowerCase() as 'load' | 'store';
    const body = parseBody(stream, qualifyName);
    if (body.kind !== 'instruction') fail(stream.pos(open), `{${direction}} must come before an instruction`);
    return { ...body, direction };
  }
  const token = stream.peek();
  const pos = stream.pos(token);
  if (token.kind === 'punct' && token.text === '[') {
    // [bits 32], [org 0x1000], [section .text]: the primitive directive forms.
    stream.next();
    const body = parseBody(stream, qualifyName);
    stream.expect(']', 'to close the directive');
    return body;
  }
  if (token.kind !== 'ident') fail(pos, `expected an instruction or directive, found ${describe(token)}`);
  const word = token.text.toLowerCase();
  stream.next();
  if (word === 'bits') {
    const value = stream.next();
    if (value.kind !== 'number' || value.value !== 32n) fail(stream.pos(value), `only 'bits 32' is supported; ntflow assembles 32-bit code`);
    return { kind: 'ignored', pos };
  }
  if (IGNORED.has(word)) {
    while (!stream.atEnd() && !stream.isPunct(']')) stream.next();
    return { kind: 'ignored', pos };
  }
  if (word === 'org') return { kind: 'org', expr: parseExpr(stream, isRegisterName), pos };
  if (word === 'align') return { kind: 'align', boundary: parseExpr(stream, isRegisterName), pos };
  if (word === 'times') {
    const count = parseExpr(stream, isRegisterName);
    if (stream.atEnd()) fail(stream.pos(), `'times' needs something to repeat, e.g. 'times 4 db 0'`);
    return { kind: 'times', count, body: parseBody(stream, qualifyName), pos };
  }
  const unit = DATA_UNITS[word];
  if (unit !== undefined) return { kind: 'data', unit, items: parseDataItems(stream, qualifyName), pos };
  const reserve = RESERVE_UNITS[word];
  if (reserve !== undefined) return { kind: 'reserve', unit: reserve, count: parseExpr(stream, isRegisterName), pos };
  const prefixes: string[] = [];
  let mnemonic = word;
  let mnemonicPos = pos;
  while (PREFIXES.has(mnemonic) && stream.peek().kind === 'ident') {
    prefixes.push(mnemonic);
    const next = stream.next();
    mnemonic = next.text.toLowerCase();
    mnemonicPos = stream.pos(next);
  }
  const operands: OperandSyntax[] = [];
  if (!stream.atEnd()) {
    do operands.push(parseOperand(stream, qualifyName));
    while (stream.accept(','));
  }
  return { kind: 'instruction', mnemonic, prefixes, operands, pos: mnemonicPos };
}

function parseDataItems(stream: TokenStream, qualifyName: Qualify): DataItem[] {
  const items: DataItem[] = [];
  do {
    const token = stream.peek();
    const next = stream.peek(1);
    if (token.kind === 'string' && (next.kind === 'end' || (next.kind === 'punct' && next.text === ','))) {
      stream.next();
      items.push({ kind: 'bytes', bytes: token.bytes!, pos: stream.pos(token) });
    } else {
      const pos = stream.pos();
      items.push({ kind: 'value', expr: qualifyExpr(parseExpr(stream, isRegisterName), qualifyName), pos });
    }
  } while (stream.accept(','));
  return items;
}

/** Local label references (.loop) are qualified the same way as their definitions. */
function qualifyExpr(expr: Expr, qualifyName: Qualify): Expr {
  switch (expr.kind) {
    case 'symbol':
      return { ...expr, name: qualifyName(expr.name, expr.pos) };
    case 'unary':
      return { ...expr, arg: qualifyExpr(expr.arg, qualifyName) };
    case 'binary':
      return { ...expr, left: qualifyExpr(expr.left, qualifyName), right: qualifyExpr(expr.right, qualifyName) };
    default:
      return expr;
  }
}

function parseOperand(stream: TokenStream, qualifyName: Qualify): OperandSyntax {
  const pos = stream.pos();
  let size = 0;
  let strict = false;
  let distance: 'short' | 'near' | 'far' | undefined;
  for (;;) {
    const token = stream.peek();
    if (token.kind !== 'ident') break;
    const word = token.text.toLowerCase();
    if (word in SIZE_KEYWORDS && !stream.isPunct(':', 1)) {
      size = SIZE_KEYWORDS[word]!;
      stream.next();
      if (stream.isKeyword('ptr')) stream.next(); // MASM's `dword ptr [eax]`
    } else if (word === 'strict') {
      strict = true;
      stream.next();
    } else if (word === 'short' || word === 'near' || word === 'far') {
      distance = word;
      stream.next();
    } else break;
  }
  const token = stream.peek();
  // fs:[0x124] — a segment override written before the bracket.
  if (token.kind === 'ident' && isSegment(token.text) && stream.isPunct(':', 1) && stream.isPunct('[', 2)) {
    stream.next();
    stream.next();
    return parseMemory(stream, qualifyName, { size, far: distance === 'far', segment: token.text.toLowerCase(), pos });
  }
  if (stream.isPunct('[')) return parseMemory(stream, qualifyName, { size, far: distance === 'far', pos });
  if (token.kind === 'ident' && isRegisterName(token.text)) {
    const after = stream.peek(1);
    if (after.kind === 'end' || (after.kind === 'punct' && after.text === ',')) {
      stream.next();
      if (size !== 0) fail(pos, `a size keyword before register ${token.text} is not needed; remove it`);
      return { kind: 'register', name: token.text.toLowerCase(), pos };
    }
  }
  const expr = qualifyExpr(parseExpr(stream, isRegisterName), qualifyName);
  if (stream.accept(':')) {
    const offset = qualifyExpr(parseExpr(stream, isRegisterName), qualifyName);
    return { kind: 'farPointer', selector: expr, offset, pos };
  }
  return { kind: 'immediate', expr, size, strict, distance, pos };
}

function isSegment(name: string): boolean {
  return ['es', 'cs', 'ss', 'ds', 'fs', 'gs'].includes(name.toLowerCase());
}

function parseMemory(
  stream: TokenStream,
  qualifyName: Qualify,
  outer: { size: number; far: boolean; segment?: string; pos: SourcePos },
): OperandSyntax {
  stream.expect('[', 'to open the address');
  let segment = outer.segment;
  let displacementSize = 0;
  for (;;) {
    const token = stream.peek();
    if (token.kind !== 'ident') break;
    const word = token.text.toLowerCase();
    if (isSegment(word) && stream.isPunct(':', 1)) {
      if (segment !== undefined) fail(stream.pos(token), `two segment overrides; keep one of ${segment}: and ${word}:`);
      segment = word;
      stream.next();
      stream.next();
    } else if ((word === 'byte' || word === 'dword') && !stream.isPunct(':', 1)) {
      displacementSize = SIZE_KEYWORDS[word]!;
      stream.next();
    } else if (word === 'nosplit' || word === 'abs') {
      stream.next();
    } else break;
  }
  const address = qualifyExpr(parseExpr(stream, isRegisterName), qualifyName);
  stream.expect(']', 'to close the address');
  return { kind: 'memory', size: outer.size, far: outer.far, segment, address, displacementSize, pos: outer.pos };
}
