/**
 * Command-line flags parsed against a schema: every flag is declared with a type, unknown flags and
 * malformed values are rejected with a message naming the flag, and `--help` prints the usage.
 *
 *   const schema = {
 *     n: { type: 'intList', default: [256, 1024], min: 1, help: 'sequence lengths' },
 *     causal: { type: 'enum', values: ['true', 'false', 'both'], default: 'both', help: '...' },
 *     json: { type: 'string', help: 'write results as JSON here' },
 *   } as const satisfies ArgSchema;
 *   const args = parseArgs(process.argv.slice(2), schema); // args.n: number[], args.json: string | undefined
 *
 * Keys are camelCase; flags are their kebab-case form (`maxSeconds` -> `--max-seconds`). Values come
 * as `--flag value` or `--flag=value`; booleans as `--flag`, `--no-flag` or `--flag=true|false`.
 */

interface Base {
  help: string;
}
export type FlagSpec =
  | (Base & { type: 'boolean'; default?: boolean })
  | (Base & { type: 'int'; default?: number; min?: number; max?: number })
  | (Base & { type: 'number'; default?: number; min?: number; max?: number })
  | (Base & { type: 'string'; default?: string })
  | (Base & { type: 'enum'; values: readonly string[]; default?: string })
  | (Base & { type: 'intList'; default?: readonly number[]; min?: number; max?: number });

export type ArgSchema = Readonly<Record<string, FlagSpec>>;

type ValueOf<F extends FlagSpec> = F extends { type: 'boolean' }
  ? boolean
  : F extends { type: 'int' | 'number' }
    ? number
    : F extends { type: 'enum'; values: readonly (infer V)[] }
      ? V
      : F extends { type: 'intList' }
        ? number[]
        : string;

/** Parsed values: flags with a default (and booleans, default false) are always present. */
export type ParsedArgs<S extends ArgSchema> = {
  -readonly [K in keyof S]: S[K] extends { default: unknown } | { type: 'boolean' }
    ? ValueOf<S[K]>
    : ValueOf<S[K]> | undefined;
};

/** A bad command line. `flag` is the offending flag as typed (or the stray argument). */
export class ArgsError extends Error {
  readonly flag: string;
  constructor(flag: string, message: string) {
    super(message);
    this.name = 'ArgsError';
    this.flag = flag;
  }
}

/** `--help` / `-h` was given; `usage` is the text to print. */
export class HelpRequested extends Error {
  readonly usage: string;
  constructor(usage: string) {
    super('help requested');
    this.name = 'HelpRequested';
    this.usage = usage;
  }
}

export const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function parseInt10(flag: string, s: string, spec: { min?: number; max?: number }): number {
  if (!/^[+-]?\d+$/.test(s.trim())) throw new ArgsError(flag, `${flag}: expected an integer, got ${JSON.stringify(s)}`);
  return checkRange(flag, Number.parseInt(s, 10), spec);
}

function checkRange(flag: string, v: number, spec: { min?: number; max?: number }): number {
  if (spec.min !== undefined && v < spec.min) throw new ArgsError(flag, `${flag}: expected >= ${spec.min}, got ${v}`);
  if (spec.max !== undefined && v > spec.max) throw new ArgsError(flag, `${flag}: expected <= ${spec.max}, got ${v}`);
  return v;
}

function convert(flag: string, spec: FlagSpec, raw: string): unknown {
  switch (spec.type) {
    case 'boolean':
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      throw new ArgsError(flag, `${flag}: expected true or false, got ${JSON.stringify(raw)}`);
    case 'int':
      return parseInt10(flag, raw, spec);
    case 'number': {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(v)) throw new ArgsError(flag, `${flag}: expected a number, got ${JSON.stringify(raw)}`);
      return checkRange(flag, v, spec);
    }
    case 'string':
      if (raw === '') throw new ArgsError(flag, `${flag}: expected a non-empty value`);
      return raw;
    case 'enum':
      if (!spec.values.includes(raw)) {
        throw new ArgsError(flag, `${flag}: expected one of ${spec.values.join(', ')}, got ${JSON.stringify(raw)}`);
      }
      return raw;
    case 'intList': {
      const parts = raw.split(',');
      if (parts.some((p) => p.trim() === '')) {
        throw new ArgsError(flag, `${flag}: expected a comma-separated list of integers, got ${JSON.stringify(raw)}`);
      }
      return parts.map((p) => parseInt10(flag, p, spec));
    }
  }
}

/** Usage text: one line per flag with its type, default and help. */
export function usage(schema: ArgSchema, command = ''): string {
  const lines = Object.entries(schema).map(([key, spec]) => {
    const kind =
      spec.type === 'enum' ? spec.values.join('|') : spec.type === 'intList' ? 'int,int,...' : spec.type === 'boolean' ? '' : spec.type;
    const dflt =
      spec.default === undefined ? '' : ` (default ${Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default)})`;
    return `  --${kebab(key)}${kind ? ` <${kind}>` : ''}\n      ${spec.help}${dflt}`;
  });
  return `${command ? `usage: ${command} [flags]\n` : ''}flags:\n${lines.join('\n')}\n  --help\n      print this text`;
}

/** Parse `argv` (without node and script) against `schema`. Throws ArgsError or HelpRequested. */
export function parseArgs<const S extends ArgSchema>(argv: readonly string[], schema: S): ParsedArgs<S> {
  const byFlag = new Map(Object.entries(schema).map(([k, spec]) => [kebab(k), { key: k, spec }]));
  const out: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') throw new HelpRequested(usage(schema));
    // A bare '--' (as `pnpm demo -- --n 256` passes it on) separates nothing here: skip it.
    if (arg === '--') continue;
    if (!arg.startsWith('--')) {
      throw new ArgsError(arg, `unexpected argument ${JSON.stringify(arg)} (flags start with --; see --help)`);
    }
    const eq = arg.indexOf('=');
    let name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let raw: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    let entry = byFlag.get(name);
    if (!entry && name.startsWith('no-') && raw === undefined) {
      const pos = byFlag.get(name.slice(3));
      if (pos?.spec.type === 'boolean') {
        entry = pos;
        name = name.slice(3);
        raw = 'false';
      }
    }
    const flag = `--${name}`;
    if (!entry) {
      const known = [...byFlag.keys()].map((f) => `--${f}`).join(', ');
      throw new ArgsError(flag, `unknown flag ${flag} (known: ${known}, --help)`);
    }
    if (seen.has(entry.key)) throw new ArgsError(flag, `${flag} given more than once`);
    seen.add(entry.key);
    if (raw === undefined) {
      if (entry.spec.type === 'boolean') raw = 'true';
      else {
        const next = argv[i + 1];
        if (next === undefined || next.startsWith('--')) throw new ArgsError(flag, `${flag}: missing value`);
        raw = next;
        i++;
      }
    }
    out[entry.key] = convert(flag, entry.spec, raw);
  }
  for (const [key, spec] of Object.entries(schema)) {
    if (out[key] === undefined) {
      out[key] = spec.default !== undefined ? (Array.isArray(spec.default) ? [...spec.default] : spec.default) : spec.type === 'boolean' ? false : undefined;
    }
  }
  return out as ParsedArgs<S>;
}

/**
 * For scripts: parse, or print the usage (exit 0 on --help) or the error and the usage to stderr
 * (exit 2).
 */
export function parseArgsOrExit<const S extends ArgSchema>(argv: readonly string[], schema: S, command: string): ParsedArgs<S> {
  try {
    return parseArgs(argv, schema);
  } catch (e) {
    if (e instanceof HelpRequested) {
      process.stdout.write(`${usage(schema, command)}\n`);
      process.exit(0);
    }
    if (e instanceof ArgsError) {
      process.stderr.write(`${command}: ${e.message}\n\n${usage(schema, command)}\n`);
      process.exit(2);
    }
    throw e;
  }
}
