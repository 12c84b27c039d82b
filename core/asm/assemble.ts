// The pass driver: lays the program out repeatedly, each pass using the label values of the one
// before, until nothing moves (as NASM's multi-pass optimizer does), then emits the bytes.
import { Register } from 'iced-x86';
import { AsmError, fail, SourceError, type SourcePos } from './errors.js';
import { evaluate, type EvalContext, type Expr } from './expr.js';
import { encodeInstruction, NO_PREFIXES } from './instruction.js';
import { resolveOperand } from './operands.js';
import { parseSource, type Body, type Statement } from './parser.js';
import { registerNamed } from './registers.js';

export interface AsmOptions {
  /** Address of the first byte (default 0; an `org` directive also sets it). */
  origin?: number;
  /** Used in error messages (default '<input>'). */
  fileName?: string;
  /** Resolves `module!Name` references such as nt!ZwWriteFile to absolute addresses. */
  resolveSymbol?: (module: string, name: string) => number | undefined;
}

/** One emitted source line of the listing. */
export interface AsmLine {
  address: number;
  length: number;
  line: number;
  text: string;
}

export interface AsmResult {
  bytes: Uint8Array;
  origin: number;
  labels: Map<string, number>;
  listing: AsmLine[];
}

const MAX_PASSES = 40;
// After this many passes an instruction may only grow, which guarantees the layout settles.
const GROW_ONLY_AFTER = 8;

export function assemble(source: string, options: AsmOptions = {}): AsmResult {
  const fileName = options.fileName ?? '<input>';
  try {
    const statements = parseSource(source);
    refuseCircularEqu(statements);
    return runPasses(statements, options);
  } catch (error) {
    if (error instanceof SourceError) throw new AsmError(fileName, error.pos, error.reason);
    throw error;
  }
}

/** The names an expression reads (labels and equ constants). */
function symbolsOf(expr: Expr): string[] {
  const names: string[] = [];
  const todo: Expr[] = [expr];
  for (let e = todo.pop(); e; e = todo.pop()) {
    if (e.kind === 'symbol') names.push(e.name);
    else if (e.kind === 'unary') todo.push(e.arg);
    else if (e.kind === 'binary') todo.push(e.left, e.right);
  }
  return names;
}

/**
 * `a equ b` with `b equ a` (or `a equ a + 1`) has no value: the passes would settle on the 0 an
 * unknown symbol counts as and assemble it silently. Refused at the first equ of the cycle.
 * Depth-first, with an explicit stack so that a long chain of equs cannot overflow the JS stack.
 */
function refuseCircularEqu(statements: Statement[]): void {
  const equs = new Map<string, { deps: string[]; pos: SourcePos }>();
  for (const s of statements) {
    if (s.body?.kind === 'equ' && !equs.has(s.body.name)) equs.set(s.body.name, { deps: symbolsOf(s.body.expr), pos: s.body.pos });
  }
  const state = new Map<string, 'open' | 'done'>();
  for (const start of equs.keys()) {
    if (state.has(start)) continue;
    const path: { name: string; next: number }[] = [{ name: start, next: 0 }];
    state.set(start, 'open');
    while (path.length > 0) {
      const top = path[path.length - 1]!;
      const deps = equs.get(top.name)!.deps;
      if (top.next === deps.length) {
        state.set(top.name, 'done');
        path.pop();
        continue;
      }
      const dep = deps[top.next++]!;
      if (!equs.has(dep) || state.get(dep) === 'done') continue;
      if (state.get(dep) === 'open') {
        const cycle = path.slice(path.findIndex((p) => p.name === dep)).map((p) => p.name);
        const shown = cycle.length > 6 ? [...cycle.slice(0, 5), '…'] : cycle;
        fail(equs.get(dep)!.pos, `circular equ: ${[...shown, dep].join(' → ')} has no value; give one of them a value that does not depend on the others`);
      }
      state.set(dep, 'open');
      path.push({ name: dep, next: 0 });
    }
  }
}

function runPasses(statements: Statement[], options: AsmOptions): AsmResult {
  let previous = new Map<string, bigint>();
  const lengths = new Map<string, number>();
  for (let pass = 1; pass <= MAX_PASSES; pass++) {
    const layout = new Pass(statements, options, previous, lengths, pass, false);
    layout.run();
    // A label still unknown once nothing moves is undefined: the final pass reports it.
    const settled = (!layout.unknown || pass > 1) && sameValues(previous, layout.labels);
    previous = layout.labels;
    if (settled) break;
    if (pass === MAX_PASSES) fail({ line: 1, column: 1 }, `the layout did not settle after ${MAX_PASSES} passes; check for labels whose values depend on each other`);
  }
  const final = new Pass(statements, options, previous, lengths, MAX_PASSES + 1, true);
  final.run();
  const labels = new Map<string, number>();
  for (const [name, value] of final.labels) labels.set(name, Number(BigInt.asUintN(32, value)));
  return { bytes: Uint8Array.from(final.output), origin: final.origin, labels, listing: final.listing };
}

function sameValues(a: Map<string, bigint>, b: Map<string, bigint>): boolean {
  if (a.size !== b.size) return false;
  for (const [name, value] of a) if (b.get(name) !== value) return false;
  return true;
}

/** One layout pass over all statements. */
class Pass {
  readonly labels = new Map<string, bigint>();
  readonly definedAt = new Map<string, number>();
  readonly output: number[] = [];
  readonly listing: AsmLine[] = [];
  origin: number;
  unknown = false;
  private occurrence = 0;

  constructor(
    private readonly statements: Statement[],
    private readonly options: AsmOptions,
    private readonly previous: Map<string, bigint>,
    private readonly lengths: Map<string, number>,
    private readonly pass: number,
    private readonly final: boolean,
  ) {
    this.origin = options.origin ?? 0;
    // An org directive anywhere sets the origin for the whole pass, as in NASM's flat binaries.
    const org = statements.find((s) => s.body?.kind === 'org');
    if (org?.body?.kind === 'org') this.origin = Number(BigInt.asUintN(32, evaluate(org.body.expr, this.context(0n))));
  }

  private get address(): bigint {
    return BigInt(this.origin + this.output.length);
  }

  run(): void {
    let orgSeen = false;
    for (const statement of this.statements) {
      this.occurrence = 0;
      if (statement.label) this.define(statement.label.name, this.address, statement.label.pos);
      const body = statement.body;
      if (!body) continue;
      if (body.kind === 'org') {
        if (orgSeen || this.output.length > 0) fail(body.pos, `'org' must come once, before any code or data`);
        orgSeen = true;
        continue;
      }
      if (body.kind === 'equ') {
        this.define(body.name, evaluate(body.expr, this.context(this.address)), body.pos);
        continue;
      }
      if (body.kind === 'ignored') continue;
      const start = this.output.length;
      this.emit(body, statement);
      this.listing.push({ address: this.origin + start, length: this.output.length - start, line: statement.line, text: statement.text });
    }
  }

  private define(name: string, value: bigint, pos: SourcePos): void {
    const earlier = this.definedAt.get(name);
    if (earlier !== undefined) fail(pos, `duplicate label '${name}' (first defined on line ${earlier}); rename one of them`);
    this.labels.set(name, value);
    this.definedAt.set(name, pos.line);
  }

  private context(here: bigint): EvalContext {
    const ctx: EvalContext = {
      symbol: (name) => this.labels.get(name) ?? this.previous.get(name),
      external: (module, name, pos) => this.external(module, name, pos),
      here,
      sectionStart: BigInt(this.origin),
      final: this.final,
      unknown: false,
    };
    return ctx;
  }

  /** Evaluates an expression, noting when it used a label not placed yet. */
  private value(expr: Expr, here: bigint): { value: bigint; provisional: boolean } {
    const ctx = this.context(here);
    const value = evaluate(expr, ctx);
    if (ctx.unknown) this.unknown = true;
    return { value, provisional: ctx.unknown };
  }

  private external(module: string, name: string, pos: SourcePos): bigint {
    const resolve = this.options.resolveSymbol;
    if (!resolve) fail(pos, `${module}!${name} needs a symbol resolver; pass resolveSymbol in the assembler options`);
    const address = resolve(module, name);
    if (address === undefined) fail(pos, `unknown symbol ${module}!${name}; check the module and symbol name`);
    return BigInt(address);
  }

  private emit(body: Body, statement: Statement): void {
    switch (body.kind) {
      case 'instruction':
        return this.instruction(body, statement);
      case 'data':
        return this.data(body);
      case 'reserve': {
        const count = this.count(body.count, body.pos);
        for (let i = 0; i < count * body.unit; i++) this.output.push(0);
        return;
      }
      case 'times': {
        const count = this.count(body.count, body.pos);
        for (let i = 0; i < count; i++) {
          this.occurrence = i;
          this.emit(body.body, statement);
        }
        return;
      }
      case 'align': {
        const boundary = this.count(body.boundary, body.pos);
        if (boundary === 0 || (boundary & (boundary - 1)) !== 0) fail(body.pos, `align needs a power of two, got ${boundary}`);
        // NASM's align pads with NOPs, counted from the start of the section ($$).
        while (this.output.length % boundary !== 0) this.output.push(0x90);
        return;
      }
      default:
        fail(body.pos, `'${body.kind}' is not allowed here`);
    }
  }

  private count(expr: Expr, pos: SourcePos): number {
    const { value, provisional } = this.value(expr, this.address);
    if (provisional) return 0;
    if (value < 0n) fail(pos, `count ${value} is negative`);
    if (value > 1n << 24n) fail(pos, `count ${value} is too large (at most 16M)`);
    return Number(value);
  }

  private data(body: Extract<Body, { kind: 'data' }>): void {
    const unit = body.unit;
    const here = this.address; // $ is the start of the line, not of each item
    for (const item of body.items) {
      if (item.kind === 'bytes') {
        this.output.push(...item.bytes);
        // Strings in dw/dd/dq are padded with zeros to a whole number of units.
        for (let i = item.bytes.length; i % unit !== 0; i++) this.output.push(0);
        continue;
      }
      const { value, provisional } = this.value(item.expr, here);
      const bits = BigInt(unit * 8);
      if (!provisional && this.final && (value < -(1n << (bits - 1n)) || value >= 1n << bits)) {
        const digits = String(value);
        const shown = digits.length > 24 ? `${digits.slice(0, 20)}… (${digits.length} digits)` : digits;
        fail(item.pos, `value ${shown} does not fit in ${unit * 8} bits; use a wider directive (dw, dd, dq) or a smaller value`);
      }
      let bitsValue = BigInt.asUintN(unit * 8, value);
      for (let i = 0; i < unit; i++) {
        this.output.push(Number(bitsValue & 0xffn));
        bitsValue >>= 8n;
      }
    }
  }

  private instruction(body: Extract<Body, { kind: 'instruction' }>, statement: Statement): void {
    const here = this.address;
    const provisional: boolean[] = [];
    const operands = body.operands.map((syntax) => {
      const ctx = this.context(here);
      const operand = resolveOperand(syntax, ctx);
      if (ctx.unknown) this.unknown = true;
      provisional.push(ctx.unknown);
      return operand;
    });
    const prefixes = { ...NO_PREFIXES };
    for (const prefix of body.prefixes) {
      if (prefix === 'lock') prefixes.lock = true;
      else if (prefix === 'rep') prefixes.rep = true;
      else if (prefix === 'repe' || prefix === 'repz') prefixes.repe = true;
      else if (prefix === 'repne' || prefix === 'repnz') prefixes.repne = true;
      else prefixes.segment = registerNamed(prefix)?.register ?? Register.None;
    }
    const key = `${statement.line}:${this.occurrence}`;
    const { bytes } = encodeInstruction({
      mnemonic: body.mnemonic,
      mnemonicPos: body.pos,
      operands,
      prefixes,
      address: Number(here),
      provisional,
      direction: body.direction,
      final: this.final,
      minimumLength: this.pass > GROW_ONLY_AFTER ? (this.lengths.get(key) ?? 0) : 0,
    });
    this.lengths.set(key, bytes.length);
    this.output.push(...bytes);
  }
}
