"""Shared pytest set-up: GPU tests skip cleanly (with the reason) when CUDA is absent; the SDPO split files; a
checkpoint-corrupting helper."""

import struct
import zipfile
from pathlib import Path

import pytest
import torch

SPLITS_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sdpo_splits"


@pytest.fixture(scope="session")
def splits_root() -> Path:
    """The real SDPO benchmark splits (<repo>/../shared/data/sdpo_splits); a missing folder fails, never skips."""
    if not SPLITS_ROOT.is_dir():
        pytest.fail(f"the SDPO split files are expected at {SPLITS_ROOT} (<repo>/../shared/data/sdpo_splits); "
                    "CI provides them, locally copy them there")
    return SPLITS_ROOT


def overwrite_zip_entry(path: Path, payload: bytes, entry: str = "/data/") -> str:
    """Overwrite the first bytes of the first entry of the torch zip ``path`` whose name contains ``entry`` (what a
    flipped disk or network byte does; torch stores entries uncompressed, so the zip CRC no longer matches).
    Returns the entry's name."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if entry in i.filename and i.file_size >= len(payload))
    with open(path, "r+b") as f:
        f.seek(info.header_offset)
        name_len, extra_len = struct.unpack("<HH", f.read(30)[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        f.write(payload)
    return info.filename


@pytest.fixture(scope="session")
def flip_first_float():
    """flip(path, value=1e30) -> entry: the first float32 of the first tensor of a torch file set to ``value``."""
    return lambda path, value=1e30: overwrite_zip_entry(path, struct.pack("<f", value))


@pytest.fixture(scope="session")
def overwrite_entry():
    """:func:`overwrite_zip_entry` as a fixture."""
    return overwrite_zip_entry


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
