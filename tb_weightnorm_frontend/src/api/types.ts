// The answers of the plugin's JSON routes (tb_weightnorm/plugin/http_api.md),
// each declared once as a schema: the schema checks an answer and turns it
// into what the tab reads, and the type is inferred from it, so the two
// cannot drift apart.
//
// A field the server may leave out (or send as null where the API says so)
// gets the value the tab has always read in its place; a field that is there
// with the wrong type fails the whole answer, naming the field (decode.ts).

import * as v from 'valibot';

const NON_FINITE = {NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity} as const;

/**
 * A stat value. JSON has no NaN or Infinity, so the server sends them as the
 * strings "NaN", "Infinity" and "-Infinity"; null (not measured) stays null.
 */
export const statValue = v.pipe(
  v.union(
    [v.number(), v.null(), v.picklist(['NaN', 'Infinity', '-Infinity'])],
    (issue) => `expected a number, null, "NaN", "Infinity" or "-Infinity", not ${issue.received}`,
  ),
  v.transform((value): number | null => (typeof value === 'string' ? NON_FINITE[value] : value)),
);
/** A number (possibly NaN or ±Infinity), or null when not measured. */
export type StatValue = v.InferOutput<typeof statValue>;

const statValues = v.array(statValue);
/** Left out or null: not measured. */
const optionalStat = v.optional(statValue, null);
/** A wall time the server could not read (null) is 0, so that every wall time is a number. */
const wallTime = v.pipe(optionalStat, v.transform((time) => time ?? 0));
/** Counts the server cannot give (null) or leaves out read as 0. */
const count = v.nullish(v.number(), 0);
/** A finite number, else null (an infinite scale or bound cannot be drawn). */
const finiteOrNull = v.pipe(optionalStat, v.transform((x) => (x !== null && Number.isFinite(x) ? x : null)));
const names = v.optional(v.array(v.string()), []);

const kernelGridInfo = v.pipe(
  v.object({
    layer: v.string(),
    variable: v.string(),
    mode: v.string(),
    filters_total: v.number(),
    last_step: v.nullish(v.number(), null),
  }),
  v.transform(({filters_total, last_step, ...g}) => ({...g, filtersTotal: filters_total, lastStep: last_step})),
);
export type KernelGridInfo = v.InferOutput<typeof kernelGridInfo>;

/** The counts are null when the server leaves them out (only `run` and `stats` are needed). */
const optionalCount = v.nullish(v.number(), null);

const runInfo = v.pipe(
  // `run` is the one field a run cannot do without, so the object's message can name it.
  v.object({
    run: v.string(),
    steps: optionalCount,
    first_step: optionalCount,
    last_step: optionalCount,
    variables: optionalCount,
    stats: names,
    layers: names,
    histograms: v.nullish(v.object({kinds: names}), null),
    kernel_grids: v.optional(v.array(kernelGridInfo), []),
    gradient_note: v.optional(v.string(), ''),
  }, 'a run without a name'),
  v.transform((r) => ({
    run: r.run,
    steps: r.steps,
    first_step: r.first_step,
    last_step: r.last_step,
    variables: r.variables,
    stats: r.stats,
    /** The layers, in model order (empty when the server leaves them out). */
    layers: r.layers,
    /** The kinds of histograms logged ("weight", "gradient"); empty without histograms. */
    histogramKinds: r.histograms?.kinds ?? [],
    /** The conv variables with kernel grid images. */
    kernelGrids: r.kernel_grids,
    /** What the logged gradients are where it matters (e.g. "before clipping"), else "". */
    gradientNote: r.gradient_note,
  })),
);
export type RunInfo = v.InferOutput<typeof runInfo>;
export const runsResponse = v.object({runs: v.array(runInfo)});

/** Rows of a table and series of a stat have the same shape: a variable, its layer and its values. */
const variableSeries = v.object({
  layer: v.string(),
  variable: v.string(),
  /** values[i] is the value of NormTable.stats[i], or at StatSeries.steps[i]. */
  values: statValues,
});
export type VariableSeries = v.InferOutput<typeof variableSeries>;
export type TableRow = VariableSeries;

export const normTable = v.object({
  run: v.string(),
  step: v.number(),
  wall_time: wallTime,
  steps: v.array(v.number()),
  stats: v.array(v.string()),
  rows: v.array(variableSeries),
});
export type NormTable = v.InferOutput<typeof normTable>;

export const statSeries = v.object({
  run: v.string(),
  stat: v.string(),
  steps: v.array(v.number()),
  wall_times: v.optional(v.array(wallTime), []),
  series: v.array(variableSeries),
});
export type StatSeries = v.InferOutput<typeof statSeries>;

/** Where a thinned response's columns come from (http_api.md, "Long runs"). */
const thinnedEntries = {
  steps: v.array(v.number()),
  first_steps: v.optional(v.array(v.number())),
  logged_steps: v.optional(v.number()),
  reduce: v.optional(v.string(), 'last'),
};

function thinnedSteps(t: {steps: number[]; first_steps?: number[]; logged_steps?: number; reduce: string}) {
  return {
    /** steps[i]: the last logged step of column i. */
    steps: t.steps,
    /** firstSteps[i]: its first logged step (equal to steps[i] when not thinned). */
    firstSteps: t.first_steps ?? t.steps,
    /** How many logged steps the run has. */
    loggedSteps: t.logged_steps ?? t.steps.length,
    reduce: t.reduce,
  };
}
export type ThinnedSteps = ReturnType<typeof thinnedSteps>;

/** One row of the heatmap: a layer (by=layer) or a variable. */
const heatmapRow = v.pipe(
  v.object({
    layer: v.string(),
    variables: v.optional(v.array(v.string())),
    variable: v.optional(v.string()),
    global: v.optional(v.boolean(), false),
    values: statValues,
    nonfinite: v.optional(v.array(count)),
  }),
  v.transform((r) => ({
    layer: r.layer,
    /** The variable (by=variable), or the layer's variables (by=layer). */
    variables: r.variables ?? (r.variable !== undefined ? [r.variable] : []),
    /** The whole-model (global) row: leave it out of a per-layer colour scale. */
    global: r.global,
    values: r.values,
    /**
     * NaN and infinite elements behind each cell (the stats are taken over the
     * finite ones, so a broken cell's value alone can look calm); null when none.
     */
    nonFinite: r.nonfinite ?? (null as number[] | null),
  })),
);
type DecodedRow = v.InferOutput<typeof heatmapRow>;
/** The decoder always sets `nonFinite`; a row built by hand (a test's) may leave it out. */
export type HeatmapRow = Omit<DecodedRow, 'nonFinite'> & Partial<Pick<DecodedRow, 'nonFinite'>>;

export const heatmap = v.pipe(
  v.object({
    run: v.string(),
    stat: v.string(),
    by: v.optional(v.picklist(['layer', 'variable']), 'variable'),
    rows: v.array(heatmapRow),
    ...thinnedEntries,
  }),
  v.transform((h) => ({run: h.run, stat: h.stat, by: h.by, rows: h.rows, ...thinnedSteps(h)})),
);
export type Heatmap = Omit<v.InferOutput<typeof heatmap>, 'rows'> & {rows: HeatmapRow[]};

/** One run of a `compare` response; a run that did not log the stat has no steps or series. */
const compareRun = v.pipe(
  v.object({
    run: v.string(),
    stat_logged: v.optional(v.boolean(), true),
    missing: names,
    missing_layers: names,
    wall_times: v.optional(v.array(wallTime), []),
    series: v.optional(v.array(variableSeries), []),
    ...thinnedEntries,
    steps: v.optional(v.array(v.number())),
  }),
  v.transform((r) => ({
    run: r.run,
    statLogged: r.stat_logged,
    missing: r.missing,
    missingLayers: r.missing_layers,
    wallTimes: r.wall_times,
    series: r.stat_logged ? r.series : [],
    ...(r.stat_logged && r.steps
      ? thinnedSteps({...r, steps: r.steps})
      : {steps: [] as number[], firstSteps: [] as number[], loggedSteps: 0, reduce: 'last'}),
  })),
);
export type CompareRun = v.InferOutput<typeof compareRun>;

export const comparison = v.object({stat: v.string(), runs: v.array(compareRun)});
export type Comparison = v.InferOutput<typeof comparison>;

const histogramKind = v.picklist(['weight', 'gradient']);
export type HistogramKind = v.InferOutput<typeof histogramKind>;

/** One histogram: counts in equal-width buckets over [min, max] of the finite values. */
const histogram = v.pipe(
  v.object({
    step: v.number(),
    wall_time: wallTime,
    min: finiteOrNull,
    max: finiteOrNull,
    counts: v.optional(v.array(count), []),
    nan_count: count,
    neg_inf_count: count,
    pos_inf_count: count,
  }),
  v.transform(({wall_time, nan_count, neg_inf_count, pos_inf_count, ...h}) => ({
    ...h,
    wallTime: wall_time,
    nanCount: nan_count,
    negInfCount: neg_inf_count,
    posInfCount: pos_inf_count,
  })),
);
export type Histogram = v.InferOutput<typeof histogram>;

/** One run of a `histograms` response: its histograms, or why it has none. */
const runHistograms = v.pipe(
  v.object({
    run: v.string(),
    layer: v.optional(v.string(), ''),
    histograms: v.optional(v.array(histogram), []),
    missing: v.optional(v.string()),
  }),
  v.transform((r) => ({
    run: r.run,
    layer: r.layer,
    histograms: r.histograms,
    /** Why the run has no histograms of that variable and kind; null when it has. */
    missing: r.missing ?? null,
  })),
);
export type RunHistograms = v.InferOutput<typeof runHistograms>;

export const histogramSet = v.object({
  variable: v.string(),
  kind: v.optional(histogramKind, 'weight'),
  runs: v.array(runHistograms),
});
export type HistogramSet = v.InferOutput<typeof histogramSet>;

const kernelImage = v.pipe(
  v.object({
    step: v.number(),
    wall_time: wallTime,
    width: v.number(),
    height: v.number(),
    scale: finiteOrNull,
    filters_shown: v.number(),
    url: v.string(),
  }),
  v.transform((i) => ({
    step: i.step,
    wallTime: i.wall_time,
    width: i.width,
    height: i.height,
    /** The weight drawn at full colour (max |w| over the filters shown). */
    scale: i.scale,
    filtersShown: i.filters_shown,
    /** Relative URL of the PNG. */
    url: i.url,
  })),
);
export type KernelImage = v.InferOutput<typeof kernelImage>;

export const kernelGrid = v.pipe(
  v.object({
    run: v.string(),
    variable: v.string(),
    layer: v.string(),
    mode: v.string(),
    filters_total: v.number(),
    images: v.array(kernelImage),
  }),
  v.transform(({filters_total, ...g}) => ({...g, filtersTotal: filters_total})),
);
export type KernelGrid = v.InferOutput<typeof kernelGrid>;

const severity = v.picklist(['critical', 'warning', 'info']);
export type Severity = v.InferOutput<typeof severity>;

/** One thing the diagnosis found wrong in a run (tb_weightnorm/diagnosis). */
const finding = v.object({
  run: v.string(),
  rule: v.string(),
  severity,
  layer: v.string(),
  /** Empty when the finding is about every variable of the layer, or the whole model. */
  variable: v.optional(v.string(), ''),
  first_step: v.number(),
  last_step: v.number(),
  value: optionalStat,
  threshold: optionalStat,
  message: v.string(),
  ongoing: v.optional(v.boolean(), false),
});
export type Finding = v.InferOutput<typeof finding>;
export const findingsResponse = v.object({findings: v.array(finding)});

/** One weight snapshot of a run (files beside its event files, saved every N epochs). */
const snapshotEntries = {
  /** Epochs trained when it was taken (0: before training). */
  epoch: v.number(),
  step: v.number(),
  wall_time: wallTime,
};
function snapshot(s: {epoch: number; step: number; wall_time: number}) {
  return {epoch: s.epoch, step: s.step, wallTime: s.wall_time};
}
const snapshotInfo = v.pipe(v.object(snapshotEntries), v.transform(snapshot));
export type SnapshotInfo = v.InferOutput<typeof snapshotInfo>;

export const snapshotList = v.object({
  run: v.string(),
  snapshots: v.array(
    v.pipe(
      v.object({...snapshotEntries, variables: count}),
      v.transform((s) => ({...snapshot(s), variables: s.variables})),
    ),
  ),
  /** Files that could not be read, with the reason. */
  skipped: v.optional(v.array(v.object({file: v.string(), reason: v.string()})), []),
});
export type SnapshotList = v.InferOutput<typeof snapshotList>;

/** How far weights moved between two snapshots (tb_weightnorm/snapshots/distance.py). */
const distanceEntries = {
  distance: optionalStat,
  relative: optionalStat,
  norm_from: optionalStat,
  norm_to: optionalStat,
  nonfinite: count,
};

function distanceValues(d: v.InferOutput<v.ObjectSchema<typeof distanceEntries, undefined>>) {
  return {
    /** ‖W_to − W_from‖ over the elements finite in both. */
    distance: d.distance,
    /** distance / ‖W_from‖ (Infinity when W_from is all zeros and they moved). */
    relative: d.relative,
    normFrom: d.norm_from,
    normTo: d.norm_to,
    /** Elements NaN or infinite in either snapshot. */
    nonFinite: d.nonfinite,
  };
}
const distance = v.pipe(v.object(distanceEntries), v.transform(distanceValues));
export type DistanceValues = v.InferOutput<typeof distance>;

const variableDistance = v.pipe(
  v.object({variable: v.string(), shape: v.optional(v.array(v.number()), []), ...distanceEntries}),
  v.transform((x) => ({variable: x.variable, shape: x.shape, ...distanceValues(x)})),
);
export type VariableDistance = v.InferOutput<typeof variableDistance>;

const layerDistance = v.pipe(
  v.object({layer: v.string(), variables: v.optional(v.array(variableDistance), []), ...distanceEntries}),
  v.transform((l) => ({layer: l.layer, variables: l.variables, ...distanceValues(l)})),
);
export type LayerDistance = v.InferOutput<typeof layerDistance>;

export const snapshotDistance = v.object({
  run: v.string(),
  from: snapshotInfo,
  to: snapshotInfo,
  total: distance,
  layers: v.array(layerDistance),
  /** Variables only one snapshot holds, or with another shape. */
  unmatched: v.optional(v.array(v.object({variable: v.string(), reason: v.string()})), []),
});
export type SnapshotDistance = v.InferOutput<typeof snapshotDistance>;

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
