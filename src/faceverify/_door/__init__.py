"""The door and the enrolment kiosk: faceverify's face at an entrance (issue #13).

A long-running process per door takes a claim (a badge, through a
:class:`ClaimSource`), maps it to one subject (:class:`BadgeMap`: the door
never searches), runs a live session of that subject on fresh camera frames
(:class:`CameraSource`), compares once at the door's operating point and
drives the relay (:class:`DoorActuator`), failing closed on every error.
Each outcome is one :class:`DoorEvent` with a stable reason code. See
docs/door.md for wiring, deployment and what the door stores.
"""

from ._actuator import CommandActuator, DoorActuator, GpioActuator, HttpActuator, actuator_from_spec
from ._camera import CameraSource, Frame, OpenCVCamera, RecordedCamera, camera_target
from ._claims import BadgeMap, Claim, ClaimSource, HttpClaims, LineClaims, QueueClaims, UnixSocketClaims
from ._display import Display, Displays, NullDisplay, TerminalDisplay, WebDisplay
from ._events import DOOR_REASONS, DoorEvent, EventSink, JsonLinesSink, ListSink, SocketSink, reason_for
from ._kiosk import AGREEMENT, Kiosk, KioskEnrolment, KioskTerms
from ._loop import Door, DoorConfig, FreshFrames, Stages
from ._replica import Replica, SyncReport

__all__ = [
    "AGREEMENT",
    "DOOR_REASONS",
    "BadgeMap",
    "CameraSource",
    "Claim",
    "ClaimSource",
    "CommandActuator",
    "Display",
    "Displays",
    "Door",
    "DoorActuator",
    "DoorConfig",
    "DoorEvent",
    "EventSink",
    "Frame",
    "FreshFrames",
    "GpioActuator",
    "HttpActuator",
    "HttpClaims",
    "JsonLinesSink",
    "Kiosk",
    "KioskEnrolment",
    "KioskTerms",
    "LineClaims",
    "ListSink",
    "NullDisplay",
    "OpenCVCamera",
    "QueueClaims",
    "RecordedCamera",
    "Replica",
    "SocketSink",
    "Stages",
    "SyncReport",
    "TerminalDisplay",
    "UnixSocketClaims",
    "WebDisplay",
    "actuator_from_spec",
    "camera_target",
    "reason_for",
]
