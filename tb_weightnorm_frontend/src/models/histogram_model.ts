// Turns a `histograms` response (one variable's weight or gradient histograms
// over steps, in several runs) into what the histogram view draws: buckets on
// one value axis shared by every run and step, so runs can be overlaid. Pure.

import {scaleLinear} from 'd3-scale';
import type {Histogram, HistogramKind, HistogramSet, RunHistograms} from '../api/types';

/** One bucket: the finite values in [x0, x1) (the last bucket also holds x1). */
export interface Bucket {
  x0: number;
  x1: number;
  count: number;
}

/** One histogram as drawn. */
export interface HistogramCurve {
  run: string;
  step: number;
  /** Empty when the histogram has no finite value. */
  buckets: Bucket[];
  /** Faint for the run's first steps, 1 for the last: the drift shows in overlay mode. */
  opacity: number;
  /** The histogram of its run nearest the marked step. */
  marked: boolean;
}

export interface RunCurves {
  run: string;
  /** Ascending by step. */
  curves: HistogramCurve[];
}

export interface HistogramModel {
  variable: string;
  kind: HistogramKind;
  /** The runs with at least one histogram, in the response's order. */
  runs: RunCurves[];
  /** The value axis of every run and step (niced). */
  valueDomain: [number, number];
  /** [0, the largest bucket count]. */
  countDomain: [number, number];
  /** [first, last] step over all runs. */
  stepDomain: [number, number];
  /** "run X: <why>" for each run without histograms. */
  missingNotes: string[];
  /** Per run, the first steps with NaN or infinite values. */
  nonFiniteNotes: string[];
}

/** The first steps drawn this faint in overlay mode; later steps up to fully opaque. */
export const FIRST_STEP_OPACITY = 0.15;
/** How many steps with non-finite values a run's note names before "and N more". */
export const NOTE_STEPS = 3;

/** True when the histogram has a finite value to draw. */
function hasRange(h: Histogram): h is Histogram & {min: number; max: number} {
  return h.min !== null && h.max !== null && h.counts.length > 0;
}

/**
 * The value axis shared by all the histograms, niced. A variable whose finite
 * values are one constant everywhere (a zero-initialised bias) still gets a
 * range around it, so its single bar has somewhere to stand.
 */
export function sharedValueDomain(histograms: readonly Histogram[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const h of histograms) {
    if (!hasRange(h)) continue;
    lo = Math.min(lo, h.min);
    hi = Math.max(hi, h.max);
  }
  if (lo > hi) return [-1, 1]; // no finite value anywhere: an empty axis
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) / 2;
    [lo, hi] = [lo - pad, hi + pad];
  }
  const [a, b] = scaleLinear().domain([lo, hi]).nice().domain();
  return [a, b];
}

/**
 * The buckets of one histogram. Equal-width buckets over [min, max]; when all
 * finite values are equal (min == max) the server counts them in the middle
 * bucket, which has no width: it becomes one bar of `spikeWidth` centred on
 * the value, so a constant tensor shows as a visible spike.
 */
export function bucketsOf(h: Histogram, spikeWidth: number): Bucket[] {
  if (!hasRange(h)) return [];
  const n = h.counts.length;
  if (h.min === h.max) {
    const count = h.counts.reduce((sum, c) => sum + c, 0);
    return [{x0: h.min - spikeWidth / 2, x1: h.min + spikeWidth / 2, count}];
  }
  const width = (h.max - h.min) / n;
  return h.counts.map((count, i) => ({
    x0: h.min + width * i,
    // The last edge is max itself, not min + width * n with its rounding.
    x1: i === n - 1 ? h.max : h.min + width * (i + 1),
    count,
  }));
}

/**
 * The outline of a histogram: its counts at the bucket centres, starting and
 * ending on 0 at the outer edges so the area under it closes on the baseline.
 * Lines through the centres stay readable where a hundred histograms overlap;
 * step outlines would be a thicket of vertical edges.
 */
export function outlinePoints(buckets: readonly Bucket[]): [number, number][] {
  if (buckets.length === 0) return [];
  const points: [number, number][] = [[buckets[0].x0, 0]];
  for (const b of buckets) points.push([(b.x0 + b.x1) / 2, b.count]);
  points.push([buckets[buckets.length - 1].x1, 0]);
  return points;
}

/** Opacity of the histogram at `step` in overlay mode: faint first, full at the last step. */
export function stepOpacity(step: number, [first, last]: readonly [number, number]): number {
  if (last <= first) return 1;
  const t = Math.min(1, Math.max(0, (step - first) / (last - first)));
  return FIRST_STEP_OPACITY + (1 - FIRST_STEP_OPACITY) * t;
}

/** Index of the histogram nearest `step` (the earlier one on a tie); -1 for none. */
export function nearestIndex(histograms: readonly {step: number}[], step: number): number {
  let best = -1;
  for (let i = 0; i < histograms.length; i++) {
    if (best < 0 || Math.abs(histograms[i].step - step) < Math.abs(histograms[best].step - step)) best = i;
  }
  return best;
}

/** "3 NaN, 1 -Inf" for one histogram; "" when all its values are finite. */
export function nonFiniteCounts(h: Histogram): string {
  const parts: string[] = [];
  if (h.nanCount > 0) parts.push(`${h.nanCount} NaN`);
  if (h.negInfCount > 0) parts.push(`${h.negInfCount} -Inf`);
  if (h.posInfCount > 0) parts.push(`${h.posInfCount} +Inf`);
  return parts.join(', ');
}

/**
 * "run X: step 12: 3 NaN; step 13: 5 NaN; and 4 more steps", or null when the
 * run's values are all finite. The first such step is where to look, so the
 * note names the first few and only counts the rest.
 */
export function nonFiniteNote(run: RunHistograms, limit = NOTE_STEPS): string | null {
  const steps = [...run.histograms]
    .sort((a, b) => a.step - b.step)
    .map((h) => ({step: h.step, counts: nonFiniteCounts(h)}))
    .filter((s) => s.counts !== '');
  if (steps.length === 0) return null;
  const named = steps.slice(0, limit).map((s) => `step ${s.step}: ${s.counts}`);
  const more = steps.length - limit;
  if (more > 0) named.push(`and ${more} more step${more === 1 ? '' : 's'}`);
  return `run ${run.run}: ${named.join('; ')}`;
}

function stepDomainOf(histograms: readonly Histogram[]): [number, number] {
  if (histograms.length === 0) return [0, 0];
  let [first, last] = [Infinity, -Infinity];
  for (const h of histograms) [first, last] = [Math.min(first, h.step), Math.max(last, h.step)];
  return [first, last];
}

/** The largest bucket count (a loop: up to 1000 steps x buckets x runs is too many for Math.max(...)). */
function largestCount(runs: readonly RunCurves[]): number {
  let largest = 0;
  for (const r of runs) for (const c of r.curves) for (const b of c.buckets) largest = Math.max(largest, b.count);
  return largest;
}

/**
 * Everything the view draws for `set`. `markedStep` highlights each run's
 * histogram nearest that step (none when null).
 */
export function buildHistogramModel(set: HistogramSet, markedStep: number | null = null): HistogramModel {
  const drawn = set.runs.filter((r) => r.histograms.length > 0);
  const all = drawn.flatMap((r) => r.histograms);
  const valueDomain = sharedValueDomain(all);
  const widest = all.reduce((n, h) => Math.max(n, h.counts.length), 1);
  // A constant tensor's spike is as wide as one bucket of the widest histogram across the whole axis.
  const spikeWidth = (valueDomain[1] - valueDomain[0]) / widest;
  const stepDomain = stepDomainOf(all);
  const runs = drawn.map((r) => {
    const sorted = [...r.histograms].sort((a, b) => a.step - b.step);
    const marked = markedStep === null ? -1 : nearestIndex(sorted, markedStep);
    return {
      run: r.run,
      curves: sorted.map((h, i) => ({
        run: r.run,
        step: h.step,
        buckets: bucketsOf(h, spikeWidth),
        opacity: stepOpacity(h.step, stepDomain),
        marked: i === marked,
      })),
    };
  });
  const largest = largestCount(runs);
  return {
    variable: set.variable,
    kind: set.kind,
    runs,
    valueDomain,
    countDomain: [0, largest > 0 ? largest : 1],
    stepDomain,
    missingNotes: set.runs.filter((r) => r.missing !== null).map((r) => `run ${r.run}: ${r.missing}`),
    nonFiniteNotes: drawn.map((r) => nonFiniteNote(r)).filter((note): note is string => note !== null),
  };
}

/** What the hover readout says for one run: the bucket under the pointer in the histogram nearest a step. */
export interface Readout {
  run: string;
  step: number;
  bucket: Bucket;
}

/** The bucket holding `value` (the last bucket also holds its upper edge); null outside. */
export function bucketAt(buckets: readonly Bucket[], value: number): Bucket | null {
  const last = buckets.length - 1;
  return buckets.find((b, i) => value >= b.x0 && (value < b.x1 || (i === last && value === b.x1))) ?? null;
}

/** For each run, the bucket at `value` of its histogram nearest `step`; runs with none there are left out. */
export function readoutAt(model: HistogramModel, value: number, step: number): Readout[] {
  const found: Readout[] = [];
  for (const r of model.runs) {
    const curve = r.curves[nearestIndex(r.curves, step)];
    const bucket = curve ? bucketAt(curve.buckets, value) : null;
    if (curve && bucket) found.push({run: r.run, step: curve.step, bucket});
  }
  return found;
}
