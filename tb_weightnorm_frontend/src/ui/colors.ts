// Line colours. A variable keeps its colour (by its place in the run's list of
// variables) while others are added to or removed from the chart.

const PALETTE = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
  '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#ad494a',
];

export function colorAt(index: number): string {
  return PALETTE[((index % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

/** Colour of each variable of a run, by its index in `variables`. */
export function colorMap(variables: readonly string[]): Map<string, string> {
  return new Map(variables.map((v, i) => [v, colorAt(i)]));
}
