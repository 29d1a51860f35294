/**
 * The values of the metadata fields that searches filter on, in memory: label → value for each such
 * field, built by one scan of the catalogue the first time the field is used and kept in step with
 * every committed write. hnswlib asks the filter about each candidate it meets (over a thousand per
 * filtered query), and a SQLite lookup per candidate cost most of a filtered search (bench/filtered-search).
 */
import type { Metadata } from './catalog';

/** A field's value as filters compare it: equal in value and in JSON type. Other JSON values never match. */
export type FieldValue = string | number | boolean;

/**
 * How many fields are kept: the first ones filtered on, for the life of the process. Each costs one
 * map entry per item. No eviction: with more fields in use than this, evicting would rebuild a field
 * (a scan of the whole catalogue) on search after search; the others are read from the database.
 */
const MAX_FIELDS = 4;

const asFieldValue = (v: unknown): FieldValue | undefined => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : undefined);

/** A value from SQLite's json_type / json_extract pair. */
export function fromJson(type: string | null, value: unknown): FieldValue | undefined {
  switch (type) {
    case 'true':
      return true;
    case 'false':
      return false;
    case 'integer':
    case 'real':
      return Number(value);
    case 'text':
      return String(value);
    default:
      return undefined;
  }
}

export class FieldValues {
  private readonly byField = new Map<string, Map<number, FieldValue>>();

  /** Label → value of `field` (`scan` reads every item's value the first time); undefined once MAX_FIELDS others are kept. */
  values(field: string, scan: () => Iterable<[number, FieldValue]>): Map<number, FieldValue> | undefined {
    const cached = this.byField.get(field);
    if (cached || this.byField.size >= MAX_FIELDS) return cached;
    const built = new Map(scan());
    this.byField.set(field, built);
    return built;
  }

  get fields(): number {
    return this.byField.size;
  }

  /** A committed write: the item `label` now has `metadata`, or is gone (undefined). */
  apply(label: number, metadata: Metadata | undefined): void {
    for (const [field, values] of this.byField) {
      const v = metadata && Object.hasOwn(metadata, field) ? asFieldValue(metadata[field]) : undefined;
      if (v === undefined) values.delete(label);
      else values.set(label, v);
    }
  }

  clear(): void {
    this.byField.clear();
  }
}
