/**
 * Argument checks. Every public method checks its arguments before anything
 * is sent and throws a ValidationError naming the field.
 */
import { ValidationError } from './errors.js';

/** compact drops the undefined fields of checked options, so that only what was given is sent. */
export function compact(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(o)) if (val !== undefined) out[k] = val;
  return out;
}

/** Describes a value for an error message: its type, and short primitives themselves. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return value.length > 40 ? `a string of ${value.length} characters` : `"${value}"`;
    case 'number':
    case 'boolean':
    case 'bigint':
      return `${typeof value} ${String(value)}`;
    case 'undefined':
      return 'undefined';
    case 'function':
      return 'a function';
    default:
      return `an ${typeof value}`;
  }
}

function fail(field: string, expected: string, value: unknown): never {
  throw new ValidationError(field, `${field} must be ${expected} (got ${describe(value)})`);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** object checks that value is a plain object; with allowed, that it has no other key. */
export function object(value: unknown, field: string, allowed?: readonly string[]): Record<string, unknown> {
  if (!isPlainObject(value)) fail(field, 'an object', value);
  if (allowed) {
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) {
        throw new ValidationError(
          `${field}.${key}`,
          `${field}.${key} is not a known option (known: ${allowed.join(', ')})`,
        );
      }
    }
  }
  return value;
}

/** optionalObject is object, or undefined. */
export function optionalObject(
  value: unknown,
  field: string,
  allowed?: readonly string[],
): Record<string, unknown> | undefined {
  return value === undefined ? undefined : object(value, field, allowed);
}

/** requiredString: a string, non-empty unless allowEmpty. */
export function requiredString(value: unknown, field: string, allowEmpty = false): string {
  if (value === undefined || value === null) {
    throw new ValidationError(field, `${field} is required`);
  }
  if (typeof value !== 'string') fail(field, 'a string', value);
  if (!allowEmpty && value.length === 0) throw new ValidationError(field, `${field} must not be empty`);
  return value;
}

export function optionalString(value: unknown, field: string, allowEmpty = true): string | undefined {
  if (value === undefined) return undefined;
  return requiredString(value, field, allowEmpty);
}

export interface NumberRules {
  min?: number;
  max?: number;
  integer?: boolean;
}

export function requiredNumber(value: unknown, field: string, rules: NumberRules = {}): number {
  if (value === undefined || value === null) throw new ValidationError(field, `${field} is required`);
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(field, 'a finite number', value);
  if (rules.integer && !Number.isInteger(value)) fail(field, 'an integer', value);
  if (rules.min !== undefined && value < rules.min) fail(field, `at least ${rules.min}`, value);
  if (rules.max !== undefined && value > rules.max) fail(field, `at most ${rules.max}`, value);
  return value;
}

export function optionalNumber(value: unknown, field: string, rules: NumberRules = {}): number | undefined {
  return value === undefined ? undefined : requiredNumber(value, field, rules);
}

export function optionalBoolean(value: unknown, field: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') fail(field, 'a boolean', value);
  return value;
}

export function optionalFunction<T extends (...args: never[]) => unknown>(value: unknown, field: string): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') fail(field, 'a function', value);
  return value as T;
}

export function optionalEnum<T extends string>(value: unknown, field: string, values: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !values.includes(value as T)) {
    fail(field, `one of ${values.map((v) => `'${v}'`).join(', ')}`, value);
  }
  return value as T;
}

/**
 * optionalStringMap checks an object of strings (environment variables).
 * Entries whose value is undefined are dropped, so that
 * `{API_KEY: process.env.API_KEY}` works whether or not the variable is set.
 */
export function optionalStringMap(value: unknown, field: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const obj = object(value, field);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (typeof v !== 'string') fail(`${field}.${k}`, 'a string', v);
    out[k] = v;
  }
  return out;
}

export function optionalStringArray(value: unknown, field: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) fail(field, 'an array of strings', value);
  value.forEach((v, i) => {
    if (typeof v !== 'string') fail(`${field}[${i}]`, 'a string', v);
  });
  return value as string[];
}

/** contextId accepts a CodeContext (its id) or an id. */
export function optionalContextId(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return requiredString(value, field);
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    return requiredString((value as { id?: unknown }).id, `${field}.id`);
  }
  return fail(field, 'a CodeContext or a context id', value);
}

/** contextLanguage is the language of a CodeContext object, if it says one. */
export function contextLanguage(value: unknown): string | undefined {
  if (typeof value === 'object' && value !== null) {
    const lang = (value as { language?: unknown }).language;
    if (typeof lang === 'string') return lang;
  }
  return undefined;
}
