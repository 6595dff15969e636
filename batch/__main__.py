"""``python -m batch`` = ``./reel2rig batch``."""
import sys

from .cli import main

sys.exit(main())
