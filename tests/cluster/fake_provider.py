"""Ray's fake multi-node provider, with one change: every node it starts gets a disk of its own.

``FakeMultiNodeProvider`` starts each worker node in the head's temp dir, so all nodes of
the fake cluster share one ``runtime_resources/`` folder. A real cluster never does, and
Ray's ``working_dir`` plugin relies on that: a node that has not set up a package yet
unpacks it with ``overwrite=True`` (``WorkingDirPlugin.create``), deleting the folder that
the driver and the trials on the other nodes run in (``os.getcwd()`` then raises
``FileNotFoundError``). ``ray job submit --working-dir .`` on the shared-folder fake
cluster fails that way as soon as the autoscaler adds a node.

:class:`OwnDiskFakeProvider` gives node N the temp dir ``<node_temp_root>/nN`` (the
provider config's ``node_temp_root``, inside the test cluster's own temp dir, so teardown
still finds every process by that path). Everything else is Ray's provider unchanged; the
autoscaler loads it as ``provider: {type: external, module: tests.cluster.fake_provider.OwnDiskFakeProvider}``.
"""

from __future__ import annotations

import os
from pathlib import Path

import ray._private.parameter
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider


class OwnDiskFakeProvider(FakeMultiNodeProvider):
    def _create_node_with_resources_and_labels(self, node_config, tags, count, resources, labels):
        with self.lock:  # an RLock: the parent method takes it again
            temp_dir = Path(self.provider_config["node_temp_root"]) / f"n{self._next_node_id + 1}"
            os.makedirs(temp_dir, exist_ok=True)
            make_params = ray._private.parameter.RayParams

            def own_disk(**kwargs):
                return make_params(temp_dir=str(temp_dir), **kwargs)

            ray._private.parameter.RayParams = own_disk  # only node creation (under the lock) builds RayParams here
            try:
                super()._create_node_with_resources_and_labels(node_config, tags, count, resources, labels)
            finally:
                ray._private.parameter.RayParams = make_params
