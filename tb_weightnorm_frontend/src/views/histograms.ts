// Weight or gradient histograms of one variable over steps, several runs
// overlaid (TensorBoard's own histogram dashboard shows one run per chart).
// SVG drawn with d3: scales and axes from d3-scale and d3-axis, outlines from
// d3-shape. Names reach the page only as text (textContent, SVG <title> text).

import {axisBottom, axisLeft, axisRight} from 'd3-axis';
import {scaleLinear} from 'd3-scale';
import type {ScaleLinear} from 'd3-scale';
import {create, pointer} from 'd3-selection';
import type {Selection} from 'd3-selection';
import {area, line} from 'd3-shape';
import type {HistogramSet} from '../api/types';
import {formatNumber} from '../ui/format';
import {buildHistogramModel, readoutAt, outlinePoints} from '../models/histogram_model';
import type {HistogramCurve, HistogramModel} from '../models/histogram_model';
import type {Theme} from '../ui/theme';
import {clear, el} from './dom';

export type HistogramMode = 'offset' | 'overlay';

export interface HistogramOptions {
  mode: HistogramMode;
  theme: Theme;
  runColor: (run: string) => string;
  /** Shown instead of the plot when there is nothing to draw, or above it (e.g. while loading). */
  message?: string;
  /** The histogram of each run nearest this step is drawn thicker. */
  markedStep?: number | null;
}

export interface HistogramsView {
  element: HTMLElement;
  update(set: HistogramSet | null, options: HistogramOptions): void;
  destroy(): void;
}

const MODES: readonly {mode: HistogramMode; label: string}[] = [
  {mode: 'offset', label: 'Offset'},
  {mode: 'overlay', label: 'Overlay'},
];

const FALLBACK_WIDTH = 640;
const HEIGHT: Record<HistogramMode, number> = {offset: 340, overlay: 260};
/** Height of one ridge at the largest count in offset mode; ridges of nearby steps overlap. */
const RIDGE = 56;
const MARGIN: Record<HistogramMode, {top: number; right: number; bottom: number; left: number}> = {
  offset: {top: 14, right: 56, bottom: 34, left: 12},
  overlay: {top: 22, right: 16, bottom: 34, left: 52},
};
const FILL_OPACITY = 0.12;
const LINE_WIDTH = 1;
const MARKED_WIDTH = 2.5;

type Svg = Selection<SVGSVGElement, undefined, null, undefined>;

/** Where a histogram is drawn: x of a value, y of a count in that histogram's frame. */
interface Frame {
  x: ScaleLinear<number, number>;
  y: (curve: HistogramCurve, count: number) => number;
  /** The step whose histogram the pointer at height `py` reads. */
  stepAt: (py: number) => number;
}

/**
 * Offset mode, like TensorBoard's: one ridge per step, its baseline placed by
 * a scale of steps (first step at the back, the last at the front), every
 * ridge on the same count scale so heights compare.
 */
function drawOffsetAxes(svg: Svg, model: HistogramModel, width: number, theme: Theme): Frame {
  const m = MARGIN.offset;
  const height = HEIGHT.offset;
  const x = scaleLinear().domain(model.valueDomain).range([m.left, width - m.right]);
  const stepY = scaleLinear().domain(model.stepDomain).range([m.top + RIDGE, height - m.bottom]);
  const ridge = scaleLinear().domain(model.countDomain).range([0, RIDGE]);
  const steps = model.stepDomain[1] - model.stepDomain[0];
  axis(svg, theme, `translate(0,${height - m.bottom})`).call(axisBottom(x).ticks(Math.max(2, Math.floor(width / 90))));
  axis(svg, theme, `translate(${width - m.right},0)`).call(
    axisRight(stepY)
      .ticks(Math.max(1, Math.min(6, steps)))
      .tickFormat((s) => formatNumber(Number(s))),
  );
  caption(svg, theme, width - m.right + 6, m.top - 4, 'step', 'start');
  caption(svg, theme, width - m.right, height - 4, model.kind, 'end');
  return {
    x,
    y: (curve, count) => stepY(curve.step) - ridge(count),
    stepAt: (py) => stepY.invert(py),
  };
}

/** Overlay mode: every histogram on one value axis and one count axis. */
function drawOverlayAxes(svg: Svg, model: HistogramModel, width: number, theme: Theme, markedStep: number | null): Frame {
  const m = MARGIN.overlay;
  const height = HEIGHT.overlay;
  const x = scaleLinear().domain(model.valueDomain).range([m.left, width - m.right]);
  const y = scaleLinear().domain(model.countDomain).nice().range([height - m.bottom, m.top]);
  axis(svg, theme, `translate(0,${height - m.bottom})`).call(axisBottom(x).ticks(Math.max(2, Math.floor(width / 90))));
  axis(svg, theme, `translate(${m.left},0)`).call(axisLeft(y).ticks(4));
  caption(svg, theme, m.left - 6, m.top - 10, 'count', 'end');
  caption(svg, theme, width - m.right, height - 4, model.kind, 'end');
  // No step under the pointer here: read the marked histogram, else the last.
  const readStep = markedStep ?? model.stepDomain[1];
  return {x, y: (_curve, count) => y(count), stepAt: () => readStep};
}

function axis(svg: Svg, theme: Theme, transform: string): Selection<SVGGElement, undefined, null, undefined> {
  // d3-axis strokes and fills with currentColor.
  return svg.append('g').attr('class', 'wh-hist-axis').attr('transform', transform).attr('color', theme.muted);
}

function caption(svg: Svg, theme: Theme, x: number, y: number, text: string, anchor: string): void {
  svg
    .append('text')
    .attr('class', 'wh-hist-caption')
    .attr('x', x)
    .attr('y', y)
    .attr('text-anchor', anchor)
    .attr('fill', theme.muted)
    .text(text);
}

/**
 * The order the histograms are painted in: earlier steps first so later ones
 * lie in front, runs of one step next to each other, marked ones last (on top).
 */
function paintOrder(model: HistogramModel): HistogramCurve[] {
  const curves = model.runs.flatMap((r) => r.curves).filter((c) => c.buckets.length > 0);
  const runIndex = new Map(model.runs.map((r, i) => [r.run, i]));
  return curves.sort(
    (a, b) => Number(a.marked) - Number(b.marked) || a.step - b.step || runIndex.get(a.run)! - runIndex.get(b.run)!,
  );
}

function drawCurves(svg: Svg, model: HistogramModel, frame: Frame, options: HistogramOptions): void {
  const offset = options.mode === 'offset';
  for (const curve of paintOrder(model)) {
    const points = outlinePoints(curve.buckets);
    const color = options.runColor(curve.run);
    const g = svg
      .append('g')
      .attr('class', curve.marked ? 'wh-hist-curve marked' : 'wh-hist-curve')
      .attr('data-run', curve.run)
      .attr('data-step', curve.step);
    g.append('title').text(`${curve.run} \u00b7 step ${curve.step}`);
    const px = (p: [number, number]) => frame.x(p[0]);
    if (offset) {
      const fill = area<[number, number]>()
        .x(px)
        .y0(frame.y(curve, 0))
        .y1((p) => frame.y(curve, p[1]));
      g.append('path').attr('d', fill(points)).attr('fill', color).attr('fill-opacity', FILL_OPACITY).attr('stroke', 'none');
    }
    const outline = line<[number, number]>()
      .x(px)
      .y((p) => frame.y(curve, p[1]));
    g.append('path')
      .attr('d', outline(points))
      .attr('fill', 'none')
      .attr('stroke', color)
      .attr('stroke-width', curve.marked ? MARKED_WIDTH : LINE_WIDTH)
      .attr('stroke-opacity', offset || curve.marked ? 1 : curve.opacity);
  }
}

function readoutText(model: HistogramModel, value: number, step: number): string {
  return readoutAt(model, value, step)
    .map((r) => `${r.run} \u00b7 step ${r.step} \u00b7 [${formatNumber(r.bucket.x0)}, ${formatNumber(r.bucket.x1)}]: ${formatNumber(r.bucket.count)}`)
    .join('\n');
}

function drawPlot(model: HistogramModel, options: HistogramOptions, width: number, readout: HTMLElement): SVGSVGElement {
  const height = HEIGHT[options.mode];
  const svg: Svg = create('svg')
    .attr('class', 'wh-hist-svg')
    .attr('width', width)
    .attr('height', height)
    .attr('viewBox', `0 0 ${width} ${height}`)
    .attr('role', 'img')
    .attr('aria-label', `${model.kind} histograms of ${model.variable}`);
  const frame =
    options.mode === 'offset'
      ? drawOffsetAxes(svg, model, width, options.theme)
      : drawOverlayAxes(svg, model, width, options.theme, options.markedStep ?? null);
  drawCurves(svg, model, frame, options);
  svg
    .on('pointermove', (event: PointerEvent) => {
      const [px, py] = pointer(event);
      readout.textContent = readoutText(model, frame.x.invert(px), frame.stepAt(py));
    })
    .on('pointerleave', () => {
      readout.textContent = '';
    });
  return svg.node()!;
}

function legendItem(run: string, color: string): HTMLElement {
  const swatch = el('span', {className: 'wh-swatch'});
  swatch.style.background = color;
  return el('span', {className: 'wh-hist-run', testId: 'hist-run'}, [swatch, document.createTextNode(run)]);
}

function modeButton(mode: HistogramMode, label: string, onMode: (mode: HistogramMode) => void): HTMLButtonElement {
  const button = el('button', {className: 'wh-hist-mode', text: label, testId: `hist-mode-${mode}`, attrs: {type: 'button', 'aria-pressed': 'false'}});
  button.dataset.mode = mode;
  button.addEventListener('click', () => {
    if (button.getAttribute('aria-pressed') !== 'true') onMode(mode);
  });
  return button;
}

function fillNotes(box: HTMLElement, notes: readonly string[], color: string): void {
  clear(box);
  for (const note of notes) {
    const p = el('p', {className: 'wh-hist-notetext', text: note});
    p.style.color = color;
    box.appendChild(p);
  }
  box.hidden = notes.length === 0;
}

export function createHistograms(handlers: {onMode: (mode: HistogramMode) => void}): HistogramsView {
  const title = el('h2', {className: 'wh-title', text: 'Histograms'});
  const buttons = MODES.map(({mode, label}) => modeButton(mode, label, handlers.onMode));
  const modes = el('div', {className: 'wh-hist-modes', attrs: {role: 'group', 'aria-label': 'Histogram layout'}}, buttons);
  const legend = el('div', {className: 'wh-hist-legend', testId: 'hist-legend'});
  const plot = el('div', {className: 'wh-hist-plot'});
  const readout = el('div', {className: 'wh-hist-readout', testId: 'hist-readout', attrs: {'aria-live': 'polite'}});
  const message = el('p', {className: 'wh-hint', testId: 'hist-message'});
  const missing = el('div', {className: 'wh-hist-notes', testId: 'hist-missing'});
  const nonFinite = el('div', {className: 'wh-hist-notes', testId: 'hist-nonfinite'});
  const element = el('section', {className: 'wh-section wh-hist', testId: 'histograms'}, [
    el('div', {className: 'wh-hist-head'}, [title, modes]),
    legend,
    message,
    plot,
    readout,
    nonFinite,
    missing,
  ]);
  // The last update, redrawn when the panel's width changes.
  let last: {model: HistogramModel; options: HistogramOptions} | null = null;
  let drawnWidth = 0;

  const redraw = () => {
    clear(plot);
    readout.textContent = '';
    if (!last) return;
    drawnWidth = plot.clientWidth || FALLBACK_WIDTH;
    plot.appendChild(drawPlot(last.model, last.options, drawnWidth, readout));
  };
  const resizer =
    typeof ResizeObserver === 'undefined'
      ? null
      : new ResizeObserver(() => {
          if (last && plot.clientWidth > 0 && plot.clientWidth !== drawnWidth) redraw();
        });
  resizer?.observe(plot);

  return {
    element,
    update(set, options) {
      for (const button of buttons) button.setAttribute('aria-pressed', String(button.dataset.mode === options.mode));
      const model = set ? buildHistogramModel(set, options.markedStep ?? null) : null;
      title.textContent = set ? `${set.kind} histograms of ${set.variable}` : 'Histograms';
      clear(legend);
      for (const r of model?.runs ?? []) legend.appendChild(legendItem(r.run, options.runColor(r.run)));
      fillNotes(missing, model?.missingNotes ?? [], options.theme.muted);
      fillNotes(nonFinite, model?.nonFiniteNotes ?? [], options.theme.nonFinite);
      const drawable = model !== null && model.runs.length > 0;
      const text = options.message ?? (drawable ? '' : set ? 'No run has histograms of this variable.' : 'No histograms.');
      message.textContent = text;
      message.hidden = text === '';
      plot.hidden = !drawable;
      last = drawable ? {model, options} : null;
      redraw();
    },
    destroy() {
      resizer?.disconnect();
      last = null;
      clear(plot);
    },
  };
}
