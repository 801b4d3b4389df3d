"""The model zoo's user-facing error, `PretrainError`, and the PyTorch import that raises it when torch is missing.

Shared by models/pretrain.py, models/import_torch.py and models/state_dict.py (and
caught by the command line, chipsim/cli/zoo.py); it imports nothing of theirs.
"""
from __future__ import annotations


class PretrainError(ValueError):
    """Bad pretraining input; the message names the option and what was expected."""


def _torch():
    try:
        import torch
    except ImportError:
        raise PretrainError("this command needs PyTorch, which is not installed; expected the torch extra: "
                            "pip install -e '.[torch]'") from None
    return torch
