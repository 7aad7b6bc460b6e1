// Decoders of the plugin's answers: each checks a response against its schema
// (types.ts) and, when it does not fit, throws an ApiError saying which field
// of which route is wrong, so a server and a tab of different versions fail
// with a message rather than a blank or wrong view.

import * as v from 'valibot';
import {
  ApiError,
  comparison,
  findingsResponse,
  heatmap,
  histogramSet,
  kernelGrid,
  normTable,
  runsResponse,
  snapshotDistance,
  snapshotList,
  statSeries,
  statValue,
  type StatValue,
} from './types';

const MISSING = 'is missing';

/** valibot's own wording ("Invalid key: Expected ...") says less than this about a response. */
function wording(issue: v.BaseIssue<unknown>): string {
  return issue.received === 'undefined' ? MISSING : `expected ${issue.expected}, not ${issue.received}`;
}

/** An issue where it is, written as in JavaScript: "runs[0].run is missing". */
function describe(issue: v.BaseIssue<unknown>): string {
  const field = (issue.path ?? [])
    .map((item, i) => (typeof item.key === 'number' ? `[${item.key}]` : `${i ? '.' : ''}${String(item.key)}`))
    .join('');
  if (!field) return issue.message;
  return issue.message === MISSING ? `${field} ${MISSING}` : `${field}: ${issue.message}`;
}

function decoder<S extends v.GenericSchema>(what: string, schema: S): (body: unknown) => v.InferOutput<S> {
  return (body) => {
    const result = v.safeParse(schema, body, {message: wording});
    if (result.success) return result.output;
    const [first, ...others] = result.issues;
    const more = others.length ? ` (and ${others.length} more)` : '';
    throw new ApiError(`unexpected ${what}: ${describe(first)}${more}`);
  };
}

export const decodeNumber: (value: unknown) => StatValue = decoder('value in response', statValue);
export const decodeNumbers: (values: unknown) => StatValue[] = decoder('values in response', v.array(statValue));

const decodeRunsResponse = decoder('response of runs', runsResponse);
export const decodeRuns = (body: unknown) => decodeRunsResponse(body).runs;
export const decodeTable = decoder('response of table', normTable);
export const decodeSeries = decoder('response of series', statSeries);
const decodeFindingsResponse = decoder('response of findings', findingsResponse);
export const decodeFindings = (body: unknown) => decodeFindingsResponse(body).findings;
export const decodeHeatmap = decoder('response of heatmap', heatmap);
export const decodeComparison = decoder('response of compare', comparison);
export const decodeHistograms = decoder('response of histograms', histogramSet);
export const decodeKernelGrids = decoder('response of kernel_grids', kernelGrid);
export const decodeSnapshots = decoder('response of snapshots', snapshotList);
export const decodeSnapshotDistance = decoder('response of snapshot_distance', snapshotDistance);
