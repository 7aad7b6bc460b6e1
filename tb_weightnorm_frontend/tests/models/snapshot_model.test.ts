import {describe, expect, it} from 'vitest';
import type {DistanceValues, SnapshotDistance} from '../../src/api/types';
import {chosenPair, distanceRows, snapshotLabel} from '../../src/models/snapshot_model';

describe('chosenPair', () => {
  it('compares the first and the last snapshot by default', () => {
    expect(chosenPair([0, 5, 10], null, null)).toEqual({from: 0, to: 10});
  });

  it('keeps the chosen epochs the run has, in either order', () => {
    expect(chosenPair([0, 5, 10], 10, 5)).toEqual({from: 10, to: 5});
    expect(chosenPair([0, 5, 10], 5, 5)).toEqual({from: 5, to: 5});
  });

  it('replaces an epoch the run has no snapshot of by its first or last', () => {
    expect(chosenPair([0, 5, 10], 3, 5)).toEqual({from: 0, to: 5});
    expect(chosenPair([0, 5, 10], 5, 99)).toEqual({from: 5, to: 10});
  });

  it('compares a lone snapshot with itself, and nothing without snapshots', () => {
    expect(chosenPair([4], null, null)).toEqual({from: 4, to: 4});
    expect(chosenPair([], 1, 2)).toBeNull();
  });
});

describe('snapshotLabel', () => {
  it('says when a snapshot was taken', () => {
    expect(snapshotLabel({epoch: 0, step: 0, wallTime: 0})).toBe('epoch 0 \u00b7 before training');
    expect(snapshotLabel({epoch: 3, step: 120, wallTime: 0})).toBe('epoch 3 \u00b7 step 120');
    // A fit that started from a trained model: epoch 0, but not before any training.
    expect(snapshotLabel({epoch: 0, step: 50, wallTime: 0})).toBe('epoch 0 \u00b7 step 50');
  });
});

function values(distance: number | null, relative: number | null): DistanceValues {
  return {distance, relative, normFrom: 1, normTo: 1, nonFinite: 0};
}

const distance: SnapshotDistance = {
  run: 'r',
  from: {epoch: 0, step: 0, wallTime: 0},
  to: {epoch: 2, step: 20, wallTime: 0},
  total: values(3, 0.3),
  layers: [
    {
      layer: 'conv',
      ...values(2, 0.2),
      variables: [
        {variable: 'm/conv/kernel', shape: [3, 3], ...values(2, 0.4)},
        {variable: 'm/conv/bias', shape: [3], ...values(0.1, Infinity)},
      ],
    },
    {layer: 'dense', ...values(1, 0.05), variables: [{variable: 'm/dense/kernel', shape: [2], ...values(1, 0.05)}]},
    {layer: 'frozen', ...values(0, null), variables: [{variable: 'm/frozen/kernel', shape: [2], ...values(0, null)}]},
  ],
  unmatched: [],
};

describe('distanceRows', () => {
  it('lists each layer, then its variables, in model order', () => {
    expect(distanceRows(distance).map((r) => [r.kind, r.layer, r.name])).toEqual([
      ['layer', 'conv', 'conv'],
      ['variable', 'conv', 'm/conv/kernel'],
      ['variable', 'conv', 'm/conv/bias'],
      ['layer', 'dense', 'dense'],
      ['variable', 'dense', 'm/dense/kernel'],
      ['layer', 'frozen', 'frozen'],
      ['variable', 'frozen', 'm/frozen/kernel'],
    ]);
  });

  it('sizes bars by relative distance against the largest finite one of layers, and of variables', () => {
    const bars = Object.fromEntries(distanceRows(distance).map((r) => [r.name, r.bar]));
    expect(bars.conv).toBe(1);
    expect(bars.dense).toBeCloseTo(0.25);
    expect(bars['m/conv/kernel']).toBe(1);
    expect(bars['m/dense/kernel']).toBeCloseTo(0.125);
    // A bias that left zero moved infinitely far, relatively: a full bar. Not measured: none.
    expect(bars['m/conv/bias']).toBe(1);
    expect(bars.frozen).toBe(0);
  });
});
