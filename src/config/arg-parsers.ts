/** Parsers for numeric command-line values. They throw commander's InvalidArgumentError, so its message names the option. */
import { InvalidArgumentError } from 'commander';

export const num = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`not a number: '${v}'`);
  return n;
};
export const int = (v: string): number => {
  const n = num(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`not an integer: '${v}'`);
  return n;
};
export const pair = (v: string): [number, number] => {
  const parts = v.split(',').map(num);
  if (parts.length !== 2) throw new InvalidArgumentError(`expected two comma-separated numbers, got '${v}'`);
  return [parts[0], parts[1]];
};
export const list = (v: string): number[] => v.split(',').map(num);

/** A yes/no value from a flag or an environment variable (`--resume [bool]`, `LIKENESS_TRAIN_RESUME=false`). */
export const bool = (v: string): boolean => {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new InvalidArgumentError(`expected true or false, got '${v}'`);
};

/** An integer in [min, max], e.g. a port. */
export const intIn = (min: number, max = Number.MAX_SAFE_INTEGER) => (v: string): number => {
  const n = int(v);
  if (n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got '${v}'`);
  return n;
};
/** A number in [min, max]. */
export const numIn = (min: number, max = Number.MAX_VALUE) => (v: string): number => {
  const n = num(v);
  if (n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}, got '${v}'`);
  return n;
};
/** A number above `min` (e.g. a temperature, which must be > 0). */
export const numAbove = (min: number) => (v: string): number => {
  const n = num(v);
  if (!(n > min)) throw new InvalidArgumentError(`expected a number above ${min}, got '${v}'`);
  return n;
};
/** Comma-separated integers, each at least `min` (e.g. HNSW ef values). */
export const intList = (min: number) => (v: string): number[] => v.split(',').map((part) => intIn(min)(part.trim()));
/** An http(s) URL (a server, a download mirror). */
export const httpUrl = (v: string): string => {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new InvalidArgumentError(`not a URL: '${v.slice(0, 200)}' (e.g. http://host:8080)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError(`expected an http:// or https:// URL, got '${v.slice(0, 200)}'`);
  return v;
};
