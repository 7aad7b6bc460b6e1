// The parts of the state a shared link carries, as flat string keys (TensorBoard
// puts them in its URL hash as p.weight_health.<key>). Pure.

import {currentRun, initialState, withRuns, type HistogramMode, type State, type View} from './state';
import type {HistogramKind} from '../api/types';

/** What a link restores; the run list always comes from the server. */
export type UrlState = Partial<Omit<State, 'runs'>>;

const VIEWS: readonly View[] = ['overview', 'layer'];
const KINDS: readonly HistogramKind[] = ['weight', 'gradient'];
const MODES: readonly HistogramMode[] = ['offset', 'overlay'];

/** The keys that differ from the defaults, so a plain tab keeps a plain URL. */
export function encodeUrlState(state: State): Record<string, string> {
  const out: Record<string, string> = {};
  const put = (key: string, value: string | null, fallback: string | null) => {
    if (value !== null && value !== fallback) out[key] = value;
  };
  put('run', state.run, null);
  put('stat', state.stat, null);
  put('view', state.view, initialState.view);
  put('layer', state.view === 'layer' ? state.layer : null, null);
  put('step', state.step === null ? null : String(state.step), null);
  if (state.hiddenRuns.length > 0) out.hide = JSON.stringify(state.hiddenRuns);
  put('kind', state.histogramKind, initialState.histogramKind);
  put('mode', state.histogramMode, initialState.histogramMode);
  put('hvar', state.histogramVariable, null);
  put('sort', state.tableSort, initialState.tableSort);
  if (state.tableSort !== '') put('desc', String(state.tableDescending), null);
  put('filter', state.tableFilter, initialState.tableFilter);
  put('sfrom', state.snapshotFrom === null ? null : String(state.snapshotFrom), null);
  put('sto', state.snapshotTo === null ? null : String(state.snapshotTo), null);
  return out;
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[]): T | undefined {
  return allowed.find((a) => a === value);
}

function stringList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(value);
    return Array.isArray(parsed) ? parsed.filter((v): v is string => typeof v === 'string') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What a link asks for. Values that cannot be meant (an unknown view, a step
 * that is not a whole number) are left out rather than failing the tab; names
 * of runs and layers are checked against the data when it arrives.
 */
export function decodeUrlState(dict: Readonly<Record<string, string>>): UrlState {
  const out: UrlState = {};
  if (dict.run) out.run = dict.run;
  if (dict.stat) out.stat = dict.stat;
  const view = oneOf(dict.view, VIEWS);
  if (view) out.view = view;
  if (dict.layer) out.layer = dict.layer;
  if (dict.step !== undefined && /^-?\d+$/.test(dict.step)) out.step = Number(dict.step);
  const hidden = stringList(dict.hide);
  if (hidden) out.hiddenRuns = hidden;
  const kind = oneOf(dict.kind, KINDS);
  if (kind) out.histogramKind = kind;
  const mode = oneOf(dict.mode, MODES);
  if (mode) out.histogramMode = mode;
  if (dict.hvar) out.histogramVariable = dict.hvar;
  if (dict.sort) out.tableSort = dict.sort;
  if (dict.desc === 'true' || dict.desc === 'false') out.tableDescending = dict.desc === 'true';
  if (dict.filter) out.tableFilter = dict.filter;
  const epoch = (value: string | undefined) => (value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined);
  const [from, to] = [epoch(dict.sfrom), epoch(dict.sto)];
  // One epoch without the other cannot be meant: both are written together.
  if (from !== undefined && to !== undefined) Object.assign(out, {snapshotFrom: from, snapshotTo: to});
  if (out.view === 'layer' && !out.layer) delete out.view;
  return out;
}

/** The link's state applied to `state`, where it names runs and layers that exist. */
export function withLink(state: State, link: UrlState): State {
  let next: State = {...state, ...link, runs: state.runs};
  if (link.run !== undefined && !state.runs.some((r) => r.run === link.run)) next.run = state.run;
  next = withRuns(next, state.runs);
  const info = currentRun(next);
  if (next.layer !== null && info && info.layers.length > 0 && !info.layers.includes(next.layer)) {
    next = {...next, view: 'overview', layer: null};
  }
  return next;
}
