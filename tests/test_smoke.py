"""End to end on real models and real photos: same person matches, others don't."""

from __future__ import annotations

from pathlib import Path

from faceverify.hazmat import FacePipeline, cosine


def test_same_person_scores_far_above_different_people(
    pipeline: FacePipeline, samples: dict[str, Path]
) -> None:
    emb = {
        k: pipeline.sample(samples[k], policy=None).embedding for k in ("obama", "obama2", "obama3", "biden")
    }
    genuine = [cosine(emb["obama"], emb["obama2"]), cosine(emb["obama"], emb["obama3"])]
    impostor = [cosine(emb[k], emb["biden"]) for k in ("obama", "obama2", "obama3")]
    assert min(genuine) > 0.6
    assert max(impostor) < 0.35
