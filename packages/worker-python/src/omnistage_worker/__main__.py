"""``python -m omnistage_worker ./my_engine.py[:Class]``: load the engine and serve it."""

import sys

from .engine import EntryError, load_entry, run_worker


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: python -m omnistage_worker ./my_engine.py[:Class]\n"
                         "  (omnistage runs this for `engine: python`, with `engine_args.entry`)\n")
        sys.exit(2)
    try:
        engine = load_entry(sys.argv[1])
    except EntryError as err:
        sys.stderr.write(f"omnistage worker failed: {err}\n")
        sys.exit(1)
    run_worker(engine)


main()
