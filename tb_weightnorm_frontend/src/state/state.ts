// What the user has chosen: the run, the overview's stat, the layer in detail,
// the step, and how the histograms and the norm table are shown.
// Pure functions only; each returns a new state (or the same one when nothing changes).

import type {HistogramKind, RunInfo} from '../api/types';

export type View = 'overview' | 'layer';
export type HistogramMode = 'offset' | 'overlay';

export interface State {
  /** Runs with Weight Health data that TensorBoard offers (its run list), in that order. */
  runs: RunInfo[];
  /** The run of the overview, the findings and the norm table. */
  run: string | null;
  /** The stat of the overview heatmap. */
  stat: string | null;
  view: View;
  /** The layer in detail (view "layer"). */
  layer: string | null;
  /** The chosen step (norm table, kernel grid, marked in charts); null: the latest. */
  step: number | null;
  /** Runs the user took out of the layer detail's overlays. */
  hiddenRuns: string[];
  histogramKind: HistogramKind;
  histogramMode: HistogramMode;
  /** The variable whose histograms are shown; null: the layer's first. */
  histogramVariable: string | null;
  /** The norm table's sort column ("" keeps model order) and direction. */
  tableSort: string;
  tableDescending: boolean;
  /** Shows only rows whose layer or variable contains this text (any case). */
  tableFilter: string;
  /** The epochs of the two weight snapshots compared; null: the run's first and last. */
  snapshotFrom: number | null;
  snapshotTo: number | null;
}

export const initialState: State = {
  runs: [],
  run: null,
  stat: null,
  view: 'overview',
  layer: null,
  step: null,
  hiddenRuns: [],
  histogramKind: 'gradient',
  histogramMode: 'offset',
  histogramVariable: null,
  tableSort: '',
  tableDescending: true,
  tableFilter: '',
  snapshotFrom: null,
  snapshotTo: null,
};

/** The stats the overview offers first: the gradient's size says most about health. */
const PREFERRED_STATS = ['gradient/l2', 'weight/l2'];

/** gradient/l2 if the run has it, else weight/l2, else its first stat. */
export function defaultStat(stats: readonly string[]): string | null {
  for (const preferred of PREFERRED_STATS) {
    if (stats.includes(preferred)) return preferred;
  }
  return stats[0] ?? null;
}

export function currentRun(state: State): RunInfo | null {
  return state.runs.find((r) => r.run === state.run) ?? null;
}

function statFor(run: RunInfo | null, stat: string | null): string | null {
  if (!run) return null;
  if (stat !== null && run.stats.includes(stat)) return stat;
  return defaultStat(run.stats);
}

/**
 * The runs to offer: those with our data, limited to and ordered as TensorBoard's
 * run list when the host gave one (null outside TensorBoard). When none of the
 * host's runs has our data, all of ours are offered: TensorBoard answers an
 * empty list while its own run list is still loading.
 */
export function offeredRuns(withData: readonly RunInfo[], hostRuns: readonly string[] | null): RunInfo[] {
  if (hostRuns === null) return [...withData];
  const byName = new Map(withData.map((r) => [r.run, r]));
  const offered: RunInfo[] = [];
  for (const name of hostRuns) {
    const info = byName.get(name);
    if (info) offered.push(info);
  }
  return offered.length > 0 ? offered : [...withData];
}

/**
 * A new list of runs (first load, a reload, or TensorBoard's run list changed):
 * keeps what the user chose while the run still exists, else falls back to the first run.
 */
export function withRuns(state: State, runs: RunInfo[]): State {
  const kept = runs.find((r) => r.run === state.run);
  if (kept) return {...state, runs, stat: statFor(kept, state.stat)};
  const first = runs[0] ?? null;
  return {...state, runs, run: first?.run ?? null, stat: statFor(first, state.stat), step: null, ...NO_SNAPSHOTS};
}

/** Another run has other snapshots: back to its first and last. */
const NO_SNAPSHOTS = {snapshotFrom: null, snapshotTo: null} as const;

/**
 * Chooses the overview's run; the stat is kept if that run has it, the step
 * goes back to the latest and the snapshots compared to the run's first and last.
 */
export function selectRun(state: State, run: string): State {
  if (run === state.run) return state;
  const info = state.runs.find((r) => r.run === run);
  if (!info) return state;
  return {...state, run, stat: statFor(info, state.stat), step: null, ...NO_SNAPSHOTS};
}

/** Chooses the two weight snapshots to compare, by epoch. */
export function selectSnapshots(state: State, from: number, to: number): State {
  if (from === state.snapshotFrom && to === state.snapshotTo) return state;
  return {...state, snapshotFrom: from, snapshotTo: to};
}

export function selectStat(state: State, stat: string): State {
  const info = currentRun(state);
  if (!info || !info.stats.includes(stat) || stat === state.stat) return state;
  return {...state, stat};
}

/** Opens the detail of `layer`, at `step` when given (else the step stays). */
export function openLayer(state: State, layer: string, step?: number | null): State {
  const sameLayer = layer === state.layer;
  if (sameLayer && state.view === 'layer' && (step === undefined || step === state.step)) return state;
  return {
    ...state,
    view: 'layer',
    layer,
    step: step === undefined ? state.step : step,
    histogramVariable: sameLayer ? state.histogramVariable : null,
  };
}

export function showOverview(state: State): State {
  return state.view === 'overview' ? state : {...state, view: 'overview'};
}

export function selectStep(state: State, step: number | null): State {
  return step === state.step ? state : {...state, step};
}

/** How many runs the layer detail overlays at most: more lines than this cannot be told apart. */
export const MAX_OVERLAID_RUNS = 8;

/**
 * The runs overlaid in the layer detail: the overview's run first (always),
 * then the others TensorBoard offers that have the layer and that the user did
 * not hide, at most MAX_OVERLAID_RUNS in all.
 */
export function overlaidRuns(state: State): string[] {
  const hidden = new Set(state.hiddenRuns);
  const others = state.runs.filter((r) => r.run !== state.run && hasLayer(state, r) && !hidden.has(r.run)).map((r) => r.run);
  const primary = state.runs.some((r) => r.run === state.run && hasLayer(state, r)) ? [state.run!] : [];
  return [...primary, ...others].slice(0, MAX_OVERLAID_RUNS);
}

function hasLayer(state: State, info: RunInfo): boolean {
  // A run that does not list its layers is given the benefit of the doubt: the server says what it lacks.
  return state.layer !== null && (info.layers.length === 0 || info.layers.includes(state.layer));
}

/**
 * Shows or hides one run in the layer detail's overlays. The overview's run
 * always stays. Showing a run when MAX_OVERLAID_RUNS are shown takes out the
 * last of them to make room.
 */
export function toggleRun(state: State, run: string): State {
  if (run === state.run) return state;
  const shown = overlaidRuns(state);
  if (shown.includes(run)) return {...state, hiddenRuns: [...state.hiddenRuns, run]};
  const room = shown.length >= MAX_OVERLAID_RUNS && shown[shown.length - 1] !== state.run ? shown.slice(0, -1) : shown;
  const wanted = new Set([...room, run]);
  const hidden = new Set(state.hiddenRuns);
  // Every other run of this layer is hidden, so exactly the wanted ones show whatever their order.
  const hiddenRuns = state.runs
    .filter((r) => r.run !== state.run && !wanted.has(r.run) && (hidden.has(r.run) || hasLayer(state, r)))
    .map((r) => r.run);
  return {...state, hiddenRuns};
}

export function selectHistogramKind(state: State, kind: HistogramKind): State {
  return kind === state.histogramKind ? state : {...state, histogramKind: kind};
}

export function selectHistogramMode(state: State, mode: HistogramMode): State {
  return mode === state.histogramMode ? state : {...state, histogramMode: mode};
}

export function selectHistogramVariable(state: State, variable: string): State {
  return variable === state.histogramVariable ? state : {...state, histogramVariable: variable};
}

/** Sorts the norm table by `column`; the same column again flips the direction. */
export function sortTable(state: State, column: string): State {
  if (column === state.tableSort) return {...state, tableDescending: !state.tableDescending};
  // Names read best A to Z; stats are looked at largest first.
  const byName = column === 'layer' || column === 'variable';
  return {...state, tableSort: column, tableDescending: !byName};
}

export function filterTable(state: State, filter: string): State {
  return filter === state.tableFilter ? state : {...state, tableFilter: filter};
}
