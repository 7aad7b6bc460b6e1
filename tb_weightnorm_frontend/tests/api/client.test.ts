import {describe, expect, it} from 'vitest';
import {
  compareUrl,
  createDataClient,
  findingsUrl,
  histogramsUrl,
  kernelGridsUrl,
  runsUrl,
  seriesUrl,
  snapshotDistanceUrl,
  snapshotsUrl,
  tableUrl,
} from '../../src/api/client';
import {
  decodeComparison,
  decodeFindings,
  decodeHistograms,
  decodeKernelGrids,
  decodeNumber,
  decodeNumbers,
  decodeSnapshotDistance,
  decodeSnapshots,
} from '../../src/api/decode';
import {ApiError} from '../../src/api/types';

function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {status, headers: {'Content-Type': 'application/json'}});
}

/** A fetch that answers from a table of URL -> response and records what was asked. */
function fakeFetch(answers: Record<string, () => Response>) {
  const asked: string[] = [];
  const fetchFn = async (url: string) => {
    asked.push(url);
    const answer = answers[url];
    if (!answer) throw new Error(`unexpected URL ${url}`);
    return answer();
  };
  return {fetchFn, asked};
}

describe('decodeNumber', () => {
  it('keeps finite numbers', () => {
    expect(decodeNumber(1.5)).toBe(1.5);
    expect(decodeNumber(0)).toBe(0);
    expect(decodeNumber(-3e-9)).toBe(-3e-9);
  });

  it('turns the non-finite strings into numbers', () => {
    expect(decodeNumber('NaN')).toBeNaN();
    expect(decodeNumber('Infinity')).toBe(Infinity);
    expect(decodeNumber('-Infinity')).toBe(-Infinity);
  });

  it('keeps null (not measured) as null', () => {
    expect(decodeNumber(null)).toBeNull();
  });

  it('rejects anything else instead of guessing', () => {
    expect(() => decodeNumber('inf')).toThrow(ApiError);
    expect(() => decodeNumber('1.5')).toThrow(ApiError);
    expect(() => decodeNumber(undefined)).toThrow(ApiError);
    expect(() => decodeNumber('toString')).toThrow(ApiError);
    expect(() => decodeNumber(true)).toThrow(ApiError);
  });

  it('decodes lists', () => {
    const values = decodeNumbers([1, 'NaN', null, '-Infinity']);
    expect(values[0]).toBe(1);
    expect(values[1]).toBeNaN();
    expect(values[2]).toBeNull();
    expect(values[3]).toBe(-Infinity);
    expect(() => decodeNumbers('NaN')).toThrow(ApiError);
  });
});

describe('URLs', () => {
  it('are relative to the plugin route folder', () => {
    expect(runsUrl()).toBe('./runs');
    expect(tableUrl('a')).toBe('./table?run=a');
    for (const url of [runsUrl(), tableUrl('x', 3), seriesUrl('x', 'weight/l2', ['v'])]) {
      expect(url.startsWith('./')).toBe(true);
      expect(url).not.toContain('/data/plugin');
    }
  });

  it('encode run names and the step', () => {
    expect(tableUrl('mnist/train & eval?#', 291)).toBe('./table?run=mnist%2Ftrain+%26+eval%3F%23&step=291');
  });

  it('repeat `variable` for each chosen variable, in order', () => {
    const url = seriesUrl('r', 'gradient/l2', ['seq/dense/kernel', 'a&b=c']);
    const params = new URLSearchParams(url.slice(url.indexOf('?') + 1));
    expect(url.startsWith('./series?')).toBe(true);
    expect(params.get('run')).toBe('r');
    expect(params.get('stat')).toBe('gradient/l2');
    expect(params.getAll('variable')).toEqual(['seq/dense/kernel', 'a&b=c']);
  });

  it('leave out `variable` when none is given (all variables)', () => {
    expect(seriesUrl('r', 'weight/l2')).toBe('./series?run=r&stat=weight%2Fl2');
  });
});

describe('createDataClient', () => {
  it('reads the runs', async () => {
    const run = {
      run: 'demo/train',
      last_step: 291,
      variables: 6,
      stats: ['weight/l2'],
      layers: ['conv', 'dense'],
      gradient_note: 'before clipping (clipnorm=1.0)',
      histograms: {kinds: ['weight', 'gradient'], bins: [32], variables: 6, last_step: 290},
      kernel_grids: [{layer: 'conv', variable: 'm/conv/kernel', mode: 'rgb', filters_total: 8, last_step: 291}],
    };
    const {fetchFn} = fakeFetch({'./runs': () => jsonResponse({runs: [run]})});
    expect(await createDataClient(fetchFn).getRuns()).toEqual([
      {
        run: 'demo/train',
        steps: null,
        first_step: null,
        last_step: 291,
        variables: 6,
        stats: ['weight/l2'],
        layers: ['conv', 'dense'],
        histogramKinds: ['weight', 'gradient'],
        kernelGrids: [{layer: 'conv', variable: 'm/conv/kernel', mode: 'rgb', filtersTotal: 8, lastStep: 291}],
        gradientNote: 'before clipping (clipnorm=1.0)',
      },
    ]);
  });

  it('rejects runs without a name and tolerates a run without stats', async () => {
    const {fetchFn} = fakeFetch({'./runs': () => jsonResponse({runs: [{run: 'r', steps: 1}]})});
    const [run] = await createDataClient(fetchFn).getRuns();
    expect(run.run).toBe('r');
    expect(run.stats).toEqual([]);
    expect(run.steps).toBe(1);
    expect(run.first_step).toBeNull();
    const bad = fakeFetch({'./runs': () => jsonResponse({runs: [{steps: 1}]})});
    await expect(createDataClient(bad.fetchFn).getRuns()).rejects.toThrow(/without a name/);
  });

  it('decodes the values of the table', async () => {
    const {fetchFn, asked} = fakeFetch({
      './table?run=demo%2Ftrain': () =>
        jsonResponse({
          run: 'demo/train',
          step: 291,
          wall_time: 1795296202.37,
          steps: [1, 291],
          stats: ['weight/l2', 'gradient/l2', 'update/ratio'],
          rows: [{layer: 'dense', variable: 'seq/dense/kernel', values: [1.93, 'Infinity', null]}],
        }),
    });
    const table = await createDataClient(fetchFn).getTable('demo/train');
    expect(asked).toEqual(['./table?run=demo%2Ftrain']);
    expect(table.step).toBe(291);
    expect(table.rows[0].values).toEqual([1.93, Infinity, null]);
  });

  it('decodes the values of a series', async () => {
    const url = seriesUrl('r', 'gradient/l2', ['v']);
    const {fetchFn} = fakeFetch({
      [url]: () =>
        jsonResponse({
          run: 'r',
          stat: 'gradient/l2',
          steps: [1, 2, 3],
          wall_times: [1, 2, 3],
          series: [{layer: 'l', variable: 'v', values: ['NaN', 0.5, '-Infinity']}],
        }),
    });
    const series = await createDataClient(fetchFn).getSeries('r', 'gradient/l2', ['v']);
    const [a, b, c] = series.series[0].values;
    expect(a).toBeNaN();
    expect(b).toBe(0.5);
    expect(c).toBe(-Infinity);
  });

  it('surfaces the error message of a 4xx answer', async () => {
    const {fetchFn} = fakeFetch({
      './table?run=nope': () => jsonResponse({error: "Unknown run: 'nope'"}, 404),
    });
    const failure = createDataClient(fetchFn).getTable('nope');
    await expect(failure).rejects.toThrow(ApiError);
    await expect(createDataClient(fetchFn).getTable('nope')).rejects.toMatchObject({
      status: 404,
      message: expect.stringContaining("Unknown run: 'nope'"),
    });
  });

  it('reports an error answer without a JSON body by its status', async () => {
    const {fetchFn} = fakeFetch({
      './runs': () => new Response('<html>oops</html>', {status: 500, statusText: 'Internal Server Error'}),
    });
    await expect(createDataClient(fetchFn).getRuns()).rejects.toThrow('HTTP 500 Internal Server Error');
  });

  it('reports a malformed answer', async () => {
    const {fetchFn} = fakeFetch({
      './runs': () => jsonResponse({runs: 'none'}),
      './table?run=r': () => new Response('not json', {status: 200}),
    });
    const client = createDataClient(fetchFn);
    await expect(client.getRuns()).rejects.toThrow(ApiError);
    await expect(client.getTable('r')).rejects.toThrow(/not JSON/);
  });

  it('names the route and the field of a malformed answer', async () => {
    const {fetchFn} = fakeFetch({
      './runs': () => jsonResponse({runs: 'none'}),
      './table?run=r': () => jsonResponse({run: 'r', step: 1, steps: [1], stats: ['weight/l2'], rows: [{layer: 'l', variable: 'v', values: ['inf']}]}),
      './findings?run=r': () => jsonResponse({findings: [{run: 'r', severity: 'critical'}]}),
    });
    const client = createDataClient(fetchFn);
    await expect(client.getRuns()).rejects.toThrow('unexpected response of runs: runs: expected Array, not "none"');
    await expect(client.getTable('r')).rejects.toThrow('unexpected response of table: rows[0].values[0]: expected a number');
    await expect(client.getFindings('r')).rejects.toThrow(/^unexpected response of findings: findings\[0\]\.rule is missing \(and \d+ more\)$/);
  });
});

describe('findings', () => {
  it('are fetched per run with a relative, escaped URL', () => {
    expect(findingsUrl('a b/&train')).toBe('./findings?run=a+b%2F%26train');
  });

  it('decode with infinite values and an empty variable', () => {
    const [f] = decodeFindings({
      findings: [
        {run: 'r', rule: 'nonfinite', severity: 'critical', layer: '(model)', variable: '', first_step: 3,
         last_step: 9, value: 'Infinity', threshold: 0, message: 'm', ongoing: true},
      ],
    });
    expect(f.value).toBe(Infinity);
    expect(f.variable).toBe('');
    expect(f.ongoing).toBe(true);
  });

  it('refuse an unknown severity', () => {
    expect(() => decodeFindings({findings: [{severity: 'bad'}]})).toThrow(ApiError);
  });
});

describe('the data behind the tab', () => {
  it('asks for a heatmap by layer, thinned, and reads NaN/Inf counts per cell', async () => {
    const body = {
      run: 'nan/train',
      stat: 'gradient/l2',
      by: 'layer',
      max_steps: 2,
      logged_steps: 20,
      reduce: 'max',
      steps: [10, 20],
      first_steps: [1, 11],
      rows: [
        {layer: 'first', variables: ['m/first/kernel', 'm/first/bias'], global: false, values: [2.3, 0], nonfinite: [0, 56]},
        {layer: '(model)', variables: ['(global)'], global: true, values: [5.2, null]},
      ],
    };
    const {fetchFn, asked} = fakeFetch({'./heatmap?run=nan%2Ftrain&stat=gradient%2Fl2&by=layer&max_steps=2': () => jsonResponse(body)});
    const heatmap = await createDataClient(fetchFn).getHeatmap('nan/train', 'gradient/l2', {by: 'layer', maxSteps: 2});
    expect(asked).toHaveLength(1);
    expect(heatmap).toMatchObject({by: 'layer', steps: [10, 20], firstSteps: [1, 11], loggedSteps: 20, reduce: 'max'});
    expect(heatmap.rows[0]).toEqual({layer: 'first', variables: ['m/first/kernel', 'm/first/bias'], global: false, values: [2.3, 0], nonFinite: [0, 56]});
    expect(heatmap.rows[1]).toMatchObject({global: true, values: [5.2, null], nonFinite: null});
  });

  it('reads a comparison where one run did not log the stat', () => {
    const comparison = decodeComparison({
      stat: 'update/ratio',
      runs: [
        {run: 'a', stat_logged: true, missing: ['m/x'], missing_layers: [], logged_steps: 2, reduce: 'last',
         steps: [0, 10], first_steps: [0, 10], wall_times: [1, 2],
         series: [{layer: 'l', variable: 'm/l/kernel', values: [0.001, 'Infinity']}]},
        {run: 'b', stat_logged: false, missing: [], missing_layers: ['l']},
      ],
    });
    expect(comparison.runs[0]).toMatchObject({run: 'a', statLogged: true, missing: ['m/x'], steps: [0, 10], wallTimes: [1, 2]});
    expect(comparison.runs[0].series[0].values).toEqual([0.001, Infinity]);
    expect(comparison.runs[1]).toMatchObject({run: 'b', statLogged: false, missingLayers: ['l'], steps: [], series: []});
  });

  it('reads histograms of several runs, one of them missing', () => {
    const set = decodeHistograms({
      variable: 'm/l/kernel',
      kind: 'gradient',
      runs: [
        {run: 'a', layer: 'l', histograms: [{step: 1, wall_time: 5, min: null, max: null, counts: [0, 0], nan_count: 4, neg_inf_count: 0, pos_inf_count: 1}]},
        {run: 'b', missing: "no gradient histogram of 'm/l/kernel'"},
      ],
    });
    expect(set.kind).toBe('gradient');
    expect(set.runs[0].histograms[0]).toEqual({step: 1, wallTime: 5, min: null, max: null, counts: [0, 0], nanCount: 4, negInfCount: 0, posInfCount: 1});
    expect(set.runs[1]).toEqual({run: 'b', layer: '', histograms: [], missing: "no gradient histogram of 'm/l/kernel'"});
  });

  it('reads kernel grids with relative image URLs', () => {
    const grid = decodeKernelGrids({
      run: 'cnn/train', variable: 'm/conv/kernel', layer: 'conv', mode: 'rgb', filters_total: 4,
      images: [{step: 0, wall_time: 1, width: 26, height: 26, scale: 0.2995, filters_shown: 4, url: 'kernel_image?run=cnn%2Ftrain&variable=m%2Fconv%2Fkernel&step=0'}],
    });
    expect(grid).toMatchObject({layer: 'conv', mode: 'rgb', filtersTotal: 4});
    expect(grid.images[0]).toMatchObject({step: 0, width: 26, scale: 0.2995, filtersShown: 4});
    expect(grid.images[0].url.startsWith('kernel_image?')).toBe(true);
  });

  it('builds the URLs of compare and histograms with repeated runs', () => {
    expect(compareUrl(['a', 'b/c'], 'weight/l2', {layers: ['<img>'], maxSteps: 10})).toBe(
      './compare?run=a&run=b%2Fc&stat=weight%2Fl2&layer=%3Cimg%3E&max_steps=10',
    );
    expect(histogramsUrl(['a'], 'm/k', 'weight', 60)).toBe('./histograms?run=a&variable=m%2Fk&kind=weight&max_steps=60');
    expect(kernelGridsUrl('a', 'm/k')).toBe('./kernel_grids?run=a&variable=m%2Fk');
  });
});

describe('weight snapshots', () => {
  it('builds relative URLs', () => {
    expect(snapshotsUrl('a/train')).toBe('./snapshots?run=a%2Ftrain');
    expect(snapshotDistanceUrl('a b', 0, 12)).toBe('./snapshot_distance?run=a+b&from=0&to=12');
  });

  it('decodes the list of snapshots and the files skipped', () => {
    const list = decodeSnapshots({
      run: 'r',
      snapshots: [{epoch: 0, step: 0, wall_time: 5.5, variables: 8}],
      skipped: [{file: 'epoch-000009.wsnap', reason: 'bad magic'}],
    });
    expect(list).toEqual({
      run: 'r',
      snapshots: [{epoch: 0, step: 0, wallTime: 5.5, variables: 8}],
      skipped: [{file: 'epoch-000009.wsnap', reason: 'bad magic'}],
    });
    expect(() => decodeSnapshots({run: 'r', snapshots: [{step: 1}]})).toThrow(ApiError);
  });

  it('decodes distances with infinities and values not measured', () => {
    const values = {distance: 0.5, relative: 'Infinity', norm_from: 0, norm_to: 0.5, nonfinite: 2};
    const d = decodeSnapshotDistance({
      run: 'r',
      from: {epoch: 0, step: 0, wall_time: 1},
      to: {epoch: 2, step: 8, wall_time: 2},
      total: {...values, relative: null},
      layers: [{layer: 'dense', ...values, variables: [{variable: 'm/dense/bias', shape: [3], ...values}]}],
      unmatched: [{variable: 'm/x', reason: 'only in epoch 0'}],
    });
    expect(d.total.relative).toBeNull();
    expect(d.layers[0]).toMatchObject({layer: 'dense', distance: 0.5, relative: Infinity, normFrom: 0, nonFinite: 2});
    expect(d.layers[0].variables[0]).toMatchObject({variable: 'm/dense/bias', shape: [3], relative: Infinity});
    expect(d.to).toEqual({epoch: 2, step: 8, wallTime: 2});
    expect(d.unmatched).toEqual([{variable: 'm/x', reason: 'only in epoch 0'}]);
  });

  it('fetches through the client', async () => {
    const {fetchFn, asked} = fakeFetch({
      './snapshots?run=r': () => jsonResponse({run: 'r', snapshots: [], skipped: []}),
      './snapshot_distance?run=r&from=0&to=1': () => jsonResponse({error: "run 'r' has no weight snapshot of epoch 1"}, 404),
    });
    const client = createDataClient(fetchFn);
    expect((await client.getSnapshots('r')).snapshots).toEqual([]);
    await expect(client.getSnapshotDistance('r', 0, 1)).rejects.toThrow("no weight snapshot of epoch 1 (HTTP 404");
    expect(asked).toEqual(['./snapshots?run=r', './snapshot_distance?run=r&from=0&to=1']);
  });
});
