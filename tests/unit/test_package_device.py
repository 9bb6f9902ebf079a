"""Which device a package runs on follows its manifest's TVM target."""

import pytest

from edge_os.errors import TargetError
from edge_os.runtime.runner import package_device
from edge_os.targets import load_target


@pytest.mark.parametrize("target,device", [("host", "cpu"), ("rpi5", "cpu"), ("android-arm64", "cpu"),
                                           ("jetson-orin", "cuda"), ("cuda", "cuda")])
def test_each_target_runs_on_its_device(target, device):
    assert package_device(load_target(target).tvm_target) == device


def test_a_device_kind_without_a_runtime_path_is_refused():
    with pytest.raises(TargetError, match="vulkan"):
        package_device({"kind": "vulkan"})
