// @vitest-environment happy-dom
import {describe, expect, it} from 'vitest';
import type {Histogram, HistogramSet} from '../../src/api/types';
import {LIGHT} from '../../src/ui/theme';
import {createHistograms} from '../../src/views/histograms';
import type {HistogramMode, HistogramOptions} from '../../src/views/histograms';

const XSS = '<img src=x onerror=alert(1)>';

function histogram(step: number, extra: Partial<Histogram> = {}): Histogram {
  return {step, wallTime: 0, min: -1, max: 1, counts: [1, 3, 2, 1], nanCount: 0, negInfCount: 0, posInfCount: 0, ...extra};
}

const SET: HistogramSet = {
  variable: 'seq/dense/kernel',
  kind: 'gradient',
  runs: [
    {run: XSS, layer: 'dense', histograms: [histogram(0), histogram(10), histogram(20, {nanCount: 3})], missing: null},
    {run: 'b', layer: 'dense', histograms: [histogram(0), histogram(20)], missing: null},
    {run: 'gone', layer: '', histograms: [], missing: "no gradient histogram of 'seq/dense/kernel'"},
  ],
};

const COLORS: Record<string, string> = {[XSS]: '#1f77b4', b: '#ff7f0e'};

function options(extra: Partial<HistogramOptions> = {}): HistogramOptions {
  return {mode: 'offset', theme: LIGHT, runColor: (run) => COLORS[run] ?? '#000', ...extra};
}

function byTestId(root: HTMLElement, id: string): HTMLElement {
  return root.querySelector<HTMLElement>(`[data-testid="${id}"]`)!;
}

function curves(root: HTMLElement): SVGGElement[] {
  return Array.from(root.querySelectorAll<SVGGElement>('g.wh-hist-curve'));
}

describe('histograms view', () => {
  it('titles the kind and variable, and draws one curve per histogram with d3 axes', () => {
    const view = createHistograms({onMode: () => {}});
    view.update(SET, options());
    expect(view.element.dataset.testid).toBe('histograms');
    expect(view.element.querySelector('h2')!.textContent).toBe('gradient histograms of seq/dense/kernel');
    expect(curves(view.element)).toHaveLength(5);
    expect(view.element.querySelectorAll('g.wh-hist-axis')).toHaveLength(2);
    expect(view.element.querySelectorAll('g.wh-hist-axis .tick').length).toBeGreaterThan(2);
  });

  it('calls onMode from the mode buttons and shows the current mode as pressed', () => {
    const modes: HistogramMode[] = [];
    const view = createHistograms({onMode: (mode) => modes.push(mode)});
    view.update(SET, options({mode: 'offset'}));
    const offset = byTestId(view.element, 'hist-mode-offset');
    const overlay = byTestId(view.element, 'hist-mode-overlay');
    expect(offset.getAttribute('aria-pressed')).toBe('true');
    expect(overlay.getAttribute('aria-pressed')).toBe('false');
    overlay.click();
    expect(modes).toEqual(['overlay']);
    view.update(SET, options({mode: 'overlay'}));
    expect(offset.getAttribute('aria-pressed')).toBe('false');
    expect(overlay.getAttribute('aria-pressed')).toBe('true');
    offset.click();
    expect(modes).toEqual(['overlay', 'offset']);
  });

  it('fills ridges in offset mode and fades early steps in overlay mode', () => {
    const view = createHistograms({onMode: () => {}});
    view.update(SET, options({mode: 'offset'}));
    expect(view.element.querySelectorAll('path[fill-opacity]')).toHaveLength(5);
    view.update(SET, options({mode: 'overlay'}));
    expect(view.element.querySelectorAll('path[fill-opacity]')).toHaveLength(0);
    const opacity = (run: string, step: number) =>
      Number(
        curves(view.element)
          .find((g) => g.getAttribute('data-run') === run && g.getAttribute('data-step') === String(step))!
          .querySelector('path')!
          .getAttribute('stroke-opacity'),
      );
    expect(opacity('b', 0)).toBeLessThan(opacity('b', 20));
    expect(opacity('b', 20)).toBe(1);
  });

  it('strokes each run in its colour and draws the histograms nearest the marked step thicker', () => {
    const view = createHistograms({onMode: () => {}});
    view.update(SET, options({markedStep: 12}));
    const marked = curves(view.element).filter((g) => g.classList.contains('marked'));
    expect(marked.map((g) => [g.getAttribute('data-run'), g.getAttribute('data-step')])).toEqual([
      [XSS, '10'],
      ['b', '20'],
    ]);
    const line = marked[1].querySelector('path[fill="none"]')!;
    expect(line.getAttribute('stroke')).toBe('#ff7f0e');
    expect(Number(line.getAttribute('stroke-width'))).toBeGreaterThan(1);
  });

  it('shows run names only as text: legend, notes and SVG titles', () => {
    const view = createHistograms({onMode: () => {}});
    view.update(SET, options());
    expect(view.element.querySelector('img')).toBeNull();
    const legend = Array.from(view.element.querySelectorAll('[data-testid="hist-run"]')).map((n) => n.textContent);
    expect(legend).toEqual([XSS, 'b']);
    expect(view.element.querySelector('title')!.textContent).toContain(XSS);
    expect(byTestId(view.element, 'hist-nonfinite').textContent).toBe(`run ${XSS}: step 20: 3 NaN`);
  });

  it('lists runs without histograms in a note', () => {
    const view = createHistograms({onMode: () => {}});
    view.update(SET, options());
    const missing = byTestId(view.element, 'hist-missing');
    expect(missing.hidden).toBe(false);
    expect(missing.textContent).toBe("run gone: no gradient histogram of 'seq/dense/kernel'");
  });

  it('shows the message instead of a plot when there is nothing to draw', () => {
    const view = createHistograms({onMode: () => {}});
    view.update(null, options({message: 'Choose a variable.'}));
    expect(byTestId(view.element, 'hist-message').textContent).toBe('Choose a variable.');
    expect(view.element.querySelector('svg')).toBeNull();
    view.update({...SET, runs: [SET.runs[2]]}, options());
    expect(byTestId(view.element, 'hist-message').textContent).toBe('No run has histograms of this variable.');
    expect(byTestId(view.element, 'hist-missing').hidden).toBe(false);
    expect(view.element.querySelector('svg')).toBeNull();
    view.update(SET, options());
    expect(byTestId(view.element, 'hist-message').hidden).toBe(true);
    expect(view.element.querySelector('svg')).not.toBeNull();
    view.destroy();
    expect(view.element.querySelector('svg')).toBeNull();
  });
});
