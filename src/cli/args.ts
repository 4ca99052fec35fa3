// A small declarative flag parser: each command lists its flags once, and
// that list drives parsing, validation, --help and the type of the parsed
// flags. Every mistake becomes a UsageError naming the flag and what was
// expected.
import { UsageError } from '../errors.js';

export type FlagType = 'string' | 'int' | 'number' | 'bool' | 'ints' | 'strings';

export interface FlagSpec {
  readonly name: string; // without the leading --
  readonly type: FlagType;
  readonly help: string;
  /** Shown in --help as the value's name, e.g. FILE. */
  readonly value?: string;
  readonly default?: string | number | boolean;
  readonly min?: number;
  readonly max?: number;
  /** For 'string' and 'strings': the allowed values. */
  readonly choices?: readonly string[];
}

/** What each type of flag parses to. */
interface FlagTypeValues {
  string: string;
  int: number;
  number: number;
  bool: boolean;
  ints: number[];
  strings: string[];
}

/** One flag's parsed value: its type's, narrowed to its choices. */
type FlagValueOf<F extends FlagSpec> = F extends { readonly choices: readonly (infer C)[] }
  ? F['type'] extends 'strings'
    ? C[]
    : C
  : FlagTypeValues[F['type']];

/** The parsed flags of a spec list: a flag with a default is always there, any other may be undefined. */
export type Flags<S extends readonly FlagSpec[]> = {
  [F in S[number] as F['name']]: F extends { readonly default: unknown } ? FlagValueOf<F> : FlagValueOf<F> | undefined;
};

/** A bare argument (e.g. the experiment of `reproduce`), stored under its name. */
export interface PositionalSpec {
  readonly name: string;
  readonly choices?: readonly string[];
}

type PositionalFlags<P extends PositionalSpec | undefined> = P extends { readonly name: infer N extends string }
  ? { [K in N]: (P extends { readonly choices: readonly (infer C)[] } ? C : string) | undefined }
  : unknown;

export interface CommandSpec<S extends readonly FlagSpec[] = readonly FlagSpec[], P extends PositionalSpec | undefined = PositionalSpec | undefined> {
  name: string;
  summary: string;
  /** Usage line(s) after `streamllm NAME`. */
  usage: string;
  /** Extra paragraphs for --help. */
  details?: string;
  flags: S;
  /** One optional bare argument, stored under its name. */
  positional?: P;
  /** Hand the arguments after the command name to run() untouched (for commands that forward them). */
  passThrough?: boolean;
  run(flags: Flags<S> & PositionalFlags<P>, rest?: string[]): Promise<void>;
}

/** A command, its flags' names, types and choices kept as written so that run() sees them typed. */
export function defineCommand<const S extends readonly FlagSpec[], const P extends PositionalSpec | undefined = undefined>(
  spec: CommandSpec<S, P>,
): CommandSpec<S, P> {
  return spec;
}

/** A flag (or a list of them) shared by commands, kept as written (see defineCommand). */
export function defineFlag<const F extends FlagSpec>(flag: F): F {
  return flag;
}

export function defineFlags<const S extends readonly FlagSpec[]>(flags: S): S {
  return flags;
}

type FlagValue = FlagTypeValues[FlagType];

function convert(spec: FlagSpec, raw: string, command: string): FlagValue {
  const where = `${command} --${spec.name}`;
  const toNumber = (s: string, integer: boolean): number => {
    const v = Number(s);
    if (s.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
      throw new UsageError(`${where}: expected ${integer ? 'an integer' : 'a number'}, got '${s}'`);
    }
    if (spec.min !== undefined && v < spec.min) throw new UsageError(`${where}: must be >= ${spec.min}, got ${s}`);
    if (spec.max !== undefined && v > spec.max) throw new UsageError(`${where}: must be <= ${spec.max}, got ${s}`);
    return v;
  };
  const checkChoice = (s: string): string => {
    if (spec.choices !== undefined && !spec.choices.includes(s)) {
      throw new UsageError(`${where}: expected one of ${spec.choices.join(', ')}, got '${s}'`);
    }
    return s;
  };
  switch (spec.type) {
    case 'string':
      return checkChoice(raw);
    case 'int':
      return toNumber(raw, true);
    case 'number':
      return toNumber(raw, false);
    case 'bool':
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      throw new UsageError(`${where}: expected true or false, got '${raw}'`);
    case 'ints':
      return raw.split(',').map((s) => toNumber(s, true));
    case 'strings': {
      const items = raw.split(',');
      // (with choices, an empty item is not one of them: checkChoice says so)
      if (spec.choices === undefined && items.includes('')) throw new UsageError(`${where}: expected a comma-separated list without empty items, got '${raw}'`);
      return items.map(checkChoice);
    }
  }
}

/** Parse argv (after the command name) against the command's flags. */
export function parseFlags<S extends readonly FlagSpec[], P extends PositionalSpec | undefined>(
  command: CommandSpec<S, P>,
  argv: string[],
): Flags<S> & PositionalFlags<P> {
  const flags: Record<string, FlagValue | undefined> = {};
  const byName = new Map(command.flags.map((f) => [f.name, f]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      const positional = command.positional;
      if (positional === undefined || flags[positional.name] !== undefined) {
        throw new UsageError(`${command.name}: unexpected argument '${arg}' (see streamllm ${command.name} --help)`);
      }
      if (positional.choices !== undefined && !positional.choices.includes(arg)) {
        throw new UsageError(`${command.name}: unknown ${positional.name} '${arg}' (expected one of ${positional.choices.join(', ')})`);
      }
      flags[positional.name] = arg;
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (spec === undefined) throw new UsageError(`${command.name}: unknown flag --${name} (see streamllm ${command.name} --help)`);
    let raw: string;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else if (spec.type === 'bool') raw = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw new UsageError(`${command.name} --${name}: missing value${spec.value ? ` (${spec.value})` : ''}`);
      }
      raw = next;
      i++;
    }
    flags[name] = convert(spec, raw, command.name);
  }
  for (const spec of command.flags) {
    if (flags[spec.name] !== undefined || spec.default === undefined) continue;
    // A default is written as the user would type it.
    flags[spec.name] = typeof spec.default === 'string' ? convert(spec, spec.default, command.name) : spec.default;
  }
  // Each value was converted by its own spec above: this is where the specs become the type.
  return flags as Flags<S> & PositionalFlags<P>;
}

/** The --help text of a command. */
export function helpText(command: CommandSpec): string {
  const rows = command.flags.map((f) => {
    const left = `  --${f.name}${f.type === 'bool' ? '' : ` ${f.value ?? f.type.toUpperCase()}`}`;
    const extra = [
      f.choices ? `one of: ${f.choices.join(', ')}` : '',
      f.default !== undefined && f.type !== 'bool' ? `default ${String(f.default)}` : '',
    ].filter(Boolean);
    return [left, f.help + (extra.length ? ` (${extra.join('; ')})` : '')] as const;
  });
  const width = Math.max(0, ...rows.map(([l]) => l.length)) + 2;
  const lines = [`streamllm ${command.name}: ${command.summary}`, '', `usage: streamllm ${command.name} ${command.usage}`, ''];
  if (command.details) lines.push(command.details, '');
  if (rows.length > 0) lines.push('flags:', ...rows.map(([l, r]) => l.padEnd(width) + r));
  return lines.join('\n') + '\n';
}

/** Require a flag, or explain which one is missing. */
export function required<F, K extends keyof F & string>(flags: F, name: K, command: string): NonNullable<F[K]> {
  const v = flags[name];
  if (v === undefined || v === null) throw new UsageError(`${command}: --${name} is required (see streamllm ${command} --help)`);
  return v;
}
