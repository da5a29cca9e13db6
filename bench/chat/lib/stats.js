// Latency histograms that merge across worker processes: logarithmic buckets of about 1.1%
// width, so a percentile is off by at most that much, whatever the count.

const PER_OCTAVE = 64;
// Values are microseconds; everything under 1 us lands in bucket 0.
const MIN_US = 1;

/** A log-bucketed histogram of millisecond values; plain object buckets, so it travels as JSON. */
export class Histogram {
  constructor() {
    this.buckets = {};
    this.count = 0;
    this.max = 0;
    this.sum = 0;
  }

  /** Records one value in milliseconds. */
  record(ms) {
    const us = Math.max(ms * 1000, MIN_US);
    const b = Math.floor(Math.log2(us) * PER_OCTAVE);
    this.buckets[b] = (this.buckets[b] ?? 0) + 1;
    this.count += 1;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  /** Adds another histogram (or its JSON form) into this one. */
  merge(other) {
    for (const [b, n] of Object.entries(other.buckets)) this.buckets[b] = (this.buckets[b] ?? 0) + n;
    this.count += other.count;
    this.sum += other.sum;
    this.max = Math.max(this.max, other.max);
    return this;
  }

  /** The value in milliseconds at quantile q (0..1): the upper edge of its bucket. */
  quantile(q) {
    if (this.count === 0) return null;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    const keys = Object.keys(this.buckets).map(Number).sort((a, b) => a - b);
    for (const b of keys) {
      seen += this.buckets[b];
      if (seen >= rank) return Math.min(2 ** ((b + 1) / PER_OCTAVE) / 1000, this.max);
    }
    return this.max;
  }

  /** { count, p50, p99, p999, max, mean } in milliseconds, rounded to 3 decimals. */
  summary() {
    const r = (v) => (v == null ? null : Math.round(v * 1000) / 1000);
    return {
      count: this.count,
      p50: r(this.quantile(0.5)),
      p99: r(this.quantile(0.99)),
      p999: r(this.quantile(0.999)),
      max: r(this.count ? this.max : null),
      mean: r(this.count ? this.sum / this.count : null),
    };
  }

  static from(json) {
    return new Histogram().merge(json);
  }
}
