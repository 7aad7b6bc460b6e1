import {describe, expect, it} from 'vitest';
import {buildChartModel, isNormLike, useLogScale} from '../src/chart_data';
import type {StatSeries} from '../src/data_client';

describe('isNormLike', () => {
  it('knows the magnitude stats', () => {
    for (const stat of ['weight/l1', 'weight/l2', 'gradient/linf', 'update/ratio', 'update/l2']) {
      expect(isNormLike(stat)).toBe(true);
    }
    for (const stat of ['weight/mean', 'weight/min', 'gradient/std', 'weight/nan_count', 'gradient/max']) {
      expect(isNormLike(stat)).toBe(false);
    }
  });
});

describe('useLogScale', () => {
  const line = (...values: (number | null)[]) => ({values});

  it('is on for norm-like stats with all values > 0 (nulls ignored)', () => {
    expect(useLogScale('weight/l2', [line(1, 0.01, null), line(1e-6)])).toBe(true);
  });

  it('is off when a value is 0 or negative', () => {
    expect(useLogScale('gradient/l2', [line(1, 0)])).toBe(false);
    expect(useLogScale('update/ratio', [line(1), line(-1)])).toBe(false);
  });

  it('is off for other stats and when there is nothing to draw', () => {
    expect(useLogScale('weight/mean', [line(1, 2)])).toBe(false);
    expect(useLogScale('weight/l2', [line(null)])).toBe(false);
    expect(useLogScale('weight/l2', [])).toBe(false);
  });
});

describe('buildChartModel', () => {
  const series: StatSeries = {
    run: 'r',
    stat: 'gradient/l2',
    steps: [1, 11, 21],
    wall_times: [0, 1, 2],
    series: [
      {layer: 'a', variable: 'a/kernel', values: [0.5, NaN, 0.25]},
      {layer: 'b', variable: 'b/kernel', values: [null, 2, Infinity]},
      {layer: 'c', variable: 'c/kernel', values: [1, 1, 1]},
    ],
  };

  it('draws the chosen variables in the given order with their colours', () => {
    const model = buildChartModel(series, ['c/kernel', 'a/kernel', 'missing'], (v) => `color-${v}`);
    expect(model.steps).toEqual([1, 11, 21]);
    expect(model.lines.map((l) => l.variable)).toEqual(['c/kernel', 'a/kernel']);
    expect(model.lines[0].color).toBe('color-c/kernel');
  });

  it('turns nulls and non-finite values into gaps and counts the non-finite ones', () => {
    const model = buildChartModel(series, ['a/kernel', 'b/kernel'], () => '#000');
    expect(model.lines[0].values).toEqual([0.5, null, 0.25]);
    expect(model.lines[1].values).toEqual([null, 2, null]);
    expect(model.nonFinite).toBe(2);
    expect(model.logScale).toBe(true);
  });

  it('fills a series shorter than the steps with gaps', () => {
    const short: StatSeries = {...series, series: [{layer: 'a', variable: 'a', values: [3]}]};
    expect(buildChartModel(short, ['a'], () => '#000').lines[0].values).toEqual([3, null, null]);
  });
});
