import {describe, expect, it} from 'vitest';
import type {Histogram, HistogramSet, RunHistograms} from '../../src/api/types';
import {
  FIRST_STEP_OPACITY,
  bucketAt,
  bucketsOf,
  buildHistogramModel,
  nearestIndex,
  nonFiniteNote,
  readoutAt,
  sharedValueDomain,
  stepOpacity,
  outlinePoints,
} from '../../src/models/histogram_model';

function histogram(step: number, min: number | null, max: number | null, counts: number[], extra: Partial<Histogram> = {}): Histogram {
  return {step, wallTime: 0, min, max, counts, nanCount: 0, negInfCount: 0, posInfCount: 0, ...extra};
}

function run(name: string, histograms: Histogram[], missing: string | null = null): RunHistograms {
  return {run: name, layer: 'dense', histograms, missing};
}

function set(...runs: RunHistograms[]): HistogramSet {
  return {variable: 'seq/dense/kernel', kind: 'weight', runs};
}

describe('bucket geometry', () => {
  it('cuts [min, max] into equal-width buckets, the last ending at max', () => {
    const buckets = bucketsOf(histogram(0, -1, 1, [1, 2, 3, 4]), 0.1);
    expect(buckets.map((b) => [b.x0, b.x1, b.count])).toEqual([
      [-1, -0.5, 1],
      [-0.5, 0, 2],
      [0, 0.5, 3],
      [0.5, 1, 4],
    ]);
  });

  it('draws all-equal values (min == max) as one spike of the given width centred on the value', () => {
    // The server counts them in the middle bucket.
    const buckets = bucketsOf(histogram(0, 0.5, 0.5, [0, 0, 7, 0]), 0.2);
    expect(buckets).toHaveLength(1);
    expect(buckets[0].x0).toBeCloseTo(0.4);
    expect(buckets[0].x1).toBeCloseTo(0.6);
    expect(buckets[0].count).toBe(7);
  });

  it('has no buckets without a finite value (min and max null)', () => {
    expect(bucketsOf(histogram(0, null, null, [0, 0, 0], {nanCount: 3}), 0.1)).toEqual([]);
  });

  it('outlines buckets through their centres, from and back to the baseline at the outer edges', () => {
    const points = outlinePoints([
      {x0: 0, x1: 1, count: 2},
      {x0: 1, x1: 2, count: 5},
    ]);
    expect(points).toEqual([
      [0, 0],
      [0.5, 2],
      [1.5, 5],
      [2, 0],
    ]);
    expect(outlinePoints([])).toEqual([]);
  });

  it('finds the bucket holding a value, the last one holding max too', () => {
    const buckets = bucketsOf(histogram(0, 0, 4, [1, 2, 3, 4]), 1);
    expect(bucketAt(buckets, 1)).toEqual({x0: 1, x1: 2, count: 2});
    expect(bucketAt(buckets, 4)).toEqual({x0: 3, x1: 4, count: 4});
    expect(bucketAt(buckets, 4.5)).toBeNull();
    expect(bucketAt(buckets, -0.1)).toBeNull();
  });
});

describe('shared domains', () => {
  it('spans every run and step, niced', () => {
    const model = buildHistogramModel(
      set(run('a', [histogram(0, -0.13, 0.02, [1, 1]), histogram(10, -0.05, 0.31, [3, 1])]), run('b', [histogram(5, -0.42, 0.1, [1, 9])])),
    );
    expect(model.valueDomain).toEqual([-0.5, 0.4]);
    expect(model.countDomain).toEqual([0, 9]);
    expect(model.stepDomain).toEqual([0, 10]);
  });

  it('gives a constant a range around it, and an empty axis without finite values', () => {
    const [lo, hi] = sharedValueDomain([histogram(0, 0, 0, [0, 5, 0])]);
    expect(lo).toBeLessThan(0);
    expect(hi).toBeGreaterThan(0);
    expect(sharedValueDomain([histogram(0, null, null, [0, 0])])).toEqual([-1, 1]);
  });

  it('makes a constant histogram a visible spike of one bucket of the shared axis', () => {
    const model = buildHistogramModel(set(run('a', [histogram(0, 0, 0, [0, 4, 0, 0]), histogram(1, -1, 1, [1, 1, 1, 1])])));
    const spike = model.runs[0].curves[0].buckets;
    expect(spike).toHaveLength(1);
    expect(spike[0].x1 - spike[0].x0).toBeCloseTo((model.valueDomain[1] - model.valueDomain[0]) / 4);
    expect(model.countDomain).toEqual([0, 4]);
  });

  it('counts 1 at the top of the count axis when every count is 0 (no gradient)', () => {
    expect(buildHistogramModel(set(run('a', [histogram(0, -1, 1, [0, 0])]))).countDomain).toEqual([0, 1]);
  });

  it('leaves runs without histograms out of the drawing and names them in a note', () => {
    const model = buildHistogramModel(set(run('a', [histogram(0, 0, 1, [1])]), run('b', [], "no weight histogram of 'seq/dense/kernel'")));
    expect(model.runs.map((r) => r.run)).toEqual(['a']);
    expect(model.missingNotes).toEqual(["run b: no weight histogram of 'seq/dense/kernel'"]);
  });
});

describe('opacity by step', () => {
  it('grows from faint at the first step to full at the last', () => {
    expect(stepOpacity(0, [0, 100])).toBeCloseTo(FIRST_STEP_OPACITY);
    expect(stepOpacity(100, [0, 100])).toBe(1);
    expect(stepOpacity(50, [0, 100])).toBeGreaterThan(FIRST_STEP_OPACITY);
    expect(stepOpacity(50, [0, 100])).toBeLessThan(1);
    expect(stepOpacity(7, [7, 7])).toBe(1);
  });

  it('is the same at the same step in every run (one step range for all)', () => {
    const model = buildHistogramModel(
      set(run('a', [histogram(0, 0, 1, [1]), histogram(50, 0, 1, [1])]), run('b', [histogram(50, 0, 1, [1]), histogram(100, 0, 1, [1])])),
    );
    const [a, b] = model.runs.map((r) => r.curves.map((c) => c.opacity));
    expect(a[1]).toBe(b[0]);
    expect(a[0]).toBeCloseTo(FIRST_STEP_OPACITY);
    expect(b[1]).toBe(1);
  });
});

describe('marked step', () => {
  it('finds the nearest histogram, the earlier on a tie', () => {
    const steps = [{step: 0}, {step: 10}, {step: 20}];
    expect(nearestIndex(steps, 14)).toBe(1);
    expect(nearestIndex(steps, 15)).toBe(1);
    expect(nearestIndex(steps, 16)).toBe(2);
    expect(nearestIndex(steps, 1000)).toBe(2);
    expect(nearestIndex([], 3)).toBe(-1);
  });

  it('marks one histogram per run, none without a marked step', () => {
    const data = set(run('a', [histogram(0, 0, 1, [1]), histogram(10, 0, 1, [1])]), run('b', [histogram(3, 0, 1, [1]), histogram(9, 0, 1, [1])]));
    const marked = (step: number | null) =>
      buildHistogramModel(data, step).runs.map((r) => r.curves.filter((c) => c.marked).map((c) => c.step));
    expect(marked(8)).toEqual([[10], [9]]);
    expect(marked(null)).toEqual([[], []]);
  });

  it('sorts each run by step whatever order the response had', () => {
    const model = buildHistogramModel(set(run('a', [histogram(10, 0, 1, [1]), histogram(0, 0, 1, [1])])), 10);
    expect(model.runs[0].curves.map((c) => [c.step, c.marked])).toEqual([
      [0, false],
      [10, true],
    ]);
  });
});

describe('non-finite notes', () => {
  it('names the first steps with NaN or infinite values and counts the rest', () => {
    const histograms = [5, 12, 13, 14, 15, 16].map((step) => histogram(step, 0, 1, [1], step >= 12 ? {nanCount: 3} : {}));
    histograms[2] = histogram(13, 0, 1, [1], {negInfCount: 1, posInfCount: 2});
    expect(nonFiniteNote(run('a', histograms))).toBe('run a: step 12: 3 NaN; step 13: 1 -Inf, 2 +Inf; step 14: 3 NaN; and 2 more steps');
  });

  it('says nothing for a run whose values are all finite', () => {
    expect(nonFiniteNote(run('a', [histogram(0, 0, 1, [1])]))).toBeNull();
  });

  it('comes per run in the model, first step first', () => {
    const model = buildHistogramModel(
      set(
        run('a', [histogram(20, null, null, [0, 0], {nanCount: 4}), histogram(3, 0, 1, [1, 1], {posInfCount: 1})]),
        run('b', [histogram(0, 0, 1, [2])]),
      ),
    );
    expect(model.nonFiniteNotes).toEqual(['run a: step 3: 1 +Inf; step 20: 4 NaN']);
  });
});

describe('readout', () => {
  it('reads each run at the value from its histogram nearest the step', () => {
    const model = buildHistogramModel(
      set(run('a', [histogram(0, 0, 4, [1, 2, 3, 4]), histogram(10, 0, 4, [5, 6, 7, 8])]), run('b', [histogram(10, 2, 4, [9, 9])])),
    );
    expect(readoutAt(model, 0.5, 9).map((r) => [r.run, r.step, r.bucket.count])).toEqual([['a', 10, 5]]);
    expect(readoutAt(model, 3.5, 1).map((r) => [r.run, r.step, r.bucket.count])).toEqual([
      ['a', 0, 4],
      ['b', 10, 9],
    ]);
  });
});
