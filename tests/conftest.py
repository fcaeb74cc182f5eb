"""Shared pytest set-up: GPU tests skip cleanly (with the reason) when CUDA is absent; the SDPO split files (the
repository's sample, and the full splits when SRPO_VERL_SPLITS names them); a checkpoint-corrupting helper."""

import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

#: names the folder of the full SDPO split files (`sciknoweval/<task>/{train,test}.json`, `tooluse/test.json`); the
#: checks over every row run only when it is set (`.ci/run` sets it), and skip with the reason otherwise
SPLITS_ENV = "SRPO_VERL_SPLITS"
#: the repository's sample of those files: the first rows of each split file, byte for byte
#: (tests/fixtures/sdpo_splits/README.md names the selection, the sources and their licences)
SAMPLE_SPLITS = Path(__file__).resolve().parent / "fixtures" / "sdpo_splits"
#: rows per split, (train, test); tooluse has its test split only
PAPER_COUNTS = {"chemistry": (1890, 210), "physics": (720, 80), "biology": (450, 50), "material": (841, 94),
                "tooluse": (4046, 68)}
SAMPLE_COUNTS = {"chemistry": (24, 8), "physics": (24, 8), "biology": (24, 8), "material": (25, 9),
                 "tooluse": (None, 27)}


@dataclass(frozen=True)
class Splits:
    """One folder of SDPO split files: the repository's sample or the full splits."""

    kind: str  # "sample" or "full"
    root: Path
    counts: dict  # task -> (train rows, test rows)

    @property
    def paper(self) -> dict:
        """The paper's rows per split (Table 4), whatever this folder holds."""
        return PAPER_COUNTS

    @property
    def count_args(self) -> list[str]:
        """The data scripts' count check holds the paper's counts: the sample waives it."""
        return ["--no-count-check"] if self.kind == "sample" else []


@pytest.fixture(scope="session")
def sample_splits() -> Path:
    """The repository's sample of the SDPO split files."""
    return SAMPLE_SPLITS


@pytest.fixture(scope="session")
def full_splits() -> Path:
    """The full SDPO split files, from the folder SRPO_VERL_SPLITS names; skips when it is unset."""
    value = os.environ.get(SPLITS_ENV)
    if not value:
        pytest.skip(f"{SPLITS_ENV} is not set: the checks over the full SDPO splits need it to name their folder "
                    "(.ci/run sets it to the project CI's copy of the splits when one sits beside the checkout)")
    root = Path(value).resolve()
    if not (root / "sciknoweval").is_dir():
        pytest.fail(f"{SPLITS_ENV}={value}: no sciknoweval/ folder there")
    return root


@pytest.fixture(scope="session", params=["sample", "full"])
def splits(request) -> Splits:
    """Each test that takes it runs on the sample, and on the full splits when SRPO_VERL_SPLITS names them."""
    if request.param == "sample":
        return Splits("sample", SAMPLE_SPLITS, SAMPLE_COUNTS)
    return Splits("full", request.getfixturevalue("full_splits"), PAPER_COUNTS)


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
