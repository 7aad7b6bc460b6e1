// The line chart of one stat over steps (uPlot), one line per charted variable.

import uPlot from 'uplot';
import type {ChartModel} from '../chart_data';
import {formatNumber} from '../format';
import {el} from './dom';

const HEIGHT = 320;
const FALLBACK_WIDTH = 640;

export interface ChartView {
  element: HTMLElement;
  /** Draws `model`, or shows `message` instead when there is nothing to draw. */
  update(model: ChartModel | null, message?: string): void;
  destroy(): void;
}

function options(model: ChartModel, width: number): uPlot.Options {
  return {
    width,
    height: HEIGHT,
    scales: {
      x: {time: false},
      y: model.logScale ? {distr: 3, log: 10} : {},
    },
    axes: [
      {label: 'step', labelSize: 20, size: 36, stroke: '#616161', grid: {stroke: '#eeeeee'}, ticks: {stroke: '#e0e0e0'}},
      {
        label: model.stat,
        labelSize: 20,
        size: 64,
        stroke: '#616161',
        grid: {stroke: '#eeeeee'},
        ticks: {stroke: '#e0e0e0'},
        // uPlot passes null for log-scale ticks it leaves unlabelled.
        values: (_u, splits) => splits.map((v) => (v === null || v === undefined ? '' : formatNumber(v))),
      },
    ],
    series: [
      {label: 'step', value: (_u, v) => (v === null ? '\u2014' : String(v))},
      ...model.lines.map((line) => ({
        label: line.variable,
        stroke: line.color,
        width: 1.5,
        spanGaps: false,
        value: (_u: uPlot, v: number | null) => formatNumber(v),
      })),
    ],
    legend: {live: true},
    cursor: {focus: {prox: 16}},
    focus: {alpha: 0.3},
  };
}

export function createChart(): ChartView {
  const title = el('h2', {className: 'wh-title'});
  const note = el('p', {className: 'wh-note'});
  const plotArea = el('div', {className: 'wh-plot'});
  const message = el('p', {className: 'wh-hint'});
  const element = el('section', {className: 'wh-section wh-chart', testId: 'chart'}, [title, plotArea, message, note]);
  let plot: uPlot | null = null;
  // What the current plot was built for; a new model with the same shape only swaps the data
  // (no flicker on TensorBoard's periodic reloads, and lines hidden in the legend stay hidden).
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
    update(model, text) {
      title.textContent = model ? `${model.stat} over steps` : 'Chart';
      element.dataset.scale = model?.logScale ? 'log' : 'linear';
      note.textContent =
        model && model.nonFinite > 0
          ? `${model.nonFinite} NaN or infinite value${model.nonFinite === 1 ? ' is' : 's are'} not drawn (gaps).`
          : '';
      note.hidden = note.textContent === '';
      const drawable = model !== null && model.lines.length > 0 && model.steps.length > 0;
      message.textContent = drawable ? '' : (text ?? 'Nothing to draw.');
      message.hidden = drawable;
      if (!drawable) {
        destroyPlot();
        return;
      }
      const data: uPlot.AlignedData = [model.steps, ...model.lines.map((l) => l.values)];
      const key = JSON.stringify([model.stat, model.logScale, model.lines.map((l) => [l.variable, l.color])]);
      if (plot && key === plotKey) {
        plot.setData(data);
        return;
      }
      destroyPlot();
      plot = new uPlot(options(model, width()), data, plotArea);
      plotKey = key;
    },
    destroy() {
      resizer?.disconnect();
      destroyPlot();
    },
  };
}
