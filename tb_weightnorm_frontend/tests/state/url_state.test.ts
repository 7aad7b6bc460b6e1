import {describe, expect, it} from 'vitest';
import {initialState, type State} from '../../src/state/state';
import {decodeUrlState, encodeUrlState, type UrlState} from '../../src/state/url_state';

/** Every field a link carries, none of them at its default. */
const rich: State = {
  ...initialState,
  run: 'mnist/lr=0.1',
  stat: 'update/ratio',
  view: 'layer',
  layer: 'model/conv2d_1',
  step: 1200,
  hiddenRuns: ['baseline', 'big batch'],
  histogramKind: 'weight',
  histogramMode: 'overlay',
  histogramVariable: 'model/conv2d_1/kernel',
  tableSort: 'layer',
  tableDescending: false,
  tableFilter: 'Conv',
  snapshotFrom: 0,
  snapshotTo: 12,
};

/** What the link keeps of a state: everything but the run list. */
function linked(state: State): UrlState {
  const {runs: _runs, ...rest} = state;
  return rest;
}

describe('encodeUrlState', () => {
  it('writes nothing for the initial state, so a plain tab keeps a plain URL', () => {
    expect(encodeUrlState(initialState)).toEqual({});
  });

  it('writes only the keys that differ from the defaults', () => {
    expect(encodeUrlState({...initialState, run: 'a', stat: 'weight/l2'})).toEqual({run: 'a', stat: 'weight/l2'});
    expect(encodeUrlState({...initialState, step: 0})).toEqual({step: '0'});
    expect(encodeUrlState({...initialState, tableSort: 'gradient/l2', tableDescending: true})).toEqual({
      sort: 'gradient/l2',
      desc: 'true',
    });
  });

  it('leaves out the layer in the overview and the direction without a sort column', () => {
    const encoded = encodeUrlState({...initialState, layer: 'dense', tableDescending: false});
    expect(encoded).toEqual({});
  });

  it('writes only strings', () => {
    for (const value of Object.values(encodeUrlState(rich))) expect(typeof value).toBe('string');
  });
});

describe('decodeUrlState', () => {
  it('restores every field of a rich state', () => {
    expect(decodeUrlState(encodeUrlState(rich))).toEqual(linked(rich));
  });

  it('restores a sort in either direction and a negative step', () => {
    for (const tableDescending of [true, false]) {
      const s: State = {...initialState, tableSort: 'nonfinite', tableDescending, step: -1};
      expect(decodeUrlState(encodeUrlState(s))).toMatchObject({tableSort: 'nonfinite', tableDescending, step: -1});
    }
  });

  it('restores hidden run names with commas, quotes, unicode and markup as plain names', () => {
    const hiddenRuns = ['a,b', 'say "hi"', "it's", 'lr=0.1&bs=32', 'Läufe/日本語 🚀', '<img src=x onerror=alert(1)>', '[]'];
    const decoded = decodeUrlState(encodeUrlState({...initialState, hiddenRuns}));
    expect(decoded.hiddenRuns).toEqual(hiddenRuns);
  });

  it('gives an empty state for an empty link', () => {
    expect(decodeUrlState({})).toEqual({});
  });

  it('drops a view, histogram kind or mode it does not know', () => {
    expect(decodeUrlState({view: 'table', kind: 'activation', mode: 'ridgeline', run: 'a'})).toEqual({run: 'a'});
    expect(decodeUrlState({view: 'LAYER', layer: 'x'})).toEqual({layer: 'x'});
  });

  it('drops a step that is not a whole number', () => {
    for (const step of ['1.5', 'abc', '', '1e3', ' 3', '0x10']) {
      expect(decodeUrlState({step})).toEqual({});
    }
    expect(decodeUrlState({step: '42'})).toEqual({step: 42});
  });

  it('drops a hidden run list that is not a JSON list, and non-names in it', () => {
    for (const hide of ['[', 'a,b', '{"a": 1}', '"a"', 'null']) {
      expect(decodeUrlState({hide})).toEqual({});
    }
    expect(decodeUrlState({hide: '["a", 1, null, "b"]'})).toEqual({hiddenRuns: ['a', 'b']});
  });

  it('drops the layer view when the link names no layer', () => {
    expect(decodeUrlState({view: 'layer'})).toEqual({});
    expect(decodeUrlState({view: 'layer', layer: ''})).toEqual({});
    expect(decodeUrlState({view: 'layer', layer: 'dense'})).toEqual({view: 'layer', layer: 'dense'});
  });

  it('restores the compared snapshots only as a pair of whole epochs', () => {
    expect(decodeUrlState({sfrom: '0', sto: '12'})).toEqual({snapshotFrom: 0, snapshotTo: 12});
    expect(decodeUrlState({sfrom: '3'})).toEqual({});
    expect(decodeUrlState({sfrom: '1.5', sto: '2'})).toEqual({});
    expect(decodeUrlState({sfrom: '-1', sto: '2'})).toEqual({});
  });

  it('drops a direction that is not true or false', () => {
    expect(decodeUrlState({sort: 'layer', desc: 'yes'})).toEqual({tableSort: 'layer'});
  });
});
