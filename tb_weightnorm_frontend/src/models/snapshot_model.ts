// Which two weight snapshots are compared, and the rows of the distance table. Pure.

import type {DistanceValues, SnapshotDistance, SnapshotInfo, StatValue} from '../api/types';

export interface SnapshotPair {
  from: number;
  to: number;
}

/**
 * The epochs to compare: the chosen ones where the run has a snapshot of
 * them, else its first and last (a run with one snapshot compares it with
 * itself); null for a run without snapshots.
 */
export function chosenPair(epochs: readonly number[], from: number | null, to: number | null): SnapshotPair | null {
  if (epochs.length === 0) return null;
  const has = (epoch: number | null): epoch is number => epoch !== null && epochs.includes(epoch);
  return {
    from: has(from) ? from : epochs[0],
    to: has(to) ? to : epochs[epochs.length - 1],
  };
}

/** "epoch 3 · step 120", or "epoch 0 · before training". */
export function snapshotLabel(snapshot: SnapshotInfo): string {
  return snapshot.epoch === 0 && snapshot.step === 0
    ? 'epoch 0 \u00b7 before training'
    : `epoch ${snapshot.epoch} \u00b7 step ${snapshot.step}`;
}

export interface DistanceRow {
  /** A layer, or one of its variables (listed under it). */
  kind: 'layer' | 'variable';
  layer: string;
  /** The layer's name, or the variable's path. */
  name: string;
  values: DistanceValues;
  /** Share of the bar: relative distance over the largest finite one of its kind; Infinity fills it. */
  bar: number;
}

function largestFinite(values: StatValue[]): number {
  let largest = 0;
  for (const v of values) if (v !== null && Number.isFinite(v) && v > largest) largest = v;
  return largest;
}

function share(value: StatValue, largest: number): number {
  if (value === null || Number.isNaN(value) || value <= 0) return 0;
  if (!Number.isFinite(value) || largest === 0) return 1;
  return Math.min(1, value / largest);
}

/**
 * Each layer in model order, followed by its variables. Bars compare layers
 * with layers and variables with variables, by relative distance: a layer
 * that moved 10 % of its norm has a bar ten times longer than one that moved 1 %.
 */
export function distanceRows(distance: SnapshotDistance): DistanceRow[] {
  const layerMax = largestFinite(distance.layers.map((l) => l.relative));
  const variableMax = largestFinite(distance.layers.flatMap((l) => l.variables.map((v) => v.relative)));
  const rows: DistanceRow[] = [];
  for (const layer of distance.layers) {
    rows.push({kind: 'layer', layer: layer.layer, name: layer.layer, values: layer, bar: share(layer.relative, layerMax)});
    for (const v of layer.variables) {
      rows.push({kind: 'variable', layer: layer.layer, name: v.variable, values: v, bar: share(v.relative, variableMax)});
    }
  }
  return rows;
}
