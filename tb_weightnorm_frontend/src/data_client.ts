// Client of the plugin's HTTP API (tb_weightnorm/http_api.md).
//
// Every URL is relative: the page's <base href> is the plugin's route folder,
// so relative URLs carry TensorBoard's --path_prefix and /experiment/<id>/.

/** A stat value: a number (possibly NaN or ±Infinity), or null when not measured. */
export type StatValue = number | null;

export interface RunInfo {
  run: string;
  /** The counts are null when the server leaves them out (only `run` and `stats` are needed). */
  steps: number | null;
  first_step: number | null;
  last_step: number | null;
  variables: number | null;
  stats: string[];
  /** The layers, in model order (empty when the server leaves them out). */
  layers: string[];
  /** The kinds of histograms logged ("weight", "gradient"); empty without histograms. */
  histogramKinds: string[];
  /** The conv variables with kernel grid images. */
  kernelGrids: KernelGridInfo[];
  /** What the logged gradients are where it matters (e.g. "before clipping"), else "". */
  gradientNote: string;
}

export interface KernelGridInfo {
  layer: string;
  variable: string;
  mode: string;
  filtersTotal: number;
  lastStep: number | null;
}

export interface TableRow {
  layer: string;
  variable: string;
  /** values[i] is the value of NormTable.stats[i]. */
  values: StatValue[];
}

export interface NormTable {
  run: string;
  step: number;
  wall_time: number;
  steps: number[];
  stats: string[];
  rows: TableRow[];
}

export interface VariableSeries {
  layer: string;
  variable: string;
  /** values[i] is the value at StatSeries.steps[i]. */
  values: StatValue[];
}

export interface StatSeries {
  run: string;
  stat: string;
  steps: number[];
  wall_times: number[];
  series: VariableSeries[];
}

/** Where a thinned response's columns come from (http_api.md, "Long runs"). */
export interface ThinnedSteps {
  /** steps[i]: the last logged step of column i. */
  steps: number[];
  /** firstSteps[i]: its first logged step (equal to steps[i] when not thinned). */
  firstSteps: number[];
  /** How many logged steps the run has. */
  loggedSteps: number;
  reduce: string;
}

/** One row of the heatmap: a layer (by=layer) or a variable. */
export interface HeatmapRow {
  layer: string;
  /** The variable (by=variable), or the layer's variables (by=layer). */
  variables: string[];
  /** The whole-model (global) row: leave it out of a per-layer colour scale. */
  global: boolean;
  values: StatValue[];
  /**
   * NaN and infinite elements behind each cell (the stats are taken over the
   * finite ones, so a broken cell's value alone can look calm); null when none.
   */
  nonFinite?: number[] | null;
}

export interface Heatmap extends ThinnedSteps {
  run: string;
  stat: string;
  by: 'layer' | 'variable';
  rows: HeatmapRow[];
}

/** One run of a `compare` response. */
export interface CompareRun extends ThinnedSteps {
  run: string;
  statLogged: boolean;
  missing: string[];
  missingLayers: string[];
  wallTimes: number[];
  series: VariableSeries[];
}

export interface Comparison {
  stat: string;
  runs: CompareRun[];
}

/** One histogram: counts in equal-width buckets over [min, max] of the finite values. */
export interface Histogram {
  step: number;
  wallTime: number;
  min: number | null;
  max: number | null;
  counts: number[];
  nanCount: number;
  negInfCount: number;
  posInfCount: number;
}

export type HistogramKind = 'weight' | 'gradient';

/** One run of a `histograms` response: its histograms, or why it has none. */
export interface RunHistograms {
  run: string;
  layer: string;
  histograms: Histogram[];
  /** Why the run has no histograms of that variable and kind; null when it has. */
  missing: string | null;
}

export interface HistogramSet {
  variable: string;
  kind: HistogramKind;
  runs: RunHistograms[];
}

export interface KernelImage {
  step: number;
  wallTime: number;
  width: number;
  height: number;
  /** The weight drawn at full colour (max |w| over the filters shown). */
  scale: number | null;
  filtersShown: number;
  /** Relative URL of the PNG. */
  url: string;
}

export interface KernelGrid {
  run: string;
  variable: string;
  layer: string;
  mode: string;
  filtersTotal: number;
  images: KernelImage[];
}

export type Severity = 'critical' | 'warning' | 'info';

/** One thing the diagnosis found wrong in a run (tb_weightnorm/diagnosis.py). */
export interface Finding {
  run: string;
  rule: string;
  severity: Severity;
  layer: string;
  /** Empty when the finding is about every variable of the layer, or the whole model. */
  variable: string;
  first_step: number;
  last_step: number;
  value: StatValue;
  threshold: StatValue;
  message: string;
  ongoing: boolean;
}

/** One weight snapshot of a run (files beside its event files, saved every N epochs). */
export interface SnapshotInfo {
  /** Epochs trained when it was taken (0: before training). */
  epoch: number;
  step: number;
  wallTime: number;
}

export interface SnapshotList {
  run: string;
  snapshots: (SnapshotInfo & {variables: number})[];
  /** Files that could not be read, with the reason. */
  skipped: {file: string; reason: string}[];
}

/** How far weights moved between two snapshots (tb_weightnorm/snapshot_distance.py). */
export interface DistanceValues {
  /** ‖W_to − W_from‖ over the elements finite in both. */
  distance: StatValue;
  /** distance / ‖W_from‖ (Infinity when W_from is all zeros and they moved). */
  relative: StatValue;
  normFrom: StatValue;
  normTo: StatValue;
  /** Elements NaN or infinite in either snapshot. */
  nonFinite: number;
}

export interface VariableDistance extends DistanceValues {
  variable: string;
  shape: number[];
}

export interface LayerDistance extends DistanceValues {
  layer: string;
  variables: VariableDistance[];
}

export interface SnapshotDistance {
  run: string;
  from: SnapshotInfo;
  to: SnapshotInfo;
  total: DistanceValues;
  layers: LayerDistance[];
  /** Variables only one snapshot holds, or with another shape. */
  unmatched: {variable: string; reason: string}[];
}

/** An error answered by the server (HTTP status and its message) or a malformed answer. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const NON_FINITE: Record<string, number> = {
  NaN: NaN,
  Infinity: Infinity,
  '-Infinity': -Infinity,
};

/**
 * Decodes one number of the wire format. JSON has no NaN or Infinity, so the
 * server sends them as the strings "NaN", "Infinity" and "-Infinity"; null
 * (not measured) stays null.
 */
export function decodeNumber(value: unknown): StatValue {
  if (value === null) return null;
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && Object.prototype.hasOwnProperty.call(NON_FINITE, value)) {
    return NON_FINITE[value];
  }
  throw new ApiError(`unexpected value in response: ${JSON.stringify(value)}`);
}

export function decodeNumbers(values: unknown): StatValue[] {
  if (!Array.isArray(values)) {
    throw new ApiError('unexpected response: expected a list of values');
  }
  return values.map(decodeNumber);
}

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

async function getJson(fetchFn: FetchFn, url: string): Promise<Record<string, unknown>> {
  const response = await fetchFn(url);
  if (!response.ok) throw await responseError(response);
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`response of ${url} is not JSON`, response.status);
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(`response of ${url} is not a JSON object`, response.status);
  }
  return body as Record<string, unknown>;
}

function list(body: Record<string, unknown>, key: string): unknown[] {
  const value = body[key];
  if (!Array.isArray(value)) throw new ApiError(`unexpected response: "${key}" is not a list`);
  return value;
}

export function decodeRuns(body: Record<string, unknown>): RunInfo[] {
  return list(body, 'runs').map((entry) => {
    const r = (entry ?? {}) as Record<string, unknown>;
    if (typeof r.run !== 'string') throw new ApiError('unexpected response: a run without a name');
    const count = (key: string) => (typeof r[key] === 'number' ? (r[key] as number) : null);
    const histograms = (r.histograms ?? null) as Record<string, unknown> | null;
    const grids = Array.isArray(r.kernel_grids) ? (r.kernel_grids as Record<string, unknown>[]) : [];
    return {
      run: r.run,
      steps: count('steps'),
      first_step: count('first_step'),
      last_step: count('last_step'),
      variables: count('variables'),
      stats: strings(r.stats),
      layers: strings(r.layers),
      histogramKinds: histograms && typeof histograms === 'object' ? strings(histograms.kinds) : [],
      kernelGrids: grids.map((g) => ({
        layer: String(g.layer),
        variable: String(g.variable),
        mode: String(g.mode),
        filtersTotal: Number(g.filters_total),
        lastStep: typeof g.last_step === 'number' ? g.last_step : null,
      })),
      gradientNote: typeof r.gradient_note === 'string' ? r.gradient_note : '',
    };
  });
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

function numbers(body: Record<string, unknown>, key: string): number[] {
  return list(body, key).map(Number);
}

function thinnedSteps(body: Record<string, unknown>): ThinnedSteps {
  const steps = numbers(body, 'steps');
  return {
    steps,
    firstSteps: Array.isArray(body.first_steps) ? numbers(body, 'first_steps') : steps,
    loggedSteps: typeof body.logged_steps === 'number' ? body.logged_steps : steps.length,
    reduce: typeof body.reduce === 'string' ? body.reduce : 'last',
  };
}

export function decodeHeatmap(body: Record<string, unknown>): Heatmap {
  const by = body.by === 'layer' ? 'layer' : 'variable';
  const rows = list(body, 'rows').map((row) => {
    const r = (row ?? {}) as Record<string, unknown>;
    const variables = Array.isArray(r.variables) ? strings(r.variables) : typeof r.variable === 'string' ? [r.variable] : [];
    const nonFinite = Array.isArray(r.nonfinite) ? r.nonfinite.map(Number) : null;
    return {layer: String(r.layer), variables, global: r.global === true, values: decodeNumbers(r.values), nonFinite};
  });
  return {run: String(body.run), stat: String(body.stat), by, rows, ...thinnedSteps(body)};
}

/** Rows of a table and series of a stat have the same shape: a variable, its layer and its values. */
function decodeVariableSeries(entries: unknown[]): VariableSeries[] {
  return entries.map((s) => {
    const v = (s ?? {}) as Record<string, unknown>;
    return {layer: String(v.layer), variable: String(v.variable), values: decodeNumbers(v.values)};
  });
}

export function decodeComparison(body: Record<string, unknown>): Comparison {
  const runs = list(body, 'runs').map((entry) => {
    const r = (entry ?? {}) as Record<string, unknown>;
    const logged = r.stat_logged !== false;
    return {
      run: String(r.run),
      statLogged: logged,
      missing: strings(r.missing),
      missingLayers: strings(r.missing_layers),
      wallTimes: Array.isArray(r.wall_times) ? r.wall_times.map(Number) : [],
      series: logged && Array.isArray(r.series) ? decodeVariableSeries(r.series) : [],
      ...(logged && Array.isArray(r.steps) ? thinnedSteps(r) : {steps: [], firstSteps: [], loggedSteps: 0, reduce: 'last'}),
    };
  });
  return {stat: String(body.stat), runs};
}

function count(value: unknown): number {
  return typeof value === 'number' ? value : 0;
}

export function decodeHistograms(body: Record<string, unknown>): HistogramSet {
  const kind = body.kind === 'gradient' ? 'gradient' : 'weight';
  const runs = list(body, 'runs').map((entry) => {
    const r = (entry ?? {}) as Record<string, unknown>;
    const histograms = (Array.isArray(r.histograms) ? r.histograms : []).map((h) => {
      const x = (h ?? {}) as Record<string, unknown>;
      const bound = (v: unknown) => (typeof v === 'number' ? v : null);
      return {
        step: Number(x.step),
        wallTime: Number(x.wall_time),
        min: bound(x.min),
        max: bound(x.max),
        counts: Array.isArray(x.counts) ? x.counts.map(Number) : [],
        nanCount: count(x.nan_count),
        negInfCount: count(x.neg_inf_count),
        posInfCount: count(x.pos_inf_count),
      };
    });
    return {
      run: String(r.run),
      layer: typeof r.layer === 'string' ? r.layer : '',
      histograms,
      missing: typeof r.missing === 'string' ? r.missing : null,
    };
  });
  return {variable: String(body.variable), kind, runs};
}

export function decodeKernelGrids(body: Record<string, unknown>): KernelGrid {
  const images = list(body, 'images').map((entry) => {
    const i = (entry ?? {}) as Record<string, unknown>;
    return {
      step: Number(i.step),
      wallTime: Number(i.wall_time),
      width: Number(i.width),
      height: Number(i.height),
      scale: typeof i.scale === 'number' ? i.scale : null,
      filtersShown: Number(i.filters_shown),
      url: String(i.url),
    };
  });
  return {
    run: String(body.run),
    variable: String(body.variable),
    layer: String(body.layer),
    mode: String(body.mode),
    filtersTotal: Number(body.filters_total),
    images,
  };
}

export function decodeTable(body: Record<string, unknown>): NormTable {
  const rows = decodeVariableSeries(list(body, 'rows'));
  return {
    run: String(body.run),
    step: Number(body.step),
    wall_time: Number(body.wall_time),
    steps: list(body, 'steps') as number[],
    stats: list(body, 'stats') as string[],
    rows,
  };
}

export function decodeSeries(body: Record<string, unknown>): StatSeries {
  const series = decodeVariableSeries(list(body, 'series'));
  return {
    run: String(body.run),
    stat: String(body.stat),
    steps: list(body, 'steps') as number[],
    wall_times: (Array.isArray(body.wall_times) ? body.wall_times : []) as number[],
    series,
  };
}

const SEVERITIES: readonly string[] = ['critical', 'warning', 'info'];

export function decodeFindings(body: Record<string, unknown>): Finding[] {
  return list(body, 'findings').map((entry) => {
    const f = (entry ?? {}) as Record<string, unknown>;
    const severity = String(f.severity);
    if (!SEVERITIES.includes(severity)) throw new ApiError(`unexpected severity in response: ${JSON.stringify(severity)}`);
    return {
      run: String(f.run),
      rule: String(f.rule),
      severity: severity as Severity,
      layer: String(f.layer),
      variable: typeof f.variable === 'string' ? f.variable : '',
      first_step: Number(f.first_step),
      last_step: Number(f.last_step),
      value: decodeNumber(f.value ?? null),
      threshold: decodeNumber(f.threshold ?? null),
      message: String(f.message),
      ongoing: f.ongoing === true,
    };
  });
}

function decodeSnapshotInfo(value: unknown): SnapshotInfo {
  const s = (value ?? {}) as Record<string, unknown>;
  if (typeof s.epoch !== 'number') throw new ApiError('unexpected response: a snapshot without an epoch');
  return {epoch: s.epoch, step: Number(s.step), wallTime: Number(s.wall_time)};
}

export function decodeSnapshots(body: Record<string, unknown>): SnapshotList {
  return {
    run: String(body.run),
    snapshots: list(body, 'snapshots').map((s) => ({
      ...decodeSnapshotInfo(s),
      variables: count((s as Record<string, unknown> | null)?.variables),
    })),
    skipped: (Array.isArray(body.skipped) ? body.skipped : []).map((entry) => {
      const e = (entry ?? {}) as Record<string, unknown>;
      return {file: String(e.file), reason: String(e.reason)};
    }),
  };
}

function decodeDistanceValues(value: unknown): DistanceValues {
  const d = (value ?? {}) as Record<string, unknown>;
  return {
    distance: decodeNumber(d.distance ?? null),
    relative: decodeNumber(d.relative ?? null),
    normFrom: decodeNumber(d.norm_from ?? null),
    normTo: decodeNumber(d.norm_to ?? null),
    nonFinite: count(d.nonfinite),
  };
}

export function decodeSnapshotDistance(body: Record<string, unknown>): SnapshotDistance {
  const layers = list(body, 'layers').map((entry) => {
    const l = (entry ?? {}) as Record<string, unknown>;
    const variables = (Array.isArray(l.variables) ? l.variables : []).map((v) => {
      const x = (v ?? {}) as Record<string, unknown>;
      return {variable: String(x.variable), shape: Array.isArray(x.shape) ? x.shape.map(Number) : [], ...decodeDistanceValues(x)};
    });
    return {layer: String(l.layer), variables, ...decodeDistanceValues(l)};
  });
  return {
    run: String(body.run),
    from: decodeSnapshotInfo(body.from),
    to: decodeSnapshotInfo(body.to),
    total: decodeDistanceValues(body.total),
    layers,
    unmatched: (Array.isArray(body.unmatched) ? body.unmatched : []).map((entry) => {
      const e = (entry ?? {}) as Record<string, unknown>;
      return {variable: String(e.variable), reason: String(e.reason)};
    }),
  };
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
