// A line chart of one stat over steps (uPlot): one line per run and variable.

import uPlot from 'uplot';
import type {ChartModel} from '../models/chart_data';
import {formatNumber} from '../ui/format';
import {LIGHT, type Theme} from '../ui/theme';
import {el} from './dom';

const HEIGHT = 240;

/** Stats that are shares of a whole, between 0 and 1. */
function isShare(stat: string): boolean {
  return stat.endsWith('/dead_fraction');
}
const FALLBACK_WIDTH = 480;

export interface ChartOptions {
  theme?: Theme;
  /** A step to mark with a vertical line (the step the user is looking at). */
  markedStep?: number | null;
  /** What to say instead of a chart when there is nothing to draw. */
  message?: string;
}

export interface ChartView {
  element: HTMLElement;
  /** Draws `model`, or shows the message when there is nothing to draw. */
  update(model: ChartModel | null, options?: ChartOptions): void;
  destroy(): void;
}

function axis(theme: Theme, label: string, size: number): uPlot.Axis {
  return {
    label,
    labelSize: 20,
    size,
    stroke: theme.muted,
    grid: {stroke: theme.grid},
    ticks: {stroke: theme.grid},
  };
}

function plotOptions(model: ChartModel, width: number, theme: Theme, marked: () => number | null): uPlot.Options {
  return {
    width,
    height: HEIGHT,
    scales: {
      x: {time: false},
      // A share is read against its whole range: 0 dead units must not look like a full-height line.
      y: model.logScale ? {distr: 3, log: 10} : isShare(model.stat) ? {range: [0, 1]} : {},
    },
    axes: [
      axis(theme, 'step', 36),
      {
        ...axis(theme, model.stat, 64),
        // uPlot passes null for log-scale ticks it leaves unlabelled.
        values: (_u, splits) => splits.map((v) => (v === null || v === undefined ? '' : formatNumber(v))),
      },
    ],
    series: [
      {label: 'step', value: (_u, v) => (v === null ? '\u2014' : String(v))},
      ...model.lines.map((line) => ({
        label: line.label,
        stroke: line.color,
        dash: line.dash,
        width: 1.5,
        spanGaps: false,
        value: (_u: uPlot, v: number | null) => formatNumber(v),
      })),
    ],
    legend: {live: true},
    cursor: {focus: {prox: 16}},
    focus: {alpha: 0.3},
    hooks: {
      draw: [
        (u) => {
          const step = marked();
          if (step === null) return;
          const x = u.valToPos(step, 'x', true);
          if (!(x >= u.bbox.left && x <= u.bbox.left + u.bbox.width)) return;
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = theme.muted;
          ctx.setLineDash([4, 4]);
          ctx.lineWidth = uPlot.pxRatio;
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        },
      ],
    },
  };
}

export function createChart(testId = 'chart'): ChartView {
  const title = el('h3', {className: 'wh-subtitle'});
  const note = el('p', {className: 'wh-note'});
  const plotArea = el('div', {className: 'wh-plot'});
  const message = el('p', {className: 'wh-hint'});
  const element = el('div', {className: 'wh-chart', testId}, [title, plotArea, message, note]);
  let plot: uPlot | null = null;
  let markedStep: number | null = null;
  // What the current plot was built for; a new model with the same lines only
  // swaps the data (no flicker on TensorBoard's periodic reloads, and lines
  // hidden in the legend stay hidden).
  let plotKey = '';

  const width = () => plotArea.clientWidth || FALLBACK_WIDTH;
  // The iframe may be hidden (another tab) when we draw, then shown: follow its width.
  const resizer =
    typeof ResizeObserver === 'undefined'
      ? null
      : new ResizeObserver(() => {
          if (plot && plotArea.clientWidth > 0 && plotArea.clientWidth !== plot.width) {
            plot.setSize({width: plotArea.clientWidth, height: HEIGHT});
          }
        });
  resizer?.observe(plotArea);

  const destroyPlot = () => {
    plot?.destroy();
    plot = null;
    plotKey = '';
  };

  return {
    element,
    update(model, options = {}) {
      const theme = options.theme ?? LIGHT;
      title.textContent = model ? model.stat : '';
      element.dataset.scale = model?.logScale ? 'log' : 'linear';
      note.textContent =
        model && model.nonFinite > 0
          ? `${model.nonFinite} NaN or infinite value${model.nonFinite === 1 ? ' is' : 's are'} not drawn (gaps).`
          : '';
      note.hidden = note.textContent === '';
      const drawable = model !== null && model.lines.length > 0 && model.steps.length > 0;
      message.textContent = drawable ? '' : (options.message ?? 'Nothing to draw.');
      message.hidden = drawable;
      if (!drawable) {
        destroyPlot();
        return;
      }
      const previousMark = markedStep;
      markedStep = options.markedStep ?? null;
      const data = [model.steps, ...model.lines.map((l) => l.values)] as uPlot.AlignedData;
      const key = JSON.stringify([model.stat, model.logScale, theme.dark, model.lines.map((l) => [l.label, l.color])]);
      if (plot && key === plotKey) {
        plot.setData(data);
        if (previousMark !== markedStep) plot.redraw(false);
        return;
      }
      destroyPlot();
      plot = new uPlot(plotOptions(model, width(), theme, () => markedStep), data, plotArea);
      plotKey = key;
    },
    destroy() {
      resizer?.disconnect();
      destroyPlot();
    },
  };
}
