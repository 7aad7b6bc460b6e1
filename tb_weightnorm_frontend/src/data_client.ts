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
    return {
      run: r.run,
      steps: count('steps'),
      first_step: count('first_step'),
      last_step: count('last_step'),
      variables: count('variables'),
      stats: Array.isArray(r.stats) ? r.stats.map(String) : [],
    };
  });
}

export function decodeTable(body: Record<string, unknown>): NormTable {
  const rows = list(body, 'rows').map((row) => {
    const r = row as Record<string, unknown>;
    return {layer: String(r.layer), variable: String(r.variable), values: decodeNumbers(r.values)};
  });
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
  const series = list(body, 'series').map((s) => {
    const v = s as Record<string, unknown>;
    return {layer: String(v.layer), variable: String(v.variable), values: decodeNumbers(v.values)};
  });
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
  };
}
