"""The wire format: what the event files hold and how it is read back.

`metadata` names the plugin's tags and builds and parses its versioned plugin
data (`proto/`); `table_codec` packs table values; `event_files` knows how
TensorBoard event files end. The writer and the reader both speak it; nothing
here imports TensorFlow.
"""
