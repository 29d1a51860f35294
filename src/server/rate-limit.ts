/**
 * Per-client rate limits: one token bucket per key (an API key's name, or a client address for
 * anonymous reads). A bucket holds at most `burst` tokens and refills at `perSecond`; a request takes
 * one token or is refused with the seconds until the next token (the 429's Retry-After).
 *
 * State is in memory, per process: limits protect this server, they are not a billing meter.
 */

export interface Rate {
  /** Sustained requests per second; 0 = unlimited. */
  perSecond: number;
  /** Requests allowed at once after an idle spell. */
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Buckets kept before idle (full) ones are dropped: anonymous clients must not grow memory without bound. */
const MAX_BUCKETS = 10_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Takes one token from `key`'s bucket; returns 0 when allowed, else the seconds to wait. */
  take(key: string, rate: Rate): number {
    if (rate.perSecond <= 0) return 0;
    const t = this.now();
    const burst = Math.max(1, rate.burst);
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= MAX_BUCKETS) this.prune(t, rate);
      b = { tokens: burst, at: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((t - b.at) / 1000) * rate.perSecond);
    b.at = t;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return (1 - b.tokens) / rate.perSecond;
  }

  /** Drops buckets that have refilled completely (forgetting them changes nothing); the oldest if none has. */
  private prune(t: number, rate: Rate): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((t - b.at) / 1000) * rate.perSecond >= rate.burst) this.buckets.delete(key);
    }
    if (this.buckets.size >= MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
  }

  get size(): number {
    return this.buckets.size;
  }
}
