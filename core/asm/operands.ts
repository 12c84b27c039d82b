// Operands with their values for the current pass: expressions evaluated, addresses reduced to
// base + index*scale + displacement the way NASM reduces them.
import { Register } from 'iced-x86';
import { fail, type SourcePos } from './errors.js';
import { evaluate, evaluateLinear, type EvalContext, type Expr } from './expr.js';
import type { OperandSyntax } from './parser.js';
import { registerNamed, type RegisterInfo } from './registers.js';

export type Operand =
  | { kind: 'register'; info: RegisterInfo; pos: SourcePos }
  | {
      kind: 'memory';
      size: number;
      far: boolean;
      segment: Register;
      base: Register;
      index: Register;
      scale: number;
      /** The displacement as an unsigned 32-bit value. */
      displacement: bigint;
      /** 0 = none, 1 = the shortest that fits, 4 = 32 bits (forced or no base register). */
      displacementSize: number;
      pos: SourcePos;
    }
  | {
      kind: 'immediate';
      value: bigint;
      size: number;
      strict: boolean;
      distance?: 'short' | 'near' | 'far';
      /** A plain number or module!Name address, not a place in this program (see shapeFits). */
      absolute: boolean;
      pos: SourcePos;
    }
  | { kind: 'farPointer'; selector: bigint; offset: bigint; pos: SourcePos };

export function resolveOperand(syntax: OperandSyntax, ctx: EvalContext): Operand {
  switch (syntax.kind) {
    case 'register':
      return { kind: 'register', info: registerNamed(syntax.name)!, pos: syntax.pos };
    case 'immediate':
      return {
        kind: 'immediate',
        value: evaluate(syntax.expr, ctx),
        size: syntax.size,
        strict: syntax.strict,
        distance: syntax.distance,
        absolute: !mentionsPlace(syntax.expr),
        pos: syntax.pos,
      };
    case 'farPointer':
      return { kind: 'farPointer', selector: evaluate(syntax.selector, ctx), offset: evaluate(syntax.offset, ctx), pos: syntax.pos };
    case 'memory':
      return resolveMemory(syntax, ctx);
  }
}

function mentionsPlace(expr: Expr): boolean {
  switch (expr.kind) {
    case 'symbol':
    case 'here':
    case 'sectionStart':
      return true;
    case 'unary':
      return mentionsPlace(expr.arg);
    case 'binary':
      return mentionsPlace(expr.left) || mentionsPlace(expr.right);
    default:
      return false;
  }
}

function resolveMemory(syntax: Extract<OperandSyntax, { kind: 'memory' }>, ctx: EvalContext): Operand {
  const linear = evaluateLinear(syntax.address, ctx);
  // Combine repeated registers: [eax+eax*2] is eax*3.
  const terms: { info: RegisterInfo; scale: bigint; scaled: boolean; pos: SourcePos }[] = [];
  for (const term of linear.registers) {
    const info = registerNamed(term.name)!;
    if (info.cls !== 'gpr32') fail(term.pos, `${term.name} cannot address memory in 32-bit code; use a 32-bit register such as eax`);
    const same = terms.find((t) => t.info.register === info.register);
    if (same) {
      same.scale += term.scale;
      same.scaled ||= term.scaled;
    } else terms.push({ info, scale: term.scale, scaled: term.scaled, pos: term.pos });
  }
  const used = terms.filter((t) => t.scale !== 0n);
  let base = Register.None;
  let index = Register.None;
  let scale = 1;
  const checkScale = (term: (typeof used)[number]) => {
    if (![1n, 2n, 4n, 8n].includes(term.scale)) fail(term.pos, `scale ${term.scale} is not allowed; an index register is multiplied by 1, 2, 4 or 8`);
    if (term.info.register === Register.ESP) fail(term.pos, `esp cannot be an index register; use it as the base ([esp+...]) or pick another register`);
    return Number(term.scale);
  };
  if (used.length > 2) fail(used[2]!.pos, `an address has at most two registers (base + index*scale)`);
  if (used.length === 1) {
    const term = used[0]!;
    if (term.scale === 1n) base = term.info.register;
    else if ([2n, 3n, 5n, 9n].includes(term.scale)) {
      // NASM splits eax*2 into eax+eax (shorter than a 32-bit zero displacement), eax*3 into eax+eax*2.
      base = term.info.register;
      index = term.info.register;
      scale = term.scale === 2n ? 1 : Number(term.scale - 1n);
      if (term.info.register === Register.ESP) checkScale(term);
    } else {
      index = term.info.register;
      scale = checkScale(term);
    }
  } else if (used.length === 2) {
    let [first, second] = used as [(typeof used)[number], (typeof used)[number]];
    // The scaled register (even one written *1) is the index; with two unscaled ones the first is
    // the base. esp can only be a base.
    const indexFirst = first.scale !== 1n || (first.scaled && !second.scaled);
    if (indexFirst || (second.scale === 1n && second.info.register === Register.ESP)) [first, second] = [second, first];
    if (first.scale !== 1n) fail(second.pos, `only one register of an address may be scaled`);
    base = first.info.register;
    index = second.info.register;
    scale = checkScale(second);
  }
  const displacement = BigInt.asUintN(32, linear.constant);
  if (linear.constant < -(1n << 31n) || linear.constant >= 1n << 32n) {
    const digits = String(linear.constant);
    fail(syntax.pos, `displacement ${digits.length > 24 ? `${digits.slice(0, 20)}… (${digits.length} digits)` : digits} does not fit in 32 bits`);
  }
  let displacementSize: number;
  if (base === Register.None) displacementSize = 4;
  else if (syntax.displacementSize === 4) displacementSize = 4;
  else displacementSize = displacement === 0n && syntax.displacementSize === 0 ? 0 : 1;
  const segment = syntax.segment ? registerNamed(syntax.segment)!.register : Register.None;
  return { kind: 'memory', size: syntax.size, far: syntax.far, segment, base, index, scale, displacement, displacementSize, pos: syntax.pos };
}
