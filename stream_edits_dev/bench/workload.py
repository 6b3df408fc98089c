"""A deterministic synthetic claim-line workload: realistic patient-days as NDJSON-ready bytes.

Most patient-days are office visits, labs, imaging and therapy no edit rule mentions; about one in
eight carries the thoracic paravertebral block family (64461, often the 64462 add-on, sometimes a
second 64462 or a 64463, sometimes imaging guidance billed with it or on a separate claim minutes
later, sometimes an orphan 64462). On top of the original claims come replacements (frequency 7)
and voids (frequency 8) of earlier claims of the same member, and exact byte-for-byte
redeliveries of earlier events. Arrival order follows received_at with local shuffles (late lines).

    python -m stream_edits_dev.bench.workload --lines 100000 --seed 7 > day.ndjson
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from itertools import accumulate

import orjson

FIRST_DATE_OF_SERVICE = date(2025, 3, 3)
DAYS_OF_SERVICE = 60
BLOCK_DAY_RATE = 0.12  # share of patient-days that carry the 64461-64463 family

_HOUR = 3600
_DAY = 86_400

# Codes no default rule mentions, weighted roughly like a multispecialty practice's volume.
_UNRELATED: tuple[tuple[str, int], ...] = (
    ("99213", 20),  # office visit, established patient
    ("99214", 14),
    ("99212", 4),
    ("99215", 3),
    ("36415", 12),  # venipuncture
    ("80053", 6),  # comprehensive metabolic panel
    ("85025", 7),  # complete blood count
    ("80061", 3),  # lipid panel
    ("83036", 3),  # hemoglobin A1c
    ("71046", 4),  # chest X-ray, 2 views
    ("73030", 2),
    ("72100", 2),
    ("93000", 3),  # ECG
    ("97110", 8),  # therapeutic exercise (timed: several units)
    ("97140", 4),
    ("97530", 3),
    ("96372", 3),  # injection
    ("20610", 2),
    ("J1100", 1),
    ("G0439", 1),
)
_UNRELATED_CODES = tuple(code for code, _ in _UNRELATED)
# Cumulative weights: random.choices skips re-summing them on every call.
_UNRELATED_WEIGHTS = tuple(accumulate(weight for _, weight in _UNRELATED))
_TIMED_CODES = frozenset({"97110", "97140", "97530"})
_EM_CODES = frozenset({"99212", "99213", "99214", "99215"})
_IMAGING_CODES = ("76942", "77002", "77003", "77012")  # ultrasound, fluoro, fluoro (spine), CT
_IMAGING_WEIGHTS = tuple(accumulate((60, 20, 12, 8)))
_LINES_PER_DAY = (1, 2, 3, 4, 5, 6)
_LINES_PER_DAY_WEIGHTS = tuple(accumulate((22, 28, 22, 14, 9, 5)))
_ZONES = (
    UTC,
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=-6)),
    timezone(timedelta(hours=-8)),
    timezone(timedelta(hours=1)),
)

Line = tuple[str, tuple[str, ...], int]  # procedure code, modifiers, units


@dataclass(slots=True)
class _Claim:
    """A claim as generated: enough to emit its events and to replace or void it later."""

    claim_id: str
    member_id: str
    npi: str
    dos: date
    received: int  # seconds since the epoch
    zone: timezone
    lines: list[Line]
    has_block: bool


def npi_for(body: int) -> str:
    """A valid NPI: 9 digits from `body`, then the Luhn check digit over "80840" + those 9."""
    payload = f"{100_000_000 + body % 900_000_000:09d}"
    total = 0
    for i, char in enumerate(reversed("80840" + payload)):
        digit = int(char)
        if i % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return payload + str((10 - total % 10) % 10)


class _Workload:
    """Builds one workload; all randomness comes from one seeded generator."""

    def __init__(self, seed: int, members: int) -> None:
        self.rng = random.Random(seed)
        self.members = members
        providers = min(300, max(8, members // 40))
        self.npis = [npi_for(7919 * (n + 1)) for n in range(providers)]
        # A few of them (anesthesia, pain medicine) perform the blocks.
        self.block_npis = self.npis[: max(2, providers // 5)]
        # Each provider's claims are stamped in its clearinghouse's zone.
        self.zones = {npi: self.rng.choice(_ZONES) for npi in self.npis}
        self.events: list[tuple[int, int, bytes]] = []  # (arrival, sequence, payload)
        self.live: list[_Claim] = []  # claims not yet replaced or voided
        self.next_claim = 0

    # -- original claims --------------------------------------------------------------------------

    def originals(self, budget: int) -> int:
        """Emit patient-days until `budget` line events are out (the last day may be cut short)."""
        emitted = 0
        while emitted < budget:
            for claim in self._patient_day():
                claim.lines = claim.lines[: budget - emitted]
                if claim.lines:
                    emitted += self._emit_lines(claim, "1", None)
                    self.live.append(claim)
        return emitted

    def _patient_day(self) -> list[_Claim]:
        rng = self.rng
        member_index = rng.randrange(self.members)
        member = f"M{member_index:09d}"
        dos = FIRST_DATE_OF_SERVICE + timedelta(days=rng.randrange(DAYS_OF_SERVICE))
        if rng.random() < BLOCK_DAY_RATE:
            return self._block_day(member, dos)
        # Members mostly see their own practitioner.
        if rng.random() < 0.7:
            npi = self.npis[member_index % len(self.npis)]
        else:
            npi = rng.choice(self.npis)
        count = rng.choices(_LINES_PER_DAY, cum_weights=_LINES_PER_DAY_WEIGHTS)[0]
        lines = [self._unrelated_line(count > 1) for _ in range(count)]
        first = self._claim(member, npi, dos, lines, self._received_after(dos, npi))
        if count > 1 and rng.random() < 0.1:
            # The lab (or another practitioner) bills its part of the day on its own claim.
            cut = rng.randrange(1, count)
            first.lines, rest = lines[:cut], lines[cut:]
            other = rng.choice(self.npis)
            second = self._claim(member, other, dos, rest, self._received_after(dos, other))
            return [first, second]
        return [first]

    def _block_day(self, member: str, dos: date) -> list[_Claim]:
        rng = self.rng
        npi = rng.choice(self.block_npis)
        lines: list[Line] = []
        separate: list[Line] = []  # billed on a second claim from the same NPI minutes later
        orphan = rng.random() < 0.06
        if not orphan:
            lines.append(("64461", self._side_modifiers(), 1))
        if orphan or rng.random() < 0.6:
            addon: Line = ("64462", self._side_modifiers(), 1)
            (separate if rng.random() < 0.1 else lines).append(addon)
        extra = rng.random()
        if extra < 0.1:
            lines.append(("64462", self._side_modifiers(), 1))  # a second add-on: MUE
        elif extra < 0.2:
            lines.append(("64463", (), 1))
        if rng.random() < 0.35:
            code = rng.choices(_IMAGING_CODES, cum_weights=_IMAGING_WEIGHTS)[0]
            modifiers = rng.choices((("26",), (), ("59",)), (50, 40, 10))[0]
            (separate if rng.random() < 0.4 else lines).append((code, modifiers, 1))
        for _ in range(rng.choices((0, 1, 2), (50, 35, 15))[0]):
            lines.append(self._unrelated_line(True))
        claims = [self._claim(member, npi, dos, lines[:6], self._received_after(dos, npi))]
        if separate:
            later = claims[0].received + rng.randrange(5 * 60, 90 * 60)
            claims.append(self._claim(member, npi, dos, separate, later))
        return claims

    def _unrelated_line(self, several: bool) -> Line:
        rng = self.rng
        code = rng.choices(_UNRELATED_CODES, cum_weights=_UNRELATED_WEIGHTS)[0]
        if code in _TIMED_CODES:
            return code, ("GP",), rng.randint(1, 4)
        if code in _EM_CODES and several and rng.random() < 0.3:
            return code, ("25",), 1
        return code, (), 1

    def _side_modifiers(self) -> tuple[str, ...]:
        return self.rng.choices(((), ("50",), ("RT",), ("LT",)), (70, 10, 10, 10))[0]

    def _received_after(self, dos: date, npi: str) -> int:
        """A receipt time a few hours to a few days (rarely weeks) after the date of service."""
        rng = self.rng
        # The start of the date of service in the provider's zone, in seconds since the epoch.
        start = int(datetime.combine(dos, time.min, self.zones[npi]).timestamp())
        spread = rng.random()
        if spread < 0.7:
            return start + rng.randrange(3 * _HOUR, 48 * _HOUR)
        if spread < 0.95:
            return start + rng.randrange(2 * _DAY, 7 * _DAY)
        return start + rng.randrange(7 * _DAY, 21 * _DAY)

    def _claim(self, member: str, npi: str, dos: date, lines: list[Line], received: int) -> _Claim:
        self.next_claim += 1
        has_block = any(code.startswith("6446") for code, _, _ in lines)
        claim_id = f"C{self.next_claim:09d}"
        return _Claim(claim_id, member, npi, dos, received, self.zones[npi], lines, has_block)

    # -- corrections ------------------------------------------------------------------------------

    def corrections(self, replacement_lines: int, voids: int) -> int:
        """Replace and void earlier claims; return how many events that emitted."""
        emitted = 0
        while (replacement_lines > 0 or voids > 0) and self.live:
            target = self._take_target()
            if self.rng.randrange(replacement_lines + voids) < voids:
                emitted += self._void(target)
                voids -= 1
            else:
                count = self._replace(target, replacement_lines)
                emitted += count
                replacement_lines -= count
        return emitted

    def _take_target(self) -> _Claim:
        """Remove and return a live claim, favouring block claims (their retractions matter)."""
        rng = self.rng
        index = rng.randrange(len(self.live))
        if rng.random() < 0.3:
            for _ in range(5):
                if self.live[index].has_block:
                    break
                index = rng.randrange(len(self.live))
        self.live[index], self.live[-1] = self.live[-1], self.live[index]
        return self.live.pop()

    def _replace(self, original: _Claim, budget: int) -> int:
        rng = self.rng
        lines = list(original.lines)
        if rng.random() < 0.35:
            # A corrected claim: one line re-coded (an E/M level, a lab, or a block line dropped).
            i = rng.randrange(len(lines))
            code = rng.choices(_UNRELATED_CODES, cum_weights=_UNRELATED_WEIGHTS)[0]
            lines[i] = (code, (), 1)
        elif len(lines) > 1 and rng.random() < 0.15:
            lines.pop()
        received = original.received + rng.randrange(_DAY, 20 * _DAY)
        replacement = self._claim(
            original.member_id, original.npi, original.dos, lines[:budget], received
        )
        self.live.append(replacement)
        return self._emit_lines(replacement, "7", original.claim_id)

    def _void(self, original: _Claim) -> int:
        self.next_claim += 1
        received = original.received + self.rng.randrange(_HOUR, 30 * _DAY)
        payload = orjson.dumps(
            {
                "claim_id": f"C{self.next_claim:09d}",
                "member_id": original.member_id,
                "claim_frequency": "8",
                "original_claim_id": original.claim_id,
                "received_at": _iso(received, original.zone),
            }
        )
        self._add(received, payload)
        return 1

    # -- events -----------------------------------------------------------------------------------

    def _emit_lines(self, claim: _Claim, frequency: str, original: str | None) -> int:
        received_at = _iso(claim.received, claim.zone)
        date_of_service = claim.dos.isoformat()
        for number, (code, modifiers, units) in enumerate(claim.lines, start=1):
            doc = {
                "claim_id": claim.claim_id,
                "line_number": number,
                "member_id": claim.member_id,
                "provider_npi": claim.npi,
                "date_of_service": date_of_service,
                "procedure_code": code,
                "modifiers": modifiers,
                "units": units,
                "claim_frequency": frequency,
            }
            if original is not None:
                doc["original_claim_id"] = original
            doc["received_at"] = received_at
            self._add(claim.received, orjson.dumps(doc))
        return len(claim.lines)

    def _add(self, received: int, payload: bytes) -> None:
        rng = self.rng
        arrival = received * 1_000_000
        late = rng.random()
        if late < 0.01:
            arrival += rng.randrange(3 * _HOUR, 3 * _DAY) * 1_000_000  # held up for days
        elif late < 0.09:
            arrival += rng.randrange(1_000_000, 3 * _HOUR * 1_000_000)  # a late line
        self.events.append((arrival, len(self.events), payload))

    def redeliveries(self, count: int) -> None:
        """Append exact copies of earlier events, arriving seconds to hours after them."""
        rng = self.rng
        originals = len(self.events)
        for _ in range(count if originals else 0):
            arrival, _, payload = self.events[rng.randrange(originals)]
            delay = rng.randrange(1_000_000, 6 * _HOUR * 1_000_000)
            self.events.append((arrival + delay, len(self.events), payload))

    def in_arrival_order(self) -> list[bytes]:
        """Payloads sorted by arrival time (ties in emission order, so copies follow originals)."""
        self.events.sort()
        return [payload for _, _, payload in self.events]


def _iso(seconds: int, zone: timezone) -> str:
    return datetime.fromtimestamp(seconds, zone).isoformat()


def generate(
    lines: int,
    seed: int = 7,
    members: int | None = None,
    redelivery_rate: float = 0.02,
    void_rate: float = 0.01,
    replacement_rate: float = 0.01,
) -> list[bytes]:
    """Exactly `lines` claim-line events as JSON bytes (no trailing newline), in arrival order.

    The rates are shares of all events: about `void_rate * lines` are voids, about
    `replacement_rate * lines` are lines of replacement claims and `redelivery_rate * lines` are
    exact copies of earlier events. `members` defaults to about one per 8 lines. The same
    arguments always give the same bytes.
    """
    if lines < 0:
        raise ValueError("lines must be >= 0")
    for name, rate in (
        ("redelivery_rate", redelivery_rate),
        ("void_rate", void_rate),
        ("replacement_rate", replacement_rate),
    ):
        if not 0 <= rate <= 1:
            raise ValueError(f"{name} must be between 0 and 1")
    if redelivery_rate + void_rate + replacement_rate >= 1 and lines:
        raise ValueError("the rates leave no room for original claims")
    if members is not None and members < 1:
        raise ValueError("members must be >= 1")
    workload = _Workload(seed, members or max(1, round(lines / 8)))
    # At least one original event, so there is something to redeliver.
    redeliveries = min(round(lines * redelivery_rate), max(0, lines - 1))
    voids = round(lines * void_rate)
    replacement_lines = round(lines * replacement_rate)
    emitted = workload.originals(lines - redeliveries - voids - replacement_lines)
    emitted += workload.corrections(replacement_lines, voids)
    # Too few claims to correct (tiny workloads): make up the count with more originals.
    emitted += workload.originals(lines - redeliveries - emitted)
    workload.redeliveries(lines - emitted)
    return workload.in_arrival_order()


def main(argv: Sequence[str] | None = None) -> int:
    """Write a workload as NDJSON to stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m stream_edits_dev.bench.workload",
        description="Write a deterministic synthetic claim-line workload as NDJSON to stdout.",
    )
    parser.add_argument("--lines", type=int, required=True, help="number of events")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--members", type=int, default=None, help="default: about lines / 8")
    args = parser.parse_args(argv)
    if args.lines < 0:
        parser.error("--lines must be >= 0")
    if args.members is not None and args.members < 1:
        parser.error("--members must be >= 1")
    events = generate(args.lines, seed=args.seed, members=args.members)
    out = sys.stdout.buffer
    out.write(b"".join(event + b"\n" for event in events))
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
