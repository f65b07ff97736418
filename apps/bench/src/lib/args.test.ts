import { describe, expect, expectTypeOf, it } from 'vitest';
import { ArgsError, HelpRequested, parseArgs, usage, type ArgSchema } from './args.js';

const schema = {
  n: { type: 'intList', default: [256, 1024], min: 1, help: 'sequence lengths' },
  d: { type: 'int', default: 64, min: 1, max: 256, help: 'head dim' },
  causal: { type: 'enum', values: ['true', 'false', 'both'], default: 'both', help: 'mask' },
  json: { type: 'string', help: 'output file' },
  maxSeconds: { type: 'number', help: 'time budget' },
  large: { type: 'boolean', help: 'run the large case' },
} as const satisfies ArgSchema;

describe('parseArgs', () => {
  it('fills defaults and types the result', () => {
    const a = parseArgs([], schema);
    expect(a).toEqual({ n: [256, 1024], d: 64, causal: 'both', json: undefined, maxSeconds: undefined, large: false });
    expectTypeOf(a.n).toEqualTypeOf<number[]>();
    expectTypeOf(a.causal).toEqualTypeOf<'true' | 'false' | 'both'>();
    expectTypeOf(a.json).toEqualTypeOf<string | undefined>();
    expectTypeOf(a.large).toEqualTypeOf<boolean>();
  });

  it('reads --flag value, --flag=value, kebab-case names and boolean forms', () => {
    const a = parseArgs(['--n', '128,2048', '--d=32', '--causal', 'true', '--max-seconds', '2.5', '--large', '--json=o.json'], schema);
    expect(a).toEqual({ n: [128, 2048], d: 32, causal: 'true', json: 'o.json', maxSeconds: 2.5, large: true });
    expect(parseArgs(['--no-large'], schema).large).toBe(false);
    expect(parseArgs(['--', '--d', '8'], schema).d).toBe(8); // pnpm passes the '--' of `pnpm demo -- --d 8`
    expect(parseArgs(['--large=false'], schema).large).toBe(false);
  });

  it('does not share the default array between calls', () => {
    parseArgs([], schema).n.push(7);
    expect(parseArgs([], schema).n).toEqual([256, 1024]);
  });

  it('rejects unknown flags, stray arguments, repeats and bad values, naming the flag', () => {
    const err = (argv: string[]): ArgsError => {
      try {
        parseArgs(argv, schema);
      } catch (e) {
        if (e instanceof ArgsError) return e;
        throw e;
      }
      throw new Error(`no error for ${argv.join(' ')}`);
    };
    expect(err(['--batch', '2']).message).toMatch(/unknown flag --batch \(known: --n, --d, --causal/);
    expect(err(['256']).message).toMatch(/unexpected argument "256"/);
    expect(err(['--d', '1', '--d', '2']).message).toMatch(/--d given more than once/);
    expect(err(['--d', 'x']).message).toBe('--d: expected an integer, got "x"');
    expect(err(['--d', '512']).message).toBe('--d: expected <= 256, got 512');
    expect(err(['--n', '256,,512']).message).toMatch(/comma-separated list/);
    expect(err(['--n', '0']).message).toBe('--n: expected >= 1, got 0');
    expect(err(['--causal', 'maybe']).message).toBe('--causal: expected one of true, false, both, got "maybe"');
    expect(err(['--json']).message).toBe('--json: missing value');
    expect(err(['--json', '--large']).flag).toBe('--json');
    expect(err(['--max-seconds', 'abc']).message).toMatch(/expected a number/);
    expect(err(['--no-d']).message).toMatch(/unknown flag --no-d/);
  });

  it('answers --help with the usage text', () => {
    expect(() => parseArgs(['--d', '3', '--help'], schema)).toThrow(HelpRequested);
    const u = usage(schema, 'demo');
    expect(u).toContain('usage: demo [flags]');
    expect(u).toContain('--max-seconds <number>');
    expect(u).toContain('--causal <true|false|both>');
    expect(u).toContain('(default 256,1024)');
  });
});
