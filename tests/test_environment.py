import os
import platform
from importlib import metadata

import torch

from orglab.environment import PACKAGES, machine_info


def test_machine_info_names_versions_cpu_and_gpu():
    info = machine_info()
    assert info["python"] == platform.python_version()
    for name in PACKAGES:
        assert info[name] == metadata.version(name)
    assert info["cpu_cores"] == os.cpu_count() and info["cpu_cores"] >= 1
    assert isinstance(info["cpu"], str) and info["cpu"]
    assert info["torch"] == torch.__version__ and info["torch_threads"] == torch.get_num_threads()
    if torch.cuda.is_available():
        assert info["gpu"] == [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        assert info["cuda"] == torch.version.cuda
    else:
        assert info["gpu"] is None and info["cuda"] is None
    assert info["platform"] == platform.platform()
