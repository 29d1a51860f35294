/**
 * The values of the metadata fields that searches filter on, in memory: label → value for each such
 * field, built by one scan of the catalogue the first time the field is used and kept in step with
 * every committed write. hnswlib asks the filter about each candidate it meets (over a thousand per
 * filtered query), and a SQLite lookup per candidate cost most of a filtered search (bench/filtered-search).
 */
import type { Metadata } from './catalog';

/** A field's value as filters compare it: equal in value and in JSON type. Other JSON values never match. */
export type FieldValue = string | number | boolean;

/** One item's values of the kept fields after a write (undefined: no such value, or the item is gone). */
export type FieldChange = Array<[field: string, value: FieldValue | undefined]>;

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
  /** Fields that could not be kept (a Map holds at most 2^24 entries): read from the database instead. */
  private readonly refused = new Set<string>();

  /**
   * Label → value of `field` (`scan` reads every item's value the first time); undefined when the
   * field is not kept: MAX_FIELDS others are, it could not be, or `mayBuild` is false.
   */
  values(field: string, scan: () => Iterable<[number, FieldValue]>, mayBuild: boolean): Map<number, FieldValue> | undefined {
    const cached = this.byField.get(field);
    if (cached || !mayBuild || this.byField.size >= MAX_FIELDS || this.refused.has(field)) return cached;
    try {
      const built = new Map(scan());
      this.byField.set(field, built);
      return built;
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      this.refused.add(field);
      return undefined;
    }
  }

  /** What a write of `metadata` (undefined: a removal) changes in the kept fields, read now. */
  change(metadata: Metadata | undefined): FieldChange | undefined {
    if (this.byField.size === 0) return undefined;
    return [...this.byField.keys()].map((field) => [field, metadata && Object.hasOwn(metadata, field) ? asFieldValue(metadata[field]) : undefined]);
  }

  /** Applies a committed change to item `label`. Never throws: a field that cannot take it is no longer kept. */
  apply(label: number, change: FieldChange): void {
    for (const [field, value] of change) {
      const values = this.byField.get(field);
      if (!values) continue;
      try {
        if (value === undefined) values.delete(label);
        else values.set(label, value);
      } catch {
        this.byField.delete(field);
        this.refused.add(field);
      }
    }
  }
}
