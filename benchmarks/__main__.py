import sys

from warmfleet.cli.bench import main

sys.exit(main())
