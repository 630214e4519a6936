"""``python -m resizer``."""

from resizer.cli import main

main()
