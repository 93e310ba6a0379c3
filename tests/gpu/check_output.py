"""The common end of the GPU-check compare steps: print the table, save it, report failures."""

import sys


def emit(prog, text, failures, table_path):
    """Prints `text`, writes it to `table_path`, and returns the exit status: 1 when any check
    failed (listed on stderr), else 0."""
    print(text)
    try:
        with open(table_path, "w") as f:
            f.write(text)
    except OSError as e:
        print(f"{prog}: cannot write the table: {e}", file=sys.stderr)
    if failures:
        print(f"{prog}: FAIL\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0
