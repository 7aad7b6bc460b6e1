// The detail of one layer: its stats over steps with several runs overlaid,
// the histograms of one of its variables, and its conv kernel grid.

import type {ChartModel} from '../models/chart_data';
import type {HistogramKind, HistogramSet, KernelGrid} from '../api/types';
import type {HistogramMode} from '../state/state';
import type {Theme} from '../ui/theme';
import {createChart, type ChartView} from './chart';
import {clear, el} from './dom';
import {createHistograms, type HistogramsView} from './histograms';
import {createKernelGrid, type KernelGridView} from './kernel_grid';

export interface LayerDetailHandlers {
  onBack: () => void;
  onToggleRun: (run: string) => void;
  onHistogramVariable: (variable: string) => void;
  onHistogramKind: (kind: HistogramKind) => void;
  onHistogramMode: (mode: HistogramMode) => void;
  onStep: (step: number) => void;
}

export interface RunChip {
  run: string;
  color: string;
  shown: boolean;
}

export interface LayerDetailModel {
  layer: string;
  step: number | null;
  runs: RunChip[];
  /** Charts by stat; a null model is still loading. */
  charts: {stat: string; model: ChartModel | null; message?: string}[];
  /** Variables with histograms, the one shown, and the kinds logged. */
  histogramVariables: string[];
  histogramVariable: string | null;
  histogramKinds: HistogramKind[];
  histogramKind: HistogramKind;
  histogramMode: HistogramMode;
  histograms: HistogramSet | null;
  histogramMessage?: string;
  /** Null when the layer has no kernel grid. */
  kernelGrid: KernelGrid | null;
  kernelGridMessage?: string;
  hasKernelGrid: boolean;
  runColor: (run: string) => string;
  theme: Theme;
}

export interface LayerDetailView {
  element: HTMLElement;
  update(model: LayerDetailModel | null): void;
  destroy(): void;
}

function fillSelect(select: HTMLSelectElement, values: readonly string[], selected: string | null): void {
  // Rebuilding the options of an open <select> closes it: only when they changed.
  const current = Array.from(select.options).map((o) => o.value);
  if (current.length !== values.length || current.some((v, i) => v !== values[i])) {
    clear(select);
    for (const value of values) {
      const option = el('option', {text: value});
      option.value = value;
      select.appendChild(option);
    }
  }
  if (selected !== null) select.value = selected;
  select.disabled = values.length < 2;
}

export function createLayerDetail(handlers: LayerDetailHandlers): LayerDetailView {
  const back = el('button', {className: 'wh-button', text: '\u2190 Overview', testId: 'back', attrs: {type: 'button'}});
  back.addEventListener('click', handlers.onBack);
  const title = el('h2', {className: 'wh-title', testId: 'layer-title'});
  const chips = el('div', {className: 'wh-chips', attrs: {role: 'group', 'aria-label': 'Runs overlaid'}});
  chips.addEventListener('click', (event) => {
    const chip = event.target instanceof Element ? event.target.closest<HTMLElement>('[data-run]') : null;
    if (chip?.dataset.run !== undefined) handlers.onToggleRun(chip.dataset.run);
  });
  const head = el('div', {className: 'wh-section-head'}, [back, title, chips]);

  const chartGrid = el('div', {className: 'wh-chart-grid'});
  const charts = new Map<string, ChartView>();

  const variableSelect = el('select', {testId: 'hist-variable', attrs: {'aria-label': 'Variable'}});
  variableSelect.addEventListener('change', () => handlers.onHistogramVariable(variableSelect.value));
  const kindSelect = el('select', {testId: 'hist-kind', attrs: {'aria-label': 'Histogram of'}});
  kindSelect.addEventListener('change', () => handlers.onHistogramKind(kindSelect.value as HistogramKind));
  const histogramControls = el('div', {className: 'wh-header'}, [
    el('label', {className: 'wh-field'}, [el('span', {text: 'Variable'}), variableSelect]),
    el('label', {className: 'wh-field'}, [el('span', {text: 'Histogram of'}), kindSelect]),
  ]);
  const histograms: HistogramsView = createHistograms({onMode: handlers.onHistogramMode});
  const histogramPanel = el('div', {className: 'wh-hist-panel'}, [histogramControls, histograms.element]);
  const kernelGrid: KernelGridView = createKernelGrid({onStep: handlers.onStep});

  const element = el('section', {className: 'wh-layer', testId: 'layer-detail'}, [
    el('div', {className: 'wh-section'}, [head, chartGrid]),
    el('div', {className: 'wh-detail-row'}, [histogramPanel, kernelGrid.element]),
  ]);

  const renderChips = (runs: RunChip[]) => {
    clear(chips);
    for (const chip of runs) {
      const button = el('button', {className: 'wh-chip', testId: 'run-chip', attrs: {type: 'button', 'aria-pressed': String(chip.shown), title: `${chip.run}: ${chip.shown ? 'hide this run' : 'overlay this run'}`}}, [
        el('span', {className: 'wh-swatch'}),
        document.createTextNode(chip.run),
      ]);
      button.dataset.run = chip.run;
      (button.firstChild as HTMLElement).style.background = chip.shown ? chip.color : 'transparent';
      chips.appendChild(button);
    }
  };

  const renderCharts = (model: LayerDetailModel) => {
    const wanted = new Set(model.charts.map((c) => c.stat));
    for (const [stat, chart] of charts) {
      if (!wanted.has(stat)) {
        chart.destroy();
        chart.element.remove();
        charts.delete(stat);
      }
    }
    for (const {stat, model: chartModel, message} of model.charts) {
      let chart = charts.get(stat);
      if (!chart) {
        chart = createChart('layer-chart');
        chart.element.dataset.stat = stat;
        charts.set(stat, chart);
      }
      chartGrid.appendChild(chart.element); // keeps the order of model.charts
      chart.update(chartModel, {theme: model.theme, markedStep: model.step, message: message ?? `Loading ${stat}\u2026`});
    }
  };

  return {
    element,
    update(model) {
      element.hidden = model === null;
      if (!model) return;
      title.textContent = `Layer ${model.layer}`;
      renderChips(model.runs);
      renderCharts(model);
      fillSelect(variableSelect, model.histogramVariables, model.histogramVariable);
      fillSelect(kindSelect, model.histogramKinds, model.histogramKind);
      histogramPanel.hidden = model.histogramVariables.length === 0;
      histograms.update(model.histograms, {
        mode: model.histogramMode,
        theme: model.theme,
        runColor: model.runColor,
        message: model.histogramMessage,
        markedStep: model.step,
      });
      kernelGrid.element.hidden = !model.hasKernelGrid;
      if (model.hasKernelGrid) kernelGrid.update(model.kernelGrid, {step: model.step, message: model.kernelGridMessage});
    },
    destroy() {
      for (const chart of charts.values()) chart.destroy();
      histograms.destroy();
      kernelGrid.destroy();
    },
  };
}
