"""``python -m faceshot`` runs the command line."""

import sys

from faceshot.cli.main import main

sys.exit(main())
