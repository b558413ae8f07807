"""marketpipe processors: faust-streaming workers that materialize books, candles and account state.

Entry points: `processors.main(argv)` (what `marketpipe process` calls) and `processors.run(settings)`.
"""

from processors.worker import main, run

__all__ = ["main", "run"]
