import {describe, expect, it} from 'vitest';
import type {Heatmap, HeatmapRow, StatValue} from '../../src/api/types';
import {
  GLOBAL_GAP,
  LABEL_MIN_ROW_HEIGHT,
  MAX_ROW_HEIGHT,
  MIN_ROW_HEIGHT,
  buildHeatmapModel,
  cellAt,
  cellColor,
  cellReadout,
  chooseScale,
  columnOfStep,
  layoutHeatmap,
  legendTicks,
  makePalette,
  packColor,
  rampIndex,
  rampPosition,
  rowName,
  rowTop,
  stepScale,
  stepTicks,
} from '../../src/models/heatmap_model';
import type {ValueScale} from '../../src/models/heatmap_model';
import {DARK, LIGHT} from '../../src/ui/theme';

function row(layer: string, values: StatValue[], global = false): HeatmapRow {
  return {layer, variables: [`model/${layer}/kernel`], global, values};
}

function heatmap(stat: string, rows: HeatmapRow[], steps = [29, 59, 89, 119], firstSteps = [0, 30, 60, 90]): Heatmap {
  return {run: 'run', stat, by: 'layer', rows, steps, firstSteps, loggedSteps: 120, reduce: 'max'};
}

/** The RGBA bytes of a packed pixel, whatever the platform's byte order. */
function rgba(pixel: number): number[] {
  return Array.from(new Uint8Array(new Uint32Array([pixel]).buffer));
}

const log = (low: number, high: number): ValueScale => ({kind: 'log', domain: [low, high], constant: low});

describe('chooseScale', () => {
  it('takes its domain from finite values only (null, NaN and ±Infinity left out)', () => {
    const scale = chooseScale('weight/l2', [row('a', [null, 0.5, NaN]), row('b', [Infinity, 4, -Infinity])]);
    expect(scale).toEqual({kind: 'log', domain: [0.5, 4], constant: 0.5});
  });

  it('uses log for a magnitude whose values are all > 0', () => {
    expect(chooseScale('gradient/l2', [row('a', [1e-6, 10])]).kind).toBe('log');
    expect(chooseScale('update/ratio', [row('a', [1e-4, 1e-2])]).kind).toBe('log');
    expect(chooseScale('weight/linf', [row('a', [0.1, 3])]).kind).toBe('log');
  });

  it('uses symlog for a magnitude with zeros, its log part starting at the smallest non-zero value', () => {
    expect(chooseScale('gradient/l2', [row('a', [0, 1e-5, 3])])).toEqual({kind: 'symlog', domain: [0, 3], constant: 1e-5});
  });

  it('uses linear for stats that are not magnitudes, even when all > 0', () => {
    expect(chooseScale('weight/mean', [row('a', [-0.2, 0.3])]).kind).toBe('linear');
    expect(chooseScale('weight/max', [row('a', [0.2, 0.3])]).kind).toBe('linear');
    expect(chooseScale('gradient/dead_fraction', [row('a', [0, 0.5, 1])]).kind).toBe('linear');
  });

  it('falls back to linear 0..1 when nothing is finite', () => {
    expect(chooseScale('weight/l2', [row('a', [null, NaN, Infinity])])).toEqual({kind: 'linear', domain: [0, 1], constant: 1});
    expect(chooseScale('weight/l2', [])).toEqual({kind: 'linear', domain: [0, 1], constant: 1});
  });
});

describe('buildHeatmapModel', () => {
  const data = heatmap('gradient/l2', [
    row('(global)', [100, 200, 300, 400], true),
    row('dense', [1, 2, null, NaN]),
    row('out', [0.5, 8, Infinity, -Infinity]),
  ]);
  const model = buildHeatmapModel(data, LIGHT);
  const palette = makePalette(LIGHT);
  const at = (r: number, c: number) => model.colors[r * model.columns + c];

  it('keeps the layers in the given order and draws the global row last', () => {
    expect(model.rows.map((r) => r.layer)).toEqual(['dense', 'out', '(global)']);
    expect(model.layerRows).toBe(2);
    expect(model.colors.length).toBe(3 * 4);
  });

  it('leaves the global row out of the layers\u2019 scale and gives it its own', () => {
    expect(model.layerScale).toEqual({kind: 'log', domain: [0.5, 8], constant: 0.5});
    expect(model.globalScale).toEqual({kind: 'log', domain: [100, 400], constant: 100});
  });

  it('colours the layers\u2019 extremes with the ends of the ramp', () => {
    expect(at(1, 0)).toBe(palette.ramp[0]);
    expect(at(1, 1)).toBe(palette.ramp[255]);
    // The global row spans the whole ramp on its own scale.
    expect(at(2, 0)).toBe(palette.ramp[0]);
    expect(at(2, 3)).toBe(palette.ramp[255]);
  });

  it('colours null as missing and NaN/±Infinity as non-finite, from the theme', () => {
    expect(at(0, 2)).toBe(packColor(LIGHT.missing));
    expect(at(0, 3)).toBe(packColor(LIGHT.nonFinite));
    expect(at(1, 2)).toBe(packColor(LIGHT.nonFinite));
    expect(at(1, 3)).toBe(packColor(LIGHT.nonFinite));
    const dark = buildHeatmapModel(data, DARK);
    expect(dark.colors[2]).toBe(packColor(DARK.missing));
  });

  it('treats a value missing from the end of a row as not measured', () => {
    const short = buildHeatmapModel(heatmap('weight/l2', [row('a', [1, 2])]), LIGHT);
    expect(short.colors[3]).toBe(packColor(LIGHT.missing));
  });

  it('has no global scale without a global row', () => {
    expect(buildHeatmapModel(heatmap('weight/l2', [row('a', [1, 2, 3, 4])]), LIGHT).globalScale).toBeNull();
  });
});

describe('cell colours', () => {
  const palette = makePalette(LIGHT);

  it('gives values \u2264 0 on a log scale the lowest colour', () => {
    const index = rampIndex(log(0.01, 10));
    expect(cellColor(0, index, palette)).toBe(palette.ramp[0]);
    expect(cellColor(-3, index, palette)).toBe(palette.ramp[0]);
    expect(cellColor(0.001, index, palette)).toBe(palette.ramp[0]);
    expect(cellColor(100, index, palette)).toBe(palette.ramp[255]);
  });

  it('places values by their order of magnitude on a log scale', () => {
    expect(rampPosition(log(0.01, 100))(1)).toBeCloseTo(0.5);
    expect(rampPosition({kind: 'linear', domain: [0, 100], constant: 1})(1)).toBeCloseTo(0.01);
    expect(rampPosition({kind: 'symlog', domain: [0, 100], constant: 1})(0)).toBe(0);
  });

  it('picks the ramp entry nearest the d3 scale\u2019s position', () => {
    for (const scale of [log(1e-3, 10), {kind: 'symlog', domain: [-2, 50], constant: 0.1} as ValueScale, {kind: 'linear', domain: [-1, 3], constant: 1} as ValueScale]) {
      const index = rampIndex(scale);
      const position = rampPosition(scale);
      for (const value of [scale.domain[0], 0.0011, 0.37, 1, 2.9, 9.99, scale.domain[1]]) {
        expect(Math.abs(index(value) - position(value) * 255)).toBeLessThanOrEqual(0.5 + 1e-9);
      }
    }
  });

  it('gives a scale of one value the middle colour', () => {
    expect(rampIndex({kind: 'log', domain: [2, 2], constant: 2})(2)).toBe(128);
  });

  it('tells null, NaN and infinities apart from values', () => {
    const index = rampIndex(log(1, 10));
    expect(cellColor(null, index, palette)).toBe(palette.missing);
    for (const value of [NaN, Infinity, -Infinity]) expect(cellColor(value, index, palette)).toBe(palette.nonFinite);
    expect(palette.missing).not.toBe(palette.nonFinite);
  });

  it('packs CSS colours as opaque RGBA pixels', () => {
    expect(rgba(packColor('#d50000'))).toEqual([0xd5, 0, 0, 255]);
    expect(rgba(packColor('#abc'))).toEqual([0xaa, 0xbb, 0xcc, 255]);
    expect(rgba(packColor('rgb(1, 2, 3)'))).toEqual([1, 2, 3, 255]);
  });

  it('ramps from viridis\u2019 dark purple to its yellow', () => {
    expect(rgba(palette.ramp[0])).toEqual([0x44, 0x01, 0x54, 255]);
    expect(rgba(palette.ramp[255])).toEqual([0xfd, 0xe7, 0x25, 255]);
  });
});

describe('cells with NaN or Inf elements', () => {
  // After a NaN, norms over the finite elements read 0: the counts must win over the calm value.
  const broken = {...row('dense', [1, 0, 0, 2]), nonFinite: [0, 48, 48, 0]};
  const model = buildHeatmapModel(heatmap('gradient/l2', [broken, row('out', [1, 2, 3, 4])]), LIGHT);
  const palette = makePalette(LIGHT);

  it('are painted in the non-finite colour whatever their value', () => {
    const colours = Array.from(model.colors.slice(0, 4));
    expect(colours.map((c) => c === palette.nonFinite)).toEqual([false, true, true, false]);
    expect(Array.from(model.colors.slice(4)).includes(palette.nonFinite)).toBe(false);
  });

  it('say in the readout that the value leaves them out', () => {
    expect(cellReadout(model, 0, 1).value).toBe('0 (over finite values; 48 NaN/Inf)');
    expect(cellReadout(model, 0, 0).value).toBe('1');
  });
});

describe('legendTicks', () => {
  it('labels linear ticks with formatNumber', () => {
    expect(legendTicks({kind: 'linear', domain: [0, 1], constant: 1}).map((t) => t.label)).toEqual(['0', '0.2', '0.4', '0.6', '0.8', '1']);
  });

  it('labels the powers of ten of a log scale and leaves minor ticks blank', () => {
    const ticks = legendTicks(log(1e-3, 10));
    expect(ticks.filter((t) => t.label !== '').map((t) => t.label)).toEqual(['0.001', '0.01', '0.1', '1', '10']);
    expect(ticks.some((t) => t.label === '')).toBe(true);
  });

  it('gives a log scale spanning too few powers of ten a few plain ticks', () => {
    expect(legendTicks(log(2, 8)).map((t) => t.label)).toEqual(['2', '4', '6', '8']);
    expect(legendTicks(log(0.5, 4)).map((t) => t.label)).toEqual(['1', '2', '3', '4']);
  });

  it('thins the powers of ten of a log scale spanning many', () => {
    const labels = legendTicks(log(1e-12, 1e3)).filter((t) => t.label).map((t) => t.label);
    expect(labels).toEqual(['1e-12', '1e-9', '1e-6', '0.001', '1', '1000']);
  });

  it('puts a symlog scale\u2019s ticks at 0 and powers of ten', () => {
    const labels = (domain: [number, number], constant: number) =>
      legendTicks({kind: 'symlog', domain, constant}).map((t) => t.label);
    expect(labels([0, 100], 0.01)).toEqual(['0', '0.01', '0.1', '1', '10', '100']);
    expect(labels([-10, 10], 1)).toEqual(['-10', '-1', '0', '1', '10']);
    expect(labels([0, 0.5], 0.5)).toEqual(['0', '0.2', '0.4']);
  });

  it('writes large values in exponent notation', () => {
    expect(legendTicks(log(1e6, 1e8)).filter((t) => t.label).map((t) => t.label)).toEqual(['1e6', '1e7', '1e8']);
  });
});

describe('layout', () => {
  it('gives few rows at most 20 px, labelled, and many rows at least 2 px, unlabelled', () => {
    expect(layoutHeatmap(3, 1, 10, 500)).toMatchObject({rowHeight: MAX_ROW_HEIGHT, showLabels: true});
    const many = layoutHeatmap(1000, 1, 10, 500);
    expect(many).toMatchObject({rowHeight: MIN_ROW_HEIGHT, showLabels: false});
    expect(many.height).toBe(1000 * 2 + GLOBAL_GAP + 2);
    expect(layoutHeatmap(54, 0, 10, 500).rowHeight).toBeGreaterThanOrEqual(LABEL_MIN_ROW_HEIGHT);
    expect(layoutHeatmap(80, 0, 10, 500).showLabels).toBe(false);
  });

  it('puts the global row after a gap', () => {
    const layout = layoutHeatmap(3, 1, 4, 400);
    expect([0, 1, 2, 3].map((i) => rowTop(layout, i))).toEqual([0, 20, 40, 60 + GLOBAL_GAP]);
    expect(layout.height).toBe(80 + GLOBAL_GAP);
    expect(layoutHeatmap(3, 0, 4, 400).height).toBe(60);
    expect(layoutHeatmap(0, 1, 4, 400)).toMatchObject({globalTop: 0, height: 20});
  });
});

describe('cellAt', () => {
  const layout = layoutHeatmap(3, 1, 4, 400); // columns 100 px wide, rows 20 px tall

  it('finds the row and column under a point', () => {
    expect(cellAt(layout, 0, 0)).toEqual({row: 0, column: 0});
    expect(cellAt(layout, 99.9, 19.9)).toEqual({row: 0, column: 0});
    expect(cellAt(layout, 100, 20)).toEqual({row: 1, column: 1});
    expect(cellAt(layout, 399, 59)).toEqual({row: 2, column: 3});
  });

  it('finds the global row below the gap, and nothing in the gap', () => {
    expect(cellAt(layout, 10, 60)).toBeNull();
    expect(cellAt(layout, 10, 60 + GLOBAL_GAP - 0.1)).toBeNull();
    expect(cellAt(layout, 10, 60 + GLOBAL_GAP)).toEqual({row: 3, column: 0});
    expect(cellAt(layout, 10, 80 + GLOBAL_GAP - 0.1)).toEqual({row: 3, column: 0});
  });

  it('finds nothing outside the cells', () => {
    expect(cellAt(layout, -1, 10)).toBeNull();
    expect(cellAt(layout, 400, 10)).toBeNull();
    expect(cellAt(layout, 10, 80 + GLOBAL_GAP)).toBeNull();
    expect(cellAt(layoutHeatmap(3, 0, 0, 400), 10, 10)).toBeNull();
  });

  it('maps thinned columns by their share of the width, not by step', () => {
    // 3 columns on 100 px: each is a third, however many steps it holds.
    const thinned = layoutHeatmap(1, 0, 3, 100);
    expect(cellAt(thinned, 33.3, 5)?.column).toBe(0);
    expect(cellAt(thinned, 33.4, 5)?.column).toBe(1);
    expect(cellAt(thinned, 99.99, 5)?.column).toBe(2);
  });
});

describe('steps', () => {
  it('finds the column whose first..last steps hold a step', () => {
    const steps = [29, 59, 89];
    const first = [0, 30, 60];
    expect(columnOfStep(steps, first, 0)).toBe(0);
    expect(columnOfStep(steps, first, 29)).toBe(0);
    expect(columnOfStep(steps, first, 30)).toBe(1);
    expect(columnOfStep(steps, first, 89)).toBe(2);
    expect(columnOfStep(steps, first, 90)).toBeNull();
    expect(columnOfStep([10, 40], [0, 30], 20)).toBeNull(); // between two columns
    expect(columnOfStep([], [], 0)).toBeNull();
  });

  it('places a column\u2019s middle step at its middle and a thinned run\u2019s ends at the edges', () => {
    const x = stepScale([29, 59, 89, 119], [0, 30, 60, 90], 400);
    expect(x(0)).toBe(0);
    expect(x(14.5)).toBe(50);
    expect(x(74.5)).toBe(250);
    expect(x(119)).toBe(400);
  });

  it('follows uneven columns', () => {
    // The first column holds 10 steps, the second 1000: each is still half the width.
    const x = stepScale([9, 1009], [0, 10], 200);
    expect(x(4.5)).toBe(50);
    expect(x(509.5)).toBe(150);
  });

  it('centres single-step columns', () => {
    const x = stepScale([0, 10, 20], [0, 10, 20], 300);
    expect([x(0), x(10), x(20)]).toEqual([50, 150, 250]);
    expect(stepScale([5], [5], 100)(5)).toBe(50);
  });

  it('ticks whole steps only', () => {
    expect(stepTicks(stepScale([0, 1, 2], [0, 1, 2], 300), 10)).toEqual([0, 1, 2]);
    expect(stepTicks(stepScale([999], [0], 300), 5)).toEqual([0, 200, 400, 600, 800]);
  });
});

describe('cellReadout', () => {
  const model = buildHeatmapModel(
    heatmap('gradient/l2', [row('dense', [1.234567, NaN, Infinity, null]), row('(global)', [1, 2, 3, 4], true)], [29, 59, 89, 90], [0, 30, 60, 90]),
    LIGHT,
  );

  it('says the layer, the column\u2019s steps and the value', () => {
    expect(cellReadout(model, 0, 0)).toEqual({name: 'dense', layer: 'dense', global: false, step: 29, steps: 'steps 0..29 (max)', value: '1.23'});
  });

  it('spells out NaN, infinity and not measured', () => {
    expect(cellReadout(model, 0, 1).value).toBe('NaN');
    expect(cellReadout(model, 0, 2).value).toBe('\u221e');
    expect(cellReadout(model, 0, 3)).toMatchObject({steps: 'step 90', value: 'not measured'});
  });

  it('marks the global row', () => {
    expect(cellReadout(model, 1, 0)).toMatchObject({layer: '(global)', global: true});
  });

  it('names a by=variable row by its variable', () => {
    expect(rowName(row('dense', []), 'variable')).toBe('model/dense/kernel');
    expect(rowName(row('dense', []), 'layer')).toBe('dense');
  });

  it('names the global row by its variable, as the server sends it', () => {
    const global: HeatmapRow = {layer: '(model)', variables: ['(global)'], global: true, values: []};
    expect(rowName(global, 'layer')).toBe('(global)');
    expect(rowName(global, 'variable')).toBe('(global)');
  });
});
