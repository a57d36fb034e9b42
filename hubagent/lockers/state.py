"""The compartment state machine, pure: no I/O, no clock.

A compartment rests in one of :data:`RESTING`; a release (the lock pulsed
for a purpose) moves it to an in-flight state, and the door closing after
it moved completes the release. A release whose door never moved (lock
jammed, daemon killed before the pulse) is undone: the compartment goes
back to the resting state it came from (``prior``).

::

    free --assign--> reserved --release(load)--> loading --closed--> occupied
    occupied --release(pickup)--> picking --closed--> free
    occupied --expire--> expired --release(retrieve)--> retrieving --closed--> free
    free --release(return)--> returning --closed--> returned
    returned --release(retrieve)--> retrieving --closed--> free
    <any resting> --release(remote)--> opening --closed--> <the same resting state>
    unknown --lockers.restore--> free | occupied | expired | returned
    unknown --locker.clear_unknown--> free
"""

from __future__ import annotations

import enum


class State(str, enum.Enum):
    """Where a compartment is in its life cycle."""

    FREE = "free"
    RESERVED = "reserved"      # a parcel is assigned, not yet loaded
    LOADING = "loading"        # released for loading
    OCCUPIED = "occupied"      # a parcel waits for its customer
    PICKING = "picking"        # released for the customer
    EXPIRED = "expired"        # the parcel was not collected in time; staff retrieve it
    RETRIEVING = "retrieving"  # released for staff
    RETURNING = "returning"    # released for a return drop-off
    RETURNED = "returned"      # a return waits for staff
    OPENING = "opening"        # released by central (locker.open); contents unchanged
    UNKNOWN = "unknown"        # no record of the contents (new database): never assigned or opened by a code


class Purpose(str, enum.Enum):
    """Why a lock is released."""

    LOAD = "load"
    PICKUP = "pickup"
    RETRIEVE = "retrieve"
    RETURN = "return"
    REMOTE = "remote"


class TransitionError(ValueError):
    """The compartment cannot do that in its current state."""


RESTING = frozenset({State.FREE, State.RESERVED, State.OCCUPIED, State.EXPIRED, State.RETURNED, State.UNKNOWN})
"""States with no release pending."""

_RELEASE: dict[tuple[State, Purpose], State] = {
    (State.RESERVED, Purpose.LOAD): State.LOADING,
    (State.OCCUPIED, Purpose.PICKUP): State.PICKING,
    (State.EXPIRED, Purpose.RETRIEVE): State.RETRIEVING,
    (State.OCCUPIED, Purpose.RETRIEVE): State.RETRIEVING,
    (State.RETURNED, Purpose.RETRIEVE): State.RETRIEVING,
    (State.FREE, Purpose.RETURN): State.RETURNING,
}

_AFTER_CLOSE: dict[State, State] = {
    State.LOADING: State.OCCUPIED,
    State.PICKING: State.FREE,
    State.RETRIEVING: State.FREE,
    State.RETURNING: State.RETURNED,
}


def is_releasing(state: State) -> bool:
    """Whether a release is pending (the state is in flight)."""
    return state not in RESTING


def release(state: State, purpose: Purpose) -> State:
    """The in-flight state a release for ``purpose`` moves ``state`` to."""
    if purpose is Purpose.REMOTE:
        if state not in RESTING:
            raise TransitionError(f"a release is already pending ({state.value})")
        return State.OPENING
    target = _RELEASE.get((state, purpose))
    if target is None:
        raise TransitionError(f"cannot release for {purpose.value} while {state.value}")
    return target


def closed(state: State, prior: State) -> State:
    """The resting state after the door closed on a completed release."""
    if state is State.OPENING:
        return prior
    target = _AFTER_CLOSE.get(state)
    if target is None:
        raise TransitionError(f"no release pending ({state.value})")
    return target


def undone(state: State, prior: State) -> State:
    """The state after a release that never opened the door is undone."""
    if state in RESTING:
        raise TransitionError(f"no release pending ({state.value})")
    if prior not in RESTING:
        raise TransitionError(f"prior state {prior.value} is not a resting state")
    return prior


def assign(state: State) -> State:
    """A parcel is assigned to a free compartment: free -> reserved."""
    if state is not State.FREE:
        raise TransitionError(f"cannot reserve a compartment that is {state.value}")
    return State.RESERVED


def cancel(state: State) -> State:
    """A parcel is cancelled: reserved -> free; occupied -> expired (staff take it out)."""
    if state is State.RESERVED:
        return State.FREE
    if state is State.OCCUPIED:
        return State.EXPIRED
    raise TransitionError(f"cannot cancel while {state.value}")


def expire(state: State) -> State:
    """An uncollected parcel's compartment: occupied -> expired; reserved -> free."""
    if state is State.OCCUPIED:
        return State.EXPIRED
    if state is State.RESERVED:
        return State.FREE
    raise TransitionError(f"nothing to expire while {state.value}")
