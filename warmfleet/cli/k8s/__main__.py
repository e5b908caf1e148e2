"""``python -m warmfleet.cli.k8s [--check] [--dir k8s]``: the same as `warmfleet k8s generate`."""

import sys

from warmfleet.cli.k8s.generate import main

sys.exit(main())
