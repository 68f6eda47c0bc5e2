"""One onnxruntime session per model file, created once and reused.

Session creation costs tens of milliseconds and a graph optimisation pass;
a login server verifying per request must not pay it per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


class OnnxSession:
    """A thin, typed wrapper: one named input, all outputs, CPU by default."""

    def __init__(
        self,
        path: Path,
        *,
        threads: int = 0,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0 lets onnxruntime choose
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session: Any = ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
        self.input_name: str = self._session.get_inputs()[0].name
        self.output_names: list[str] = [o.name for o in self._session.get_outputs()]

    def run(self, blob: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        result: list[npt.NDArray[np.float32]] = self._session.run(
            None, {self.input_name: blob.astype(np.float32, copy=False)}
        )
        return result
