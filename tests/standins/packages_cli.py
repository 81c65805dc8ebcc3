"`persistlab-packages` from this tree (the console script resolves to the installed copy)"
from persistlab.cli import packages_cli
packages_cli()
