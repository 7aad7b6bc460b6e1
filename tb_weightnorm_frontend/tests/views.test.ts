// @vitest-environment happy-dom
import {describe, expect, it} from 'vitest';
import type {NormTable} from '../src/data_client';
import {createNormTable} from '../src/views/norm_table';
import {createSelectors, describeRun} from '../src/views/selectors';
import {createStatus} from '../src/views/status';

const XSS = '<img src=x onerror=alert(1)>';

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

describe('norm table', () => {
  it('shows names as text, never as HTML', () => {
    const view = createNormTable({onToggle: () => {}});
    view.update(table, new Set(), () => '#123456');
    expect(view.element.querySelector('img')).toBeNull();
    const cells = rows(view.element)[0].querySelectorAll('td');
    expect(cells[0].textContent).toBe(XSS);
    expect(cells[1].textContent).toBe(`seq/${XSS}/kernel`);
    expect(rows(view.element)[0].dataset.variable).toBe(`seq/${XSS}/kernel`);
  });

  it('titles the step and looks columns up by stat name', () => {
    const view = createNormTable({onToggle: () => {}});
    view.update(table, new Set(), () => '#000');
    expect(view.element.querySelector('h2')!.textContent).toBe('Norms at step 291');
    const headers = Array.from(view.element.querySelectorAll('th')).map((th) => th.textContent);
    expect(headers).toEqual(['Layer', 'Variable', 'Weight L2', 'Gradient L2', 'Update ratio']);
    const values = rows(view.element).map((r) => Array.from(r.querySelectorAll('td')).slice(2).map((td) => td.textContent));
    // update/ratio is not in this table's stats: its column shows a dash.
    expect(values).toEqual([
      ['1.93', 'NaN', '\u2014'],
      ['\u221e', '\u2014', '\u2014'],
    ]);
  });

  it('marks non-finite values', () => {
    const view = createNormTable({onToggle: () => {}});
    view.update(table, new Set(), () => '#000');
    const nonfinite = Array.from(view.element.querySelectorAll('td.nonfinite')).map((td) => td.textContent);
    expect(nonfinite).toEqual(['NaN', '\u221e']);
    expect(view.element.querySelectorAll('td.missing')).toHaveLength(3);
  });

  it('toggles a variable on click and on Enter, and highlights charted rows', () => {
    const toggled: string[] = [];
    const view = createNormTable({onToggle: (v) => toggled.push(v)});
    view.update(table, new Set(['seq/dense/bias']), () => 'rgb(1, 2, 3)');
    const [first, second] = rows(view.element);
    expect(first.classList.contains('selected')).toBe(false);
    expect(second.classList.contains('selected')).toBe(true);
    expect(second.getAttribute('aria-selected')).toBe('true');

    first.querySelectorAll('td')[3].dispatchEvent(new MouseEvent('click', {bubbles: true}));
    second.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
    expect(toggled).toEqual([`seq/${XSS}/kernel`, 'seq/dense/bias']);

    // The same table with a new selection keeps its row elements.
    view.update(table, new Set([`seq/${XSS}/kernel`]), () => 'rgb(1, 2, 3)');
    const [again] = rows(view.element);
    expect(again).toBe(first);
    expect(again.classList.contains('selected')).toBe(true);
    expect(second.classList.contains('selected')).toBe(false);
  });

  it('is hidden without a table', () => {
    const view = createNormTable({onToggle: () => {}});
    view.update(null, new Set(), () => '#000');
    expect(view.element.hidden).toBe(true);
  });
});

describe('selectors', () => {
  it('lists runs and stats as text and reports changes', () => {
    const chosen: string[] = [];
    const view = createSelectors({onRun: (r) => chosen.push(`run:${r}`), onStat: (s) => chosen.push(`stat:${s}`)});
    const runs = [
      {run: XSS, steps: 1, first_step: 1, last_step: 1, variables: 1, stats: ['weight/l2']},
      {run: 'b', steps: 1, first_step: 1, last_step: 1, variables: 1, stats: ['weight/l2']},
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
    const full = {run: 'r', steps: 30, first_step: 1, last_step: 291, variables: 6, stats: []};
    expect(describeRun(full)).toBe('30 logged steps, steps 1\u2013291, 6 variables');
    expect(describeRun({...full, steps: null, first_step: null})).toBe('last step 291, 6 variables');
    expect(describeRun({...full, steps: null, first_step: null, last_step: null, variables: null})).toBe('');
  });
});
