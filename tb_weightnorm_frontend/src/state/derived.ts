// What follows from the state and the data held: which step, snapshots,
// histograms and stats are shown, the key each piece is loaded for, and the
// models the layer detail and the snapshots section are drawn from. Pure.
//
// The state keeps what the user chose, even where the data does not offer it
// (a histogram variable of another layer, a step the table did not log): these
// say what is shown instead, so a choice comes back when the data offers it again.

import type {HistogramKind} from '../api/types';
import {buildCompareModel} from '../models/chart_data';
import {chosenPair, type SnapshotPair} from '../models/snapshot_model';
import {colorMap} from '../ui/colors';
import type {Theme} from '../ui/theme';
import type {LayerDetailModel} from '../views/layer_detail';
import type {SnapshotsModel} from '../views/snapshots';
import {key, type Held, type RunTable} from './held';
import type {Latest} from './latest';
import {currentRun, overlaidRuns, type State} from './state';

/** The stats charted for a layer, in this order, when the run logged them. */
export const LAYER_STATS: readonly string[] = [
  'gradient/l2',
  'weight/l2',
  'update/ratio',
  'gradient/dead_fraction',
  'weight/dist_init',
];

/** What a view says while it has nothing to show: its load failed, or it is loading. */
export function loadingOr(slot: Latest<unknown>, what: string): string {
  return slot.error ? `Could not load ${what}: ${slot.error}` : 'Loading\u2026';
}

/**
 * The logged step the norm table shows for the chosen one: the last logged at
 * or before it (kernel grids and histograms are logged at steps the table may
 * not have, e.g. step 0); null for the latest.
 */
export function tableStep(state: State, runTable: RunTable | null, run: string): number | null {
  const step = state.step;
  const steps = runTable?.run === run ? runTable.steps : null;
  if (step === null || !steps || steps.length === 0 || steps.includes(step)) return step;
  const before = steps.filter((s) => s <= step);
  return before.length ? before[before.length - 1] : steps[0];
}

/** The snapshots compared; null while the run's list is not loaded, or it has none. */
export function snapshotPair(state: State, held: Held): SnapshotPair | null {
  const list = held.snapshotList.key === key(state.run) ? held.snapshotList.value : null;
  if (!list) return null;
  return chosenPair(list.snapshots.map((s) => s.epoch), state.snapshotFrom, state.snapshotTo);
}

export function layerStats(state: State): string[] {
  const logged = currentRun(state)?.stats ?? [];
  return LAYER_STATS.filter((s) => logged.includes(s));
}

/** The layer's variables (from the norm table), without the whole-model row. */
export function layerVariables(state: State, runTable: RunTable | null): string[] {
  if (!runTable || runTable.run !== state.run || state.layer === null) return [];
  return runTable.rows.filter((r) => r.layer === state.layer).map((r) => r.variable);
}

export function histogramKinds(state: State): HistogramKind[] {
  const kinds = currentRun(state)?.histogramKinds ?? [];
  return kinds.filter((k): k is HistogramKind => k === 'weight' || k === 'gradient');
}

export function histogramKind(state: State): HistogramKind | null {
  const kinds = histogramKinds(state);
  return kinds.includes(state.histogramKind) ? state.histogramKind : (kinds[0] ?? null);
}

export function histogramVariable(state: State, runTable: RunTable | null): string | null {
  if (histogramKinds(state).length === 0) return null;
  const variables = layerVariables(state, runTable);
  const chosen = state.histogramVariable;
  return chosen !== null && variables.includes(chosen) ? chosen : (variables[0] ?? null);
}

/** The conv variable of the layer in detail with a kernel grid, if any. */
export function kernelGridOf(state: State) {
  return currentRun(state)?.kernelGrids.find((g) => g.layer === state.layer) ?? null;
}

// What each piece of the layer detail is loaded for; a view shows a piece only for its current key.

export function comparisonKey(state: State, stat: string): string {
  return key(overlaidRuns(state), stat, state.layer);
}

export function histogramKey(state: State, runTable: RunTable | null): string | null {
  const variable = histogramVariable(state, runTable);
  const kind = histogramKind(state);
  return variable === null || kind === null ? null : key(overlaidRuns(state), variable, kind);
}

export function kernelKey(state: State): string | null {
  const grid = kernelGridOf(state);
  return grid ? key(state.run, grid.variable) : null;
}

/** The snapshots section; null while the run's list loads, or when it has no snapshots. */
export function snapshotsModel(state: State, held: Held): SnapshotsModel | null {
  const list = held.snapshotList.key === key(state.run) ? held.snapshotList.value : null;
  const pair = snapshotPair(state, held);
  if (!list || pair === null) return null;
  const distanceKey = key(state.run, pair.from, pair.to);
  const distance = held.snapshotDistance.key === distanceKey ? held.snapshotDistance.value : null;
  const skipped = list.skipped.map((s) => s.reason).join('; ');
  return {
    snapshots: list.snapshots,
    pair,
    distance,
    message: distance
      ? skipped || undefined
      : held.snapshotDistance.key === distanceKey
        ? loadingOr(held.snapshotDistance, 'the distances')
        : 'Loading\u2026',
  };
}

/** The detail of the layer in `state.layer` (which must be set), from what is held for its current keys. */
export function layerDetailModel(state: State, held: Held, theme: Theme): LayerDetailModel {
  const layer = state.layer!;
  const colors = colorMap(state.runs.map((r) => r.run));
  const runColor = (run: string) => colors.get(run) ?? '#000';
  const overlaid = new Set(overlaidRuns(state));
  const runs = state.runs
    .filter((r) => r.layers.length === 0 || r.layers.includes(layer))
    .map((r) => ({run: r.run, color: runColor(r.run), shown: overlaid.has(r.run)}));
  const charts = layerStats(state).map((stat) => {
    const slot = held.findComparison(stat);
    const comparison = slot?.key === comparisonKey(state, stat) ? slot.value : null;
    return {
      stat,
      model: comparison ? buildCompareModel(comparison, runColor) : null,
      message: slot?.error ? `Could not load ${stat}: ${slot.error}` : undefined,
    };
  });
  const histogramsFor = histogramKey(state, held.runTable);
  const gridFor = kernelKey(state);
  const histograms = histogramsFor !== null && held.histograms.key === histogramsFor ? held.histograms.value : null;
  const kernelGrid = gridFor !== null && held.kernelGrid.key === gridFor ? held.kernelGrid.value : null;
  const kinds = histogramKinds(state);
  return {
    layer,
    step: state.step ?? held.table.value?.step ?? null,
    runs,
    charts,
    histogramVariables: kinds.length ? layerVariables(state, held.runTable) : [],
    histogramVariable: histogramVariable(state, held.runTable),
    histogramKinds: kinds,
    histogramKind: histogramKind(state) ?? 'gradient',
    histogramMode: state.histogramMode,
    histograms,
    histogramMessage: histograms ? undefined : loadingOr(held.histograms, 'the histograms'),
    kernelGrid,
    kernelGridMessage: kernelGrid ? undefined : loadingOr(held.kernelGrid, 'the kernel grid'),
    hasKernelGrid: kernelGridOf(state) !== null,
    runColor,
    theme,
  };
}
