"""The relay: opens the door for N seconds, and stays shut on every error.

A :class:`DoorActuator` has one job, ``open(seconds)``, which returns only once
the hardware (or the controller behind it) confirmed, and raises
:class:`~faceverify._errors.ActuatorError` otherwise. Failing closed is the
actuator's contract and the door's: an actuator that raises, hangs past its
timeout, or answers anything but success leaves the door shut and the event
says ``opened: false``. Wire the lock itself fail-secure (it locks when
unpowered): then a crashed door process, a cut cable or a power cut also
leaves it shut (docs/door.md).

- :class:`CommandActuator` — runs a command (a hook script that pulses the
  relay), ``{seconds}`` and ``{door}`` substituted in its arguments, and
  requires exit status 0 within ``timeout``;
- :class:`HttpActuator` — ``POST`` ``{"door": ..., "open_seconds": N}`` to a
  door controller's URL, requiring a 2xx within ``timeout``;
- :class:`GpioActuator` — a relay on a GPIO pin through ``gpiozero`` (the
  optional extra ``faceverify[gpio]``): energised for N seconds by a timer,
  released on every exit path.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Protocol

from .._errors import ActuatorError, ConfigurationError

__all__ = ["CommandActuator", "DoorActuator", "GpioActuator", "HttpActuator", "actuator_from_spec"]


class DoorActuator(Protocol):
    """Opens the door for ``seconds``, or raises :class:`ActuatorError` (the door stays shut)."""

    def open(self, seconds: float) -> None: ...

    def close(self) -> None:
        """Release the hardware (the relay de-energised: locked)."""
        ...


class CommandActuator:
    """Run ``argv`` (``{seconds}``/``{door}`` substituted); success is exit status 0 within ``timeout``."""

    def __init__(self, argv: Sequence[str], *, door: str = "door", timeout: float = 2.0) -> None:
        if not argv:
            raise ConfigurationError("the relay command is empty")
        self._argv = list(argv)
        self._door = door
        self._timeout = timeout

    def open(self, seconds: float) -> None:
        argv = [a.replace("{seconds}", f"{seconds:g}").replace("{door}", self._door) for a in self._argv]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=self._timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ActuatorError(f"the relay command did not finish within {self._timeout:g} s") from None
        except OSError as exc:
            raise ActuatorError(f"the relay command could not run: {exc.strerror}") from None
        if done.returncode != 0:
            raise ActuatorError(f"the relay command failed (exit status {done.returncode})")

    def close(self) -> None:
        pass


class HttpActuator:
    """``POST`` to a door controller; success is a 2xx answer within ``timeout``."""

    def __init__(self, url: str, *, door: str = "door", timeout: float = 2.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError("the relay callback must be an http:// or https:// URL")
        self._url = url
        self._door = door
        self._timeout = timeout

    def open(self, seconds: float) -> None:
        body = json.dumps({"door": self._door, "open_seconds": seconds}).encode()
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
            self._url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as exc:
            raise ActuatorError(f"the relay callback answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ActuatorError(f"the relay callback could not be reached: {exc}") from None
        if not 200 <= status < 300:
            raise ActuatorError(f"the relay callback answered {status}")

    def close(self) -> None:
        pass


class GpioActuator:
    """A relay on GPIO ``pin`` (BCM numbering), energised for N seconds then released.

    ``active_high=False`` for the common low-triggered relay boards. The pin
    starts released; ``close`` releases it and frees the pin.
    """

    def __init__(self, pin: int, *, active_high: bool = True, device: Any = None) -> None:
        if device is None:
            try:
                from gpiozero import OutputDevice
            except ImportError:
                raise ConfigurationError(
                    "a GPIO relay needs gpiozero, an optional extra: pip install 'faceverify[gpio]'"
                ) from None
            try:
                device = OutputDevice(pin, active_high=active_high, initial_value=False)
            except Exception as exc:
                raise ConfigurationError(f"cannot drive GPIO pin {pin}: {exc}") from None
        self._device = device
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def open(self, seconds: float) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            try:
                self._device.on()
            except Exception as exc:
                self._release()
                raise ActuatorError(f"the GPIO relay did not switch: {exc}") from None
            self._timer = threading.Timer(seconds, self._release)
            self._timer.daemon = True
            self._timer.start()

    def _release(self) -> None:
        with contextlib.suppress(Exception):  # nothing more can be done; the lock is fail-secure
            self._device.off()

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._release()
            closer = getattr(self._device, "close", None)
            if closer is not None:
                closer()


def actuator_from_spec(spec: str, *, door: str, timeout: float = 2.0) -> DoorActuator:
    """``cmd:COMMAND ARGS...``, ``http(s)://URL`` or ``gpio:PIN[:low]`` (a low-triggered board)."""
    if spec.startswith(("http://", "https://")):
        return HttpActuator(spec, door=door, timeout=timeout)
    kind, _, rest = spec.partition(":")
    if kind == "cmd" and rest.strip():
        return CommandActuator(shlex.split(rest), door=door, timeout=timeout)
    if kind == "gpio":
        pin, _, level = rest.partition(":")
        if pin.isdigit() and level in ("", "high", "low"):
            return GpioActuator(int(pin), active_high=level != "low")
    raise ConfigurationError(f"relay {spec!r}: expected cmd:COMMAND, http(s)://URL or gpio:PIN[:low]")
