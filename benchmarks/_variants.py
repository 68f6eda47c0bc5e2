"""One pass over LFW for benchmarks/improve.py: both recognizers, plus simulated frames.

For every LFW image: detect (YuNet), align (ArcFace 5-point) and embed the crop with
SFace (128-d) and the faceplugin 512-d model, for four "frames" of the capture.
Face choice and detector threshold are those of ``_lfw.py`` (``central_face``,
the pack's threshold), so frame 0 reproduces its SFace embeddings.

0. the image as it is;
1. the aligned crop mirrored (the pack's ``mirror`` view: the product's embedding
   is the renormalised sum of frames 0 and 1);
2. and 3. the image jittered like consecutive video frames — shifted by up to
   4 px, scaled by up to ±4 %, rotated by up to ±4°, exposure changed by up to
   ±15 % — and detected and aligned again, so landmark noise is real.

Stored per image and frame: both embeddings, the quality measures, and whether
a face was found. Cached in ``benchmarks/out/lfw-variants.npz`` (one pass takes
about 20 min on one core; run it with ``nice``).
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from faceverify._calibrate import central_face
from faceverify.hazmat import (
    ArcFaceAligner,
    OnnxEmbedder,
    OnnxSession,
    builtin_manifest,
    cache_dir,
    install_pack,
    load_image,
    load_pipeline,
    measure,
    verified_paths,
)
from faceverify.hazmat import Face as DetFace

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "data" / "lfw"
OUT = ROOT / "benchmarks" / "out" / "lfw-variants.npz"
FRAMES = 4
#: Jittered frames per image; 0 skips them (frames 2 and 3 then stay empty, ``found`` False).
JITTER = int(os.environ.get("FV_JITTER", "2"))
THREADS = 1
QUALITY_FIELDS = (
    "detector_score",
    "interocular",
    "sharpness",
    "brightness",
    "clipped",
    "yaw",
    "pitch",
    "roll",
    "outside",
)


def lfw_paths(root: Path = LFW) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.jpg"))


def _choose(faces: list[DetFace], image: np.ndarray) -> DetFace | None:
    """As ``_lfw.py`` chooses: among faces comparable to the largest, the one nearest the centre."""
    return central_face(faces, image.shape[1], image.shape[0]) if faces else None


def _jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    angle = math.radians(rng.uniform(-4, 4))
    scale = 1 + rng.uniform(-0.04, 0.04)
    tx, ty = rng.uniform(-4, 4, size=2)
    cx, cy = w / 2, h / 2
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    # forward map about the centre, then shift
    m = np.array([[c, -s, cx - c * cx + s * cy + tx], [s, c, cy - s * cx - c * cy + ty]])
    from faceverify._pipeline._align import warp_affine

    # warp_affine makes a square; pad to the image's own square size (LFW is 250x250)
    out = warp_affine(image, m, max(h, w))
    gain = 1 + rng.uniform(-0.15, 0.15)
    out = np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return out


def build(limit: int | None = None, jitter: int = JITTER) -> None:
    cache = cache_dir()
    base = builtin_manifest("yunet-sface")
    pipe = load_pipeline(base, threads=THREADS)
    from faceverify._fusion import builtin_recognizer_pack

    fr = builtin_recognizer_pack("faceplugin-fr512")
    install_pack(fr, cache)
    # Each view embedded alone (no mirror summing): the benchmark combines the views itself.
    sface_path = verified_paths(base, cache)[base.recognizer.file]
    sface_embed = OnnxEmbedder(OnnxSession(sface_path, threads=THREADS), base.recognizer.input, dim=128)
    fr_path = verified_paths(fr, cache)[fr.recognizer.file]
    fr_embed = OnnxEmbedder(OnnxSession(fr_path, threads=THREADS), fr.recognizer.input, dim=fr.recognizer.dim)
    aligner = ArcFaceAligner(112)
    paths = lfw_paths()[:limit]
    n = len(paths)
    sface = np.zeros((n, FRAMES, 128), np.float32)
    f512 = np.zeros((n, FRAMES, 512), np.float32)
    found = np.zeros((n, FRAMES), bool)
    quality = np.zeros((n, FRAMES, len(QUALITY_FIELDS)), np.float32)
    landmarks = np.zeros((n, FRAMES, 5, 2), np.float32)
    t0 = time.time()
    for i, rel in enumerate(paths):
        rng = np.random.default_rng(i)
        image = load_image(LFW / rel)
        views = [image] + [_jitter(image, rng) for _ in range(jitter)]
        crops, slots = [], []
        for v, img in enumerate(views):
            face = _choose(pipe.detector.detect(img), img)
            if face is None:
                continue
            crop = aligner.align(img, face.landmarks)
            q = measure(img, face, crop)
            frame_ids = [0, 1] if v == 0 else [v + 1]
            for k, fid in enumerate(frame_ids):
                crops.append(crop[:, ::-1].copy() if k == 1 else crop)
                slots.append(fid)
                found[i, fid] = True
                quality[i, fid] = [getattr(q, f) for f in QUALITY_FIELDS]
                landmarks[i, fid] = face.landmarks
        if crops:
            sface[i, slots] = sface_embed.embed(crops)
            f512[i, slots] = fr_embed.embed(crops)
        if i % 250 == 0:
            el = time.time() - t0
            print(f"{i}/{n} {el:.0f}s, eta {el / (i + 1) * (n - i - 1):.0f}s", file=sys.stderr, flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT if limit is None else OUT.with_suffix(".partial.npz"),
        paths=np.array(paths),
        sface=sface,
        fr512=f512,
        found=found,
        quality=quality,
        landmarks=landmarks,
        quality_fields=np.array(QUALITY_FIELDS),
    )


def load() -> dict[str, np.ndarray]:
    with np.load(OUT) as z:
        return {k: z[k] for k in z.files}


if __name__ == "__main__":
    build(int(sys.argv[1]) if len(sys.argv) > 1 else None)
