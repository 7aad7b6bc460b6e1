// Client of the plugin's HTTP API (tb_weightnorm/plugin/http_api.md).
//
// Every URL is relative: the page's <base href> is the plugin's route folder,
// so relative URLs carry TensorBoard's --path_prefix and /experiment/<id>/.

import {
  decodeComparison,
  decodeFindings,
  decodeHeatmap,
  decodeHistograms,
  decodeKernelGrids,
  decodeRuns,
  decodeSeries,
  decodeSnapshotDistance,
  decodeSnapshots,
  decodeTable,
} from './decode';
import {
  ApiError,
  type Comparison,
  type Finding,
  type Heatmap,
  type HistogramKind,
  type HistogramSet,
  type KernelGrid,
  type NormTable,
  type RunInfo,
  type SnapshotDistance,
  type SnapshotList,
  type StatSeries,
} from './types';

export type FetchFn = (url: string) => Promise<Response>;

export interface DataClient {
  getRuns(): Promise<RunInfo[]>;
  /** The norm table of `run` at `step`, or at the latest logged step. */
  getTable(run: string, step?: number): Promise<NormTable>;
  /** One stat over all steps; `variables` chooses the series (default: all). */
  getSeries(run: string, stat: string, variables?: readonly string[]): Promise<StatSeries>;
  /** The diagnosis of `run`, most severe first. */
  getFindings(run: string): Promise<Finding[]>;
  /** One stat of every layer (or variable) over steps, thinned to at most `maxSteps` columns. */
  getHeatmap(run: string, stat: string, options?: HeatmapOptions): Promise<Heatmap>;
  /** One stat of the variables of `layers` (and `variables`) in several runs. */
  getComparison(runs: readonly string[], stat: string, what: CompareWhat): Promise<Comparison>;
  /** The weight or gradient histograms of one variable over steps, in several runs. */
  getHistograms(runs: readonly string[], variable: string, kind: HistogramKind, maxSteps?: number): Promise<HistogramSet>;
  /** The kernel grid images of one conv variable, one per logged step. */
  getKernelGrids(run: string, variable: string): Promise<KernelGrid>;
  /** The weight snapshots of `run` (an empty list when it has none). */
  getSnapshots(run: string): Promise<SnapshotList>;
  /** How far every layer's weights moved from the snapshot of epoch `from` to that of `to`. */
  getSnapshotDistance(run: string, from: number, to: number): Promise<SnapshotDistance>;
}

export interface HeatmapOptions {
  by?: 'layer' | 'variable';
  maxSteps?: number;
  reduce?: 'max' | 'min' | 'mean' | 'last';
}

export interface CompareWhat {
  layers?: readonly string[];
  variables?: readonly string[];
  maxSteps?: number;
}

export function runsUrl(): string {
  return './runs';
}

export function tableUrl(run: string, step?: number): string {
  const params = new URLSearchParams({run});
  if (step !== undefined) params.set('step', String(step));
  return `./table?${params}`;
}

export function seriesUrl(run: string, stat: string, variables?: readonly string[]): string {
  const params = new URLSearchParams({run, stat});
  for (const variable of variables ?? []) params.append('variable', variable);
  return `./series?${params}`;
}

export function findingsUrl(run: string): string {
  return `./findings?${new URLSearchParams({run})}`;
}

export function heatmapUrl(run: string, stat: string, options: HeatmapOptions = {}): string {
  const params = new URLSearchParams({run, stat});
  if (options.by) params.set('by', options.by);
  if (options.maxSteps !== undefined) params.set('max_steps', String(options.maxSteps));
  if (options.reduce) params.set('reduce', options.reduce);
  return `./heatmap?${params}`;
}

export function compareUrl(runs: readonly string[], stat: string, what: CompareWhat): string {
  const params = new URLSearchParams();
  for (const run of runs) params.append('run', run);
  params.set('stat', stat);
  for (const variable of what.variables ?? []) params.append('variable', variable);
  for (const layer of what.layers ?? []) params.append('layer', layer);
  if (what.maxSteps !== undefined) params.set('max_steps', String(what.maxSteps));
  return `./compare?${params}`;
}

export function histogramsUrl(runs: readonly string[], variable: string, kind: HistogramKind, maxSteps?: number): string {
  const params = new URLSearchParams();
  for (const run of runs) params.append('run', run);
  params.set('variable', variable);
  params.set('kind', kind);
  if (maxSteps !== undefined) params.set('max_steps', String(maxSteps));
  return `./histograms?${params}`;
}

export function kernelGridsUrl(run: string, variable: string): string {
  return `./kernel_grids?${new URLSearchParams({run, variable})}`;
}

export function snapshotsUrl(run: string): string {
  return `./snapshots?${new URLSearchParams({run})}`;
}

export function snapshotDistanceUrl(run: string, from: number, to: number): string {
  return `./snapshot_distance?${new URLSearchParams({run, from: String(from), to: String(to)})}`;
}

/** Turns a failed response into an ApiError carrying the server's `error` message. */
async function responseError(response: Response): Promise<ApiError> {
  let detail = '';
  try {
    const body: unknown = JSON.parse(await response.text());
    if (body && typeof body === 'object' && typeof (body as {error?: unknown}).error === 'string') {
      detail = (body as {error: string}).error;
    }
  } catch {
    // Not JSON (e.g. a proxy's HTML error page): fall back to the status text.
  }
  const status = `${response.status}${response.statusText ? ' ' + response.statusText : ''}`;
  return new ApiError(detail ? `${detail} (HTTP ${status})` : `HTTP ${status}`, response.status);
}

async function getJson(fetchFn: FetchFn, url: string): Promise<unknown> {
  const response = await fetchFn(url);
  if (!response.ok) throw await responseError(response);
  try {
    return await response.json();
  } catch {
    throw new ApiError(`response of ${url} is not JSON`, response.status);
  }
}

export function createDataClient(fetchFn: FetchFn = (url) => fetch(url)): DataClient {
  return {
    async getRuns() {
      return decodeRuns(await getJson(fetchFn, runsUrl()));
    },
    async getTable(run, step) {
      return decodeTable(await getJson(fetchFn, tableUrl(run, step)));
    },
    async getSeries(run, stat, variables) {
      return decodeSeries(await getJson(fetchFn, seriesUrl(run, stat, variables)));
    },
    async getFindings(run) {
      return decodeFindings(await getJson(fetchFn, findingsUrl(run)));
    },
    async getHeatmap(run, stat, options) {
      return decodeHeatmap(await getJson(fetchFn, heatmapUrl(run, stat, options)));
    },
    async getComparison(runs, stat, what) {
      return decodeComparison(await getJson(fetchFn, compareUrl(runs, stat, what)));
    },
    async getHistograms(runs, variable, kind, maxSteps) {
      return decodeHistograms(await getJson(fetchFn, histogramsUrl(runs, variable, kind, maxSteps)));
    },
    async getKernelGrids(run, variable) {
      return decodeKernelGrids(await getJson(fetchFn, kernelGridsUrl(run, variable)));
    },
    async getSnapshots(run) {
      return decodeSnapshots(await getJson(fetchFn, snapshotsUrl(run)));
    },
    async getSnapshotDistance(run, from, to) {
      return decodeSnapshotDistance(await getJson(fetchFn, snapshotDistanceUrl(run, from, to)));
    },
  };
}
