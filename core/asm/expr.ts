// Constant expressions with NASM's operators and precedence (lowest first): | ^ & << >> + - * / % // %%
// and unary - + ~ !. Values are BigInt so that dq and 32-bit wrap-around stay exact. Registers may
// appear inside brackets; evaluation then yields a linear form (constant + sum of reg*coefficient).
import { fail, type SourcePos } from './errors.js';
import type { Token } from './lexer.js';

export type Expr =
  | { kind: 'number'; value: bigint; pos: SourcePos }
  | { kind: 'symbol'; name: string; pos: SourcePos }
  | { kind: 'external'; module: string; name: string; pos: SourcePos }
  | { kind: 'register'; name: string; pos: SourcePos }
  | { kind: 'here'; pos: SourcePos }
  | { kind: 'sectionStart'; pos: SourcePos }
  | { kind: 'unary'; op: string; arg: Expr; pos: SourcePos }
  | { kind: 'binary'; op: string; left: Expr; right: Expr; pos: SourcePos };

// Parsing and evaluating recurse once per operator and per parenthesis: bounds far above any
// hand-written line keep a generated 100,000-deep or 200,000-term expression an AsmError instead
// of a JavaScript stack overflow.
const MAX_NESTING = 100;
const MAX_OPERATORS = 1000;

/** A cursor over one line's tokens. */
export class TokenStream {
  index = 0;
  /** Parentheses open at this point, and operators seen on the line (see MAX_NESTING). */
  nesting = 0;
  operators = 0;
  constructor(
    readonly tokens: Token[],
    readonly line: number,
  ) {}
  peek(offset = 0): Token {
    return this.tokens[Math.min(this.index + offset, this.tokens.length - 1)]!;
  }
  next(): Token {
    const token = this.peek();
    if (this.index < this.tokens.length - 1) this.index++;
    return token;
  }
  isPunct(text: string, offset = 0): boolean {
    const token = this.peek(offset);
    return token.kind === 'punct' && token.text === text;
  }
  isKeyword(word: string, offset = 0): boolean {
    const token = this.peek(offset);
    return token.kind === 'ident' && token.text.toLowerCase() === word;
  }
  accept(text: string): boolean {
    if (!this.isPunct(text)) return false;
    this.next();
    return true;
  }
  pos(token: Token = this.peek()): SourcePos {
    return { line: this.line, column: token.column };
  }
  atEnd(): boolean {
    return this.peek().kind === 'end';
  }
  expect(text: string, what: string): void {
    if (!this.accept(text)) fail(this.pos(), `expected '${text}' ${what}, found ${describe(this.peek())}`);
  }
}

export function describe(token: Token): string {
  if (token.kind === 'end') return 'end of line';
  return `'${token.text}'`;
}

const BINARY_LEVELS: string[][] = [['|'], ['^'], ['&'], ['<<', '>>'], ['+', '-'], ['*', '/', '%', '//', '%%']];

/** Parses an expression; `isRegister` tells which identifiers are registers. */
export function parseExpr(stream: TokenStream, isRegister: (name: string) => boolean, level = 0): Expr {
  if (level === BINARY_LEVELS.length) return parseUnary(stream, isRegister);
  let left = parseExpr(stream, isRegister, level + 1);
  for (;;) {
    const token = stream.peek();
    if (token.kind !== 'punct' || !BINARY_LEVELS[level]!.includes(token.text)) return left;
    stream.next();
    countOperator(stream, token);
    const right = parseExpr(stream, isRegister, level + 1);
    left = { kind: 'binary', op: token.text, left, right, pos: stream.pos(token) };
  }
}

function countOperator(stream: TokenStream, token: Token): void {
  if (++stream.operators > MAX_OPERATORS) {
    fail(stream.pos(token), `this line has more than ${MAX_OPERATORS} operators; split the expression with 'name equ …' lines`);
  }
}

function parseUnary(stream: TokenStream, isRegister: (name: string) => boolean): Expr {
  const token = stream.peek();
  if (token.kind === 'punct' && ['-', '+', '~', '!'].includes(token.text)) {
    stream.next();
    countOperator(stream, token);
    return { kind: 'unary', op: token.text, arg: parseUnary(stream, isRegister), pos: stream.pos(token) };
  }
  return parseAtom(stream, isRegister);
}

function parseAtom(stream: TokenStream, isRegister: (name: string) => boolean): Expr {
  const token = stream.next();
  const pos = stream.pos(token);
  switch (token.kind) {
    case 'number':
      return { kind: 'number', value: token.value!, pos };
    case 'string': {
      // A character constant: the bytes little-endian, as NASM does ('ab' = 0x6261).
      const bytes = token.bytes!;
      if (bytes.length > 8) fail(pos, `character constant ${token.text} is longer than 8 bytes; use db for strings`);
      let value = 0n;
      for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
      return { kind: 'number', value, pos };
    }
    case 'ident': {
      if (stream.isPunct('!') && stream.peek(1).kind === 'ident') {
        stream.next();
        const name = stream.next().text;
        return { kind: 'external', module: token.text, name, pos };
      }
      if (isRegister(token.text.toLowerCase())) return { kind: 'register', name: token.text.toLowerCase(), pos };
      return { kind: 'symbol', name: token.text, pos };
    }
    case 'punct':
      if (token.text === '(') {
        if (++stream.nesting > MAX_NESTING) fail(pos, `parentheses nested more than ${MAX_NESTING} deep; split the expression with 'name equ …' lines`);
        const inner = parseExpr(stream, isRegister);
        stream.expect(')', 'to close the parenthesis');
        stream.nesting--;
        return inner;
      }
      if (token.text === '$') return { kind: 'here', pos };
      if (token.text === '$$') return { kind: 'sectionStart', pos };
      break;
    case 'end':
      fail(pos, 'expected an expression, found end of line');
  }
  fail(pos, `expected a number, label or register, found ${describe(token)}`);
}

/** What evaluation needs from the assembler. */
export interface EvalContext {
  /** Value of a label or equ; undefined when not (yet) defined. */
  symbol(name: string, pos: SourcePos): bigint | undefined;
  external(module: string, name: string, pos: SourcePos): bigint;
  here: bigint;
  sectionStart: bigint;
  /** On the last pass an undefined symbol is an error; before that it counts as 0. */
  final: boolean;
  /** Set when an undefined symbol was met (so sizes are provisional). */
  unknown: boolean;
}

/** A linear form: constant + sum of register * coefficient (registers only inside brackets). */
export interface Linear {
  constant: bigint;
  /** `scaled`: written with a multiplier (even *1), which makes NASM use it as the index. */
  registers: { name: string; scale: bigint; scaled: boolean; pos: SourcePos }[];
}

export function evaluateLinear(expr: Expr, ctx: EvalContext): Linear {
  switch (expr.kind) {
    case 'register':
      return { constant: 0n, registers: [{ name: expr.name, scale: 1n, scaled: false, pos: expr.pos }] };
    case 'unary': {
      const arg = evaluateLinear(expr.arg, ctx);
      if (expr.op === '+') return arg;
      if (expr.op === '-') return scaleLinear(arg, -1n);
      requireConstant(arg, expr.pos);
      return { constant: applyUnary(expr.op, arg.constant), registers: [] };
    }
    case 'binary': {
      const left = evaluateLinear(expr.left, ctx);
      const right = evaluateLinear(expr.right, ctx);
      if (expr.op === '+' || expr.op === '-') {
        const sign = expr.op === '+' ? 1n : -1n;
        const other = scaleLinear(right, sign);
        return { constant: left.constant + other.constant, registers: [...left.registers, ...other.registers] };
      }
      if (expr.op === '*') {
        const marked = (value: Linear): Linear => ({ ...value, registers: value.registers.map((r) => ({ ...r, scaled: true })) });
        if (left.registers.length === 0) return marked(scaleLinear(right, left.constant));
        if (right.registers.length === 0) return marked(scaleLinear(left, right.constant));
      }
      requireConstant(left, expr.pos);
      requireConstant(right, expr.pos);
      return { constant: applyBinary(expr.op, left.constant, right.constant, expr.pos), registers: [] };
    }
    default:
      return { constant: evaluate(expr, ctx), registers: [] };
  }
}

function scaleLinear(value: Linear, factor: bigint): Linear {
  return { constant: value.constant * factor, registers: value.registers.map((r) => ({ ...r, scale: r.scale * factor })) };
}

function requireConstant(value: Linear, pos: SourcePos): void {
  if (value.registers.length > 0) {
    fail(pos, `register ${value.registers[0]!.name} can only be added, or multiplied by 1, 2, 4 or 8, in an address`);
  }
}

/** Evaluates an expression that must not contain registers. */
export function evaluate(expr: Expr, ctx: EvalContext): bigint {
  switch (expr.kind) {
    case 'number':
      return expr.value;
    case 'here':
      return ctx.here;
    case 'sectionStart':
      return ctx.sectionStart;
    case 'symbol': {
      const value = ctx.symbol(expr.name, expr.pos);
      if (value !== undefined) return value;
      if (ctx.final) fail(expr.pos, `undefined label '${expr.name}'; define it with '${expr.name}:' or '${expr.name} equ value'`);
      ctx.unknown = true;
      return 0n;
    }
    case 'external':
      return ctx.external(expr.module, expr.name, expr.pos);
    case 'register':
      fail(expr.pos, `register ${expr.name} is not allowed here; registers go inside [ ] in an address`);
    case 'unary':
      return applyUnary(expr.op, evaluate(expr.arg, ctx));
    case 'binary':
      return applyBinary(expr.op, evaluate(expr.left, ctx), evaluate(expr.right, ctx), expr.pos);
  }
}

function applyUnary(op: string, value: bigint): bigint {
  switch (op) {
    case '-':
      return -value;
    case '~':
      return ~value;
    case '!':
      return value === 0n ? 1n : 0n;
    default:
      return value;
  }
}

const u64 = (v: bigint) => BigInt.asUintN(64, v);
const i64 = (v: bigint) => BigInt.asIntN(64, v);

function applyBinary(op: string, a: bigint, b: bigint, pos: SourcePos): bigint {
  switch (op) {
    case '+':
      return a + b;
    case '-':
      return a - b;
    case '*':
      return a * b;
    case '|':
      return a | b;
    case '^':
      return a ^ b;
    case '&':
      return a & b;
    // Values are 64-bit, so a count of 64 or more leaves 0; computing 1 << 10000000000 exactly
    // would overflow BigInt (a RangeError) for the same answer.
    case '<<':
      return b >= 64n || b <= -64n ? 0n : i64(a << b);
    case '>>':
      // NASM's >> is a logical shift of the 64-bit value.
      return b >= 64n || b <= -64n ? 0n : u64(a) >> b;
  }
  if (b === 0n) fail(pos, `division by zero`);
  switch (op) {
    case '/':
      return u64(a) / u64(b);
    case '%':
      return u64(a) % u64(b);
    case '//':
      return i64(a) / i64(b);
    default:
      return i64(a) % i64(b);
  }
}
