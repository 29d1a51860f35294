/** Training methods by name (the CLI's --method). */
import type { MethodClass } from './method';
import { MemoryBankMethod } from './membank';
import { MoCo } from './moco';
import { SimCLR } from './simclr';
import { SupCon } from './supcon';
import { SwAV } from './swav';

export const METHODS = {
  simclr: SimCLR,
  moco: MoCo,
  membank: MemoryBankMethod,
  swav: SwAV,
  supcon: SupCon,
} as const satisfies Record<string, MethodClass>;

export type MethodName = keyof typeof METHODS;
export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];

export function methodClass(name: string): MethodClass {
  const cls = (METHODS as Record<string, MethodClass>)[name];
  if (!cls) throw new RangeError(`unknown method '${name}', expected one of ${METHOD_NAMES.join(', ')}`);
  return cls;
}
