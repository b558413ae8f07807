import sys

from processors.worker import main

sys.exit(main())
