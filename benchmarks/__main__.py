import sys

from warmfleet.bench import main

sys.exit(main())
