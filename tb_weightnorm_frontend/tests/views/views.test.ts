// @vitest-environment happy-dom
import {describe, expect, it} from 'vitest';
import type {NormTable} from '../../src/api/types';
import {createNormTable} from '../../src/views/norm_table';
import {createSelectors, describeRun} from '../../src/views/selectors';
import {createStatus} from '../../src/views/status';

const XSS = '<img src=x onerror=alert(1)>';

/** The parts of a RunInfo these views do not look at. */
const NO_EXTRAS = {layers: [], histogramKinds: [], kernelGrids: [], gradientNote: ''};

const table: NormTable = {
  run: 'r',
  step: 291,
  wall_time: 0,
  steps: [1, 291],
  stats: ['weight/l1', 'weight/l2', 'gradient/l2'],
  rows: [
    {layer: XSS, variable: `seq/${XSS}/kernel`, values: [1, 1.93456, NaN]},
    {layer: 'dense', variable: 'seq/dense/bias', values: [1, Infinity, null]},
  ],
};

function rows(root: HTMLElement): HTMLTableRowElement[] {
  return Array.from(root.querySelectorAll<HTMLTableRowElement>('[data-testid="norm-row"]'));
}

const ORDER = {sort: '', descending: true, filter: ''};

function handlers() {
  const calls: string[] = [];
  return {
    calls,
    onOpenLayer: (layer: string) => calls.push(`open ${layer}`),
    onSort: (column: string) => calls.push(`sort ${column}`),
    onFilter: (filter: string) => calls.push(`filter ${filter}`),
    onStep: (step: number | null) => calls.push(`step ${step}`),
  };
}

describe('norm table', () => {
  it('shows names as text, never as HTML', () => {
    const view = createNormTable(handlers());
    view.update(table, ORDER, null);
    expect(view.element.querySelector('img')).toBeNull();
    const cells = rows(view.element)[0].querySelectorAll('td');
    expect(cells[0].textContent).toBe(XSS);
    expect(cells[1].textContent).toBe(`seq/${XSS}/kernel`);
    expect(rows(view.element)[0].dataset.layer).toBe(XSS);
  });

  it('titles the step and looks columns up by stat name', () => {
    const view = createNormTable(handlers());
    view.update(table, ORDER, null);
    expect(view.element.querySelector('h2')!.textContent).toBe('Norms at step 291');
    const headers = Array.from(view.element.querySelectorAll('th')).map((th) => th.textContent);
    expect(headers).toEqual(['Layer', 'Variable', 'Weight L2', 'Gradient L2', 'Update ratio', 'Dead fraction', 'NaN/Inf']);
    const values = rows(view.element).map((r) => Array.from(r.querySelectorAll('td')).slice(2, 5).map((td) => td.textContent));
    // update/ratio is not in this table's stats: its column shows a dash.
    expect(values).toEqual([
      ['1.93', 'NaN', '\u2014'],
      ['\u221e', '\u2014', '\u2014'],
    ]);
  });

  it('marks non-finite values and rows with NaN or Inf elements', () => {
    const counted: NormTable = {
      ...table,
      stats: [...table.stats, 'weight/nan_count', 'gradient/inf_count'],
      rows: [
        {layer: 'a', variable: 'm/a/kernel', values: [1, 2, 3, 4, 0]},
        {layer: 'b', variable: 'm/b/kernel', values: [1, 2, 3, 0, 0]},
      ],
    };
    const view = createNormTable(handlers());
    view.update(counted, ORDER, null);
    const [bad, good] = rows(view.element);
    expect(bad.classList.contains('has-nonfinite')).toBe(true);
    expect(good.classList.contains('has-nonfinite')).toBe(false);
    expect(bad.lastElementChild!.textContent).toContain('4');
    expect(view.element.textContent).toContain('1 with NaN or Inf');

    view.update(table, ORDER, null);
    const nonfinite = Array.from(view.element.querySelectorAll('td.nonfinite')).map((td) => td.textContent);
    expect(nonfinite).toEqual(['NaN', '\u221e']);
  });

  it('opens the layer of a clicked row (not of the global row), on click and on Enter', () => {
    const h = handlers();
    const view = createNormTable(h);
    const withGlobal: NormTable = {...table, rows: [...table.rows, {layer: '(model)', variable: '(global)', values: [1, 2, 3]}]};
    view.update(withGlobal, ORDER, 'dense');
    const [first, second, global] = rows(view.element);
    expect(second.classList.contains('selected')).toBe(true);
    first.querySelectorAll('td')[3].dispatchEvent(new MouseEvent('click', {bubbles: true}));
    second.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
    global.dispatchEvent(new MouseEvent('click', {bubbles: true}));
    expect(h.calls).toEqual([`open ${XSS}`, 'open dense']);
  });

  it('sorts by a clicked header and shows the direction', () => {
    const h = handlers();
    const view = createNormTable(h);
    view.update(table, {sort: 'weight/l2', descending: true, filter: ''}, null);
    // Infinity first when sorting weight L2 largest first.
    expect(rows(view.element).map((r) => r.dataset.layer)).toEqual(['dense', XSS]);
    const header = view.element.querySelector<HTMLElement>('th[data-column="weight/l2"]')!;
    expect(header.getAttribute('aria-sort')).toBe('descending');
    header.click();
    expect(h.calls).toEqual(['sort weight/l2']);
  });

  it('filters by name and says how many rows match', () => {
    const h = handlers();
    const view = createNormTable(h);
    view.update(table, {...ORDER, filter: 'DENSE'}, null);
    expect(rows(view.element).map((r) => r.dataset.layer)).toEqual(['dense']);
    expect(view.element.textContent).toContain('1 of 2 variables');
    const input = view.element.querySelector<HTMLInputElement>('[data-testid="table-filter"]')!;
    input.value = 'img';
    input.dispatchEvent(new Event('input'));
    expect(h.calls).toEqual(['filter img']);
    view.update(table, {...ORDER, filter: 'nothing like it'}, null);
    expect(view.element.textContent).toContain('No variable matches the filter.');
  });

  it('chooses a step with the slider, only when released, and goes back to the latest', () => {
    const h = handlers();
    const view = createNormTable(h);
    view.update({...table, step: 1}, ORDER, null);
    const slider = view.element.querySelector<HTMLInputElement>('[data-testid="table-step"]')!;
    expect(slider.value).toBe('0');
    slider.value = '1';
    slider.dispatchEvent(new Event('input'));
    expect(h.calls).toEqual([]);
    expect(view.element.textContent).toContain('step 291');
    slider.dispatchEvent(new Event('change'));
    view.element.querySelector<HTMLButtonElement>('.wh-step-picker button')!.click();
    expect(h.calls).toEqual(['step 291', 'step null']);
  });

  it('is hidden without a table', () => {
    const view = createNormTable(handlers());
    view.update(null, ORDER, null);
    expect(view.element.hidden).toBe(true);
  });
});

describe('selectors', () => {
  it('lists runs and stats as text and reports changes', () => {
    const chosen: string[] = [];
    const view = createSelectors({onRun: (r) => chosen.push(`run:${r}`), onStat: (s) => chosen.push(`stat:${s}`)});
    const runs = [
      {run: XSS, steps: 1, first_step: 1, last_step: 1, variables: 1, stats: ['weight/l2'], ...NO_EXTRAS},
      {run: 'b', steps: 1, first_step: 1, last_step: 1, variables: 1, stats: ['weight/l2'], ...NO_EXTRAS},
    ];
    view.update(runs, 'b', ['weight/l2', 'gradient/l2', 'update/ratio'], 'gradient/l2');
    const runSelect = view.element.querySelector<HTMLSelectElement>('[data-testid="run-select"]')!;
    const statSelect = view.element.querySelector<HTMLSelectElement>('[data-testid="stat-select"]')!;
    expect(view.element.querySelector('img')).toBeNull();
    expect(Array.from(runSelect.options).map((o) => o.textContent)).toEqual([XSS, 'b']);
    expect(runSelect.value).toBe('b');
    expect(statSelect.value).toBe('gradient/l2');
    expect(Array.from(statSelect.querySelectorAll('optgroup')).map((g) => g.label)).toEqual(['weight', 'gradient', 'update']);

    runSelect.value = XSS;
    runSelect.dispatchEvent(new Event('change'));
    statSelect.value = 'update/ratio';
    statSelect.dispatchEvent(new Event('change'));
    expect(chosen).toEqual([`run:${XSS}`, 'stat:update/ratio']);
  });
});

describe('status', () => {
  it('shows errors as text with the error class', () => {
    const status = createStatus();
    status.error(`bad ${XSS}`);
    expect(status.element.textContent).toBe(`bad ${XSS}`);
    expect(status.element.classList.contains('error')).toBe(true);
    expect(status.element.hidden).toBe(false);
    status.clear();
    expect(status.element.hidden).toBe(true);
    expect(status.element.classList.contains('error')).toBe(false);
  });
});

describe('describeRun', () => {
  it('uses only the counts the server sent', () => {
    const full = {run: 'r', steps: 30, first_step: 1, last_step: 291, variables: 6, stats: [], ...NO_EXTRAS};
    expect(describeRun(full)).toBe('30 logged steps, steps 1\u2013291, 6 variables');
    expect(describeRun({...full, steps: null, first_step: null})).toBe('last step 291, 6 variables');
    expect(describeRun({...full, steps: null, first_step: null, last_step: null, variables: null})).toBe('');
  });
});
