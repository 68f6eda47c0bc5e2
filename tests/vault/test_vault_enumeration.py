"""Anti-enumeration against cheap variants of one photo, on real embeddings (defect 7).

One photo turned into 36 variants (grayscale, equalise, posterise, gamma, R/B swap, JPEG q10
and their pairs) reached all 8 enrolled subjects in 3/3 trials: the guard was keyed to
near-identical captures, and refused tries cost nothing. The guard now links probes by their
embeddings' angle (the variants embed at cosine 0.54-0.97 to the original on SFace, two
photos of one person at ≈ 0.76, two people at ≈ 0.1), and each refusal counts against the
caller.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps
from vault_helpers import consent_for, cosine_compare, unit

from faceverify._errors import EnumerationRefusedError
from faceverify._vault import Vault
from faceverify.hazmat import FacePipeline, ModelPack

SUBJECTS = [f"user{i}" for i in range(8)]


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _gamma(image: Image.Image, g: float) -> Image.Image:
    a = np.asarray(image).astype(np.float32) / 255
    return Image.fromarray((255 * a**g).astype(np.uint8))


EDITS = {
    "gray": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "equalize": ImageOps.equalize,
    "posterize3": lambda im: ImageOps.posterize(im, 3),
    "posterize2": lambda im: ImageOps.posterize(im, 2),
    "gamma0.5": lambda im: _gamma(im, 0.5),
    "gamma1.8": lambda im: _gamma(im, 1.8),
    "rb-swap": lambda im: Image.merge("RGB", im.split()[::-1]),
    "jpeg10": lambda im: _jpeg(im, 10),
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(1.5)),
}


@pytest.fixture(scope="module")
def variants(pipeline: FacePipeline, samples: dict[str, Path]) -> list[np.ndarray]:
    """36 variants of one photo (single edits and pairs of them), embedded by the real pipeline."""
    photo = Image.open(samples["obama"]).convert("RGB")
    names = list(EDITS)
    images = [EDITS[n](photo) for n in names]
    images += [EDITS[b](EDITS[a](photo)) for i, a in enumerate(names) for b in names[i + 1 :]]
    embeddings = [pipeline.sample(np.asarray(im), policy=None).embedding for im in images[:36]]
    assert len(embeddings) == 36
    return embeddings


def _enrol_all(vault: Vault, pack: ModelPack) -> None:
    for i, subject in enumerate(SUBJECTS):
        vault.enroll(
            subject, unit(500 + i, dim=128), consent=consent_for(subject, purpose="id-check"),
            model_pack_id=pack.embedding_space,
        )  # fmt: skip


def _search(vault: Vault, pack: ModelPack, probes: list[np.ndarray], *, rotate_actor: bool) -> set[str]:
    """The attack: for each subject, try variants until one is compared. Returns whom it reached."""
    reached: set[str] = set()
    remaining = list(probes)
    attempt = 0
    for subject in SUBJECTS:
        while remaining:
            probe = remaining.pop(0)
            attempt += 1
            actor = f"client:{attempt}" if rotate_actor else "client:thief"
            try:
                vault.verify(
                    subject, probe, cosine_compare(probe), model_pack_id=pack.embedding_space, actor=actor
                )
            except EnumerationRefusedError:
                continue
            reached.add(subject)
            break
    return reached


def test_variants_of_one_photo_reach_at_most_two_subjects(
    vault: Vault, pack: ModelPack, variants: list
) -> None:
    _enrol_all(vault, pack)
    reached = _search(vault, pack, variants, rotate_actor=False)
    assert len(reached) <= vault.enumeration.max_subjects - 1, reached
    refused = [e for e in vault.audit.entries() if e.event == "enumeration-refused"]
    assert len(refused) == 36 - len(reached)
    assert sum("caller throttled" in e.reason for e in refused) >= 36 - len(reached) - 3


def test_even_a_caller_changing_its_name_every_try_does_not_search(
    vault: Vault, pack: ModelPack, variants: list
) -> None:
    """Without the per-caller count, the embedding-keyed links alone hold the search to two."""
    _enrol_all(vault, pack)
    reached = _search(vault, pack, variants, rotate_actor=True)
    assert len(reached) <= vault.enumeration.max_subjects - 1, reached


def test_honest_users_are_not_refused(
    vault: Vault, pack: ModelPack, pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    """Different people verifying against their own subjects, and a subject retrying, pass."""
    _enrol_all(vault, pack)
    people = [pipeline.sample(samples[k], policy=None).embedding for k in ("obama", "biden")]
    others = [unit(900 + i, dim=128) for i in range(6)]
    for subject, probe in zip(SUBJECTS, [*people, *others], strict=True):
        for _ in range(2):
            vault.verify(
                subject, probe, cosine_compare(probe), model_pack_id=pack.embedding_space, actor="site"
            )
    assert not [e for e in vault.audit.entries() if e.event == "enumeration-refused"]
