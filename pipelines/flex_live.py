"""Entry point of the Dataflow flex template: ``peloton live`` with the template's parameters."""
import sys

from pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main(["live", *sys.argv[1:]]))
