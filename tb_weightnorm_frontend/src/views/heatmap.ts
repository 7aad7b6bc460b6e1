// The overview heatmap: one stat of every layer (rows, model order) over steps
// (columns), on a canvas. Cells are one pixel each in an ImageData, scaled up
// without smoothing, so 1,000 layers × 2,000 columns cost one drawImage. Axes
// and the colour legend are SVG from d3-axis; names reach the page only as text.

import {axisBottom} from 'd3-axis';
import {create, pointer, select} from 'd3-selection';
import type {Heatmap} from '../api/types';
import {formatNumber} from '../ui/format';
import {
  SCHEME,
  buildHeatmapModel,
  cellAt,
  cellReadout,
  columnLeft,
  columnOfStep,
  layoutHeatmap,
  legendTicks,
  positionScale,
  rowName,
  rowTop,
  stepScale,
  stepTicks,
} from '../models/heatmap_model';
import type {HeatmapLayout, HeatmapModel, ValueScale} from '../models/heatmap_model';
import {LIGHT, type Theme} from '../ui/theme';
import {clear, el} from './dom';

export interface HeatmapViewOptions {
  theme: Theme;
  /** Shown instead of the heatmap when it is null or empty, else above it (e.g. while loading). */
  message?: string;
  /** Its row is outlined. */
  selectedLayer?: string | null;
  /** Its column gets a vertical marker. */
  markedStep?: number | null;
}

export interface HeatmapView {
  element: HTMLElement;
  /** Draws `heatmap`, or shows `message` when null. `selectedLayer` is outlined; `markedStep` gets a vertical marker. */
  update(heatmap: Heatmap | null, options: HeatmapViewOptions): void;
  /** The width in CSS pixels the canvas has for columns, so the app can ask the server for that many columns. */
  columnsWanted(): number;
  destroy(): void;
}

export interface HeatmapHandlers {
  onSelect: (layer: string, step: number) => void;
}

/** The row labels' gutter; kept when labels are hidden so the column width does not jump. */
const LABEL_WIDTH = 160;
/** The iframe may be hidden (another tab) when first drawn: clientWidth is 0 then. */
const FALLBACK_WIDTH = 800;
const AXIS_HEIGHT = 32;
const LEGEND_WIDTH = 220;
const LEGEND_MARGIN = 16;
const RAMP_HEIGHT = 10;
const RAMP_STEPS = 64;
/** Browsers refuse larger canvases (Safari: 16384 px a side); fewer device pixels instead. */
const MAX_CANVAS_PIXELS = 16384;
const TOOLTIP_OFFSET = 14;
/**
 * A `performance.mark` set each time cells are painted, with `{rows, columns}`
 * as its detail: how long the tab takes to show a run can be measured from outside.
 */
export const HEATMAP_DRAWN_MARK = 'weight_health:heatmap_drawn';

/** The cells at one pixel each, on a canvas that drawImage can scale. Null without a 2D context. */
function cellImage(model: HeatmapModel): HTMLCanvasElement | null {
  if (model.columns === 0 || model.rows.length === 0) return null;
  const image = document.createElement('canvas');
  image.width = model.columns;
  image.height = model.rows.length;
  const context = image.getContext('2d');
  if (!context) return null;
  const pixels = context.createImageData(model.columns, model.rows.length);
  new Uint32Array(pixels.data.buffer).set(model.colors);
  context.putImageData(pixels, 0, 0);
  return image;
}

/** Sizes the canvas for the layout at the device's pixel ratio; returns a context drawing in CSS pixels. */
function sizeCanvas(canvas: HTMLCanvasElement, layout: HeatmapLayout): CanvasRenderingContext2D | null {
  const ratio = Math.min(window.devicePixelRatio || 1, MAX_CANVAS_PIXELS / Math.max(layout.width, layout.height, 1));
  const width = Math.max(1, Math.round(layout.width * ratio));
  const height = Math.max(1, Math.round(layout.height * ratio));
  // Setting a canvas's size reallocates it, even to the same size: only when it changed.
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
    canvas.style.width = `${layout.width}px`;
    canvas.style.height = `${layout.height}px`;
  }
  const context = canvas.getContext('2d');
  context?.setTransform(ratio, 0, 0, ratio, 0, 0);
  return context;
}

/** Two strokes, the theme's background under its text colour, so a line shows on any cell colour. */
function strokeWithHalo(context: CanvasRenderingContext2D, theme: Theme, path: () => void): void {
  for (const [color, width] of [[theme.background, 3], [theme.text, 1.5]] as const) {
    context.beginPath();
    path();
    context.strokeStyle = color;
    context.lineWidth = width;
    context.stroke();
  }
}

interface Marks {
  selectedRow: number | null;
  markedColumn: number | null;
}

function paint(context: CanvasRenderingContext2D, image: HTMLCanvasElement, layout: HeatmapLayout, theme: Theme, marks: Marks): void {
  const {width, height, rowHeight, columns, layerRows, globalRows} = layout;
  context.fillStyle = theme.background;
  context.fillRect(0, 0, width, height);
  // Nearest neighbour: each cell stays a flat block, however many pixels it spans.
  context.imageSmoothingEnabled = false;
  if (layerRows > 0) context.drawImage(image, 0, 0, columns, layerRows, 0, 0, width, layerRows * rowHeight);
  if (globalRows > 0) {
    context.drawImage(image, 0, layerRows, columns, globalRows, 0, layout.globalTop, width, globalRows * rowHeight);
  }
  const {selectedRow, markedColumn} = marks;
  if (selectedRow !== null) {
    const top = rowTop(layout, selectedRow);
    strokeWithHalo(context, theme, () => context.rect(0.75, top + 0.75, width - 1.5, Math.max(1, rowHeight - 1.5)));
  }
  if (markedColumn !== null) {
    const x = (columnLeft(layout, markedColumn) + columnLeft(layout, markedColumn + 1)) / 2;
    strokeWithHalo(context, theme, () => {
      context.moveTo(x, 0);
      context.lineTo(x, height);
    });
  }
}

/** A colour bar of `scale` with its ticks (d3-axis) under it. */
function scaleLegend(scale: ValueScale, theme: Theme): SVGSVGElement {
  const svg = create('svg')
    .attr('class', 'wh-heatmap-ramp')
    .attr('width', LEGEND_WIDTH + 2 * LEGEND_MARGIN)
    .attr('height', RAMP_HEIGHT + 22);
  const ramp = svg.append('g').attr('transform', `translate(${LEGEND_MARGIN},0)`);
  // The ramp is even in the scale's own terms (log, symlog or linear), as the axis below it is.
  for (let i = 0; i < RAMP_STEPS; i++) {
    ramp
      .append('rect')
      .attr('x', (i * LEGEND_WIDTH) / RAMP_STEPS)
      .attr('width', LEGEND_WIDTH / RAMP_STEPS + 0.5)
      .attr('height', RAMP_HEIGHT)
      .attr('fill', SCHEME((i + 0.5) / RAMP_STEPS));
  }
  const ticks = legendTicks(scale);
  const labels = new Map(ticks.map((t) => [t.value, t.label]));
  svg
    .append('g')
    .attr('class', 'wh-heatmap-legend-axis')
    .attr('transform', `translate(${LEGEND_MARGIN},${RAMP_HEIGHT})`)
    .attr('color', theme.muted)
    .call(
      axisBottom(positionScale(scale, [0, LEGEND_WIDTH]))
        .tickValues(ticks.map((t) => t.value))
        .tickFormat((value) => labels.get(Number(value)) ?? ''),
    );
  return svg.node()!;
}

function swatch(color: string, text: string, theme: Theme): HTMLElement {
  const box = el('span', {className: 'wh-heatmap-swatch'});
  box.style.background = color;
  box.style.borderColor = theme.grid;
  return el('span', {className: 'wh-heatmap-key'}, [box, document.createTextNode(text)]);
}

function drawLegend(legend: HTMLElement, model: HeatmapModel, theme: Theme): void {
  clear(legend);
  legend.appendChild(
    el('div', {className: 'wh-heatmap-scale', attrs: {'data-scale': model.layerScale.kind}}, [
      el('span', {className: 'wh-heatmap-legend-title', text: model.stat}),
      scaleLegend(model.layerScale, theme),
    ]),
  );
  // The global row has its own scale: on the layers' scale it would be one flat top colour.
  if (model.globalScale) {
    legend.appendChild(
      el('div', {className: 'wh-heatmap-scale global', attrs: {'data-scale': model.globalScale.kind}}, [
        el('span', {className: 'wh-heatmap-legend-title', text: 'global row (own scale)'}),
        scaleLegend(model.globalScale, theme),
      ]),
    );
  }
  legend.appendChild(swatch(theme.nonFinite, 'NaN/Inf', theme));
  legend.appendChild(swatch(theme.missing, 'not measured', theme));
  legend.style.color = theme.muted;
}

function drawStepAxis(axis: SVGSVGElement, model: HeatmapModel, layout: HeatmapLayout, theme: Theme): void {
  const svg = select(axis).attr('width', LABEL_WIDTH + layout.width).attr('height', AXIS_HEIGHT);
  svg.selectAll('*').remove();
  const x = stepScale(model.steps, model.firstSteps, layout.width);
  svg
    .append('g')
    .attr('transform', `translate(${LABEL_WIDTH},0)`)
    .attr('color', theme.muted)
    .call(
      axisBottom(x)
        .tickValues(stepTicks(x, Math.max(2, Math.floor(layout.width / 90))))
        .tickFormat((step) => formatNumber(Number(step))),
    );
  svg
    .append('text')
    .attr('x', LABEL_WIDTH - 6)
    .attr('y', 14)
    .attr('text-anchor', 'end')
    .attr('fill', theme.muted)
    .text('step');
}

/** Row names as DOM text when rows are tall enough to read, else a count (names are in the tooltip). */
function drawLabels(labels: HTMLElement, model: HeatmapModel, layout: HeatmapLayout, selected: string | null, theme: Theme): void {
  clear(labels);
  labels.style.height = `${layout.height}px`;
  labels.style.color = theme.text;
  if (!layout.showLabels) {
    const count = `${model.layerRows} ${model.by === 'layer' ? 'layers' : 'variables'}; hover a row for its name`;
    labels.appendChild(el('div', {className: 'wh-heatmap-count', text: count}));
    return;
  }
  model.rows.forEach((row, index) => {
    const name = rowName(row, model.by);
    const label = el('div', {className: 'wh-heatmap-label', text: name, attrs: {title: name, 'data-layer': row.layer}});
    label.classList.toggle('selected', !row.global && row.layer === selected);
    label.style.top = `${rowTop(layout, index)}px`;
    label.style.height = label.style.lineHeight = `${layout.rowHeight}px`;
    labels.appendChild(label);
  });
}

function fillTooltip(tooltip: HTMLElement, model: HeatmapModel, row: number, column: number): void {
  const cell = cellReadout(model, row, column);
  tooltip.dataset.layer = cell.layer;
  tooltip.dataset.step = String(cell.step);
  clear(tooltip);
  tooltip.append(
    el('div', {className: 'wh-heatmap-tip-name', text: cell.name}),
    el('div', {text: cell.steps}),
    el('div', {className: 'wh-heatmap-tip-value', text: `${model.stat} = ${cell.value}`}),
  );
}

function placeTooltip(tooltip: HTMLElement, event: MouseEvent): void {
  // position: fixed, so the scrolling panel does not clip it; flipped left near the right edge.
  const flip = event.clientX > (window.innerWidth || FALLBACK_WIDTH) / 2;
  tooltip.style.left = `${event.clientX + (flip ? -TOOLTIP_OFFSET : TOOLTIP_OFFSET)}px`;
  tooltip.style.top = `${event.clientY + TOOLTIP_OFFSET}px`;
  tooltip.style.transform = flip ? 'translateX(-100%)' : '';
}

function describe(model: HeatmapModel): string {
  const rows = model.by === 'layer' ? 'layers' : 'variables';
  return `Heatmap of ${model.stat}: ${model.layerRows} ${rows} (rows) over ${model.columns} step columns. Hover a cell for its value; click it to open that layer at that step.`;
}

function thinningNote(heatmap: Heatmap): string {
  if (heatmap.loggedSteps <= heatmap.steps.length) return 'Click a cell to open its layer at that step.';
  return `${heatmap.loggedSteps} logged steps in ${heatmap.steps.length} columns (${heatmap.reduce} of each). Click a cell to open its layer at that step.`;
}

export function createHeatmap(handlers: HeatmapHandlers): HeatmapView {
  const title = el('h2', {className: 'wh-title', text: 'Heatmap'});
  const legend = el('div', {className: 'wh-heatmap-legend', testId: 'heatmap-legend'});
  const labels = el('div', {className: 'wh-heatmap-labels'});
  labels.style.width = `${LABEL_WIDTH}px`;
  const canvas = el('canvas', {className: 'wh-heatmap-canvas', attrs: {role: 'img'}});
  const scroll = el('div', {className: 'wh-heatmap-scroll'}, [el('div', {className: 'wh-heatmap-body'}, [labels, canvas])]);
  const axis = create('svg').attr('class', 'wh-heatmap-axis').attr('data-testid', 'heatmap-axis').node()!;
  const message = el('p', {className: 'wh-hint wh-heatmap-message', testId: 'heatmap-message'});
  const note = el('p', {className: 'wh-hint'});
  const tooltip = el('div', {className: 'wh-heatmap-tooltip', testId: 'heatmap-tooltip', attrs: {role: 'tooltip'}});
  tooltip.hidden = true;
  const plot = el('div', {className: 'wh-heatmap-plot'}, [legend, scroll, axis, note]);
  const element = el('section', {className: 'wh-section wh-heatmap', testId: 'heatmap', attrs: {'aria-label': 'Heatmap of a stat by layer and step'}}, [
    title,
    message,
    plot,
    tooltip,
  ]);

  let shown: Heatmap | null = null;
  let theme: Theme = LIGHT;
  let model: HeatmapModel | null = null;
  let image: HTMLCanvasElement | null = null;
  let layout: HeatmapLayout | null = null;
  let selectedLayer: string | null = null;
  let markedStep: number | null = null;
  // What the canvas shows; painting again is skipped when nothing of it changed.
  let painted: unknown[] = [];

  const plotWidth = () => Math.max(1, (scroll.clientWidth || FALLBACK_WIDTH) - LABEL_WIDTH);

  const marks = (current: HeatmapModel): Marks => {
    const row = selectedLayer === null ? -1 : current.rows.findIndex((r) => !r.global && r.layer === selectedLayer);
    return {
      selectedRow: row < 0 ? null : row,
      markedColumn: markedStep === null ? null : columnOfStep(current.steps, current.firstSteps, markedStep),
    };
  };

  /** Lays out and paints for the current width; cheap when nothing changed. */
  const render = () => {
    if (!model || !shown) return;
    const width = plotWidth();
    const key = [model, width, selectedLayer, markedStep];
    if (key.every((part, i) => part === painted[i])) return;
    const axisStale = !layout || layout.width !== width || model !== painted[0];
    layout = layoutHeatmap(model.layerRows, model.rows.length - model.layerRows, model.columns, width);
    if (axisStale) drawStepAxis(axis, model, layout, theme);
    drawLabels(labels, model, layout, selectedLayer, theme);
    const context = sizeCanvas(canvas, layout);
    if (context && image) {
      paint(context, image, layout, theme, marks(model));
      performance.mark?.(HEATMAP_DRAWN_MARK, {detail: {rows: model.rows.length, columns: model.columns}});
    }
    painted = key;
  };

  /** The model, image, legend and texts: once per heatmap and theme. */
  const rebuild = (heatmap: Heatmap) => {
    model = buildHeatmapModel(heatmap, theme);
    image = cellImage(model);
    layout = null;
    painted = [];
    tooltip.hidden = true;
    title.textContent = `${heatmap.stat} by ${heatmap.by} and step`;
    element.setAttribute('aria-label', describe(model));
    canvas.setAttribute('aria-label', describe(model));
    element.dataset.scale = model.layerScale.kind;
    note.textContent = thinningNote(heatmap);
    drawLegend(legend, model, theme);
  };

  const applyTheme = () => {
    element.style.background = theme.background;
    element.style.color = theme.text;
    element.style.borderColor = theme.grid;
    tooltip.style.background = theme.background;
    tooltip.style.color = theme.text;
    tooltip.style.borderColor = theme.grid;
    message.style.color = note.style.color = theme.muted;
  };
  applyTheme();

  const hoveredCell = (event: MouseEvent) => {
    if (!model || !layout) return null;
    const [x, y] = pointer(event, canvas);
    const cell = cellAt(layout, x, y);
    return cell && {...cell, global: model.rows[cell.row].global};
  };

  // O(1) per move: arithmetic to find the cell, a few text nodes, the tooltip moved.
  canvas.addEventListener('mousemove', (event) => {
    const cell = hoveredCell(event);
    tooltip.hidden = cell === null;
    canvas.style.cursor = cell && !cell.global ? 'pointer' : 'default';
    if (!cell || !model) return;
    fillTooltip(tooltip, model, cell.row, cell.column);
    placeTooltip(tooltip, event);
  });
  canvas.addEventListener('mouseleave', () => {
    tooltip.hidden = true;
  });
  canvas.addEventListener('click', (event) => {
    const cell = hoveredCell(event);
    // The global row is no layer: there is nothing to open.
    if (!cell || cell.global || !model) return;
    handlers.onSelect(model.rows[cell.row].layer, model.steps[cell.column]);
  });

  // The iframe may be hidden when first drawn, then shown: follow the width.
  const resizer = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(() => render());
  resizer?.observe(scroll);

  return {
    element,
    update(heatmap, options) {
      const themeChanged = options.theme !== theme;
      theme = options.theme;
      selectedLayer = options.selectedLayer ?? null;
      markedStep = options.markedStep ?? null;
      if (themeChanged) applyTheme();
      const drawable = heatmap !== null && heatmap.rows.length > 0 && heatmap.steps.length > 0;
      const text = options.message ?? (drawable ? '' : heatmap ? `No values of ${heatmap.stat} to draw.` : 'Nothing to draw.');
      message.textContent = text;
      message.hidden = text === '';
      plot.hidden = !drawable;
      if (heatmap === null || !drawable) {
        shown = null;
        model = null;
        image = null;
        layout = null;
        painted = [];
        tooltip.hidden = true;
        return;
      }
      if (heatmap !== shown || themeChanged || !model) rebuild(heatmap);
      shown = heatmap;
      render();
    },
    columnsWanted: plotWidth,
    destroy() {
      resizer?.disconnect();
      tooltip.hidden = true;
      image = null;
    },
  };
}
