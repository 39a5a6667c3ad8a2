import sys

from dsnet.cli import main

sys.exit(main())
