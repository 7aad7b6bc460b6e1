"""Reading a run's logs back: norm tables, histograms, kernel grids, and the views on them.

Everything reads through a TensorBoard data provider, as the plugin does:
`norm_tables`, `histogram_tables` and `kernel_grids` read the wire format,
`history` holds a run's norm tables as one array and `layer_view` combines
its rows by layer; `export` and `csv_export` give them to pandas and CSV;
`charts` computes what the tab's charts show of a history, and `json_numbers`
spells NaN and infinities for JSON (all three numpy only).

`event_index` is the exception: for runs too long for the data providers
(docs/scale.md) it indexes a run's event files itself (`record_arrays` holds
a tag's records, `event_prefix` decodes a record's first bytes) and reads
chosen records back. No route uses it yet.
"""
