"""AVI video reading and writing with OpenCV (the codec the EchoNet-Dynamic code uses)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from ..io import atomic_path


def read_avi(path: str | os.PathLike, gray: bool = True) -> np.ndarray:
    """Decode every frame of an AVI: uint8 array (T, H, W) if ``gray`` else (T, H, W, 3) RGB.

    Raises :class:`DataError` naming the file if it cannot be opened, has no decodable frames,
    or decodes fewer frames than its header declares (a truncated file).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"{path}: cannot be opened as a video (corrupt or not an AVI)")
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if gray else frame[..., ::-1])
    finally:
        cap.release()
    if not frames:
        raise DataError(f"{path}: no decodable frames (empty or corrupt video)")
    if declared > 0 and len(frames) < declared:
        raise DataError(f"{path}: truncated video, decoded {len(frames)} of {declared} declared frames")
    return np.ascontiguousarray(np.stack(frames))


def write_avi(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    """Write (T, H, W) gray or (T, H, W, 3) RGB uint8 frames as an MJPEG AVI, atomically."""
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    t, h, w, _ = frames.shape
    with atomic_path(path, suffix=".avi") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (w, h))
        if not writer.isOpened():
            raise DataError(f"{path}: OpenCV cannot open an MJPEG AVI writer")
        for f in frames:
            writer.write(np.ascontiguousarray(f[..., ::-1]))
        writer.release()
