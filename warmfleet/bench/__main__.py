"""``python -m warmfleet.bench``: the same as `warmfleet bench`."""
import sys

from warmfleet.cli.bench import main

sys.exit(main())
