"""`lakeray down` stops only the Ray cluster `lakeray up` started (never `ray stop`, which stops
every cluster on the machine); a recorded process group that is not a Ray cluster is left alone."""

import os
import subprocess
import sys

from lakeray import lifecycle


def test_stop_cluster_leaves_groups_without_ray_alone():
    # our own group: no GCS server or raylet in it, so nothing is signalled (we are still here)
    assert lifecycle.stop_cluster(os.getpgid(0)) is False
    assert lifecycle.stop_cluster(None) is False
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        assert lifecycle.stop_cluster(bystander.pid) is False
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()

