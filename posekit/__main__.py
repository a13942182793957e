"""``python -m posekit`` runs the command line (also the entry point for ``torchrun -m posekit``)."""

from posekit.cli import main

raise SystemExit(main())
