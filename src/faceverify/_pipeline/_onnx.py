"""One onnxruntime session per model file, created once and reused.

Session creation costs tens of milliseconds and a graph optimisation pass;
a login server verifying per request must not pay it per request.

Measured choices (``benchmarks/speed.py``, docs/performance.md):

- weight pre-packing is off for float graphs: for SFace in float32 it cost 30 ms and
  17 MB at creation and gained nothing per run on this CPU; an int8 graph asks for it
  (``prepack=True``): its int8 kernels run 14.6 -> 7.8 ms a crop with packed weights, for
  the same creation time (SFace int8, one thread); the memory pattern (all activations planned
  up front) is off: ~20 MB less at peak, same speed; worker threads do not spin
  between runs (a cold compare burns 0.53 s of CPU instead of 0.85 s);
- a session may be created in the background (``background=True``): a cold
  ``faceverify compare`` then decodes and detects while the recognizer's file is
  hashed (``before``: its digest is checked before the session reads it) and
  loaded, and waits for it only when it first embeds. An error in either (a
  digest that does not match, a graph onnxruntime refuses) is raised from the
  first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

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
        background: bool = False,
        optimization: Literal["all", "basic", "none"] = "all",
        prepack: bool = False,
        before: Callable[[], None] | None = None,
    ) -> None:
        self._path = path
        self._before = before
        self._prepack = prepack
        self._optimization = optimization
        self._threads = threads
        self._providers = providers
        self._session: Any = None
        self._error: BaseException | None = None
        self._input_name = ""
        self._output_names: list[str] = []
        self._thread: threading.Thread | None = None
        if background:
            # Not a daemon: interpreter shutdown must not tear down a thread inside onnxruntime.
            self._thread = threading.Thread(target=self._create_guarded, name=f"onnx-load-{path.name}")
            self._thread.start()
        else:
            self._create()

    def _create(self) -> None:
        if self._before is not None:  # e.g. the file's digest, checked in the thread that loads it
            self._before()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads  # 0 lets onnxruntime choose
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        if not self._prepack:
            options.add_session_config_entry("session.disable_prepacking", "1")
        # Worker threads sleep instead of spinning between parallel sections: spinning halves
        # nothing here and doubles the CPU a cold compare burns (0.85 s -> 0.53 s), which on a
        # shared machine is wall time too.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Planning all activations up front (the memory pattern) holds ~20 MB more at peak, for nothing
        # measurable in speed with fixed-shape inputs run one at a time.
        options.enable_mem_pattern = False
        options.graph_optimization_level = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }[self._optimization]
        session = ort.InferenceSession(str(self._path), sess_options=options, providers=list(self._providers))
        self._input_name = session.get_inputs()[0].name
        self._output_names = [o.name for o in session.get_outputs()]
        self._session = session

    def _create_guarded(self) -> None:
        try:
            self._create()
        except BaseException as exc:  # re-raised in the caller's thread on first use
            self._error = exc

    def _ready(self) -> Any:
        thread = self._thread
        if thread is not None:
            thread.join()
        if self._error is not None:
            raise self._error
        return self._session

    @property
    def input_name(self) -> str:
        self._ready()
        return self._input_name

    @property
    def output_names(self) -> list[str]:
        self._ready()
        return self._output_names

    def run(self, blob: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        session = self._ready()
        result: list[npt.NDArray[np.float32]] = session.run(
            None, {self._input_name: blob.astype(np.float32, copy=False)}
        )
        return result
