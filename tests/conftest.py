import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests run the same examples on every run and every machine: derandomized, and no example database
# read or written (a clean clone and CI see what a developer sees). HYPOTHESIS_PROFILE=dev explores new random
# examples instead and keeps the failing ones in .hypothesis/ (git-ignored) to replay them.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("dev", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

HAS_CUDA = torch.cuda.is_available()

# Every kernel test runs on the CPU, and on the GPU when one is present.
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU present")]),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``): their
    models are tiny, so more threads buy nothing, and on a busy 2-core machine spinning OpenMP threads competing
    for the cores made them several times slower. The old count is restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
