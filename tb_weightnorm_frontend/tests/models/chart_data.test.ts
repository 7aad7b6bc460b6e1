import {describe, expect, it} from 'vitest';
import {buildCompareModel, dashAt, isNormLike, shortVariable, useLogScale, type ChartValue} from '../../src/models/chart_data';
import {colorAt} from '../../src/ui/colors';
import type {Comparison} from '../../src/api/types';
import {compareRun} from '../fixtures';

describe('isNormLike', () => {
  it('knows the magnitude stats', () => {
    for (const stat of ['weight/l1', 'weight/l2', 'gradient/linf', 'update/ratio', 'update/l2', 'weight/dist_init']) {
      expect(isNormLike(stat)).toBe(true);
    }
    for (const stat of ['weight/mean', 'weight/min', 'gradient/std', 'weight/nan_count', 'gradient/max', 'l2/mean']) {
      expect(isNormLike(stat)).toBe(false);
    }
  });
});

describe('useLogScale', () => {
  const line = (...values: ChartValue[]) => ({values});

  it('is on for norm-like stats with all values > 0 (gaps and unlogged steps ignored)', () => {
    expect(useLogScale('weight/l2', [line(1, 0.01, null, undefined), line(1e-6)])).toBe(true);
    expect(useLogScale('weight/dist_init', [line(undefined, 2)])).toBe(true);
  });

  it('is off when a value is 0 or negative', () => {
    expect(useLogScale('gradient/l2', [line(1, 0)])).toBe(false);
    expect(useLogScale('update/ratio', [line(1), line(-1)])).toBe(false);
  });

  it('is off for other stats and when there is nothing to draw', () => {
    expect(useLogScale('weight/mean', [line(1, 2)])).toBe(false);
    expect(useLogScale('weight/l2', [line(null, undefined)])).toBe(false);
    expect(useLogScale('weight/l2', [])).toBe(false);
  });
});

describe('shortVariable', () => {
  it("drops the model's name and keeps layer/variable", () => {
    expect(shortVariable('model/dense_1/kernel')).toBe('dense_1/kernel');
    expect(shortVariable('dense_1/kernel')).toBe('dense_1/kernel');
    expect(shortVariable('bias')).toBe('bias');
  });
});

describe('buildCompareModel', () => {
  const runColor = (run: string) => `color-of-${run}`;

  it('puts the lines of runs with different steps on the union of their steps', () => {
    const comparison: Comparison = {
      stat: 'gradient/l2',
      runs: [
        compareRun('a', [0, 10, 20], {'m/d/kernel': [1, 2, 3]}),
        compareRun('b', [5, 10, 30], {'m/d/kernel': [4, 5, 6]}),
      ],
    };
    const model = buildCompareModel(comparison, runColor);
    expect(model.stat).toBe('gradient/l2');
    expect(model.steps).toEqual([0, 5, 10, 20, 30]);
    // undefined where the run logged nothing: the chart joins across it rather than showing a gap.
    expect(model.lines.map((l) => l.values)).toStrictEqual([
      [1, undefined, 2, 3, undefined],
      [undefined, 4, 5, undefined, 6],
    ]);
    expect(model.nonFinite).toBe(0);
    expect(model.logScale).toBe(true);
  });

  it('makes NaN and infinite values gaps (null) and counts them; an unmeasured value is a gap too', () => {
    const comparison: Comparison = {
      stat: 'gradient/l2',
      runs: [compareRun('a', [1, 2, 3, 4, 5], {'m/d/kernel': [1, NaN, Infinity, -Infinity, null]})],
    };
    const model = buildCompareModel(comparison, runColor);
    expect(model.lines[0].values).toEqual([1, null, null, null, null]);
    expect(model.nonFinite).toBe(3);
  });

  it('makes steps past the end of a short series gaps', () => {
    const model = buildCompareModel({stat: 'weight/l2', runs: [compareRun('a', [1, 2, 3], {'m/d/kernel': [7]})]}, runColor);
    expect(model.lines[0].values).toEqual([7, null, null]);
  });

  it('skips runs that did not log the stat', () => {
    const unlogged = {...compareRun('b', [], {}), statLogged: false};
    const comparison: Comparison = {stat: 'update/ratio', runs: [unlogged, compareRun('a', [1, 2], {'m/d/kernel': [1, 2]})]};
    const model = buildCompareModel(comparison, runColor);
    expect(model.lines.map((l) => l.run)).toEqual(['a']);
    expect(model.steps).toEqual([1, 2]);
    // The one run left is drawn like a single run.
    expect(model.lines[0].label).toBe('d/kernel');
  });

  it('tells the variables of one run apart by colour, labelled by their short names', () => {
    const comparison: Comparison = {
      stat: 'weight/l2',
      runs: [compareRun('a', [1], {'model/dense/kernel': [1], 'model/dense/bias': [2], 'model/dense/scale': [3]})],
    };
    const model = buildCompareModel(comparison, runColor);
    expect(model.lines.map((l) => [l.variable, l.label, l.color])).toEqual([
      ['model/dense/kernel', 'dense/kernel', colorAt(0)],
      ['model/dense/bias', 'dense/bias', colorAt(1)],
      ['model/dense/scale', 'dense/scale', colorAt(2)],
    ]);
    expect(new Set(model.lines.map((l) => l.color)).size).toBe(3);
  });

  it('colours several runs by run, labels "run · variable", and dashes each variable the same in every run', () => {
    const comparison: Comparison = {
      stat: 'weight/l2',
      runs: [
        compareRun('a', [1], {'model/dense/kernel': [1], 'model/dense/bias': [2]}),
        // b lists the variables in another order and has one more.
        compareRun('b', [1], {'model/dense/extra': [3], 'model/dense/bias': [4], 'model/dense/kernel': [5]}),
      ],
    };
    const model = buildCompareModel(comparison, runColor);
    expect(model.lines.map((l) => [l.run, l.label, l.color])).toEqual([
      ['a', 'a \u00b7 dense/kernel', 'color-of-a'],
      ['a', 'a \u00b7 dense/bias', 'color-of-a'],
      ['b', 'b \u00b7 dense/extra', 'color-of-b'],
      ['b', 'b \u00b7 dense/bias', 'color-of-b'],
      ['b', 'b \u00b7 dense/kernel', 'color-of-b'],
    ]);
    const dash = (run: string, variable: string) =>
      model.lines.find((l) => l.run === run && l.variable === `model/dense/${variable}`)!.dash;
    expect(dash('b', 'kernel')).toEqual(dash('a', 'kernel'));
    expect(dash('b', 'bias')).toEqual(dash('a', 'bias'));
    expect(dash('a', 'kernel')).toEqual(dashAt(0));
    expect(dash('a', 'bias')).toEqual(dashAt(1));
    expect(dash('b', 'extra')).toEqual(dashAt(2));
    expect(new Set([dash('a', 'kernel'), dash('a', 'bias'), dash('b', 'extra')].map(String)).size).toBe(3);
  });

  it('draws a log scale only for a norm-like stat whose drawn values are all > 0', () => {
    const model = (stat: string, values: (number | null)[]) =>
      buildCompareModel({stat, runs: [compareRun('a', values.map((_, i) => i), {'m/d/kernel': values})]}, runColor);
    expect(model('weight/l2', [1, NaN, 2]).logScale).toBe(true);
    expect(model('weight/l2', [1, 0]).logScale).toBe(false);
    expect(model('weight/mean', [1, 2]).logScale).toBe(false);
    expect(model('weight/l2', [NaN, null]).logScale).toBe(false);
  });

  it('has no steps and no lines when no run logged the stat', () => {
    const model = buildCompareModel({stat: 'weight/l2', runs: [{...compareRun('a', [], {}), statLogged: false}]}, runColor);
    expect(model).toMatchObject({steps: [], lines: [], logScale: false, nonFinite: 0});
  });
});
