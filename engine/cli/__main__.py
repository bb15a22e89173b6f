"""`python -m engine.cli`: the same as the `disco-musica` command."""

import sys

from engine.cli import main

sys.exit(main())
