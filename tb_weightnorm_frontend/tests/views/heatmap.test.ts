// @vitest-environment happy-dom
import {afterEach, beforeEach, describe, expect, it, vi} from 'vitest';
import type {Heatmap, HeatmapRow, StatValue} from '../../src/api/types';
import {GLOBAL_GAP, buildHeatmapModel} from '../../src/models/heatmap_model';
import {DARK, LIGHT} from '../../src/ui/theme';
import {createHeatmap} from '../../src/views/heatmap';
import type {HeatmapView} from '../../src/views/heatmap';

// happy-dom has no 2D canvas. This stand-in records what is drawn; the real
// canvas is covered by the app's browser tests.
interface Call {
  canvas: HTMLCanvasElement;
  name: string;
  args: unknown[];
}
let calls: Call[] = [];
const contexts = new WeakMap<HTMLCanvasElement, object>();

function recordingContext(canvas: HTMLCanvasElement): object {
  const fixed: Record<string, unknown> = {
    canvas,
    createImageData: (width: number, height: number) => ({width, height, data: new Uint8ClampedArray(width * height * 4)}),
  };
  return new Proxy(fixed, {
    get(target, name: string) {
      if (name in target) return target[name];
      return (...args: unknown[]) => calls.push({canvas, name, args});
    },
    set(_target, name: string, value: unknown) {
      calls.push({canvas, name: `set ${name}`, args: [value]});
      return true;
    },
  });
}

const realGetContext = HTMLCanvasElement.prototype.getContext;

beforeEach(() => {
  calls = [];
  (HTMLCanvasElement.prototype as unknown as {getContext: unknown}).getContext = function (this: HTMLCanvasElement) {
    if (!contexts.has(this)) contexts.set(this, recordingContext(this));
    return contexts.get(this);
  };
});

afterEach(() => {
  HTMLCanvasElement.prototype.getContext = realGetContext;
  document.body.innerHTML = '';
});

function row(layer: string, values: StatValue[], global = false): HeatmapRow {
  return {layer, variables: [`${layer}/kernel`, `${layer}/bias`], global, values};
}

const XSS = '<img src=x onerror=alert(1)>';

function heatmap(rows?: HeatmapRow[]): Heatmap {
  return {
    run: 'run',
    stat: 'gradient/l2',
    by: 'layer',
    steps: [29, 59, 89, 119],
    firstSteps: [0, 30, 60, 90],
    loggedSteps: 120,
    reduce: 'max',
    rows: rows ?? [
      row('conv', [0.01, 0.1, 1, 10]),
      row('dense', [NaN, Infinity, null, 2]),
      row(XSS, [0.5, 0.5, 0.5, 0.5]),
      {layer: '(model)', variables: ['(global)'], global: true, values: [20, 30, 40, 50]},
    ],
  };
}

function mount(): {view: HeatmapView; onSelect: ReturnType<typeof vi.fn>} {
  const onSelect = vi.fn();
  const view = createHeatmap({onSelect});
  document.body.appendChild(view.element);
  return {view, onSelect};
}

const part = (view: HeatmapView, selector: string) => view.element.querySelector<HTMLElement>(selector)!;
const canvasOf = (view: HeatmapView) => part(view, 'canvas.wh-heatmap-canvas') as HTMLCanvasElement;
const tooltipOf = (view: HeatmapView) => part(view, '[data-testid="heatmap-tooltip"]');
const drawn = (view: HeatmapView, name: string) => calls.filter((c) => c.canvas === canvasOf(view) && c.name === name);

// happy-dom lays nothing out: the panel falls back to 800 px, less the 160 px of labels,
// so 4 columns are 160 px wide; 4 rows are 20 px tall, the global one after the gap.
const COLUMN = 160;
const ROW = 20;
const GLOBAL_TOP = 3 * ROW + GLOBAL_GAP;

function pointAt(view: HeatmapView, type: string, x: number, y: number): void {
  canvasOf(view).dispatchEvent(new MouseEvent(type, {clientX: x, clientY: y, bubbles: true}));
}

describe('heatmap view', () => {
  it('is a labelled section', () => {
    const {view} = mount();
    view.update(heatmap(), {theme: LIGHT});
    expect(view.element.tagName).toBe('SECTION');
    expect(view.element.classList.contains('wh-section')).toBe(true);
    expect(view.element.classList.contains('wh-heatmap')).toBe(true);
    expect(view.element.getAttribute('aria-label')).toContain('gradient/l2');
    expect(view.element.getAttribute('aria-label')).toContain('3 layers');
  });

  it('shows the message when there is no heatmap', () => {
    const {view} = mount();
    view.update(null, {theme: LIGHT, message: 'Loading the heatmap\u2026'});
    expect(part(view, '[data-testid="heatmap-message"]').textContent).toBe('Loading the heatmap\u2026');
    expect(part(view, '.wh-heatmap-plot').hidden).toBe(true);
    view.update(heatmap([]), {theme: LIGHT});
    expect(part(view, '[data-testid="heatmap-message"]').textContent).toBe('No values of gradient/l2 to draw.');
    view.update(heatmap(), {theme: LIGHT});
    expect(part(view, '.wh-heatmap-plot').hidden).toBe(false);
    expect(part(view, '[data-testid="heatmap-message"]').hidden).toBe(true);
  });

  it('has a legend titled with the stat, with its ticks, NaN/Inf and not measured', () => {
    const {view} = mount();
    view.update(heatmap(), {theme: LIGHT});
    const legend = part(view, '[data-testid="heatmap-legend"]');
    const layers = legend.querySelector<HTMLElement>('.wh-heatmap-scale:not(.global)')!;
    expect(layers.querySelector('.wh-heatmap-legend-title')!.textContent).toBe('gradient/l2');
    expect(layers.dataset.scale).toBe('log');
    const ticks = Array.from(layers.querySelectorAll('.tick text'), (t) => t.textContent).filter(Boolean);
    expect(ticks).toEqual(['0.01', '0.1', '1', '10']);
    // The global row's own scale: 20..50.
    const global = legend.querySelector<HTMLElement>('.wh-heatmap-scale.global')!;
    expect(Array.from(global.querySelectorAll('.tick text'), (t) => t.textContent)).toEqual(['20', '30', '40', '50']);
    expect(legend.textContent).toContain('NaN/Inf');
    expect(legend.textContent).toContain('not measured');
    expect(view.element.dataset.scale).toBe('log');
  });

  it('has a step axis from d3-axis', () => {
    const {view} = mount();
    view.update(heatmap(), {theme: LIGHT});
    const axis = part(view, '[data-testid="heatmap-axis"]');
    const ticks = Array.from(axis.querySelectorAll('.tick text'), (t) => t.textContent);
    expect(ticks).toContain('0');
    expect(ticks).toContain('100');
    expect(axis.textContent).toContain('step');
  });

  it('labels rows with their names as text, the global row too', () => {
    const {view} = mount();
    view.update(heatmap(), {theme: LIGHT, selectedLayer: 'dense'});
    const labels = Array.from(view.element.querySelectorAll<HTMLElement>('.wh-heatmap-label'));
    expect(labels.map((l) => l.textContent)).toEqual(['conv', 'dense', XSS, '(global)']);
    expect(labels.map((l) => l.style.top)).toEqual(['0px', '20px', '40px', `${GLOBAL_TOP}px`]);
    expect(labels[1].classList.contains('selected')).toBe(true);
    expect(view.element.querySelector('img')).toBeNull();
  });

  it('hides row labels when rows are too thin, and says how many layers there are', () => {
    const {view} = mount();
    const many = Array.from({length: 200}, (_, i) => row(`layer${i}`, [1, 2, 3, 4]));
    view.update(heatmap(many), {theme: LIGHT});
    expect(view.element.querySelectorAll('.wh-heatmap-label').length).toBe(0);
    expect(part(view, '.wh-heatmap-count').textContent).toContain('200 layers');
  });

  it('shows the layer, the column\u2019s steps and the value on hover, as text', () => {
    const {view} = mount();
    view.update(heatmap(), {theme: LIGHT});
    pointAt(view, 'mousemove', COLUMN + 5, ROW + 5); // dense, steps 30..59
    const tooltip = tooltipOf(view);
    expect(tooltip.hidden).toBe(false);
    expect(tooltip.dataset.layer).toBe('dense');
    expect(tooltip.dataset.step).toBe('59');
    expect(tooltip.textContent).toContain('dense');
    expect(tooltip.textContent).toContain('steps 30..59 (max)');
    expect(tooltip.textContent).toContain('gradient/l2 = \u221e');
    pointAt(view, 'mousemove', 5, ROW + 5);
    expect(tooltip.textContent).toContain('= NaN');
    pointAt(view, 'mousemove', 2 * COLUMN + 5, ROW + 5);
    expect(tooltip.textContent).toContain('not measured');
    pointAt(view, 'mousemove', 3 * COLUMN + 5, 5);
    expect(tooltip.textContent).toContain('= 10');
    expect(tooltip.dataset.step).toBe('119');
  });

  it('shows a hostile layer name as text in the tooltip', () => {
    const {view} = mount();
    view.update(heatmap(), {theme: LIGHT});
    pointAt(view, 'mousemove', 5, 2 * ROW + 5);
    expect(tooltipOf(view).dataset.layer).toBe(XSS);
    expect(tooltipOf(view).querySelector('.wh-heatmap-tip-name')!.textContent).toBe(XSS);
    expect(document.querySelector('img')).toBeNull();
  });

  it('hides the tooltip in the gap before the global row and when the pointer leaves', () => {
    const {view} = mount();
    view.update(heatmap(), {theme: LIGHT});
    pointAt(view, 'mousemove', 5, GLOBAL_TOP + 5);
    expect(tooltipOf(view).dataset.layer).toBe('(model)');
    expect(tooltipOf(view).textContent).toContain('(global)');
    pointAt(view, 'mousemove', 5, GLOBAL_TOP - 2);
    expect(tooltipOf(view).hidden).toBe(true);
    pointAt(view, 'mousemove', 5, 5);
    expect(tooltipOf(view).hidden).toBe(false);
    canvasOf(view).dispatchEvent(new MouseEvent('mouseleave'));
    expect(tooltipOf(view).hidden).toBe(true);
  });

  it('selects the clicked layer at the column\u2019s last step; ignores the global row and the gap', () => {
    const {view, onSelect} = mount();
    view.update(heatmap(), {theme: LIGHT});
    pointAt(view, 'click', 2 * COLUMN + 1, 5);
    expect(onSelect).toHaveBeenCalledWith('conv', 89);
    pointAt(view, 'click', 5, 2 * ROW + 1);
    expect(onSelect).toHaveBeenLastCalledWith(XSS, 29);
    onSelect.mockClear();
    pointAt(view, 'click', 5, GLOBAL_TOP + 5);
    pointAt(view, 'click', 5, GLOBAL_TOP - 2);
    expect(onSelect).not.toHaveBeenCalled();
  });

  it('asks for as many columns as the canvas is wide', () => {
    const {view} = mount();
    expect(view.columnsWanted()).toBe(4 * COLUMN);
  });
});

describe('heatmap drawing', () => {
  it('writes one pixel per cell and scales the image up without smoothing', () => {
    const {view} = mount();
    const data = heatmap();
    view.update(data, {theme: LIGHT});
    const put = calls.find((c) => c.name === 'putImageData')!;
    const pixels = put.args[0] as {width: number; height: number; data: Uint8ClampedArray};
    expect([pixels.width, pixels.height]).toEqual([4, 4]);
    expect(Array.from(new Uint32Array(pixels.data.buffer))).toEqual(Array.from(buildHeatmapModel(data, LIGHT).colors));
    const images = drawn(view, 'drawImage');
    // Layers, then the global row below the gap: two draws, not one per cell.
    expect(images.map((c) => c.args.slice(1))).toEqual([
      [0, 0, 4, 3, 0, 0, 4 * COLUMN, 3 * ROW],
      [0, 3, 4, 1, 0, GLOBAL_TOP, 4 * COLUMN, ROW],
    ]);
    expect(drawn(view, 'set imageSmoothingEnabled').map((c) => c.args[0])).toEqual([false]);
    expect(drawn(view, 'fillRect').length).toBe(1);
    expect(canvasOf(view).style.height).toBe(`${GLOBAL_TOP + ROW}px`);
  });

  it('paints the background from the theme, and again for another theme', () => {
    const {view} = mount();
    view.update(heatmap(), {theme: LIGHT});
    view.update(heatmap(), {theme: DARK});
    expect(drawn(view, 'set fillStyle').map((c) => c.args[0])).toEqual([LIGHT.background, DARK.background]);
  });

  it('does not paint again when nothing changed', () => {
    const {view} = mount();
    const data = heatmap();
    view.update(data, {theme: LIGHT});
    view.update(data, {theme: LIGHT});
    pointAt(view, 'mousemove', 5, 5);
    expect(drawn(view, 'drawImage').length).toBe(2);
    expect(calls.filter((c) => c.name === 'putImageData').length).toBe(1);
  });

  it('outlines the selected layer and marks the step, without recolouring the cells', () => {
    const {view} = mount();
    const data = heatmap();
    view.update(data, {theme: LIGHT});
    view.update(data, {theme: LIGHT, selectedLayer: 'dense', markedStep: 45});
    expect(calls.filter((c) => c.name === 'putImageData').length).toBe(1);
    const rect = drawn(view, 'rect')[0].args;
    expect(rect[1]).toBeCloseTo(ROW + 0.75);
    // Step 45 is in the second column (30..59): the marker is at its middle.
    expect(drawn(view, 'moveTo')[0].args).toEqual([1.5 * COLUMN, 0]);
  });

  it('does not outline the global row', () => {
    const {view} = mount();
    view.update(heatmap(), {theme: LIGHT, selectedLayer: '(model)'});
    expect(drawn(view, 'rect').length).toBe(0);
  });
});
