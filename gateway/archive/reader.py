"""The reader process of an import: ``python -m gateway.archive.reader FILE SIZE``.

Parses the sheet (``files.open_sheet``) and writes its data rows to stdout as pickled chunks of ``SIZE``
(row number, values) pairs, then ``None``; on failure, the error as a string. Only the importing process, which
started this one, reads the stream.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

from gateway.archive.files import open_sheet


def main(argv: list[str]) -> int:
    path, size = Path(argv[0]), int(argv[1])
    out = sys.stdout.buffer
    try:
        sheet = open_sheet(path, count=False)
        try:
            chunk: list[tuple[int, list[Any]]] = []
            for item in sheet.rows:
                chunk.append(item)
                if len(chunk) >= size:
                    pickle.dump(chunk, out, protocol=pickle.HIGHEST_PROTOCOL)
                    chunk = []
            if chunk:
                pickle.dump(chunk, out, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            sheet.close()
        pickle.dump(None, out)
    except BrokenPipeError:  # the importing process stopped reading: nothing to report to
        return 1
    except Exception as exc:
        pickle.dump(f"{type(exc).__name__}: {exc}", out)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
