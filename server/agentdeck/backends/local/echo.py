"""The built-in `echo` agent: prints its prompt back line by line and exits 0."""

import sys


def main(argv: list[str]) -> int:
    prompt = " ".join(argv)
    for line in prompt.splitlines() or [""]:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
