"""Fixtures shared by the test modules."""
import numba
import pytest


@pytest.fixture
def one_numba_thread():
    """Run a test on one Numba thread: batches of 1-3 samples only pay for a parallel launch (results do not
    depend on the thread count, see test_determinism.py). A module opts in with
    `pytestmark = pytest.mark.usefixtures("one_numba_thread")`."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)
