"Shared pytest fixtures: the real idrid_boxes photographs (skipped with directions when absent), small temp dirs."
import pytest
from drnb.core import idrid_boxes_path, IDRID_BOXES_HELP

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes minutes (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU")
    config.addinivalue_line("markers", "browser: drives headless Chromium")

@pytest.fixture(scope='session')
def idrid_boxes():
    "Path of ../shared/data/idrid_boxes (from settings.ini); skips with directions when it is absent."
    p = idrid_boxes_path(required=False)
    if p is None: pytest.skip(f"idrid_boxes not found. {IDRID_BOXES_HELP}")
    return p

def pytest_collection_modifyitems(config, items):
    import torch
    if torch.cuda.is_available(): return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for it in items:
        if 'cuda' in it.keywords: it.add_marker(skip)
