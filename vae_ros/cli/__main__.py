import sys

from vae_ros.cli import main

sys.exit(main())
