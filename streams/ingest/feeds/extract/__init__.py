"""Map one decoded JSON payload to points: the one place every feed kind does it.

Paths are JMESPath (https://jmespath.org, the `jmespath` library the AWS CLI uses for --query),
not a home-made language: it has one maintained spec with a compliance test suite and ports in
many languages (so what an operator learns or tests elsewhere holds here), functions such as
`to_number()`, projections and filters for picking lists (`data.candles[*]`, `[?type=='trade']`),
and each expression is compiled once, when the settings are cleaned, then only evaluated.

One job per module, in the order a payload meets them:

- settings.py: cleaning the `extract` settings into an ExtractSettings (paths compiled);
- paths.py: compiling and searching JMESPath (plain field paths without the interpreter);
- decode.py: JSON text nested in the payload, decoded first (what JMESPath cannot do);
- records.py: the records of a payload, and `columns` (parallel arrays) zipped into records;
- extractor.py: each record read into a time (streams/core/times.py), values and an id;
- aggregate.py: records counted, summed... per interval, when `aggregate` is set.

Feed kinds use what this package exposes; the modules are for the tests and each other.
"""

from streams.ingest.feeds.extract.errors import BadPayload
from streams.ingest.feeds.extract.extractor import ExtractingFeed, Extractor
from streams.ingest.feeds.extract.settings import MAX_SERIES_NAME, clean_extract

__all__ = ["MAX_SERIES_NAME", "BadPayload", "ExtractingFeed", "Extractor", "clean_extract"]
