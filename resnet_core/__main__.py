"""`python -m resnet_core …`: the command line over the same functions the app calls."""

from .cli import main

raise SystemExit(main())
