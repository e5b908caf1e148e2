"""`python -m warmfleet.http`: `warmfleet serve` (the image's entry for the HTTP Deployment)."""

import sys

from warmfleet.cli.main import main

sys.exit(main(["serve", *sys.argv[1:]]))
