import sys

from vae_ros.apps.cli import main

sys.exit(main())
