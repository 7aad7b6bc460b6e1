// What the overview heatmap (layers × steps of one stat) draws: colour scales,
// legend ticks, the colour of every cell, and where rows and columns lie. Pure:
// no DOM, so the view only moves pixels and the rules are tested here.

import {scaleLinear, scaleLog, scaleSymlog} from 'd3-scale';
import {interpolateViridis} from 'd3-scale-chromatic';
import {isNormLike} from './chart_data';
import type {Heatmap, HeatmapRow, StatValue} from '../api/types';
import {formatNumber} from '../ui/format';
import type {Theme} from '../ui/theme';

/** Perceptually uniform and readable in grey; has no red, so NaN/Inf (theme.nonFinite) stands out. */
export const SCHEME: (t: number) => string = interpolateViridis;

export type ScaleKind = 'log' | 'symlog' | 'linear';

/** How values map to colours: the scale's kind and the values at its two ends. */
export interface ValueScale {
  kind: ScaleKind;
  domain: [number, number];
  /** Symlog only: where the log part begins (the smallest non-zero |value|). */
  constant: number;
}

export interface LegendTick {
  value: number;
  /** Empty for a minor tick (a log scale labels only some of its ticks). */
  label: string;
}

function isMeasured(value: StatValue): value is number {
  return value !== null && Number.isFinite(value);
}

/**
 * The scale for `rows` (null and NaN/±Infinity left out): log for a magnitude
 * whose values are all > 0; symlog for a magnitude with zeros, so that the
 * non-zero values keep their orders of magnitude; linear for anything else
 * (mean, min, max, dead_fraction), which can be ≤ 0 and is read as a value.
 */
export function chooseScale(stat: string, rows: readonly HeatmapRow[]): ValueScale {
  let low = Infinity;
  let high = -Infinity;
  let smallestMagnitude = Infinity;
  for (const row of rows) {
    for (const value of row.values) {
      if (!isMeasured(value)) continue;
      low = Math.min(low, value);
      high = Math.max(high, value);
      if (value !== 0) smallestMagnitude = Math.min(smallestMagnitude, Math.abs(value));
    }
  }
  if (low > high) return {kind: 'linear', domain: [0, 1], constant: 1};
  const constant = Number.isFinite(smallestMagnitude) ? smallestMagnitude : 1;
  const kind: ScaleKind = !isNormLike(stat) ? 'linear' : low > 0 ? 'log' : 'symlog';
  return {kind, domain: [low, high], constant};
}

/** A position scale of the same kind, for the legend's axis. */
export function positionScale(scale: ValueScale, range: [number, number]) {
  if (scale.kind === 'log') return scaleLog().domain(scale.domain).range(range);
  if (scale.kind === 'symlog') return scaleSymlog().constant(scale.constant).domain(scale.domain).range(range);
  return scaleLinear().domain(scale.domain).range(range);
}

/**
 * Where a finite value falls along the colour ramp, 0 to 1. The same d3 scale
 * as the legend's axis, so cells and legend cannot disagree; clamped (to the
 * domain, before the log), so on a log scale a value ≤ 0 gets the lowest colour.
 */
export function rampPosition(scale: ValueScale) {
  return positionScale(scale, [0, 1]).clamp(true);
}

/** The powers of ten from `low` to `high` (both > 0). */
function powersOfTen(low: number, high: number): number[] {
  const powers: number[] = [];
  for (let e = Math.ceil(Math.log10(low) - 1e-9); 10 ** e <= high * (1 + 1e-9); e++) powers.push(Number(`1e${e}`));
  return powers;
}

/** Every n-th value, so that at most `count` + 1 remain. */
function thin(values: number[], count: number): number[] {
  const every = Math.ceil(values.length / (count + 1));
  return values.filter((_, i) => i % every === 0);
}

const labelled = (values: number[]): LegendTick[] => values.map((value) => ({value, label: formatNumber(value)}));

/**
 * A log or symlog legend is labelled at powers of ten (orders of magnitude are
 * what it shows); a log scale adds d3's 2..9 multiples as unlabelled ticks.
 * Spanning too few powers of ten, it gets a few plain ticks instead.
 */
function logTicks(scale: ValueScale, count: number): LegendTick[] {
  const [low, high] = scale.domain;
  const plain = () => labelled(scaleLinear().domain(scale.domain).ticks(Math.min(count, 3)));
  if (scale.kind === 'log') {
    const major = thin(powersOfTen(low, high), count);
    if (major.length < 2) return plain();
    const minor = positionScale(scale, [0, 1]).ticks(count).filter((v) => !major.includes(v));
    return [...labelled(major), ...minor.map((value) => ({value, label: ''}))].sort((a, b) => a.value - b.value);
  }
  // Symlog: 0 where the domain holds it, and the powers of ten either side of it.
  const from = Math.min(scale.constant, Math.max(Math.abs(low), Math.abs(high)));
  const positive = high > 0 ? powersOfTen(Math.max(from, low), high) : [];
  const negative = low < 0 ? powersOfTen(Math.max(from, -high), -low).map((v) => -v).reverse() : [];
  const zero = low <= 0 && high >= 0 ? [0] : [];
  const major = thin([...negative, ...zero, ...positive], count);
  return major.length < 2 ? plain() : labelled(major);
}

/** The legend's ticks, labelled with formatNumber (as the table and the chart are). */
export function legendTicks(scale: ValueScale, count = 5): LegendTick[] {
  if (scale.kind === 'linear') return labelled(scaleLinear().domain(scale.domain).ticks(count));
  return logTicks(scale, count);
}

// Cells are written into an ImageData through a Uint32Array, whose byte order is the platform's.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** A CSS colour (#rgb, #rrggbb or rgb(r, g, b)) as one opaque ImageData pixel. */
export function packColor(css: string): number {
  let r = 0;
  let g = 0;
  let b = 0;
  const hex = css.trim().match(/^#([0-9a-f]{3}|[0-9a-f]{6})$/i);
  const rgb = css.match(/^rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)/i);
  if (hex) {
    const digits = hex[1].length === 3 ? hex[1].replace(/./g, (d) => d + d) : hex[1];
    [r, g, b] = [0, 2, 4].map((i) => parseInt(digits.slice(i, i + 2), 16));
  } else if (rgb) {
    [r, g, b] = [rgb[1], rgb[2], rgb[3]].map(Number);
  }
  const packed = LITTLE_ENDIAN ? (255 << 24) | (b << 16) | (g << 8) | r : (r << 24) | (g << 16) | (b << 8) | 255;
  return packed >>> 0;
}

const RAMP_SIZE = 256;

/** The cell colours of one theme, packed once so that colouring a cell is a table look-up. */
export interface Palette {
  ramp: Uint32Array;
  missing: number;
  nonFinite: number;
}

export function makePalette(theme: Theme): Palette {
  const ramp = new Uint32Array(RAMP_SIZE);
  for (let i = 0; i < RAMP_SIZE; i++) ramp[i] = packColor(SCHEME(i / (RAMP_SIZE - 1)));
  return {ramp, missing: packColor(theme.missing), nonFinite: packColor(theme.nonFinite)};
}

/**
 * The ramp entry of a finite value. The values where the entry changes come
 * from the d3 scale (invert), so colouring a cell is a binary search of 8
 * steps instead of a d3 scale call: about 3 times faster over 2 million cells.
 */
export function rampIndex(scale: ValueScale): (value: number) => number {
  const position = rampPosition(scale);
  const last = RAMP_SIZE - 1;
  // One value only: the middle colour, as d3's sequential scales give it.
  if (scale.domain[0] === scale.domain[1]) return () => Math.round(last / 2);
  const bounds = Float64Array.from({length: last}, (_, i) => position.invert((i + 0.5) / last));
  return (value) => {
    let low = 0;
    let high = last;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (bounds[mid] <= value) low = mid + 1;
      else high = mid;
    }
    return low;
  };
}

/** The colour of one cell: not measured, NaN/±Infinity, or its entry of the ramp. */
export function cellColor(value: StatValue, index: (value: number) => number, palette: Palette): number {
  if (value === null) return palette.missing;
  if (!Number.isFinite(value)) return palette.nonFinite;
  return palette.ramp[index(value)];
}

export interface HeatmapModel {
  stat: string;
  by: Heatmap['by'];
  /** The rows as drawn: the layers in the given order, then the global row(s). */
  rows: HeatmapRow[];
  /** How many of `rows` are layers (the rest are global). */
  layerRows: number;
  columns: number;
  steps: number[];
  firstSteps: number[];
  reduce: string;
  /** The layers' shared scale; the global row is left out of it (it is larger than any layer). */
  layerScale: ValueScale;
  /** The global row's own scale, so it shows its own changes instead of one flat top colour. */
  globalScale: ValueScale | null;
  /** One packed pixel per cell, row after row (rows × columns), for an ImageData. */
  colors: Uint32Array;
}

function paintRows(rows: readonly HeatmapRow[], columns: number, scale: ValueScale, palette: Palette, into: Uint32Array, offset: number): void {
  const index = rampIndex(scale);
  rows.forEach((row, r) => {
    const start = offset + r * columns;
    const broken = row.nonFinite;
    for (let c = 0; c < columns; c++) {
      into[start + c] = broken && broken[c] > 0 ? palette.nonFinite : cellColor(row.values[c] ?? null, index, palette);
    }
  });
}

/** Everything the view draws, computed once per heatmap and theme (never per mouse move). */
export function buildHeatmapModel(heatmap: Heatmap, theme: Theme): HeatmapModel {
  const layers = heatmap.rows.filter((row) => !row.global);
  const globals = heatmap.rows.filter((row) => row.global);
  const columns = heatmap.steps.length;
  const layerScale = chooseScale(heatmap.stat, layers);
  const globalScale = globals.length > 0 ? chooseScale(heatmap.stat, globals) : null;
  const palette = makePalette(theme);
  const colors = new Uint32Array((layers.length + globals.length) * columns);
  paintRows(layers, columns, layerScale, palette, colors, 0);
  if (globalScale) paintRows(globals, columns, globalScale, palette, colors, layers.length * columns);
  return {
    stat: heatmap.stat,
    by: heatmap.by,
    rows: [...layers, ...globals],
    layerRows: layers.length,
    columns,
    steps: heatmap.steps,
    firstSteps: heatmap.firstSteps,
    reduce: heatmap.reduce,
    layerScale,
    globalScale,
    colors,
  };
}

/**
 * What a row is called: its layer, or its variable in a by=variable heatmap.
 * The global row is "(global)" (its variable) either way; its layer is "(model)".
 */
export function rowName(row: HeatmapRow, by: Heatmap['by']): string {
  return (by === 'variable' || row.global) && row.variables.length > 0 ? row.variables[0] : row.layer;
}

// Geometry. Rows are whole CSS pixels tall, so every row is drawn equally tall;
// columns share the width evenly and may be fractional.

const PREFERRED_HEIGHT = 600;
export const MIN_ROW_HEIGHT = 2;
export const MAX_ROW_HEIGHT = 20;
/** Rows shorter than this get no label (the text would not fit). */
export const LABEL_MIN_ROW_HEIGHT = 11;
/** The space between the layers and the global row. */
export const GLOBAL_GAP = 6;

export interface HeatmapLayout {
  width: number;
  columns: number;
  rowHeight: number;
  layerRows: number;
  globalRows: number;
  /** Top of the first global row. */
  globalTop: number;
  height: number;
  showLabels: boolean;
}

/** Few rows are tall (up to 20 px) and labelled; many rows are thin (at least 2 px) and scroll. */
export function layoutHeatmap(layerRows: number, globalRows: number, columns: number, width: number): HeatmapLayout {
  const rowCount = Math.max(1, layerRows + globalRows);
  const rowHeight = Math.min(MAX_ROW_HEIGHT, Math.max(MIN_ROW_HEIGHT, Math.floor(PREFERRED_HEIGHT / rowCount)));
  const layersHeight = layerRows * rowHeight;
  const globalTop = globalRows > 0 && layerRows > 0 ? layersHeight + GLOBAL_GAP : layersHeight;
  return {
    width,
    columns,
    rowHeight,
    layerRows,
    globalRows,
    globalTop,
    height: globalTop + globalRows * rowHeight,
    showLabels: rowHeight >= LABEL_MIN_ROW_HEIGHT,
  };
}

/** Top of row `index` (in drawing order). */
export function rowTop(layout: HeatmapLayout, index: number): number {
  if (index < layout.layerRows) return index * layout.rowHeight;
  return layout.globalTop + (index - layout.layerRows) * layout.rowHeight;
}

export function columnLeft(layout: HeatmapLayout, column: number): number {
  return (column * layout.width) / layout.columns;
}

/** The cell under (x, y), in CSS pixels from the canvas's top left; null outside the cells and in the gap. */
export function cellAt(layout: HeatmapLayout, x: number, y: number): {row: number; column: number} | null {
  if (layout.columns === 0 || x < 0 || x >= layout.width || y < 0 || y >= layout.height) return null;
  const column = Math.min(layout.columns - 1, Math.floor((x * layout.columns) / layout.width));
  const layersHeight = layout.layerRows * layout.rowHeight;
  if (y < layersHeight) return {row: Math.floor(y / layout.rowHeight), column};
  if (y < layout.globalTop) return null;
  return {row: layout.layerRows + Math.floor((y - layout.globalTop) / layout.rowHeight), column};
}

/** The column whose steps (first_steps[i]..steps[i]) hold `step`; null when none does. */
export function columnOfStep(steps: readonly number[], firstSteps: readonly number[], step: number): number | null {
  let low = 0;
  let high = steps.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (steps[mid] < step) low = mid + 1;
    else high = mid;
  }
  return low < steps.length && (firstSteps[low] ?? steps[low]) <= step ? low : null;
}

/**
 * Steps → x for the step axis. Thinned columns need not hold equally many
 * steps, so the scale goes through the middle step of every column (piecewise
 * linear) rather than straight from the first step to the last.
 */
export function stepScale(steps: readonly number[], firstSteps: readonly number[], width: number) {
  const columnWidth = width / Math.max(1, steps.length);
  const domain = steps.map((last, i) => ((firstSteps[i] ?? last) + last) / 2);
  const range = steps.map((_, i) => (i + 0.5) * columnWidth);
  if (steps.length === 0) return scaleLinear().domain([0, 1]).range([0, width]);
  // A thinned first (last) column reaches from its first (to its last) step to the edge.
  const first = firstSteps[0] ?? steps[0];
  if (first < domain[0]) {
    domain.unshift(first);
    range.unshift(0);
  }
  const last = steps[steps.length - 1];
  if (last > domain[domain.length - 1]) {
    domain.push(last);
    range.push(width);
  }
  if (domain.length === 1) return scaleLinear().domain([first - 0.5, first + 0.5]).range([0, width]);
  return scaleLinear().domain(domain).range(range);
}

/** Whole-step ticks of the step axis (a few steps would otherwise get 0.5 steps). */
export function stepTicks(scale: ReturnType<typeof stepScale>, count: number): number[] {
  const domain = scale.domain();
  return scaleLinear()
    .domain([domain[0], domain[domain.length - 1]])
    .ticks(count)
    .filter(Number.isInteger);
}

/** What the tooltip says about one cell. */
export interface CellReadout {
  name: string;
  layer: string;
  global: boolean;
  /** The column's last step (the one a click selects). */
  step: number;
  /** "step 30", or "steps 0..29 (max)" for a thinned column. */
  steps: string;
  value: string;
}

export function cellReadout(model: HeatmapModel, row: number, column: number): CellReadout {
  const cells = model.rows[row];
  const step = model.steps[column];
  const first = model.firstSteps[column] ?? step;
  const value = cells.values[column] ?? null;
  const broken = cells.nonFinite?.[column] ?? 0;
  const measured = value === null ? 'not measured' : formatNumber(value);
  return {
    name: rowName(cells, model.by),
    layer: cells.layer,
    global: cells.global,
    step,
    steps: first === step ? `step ${step}` : `steps ${first}..${step} (${model.reduce})`,
    // The value is over the finite elements: say what it leaves out.
    value: broken > 0 ? `${measured} (over finite values; ${formatNumber(broken)} NaN/Inf)` : measured,
  };
}
