"""`vae-ros repair BAG`: make a bag left by a killed recorder (SIGKILL, power loss) readable again.

MCAP: the records a killed writer completed (every whole chunk) are rewritten with an index, summary and
footer; the damaged original is kept beside it as NAME.mcap.damaged. sqlite3: the transaction a kill left
open is rolled back. Both: metadata.yaml is rebuilt from what the storage file holds, so rosbags,
`ros2 bag`, `vae-ros train` and `eval` open the bag. A file that holds nothing of a bag (no MCAP magic and
header, no topic before the damage), a named pipe or a device is refused and left as it is; work and memory
are bounded (bagio.MAX_MCAP_RECORD_BYTES per record and per decompressed chunk).
"""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", metavar="BAG", help="bag folder (with one .mcap or .db3 file), or that file")


def run(args: argparse.Namespace) -> int:
    from vae_ros.ros.bagio import repair_bag

    print(repair_bag(args.bag))
    return 0
