"""Guarded look-ups of per-member state: a patient-day's lines, and one line by claim id.

    GET /members/{member_id}/days/{date}/   {"member_id", "date_of_service", "lines": [...]}
    GET /lines/{claim_id}/{line_number}/    one line's decision

Each line is its current decision as the worker last published it on the output topic
(`LineDecision.to_wire` plus `provider_npi`: claim_id, line_number, member_id, date_of_service,
procedure_code, status, edits with their related_lines, revision, changed_by, provider_npi),
without the stream-only `decided_at` and `source`. A day lists its rule-relevant lines (voided
ones included) and the stubs of lines of codes no rule mentions whose date of service it is
(runtime/web/member_view.py computes them with the engine's own read paths). 400 for a malformed
date (YYYY-MM-DD) or line number (1-9999), 404 when the member-day or line is unknown, 409 when
several members hold the claim id, 503 (with Retry-After) while state is moving or a worker that
may hold it does not answer.

These views show protected health information: runtime/web/auth.py guards them (403 while
STREAM_EDITS_WEB_TOKEN is unset, 401 without the right bearer token), before anything is read
or forwarded. Nothing here logs a member id, claim id or the token.

Either look-up answers on any worker of the group:

- /members/: a member's state is in the members table partition its member_id is placed on
  (runtime/placement.py: murmur2, Kafka's default partitioner, the partition Faust's
  `assignor.key_store` computes for the key; tests/unit/runtime/test_faust_internals.py pins
  it). A worker whose active assignment holds that partition answers from its local store;
  another forwards the request to the worker that Faust's assignment metadata
  (`app.router.table_metadata("members")`: each worker's canonical URL and the changelog
  partitions it holds) names, with the request's Authorization header and
  `X-Stream-Edits-Forwarded: 1`, and returns its answer. This is Faust's `route_req` routing,
  done here rather than through it because `route_req` forwards a forwarded request again
  (two workers with different views of an assignment in flux would bounce it between them),
  drops the answer's headers and raises on a worker that does not answer.
- /lines/: a claim id is not the partition key, so the members table keeps a claim index, one key
  per (claim, member) in the member's partition (runtime/state/claim_index.py: written with the
  member's record in the same changelog batch, so recovered with the table; deleted when the claim
  entry expires). A worker prefix-scans the index in each partition it holds and asks every other
  worker of the metadata at once, with the forwarded header, which makes them answer from their own
  partitions only (no further fan-out), and combines the answers: one line → 200, several (members
  sharing a claim id) → 409, none → 404, or 503 when a worker did not answer.
  It asks the others even when it found the line itself, so every worker gives the same answer.

A worker advertises its canonical URL in the group's assignment: STREAM_EDITS_WEB_URL when set,
else http://{web_host}:{web_port}; set STREAM_EDITS_WEB_URL when web_host is 0.0.0.0.

The local store holds a batch's state once it reached the changelog, after its decisions were
published: a look-up can lag the output topic by the batches in flight (milliseconds).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import aiohttp
import faust
import orjson
from faust.types import TableT
from faust.web import Request, Response, View
from yarl import URL

from stream_edits.rules.tables import RuleSet
from stream_edits.runtime.placement import owner_function
from stream_edits.runtime.state.claim_index import claim_index_prefix, indexed_member
from stream_edits.runtime.state.tables import FaustMemberTable
from stream_edits.runtime.web.auth import BearerGuard
from stream_edits.runtime.web.member_view import Decision, MemberView, decision_json
from stream_edits.settings import Settings

log = logging.getLogger(__name__)

FORWARDED = "X-Stream-Edits-Forwarded"
FORWARD_TIMEOUT_S = 5.0
RETRY_AFTER = {"Retry-After": "1"}
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
LINE_NUMBER = re.compile(r"[1-9][0-9]{0,3}")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Answer:
    """A look-up's HTTP answer before it becomes a response."""

    status: int
    body: Any  # JSON-ready, or bytes already encoded (a forwarded answer)
    headers: Mapping[str, str] | None = None
    content_type: str = "application/json"

    def respond(self, view: View) -> Response:
        headers = dict(self.headers or {})
        if isinstance(self.body, bytes):
            return view.bytes(
                self.body, content_type=self.content_type, status=self.status, headers=headers
            )
        return view.json(self.body, status=self.status, headers=headers)


def error(status: int, reason: str, retry: bool = False) -> Answer:
    """A JSON error answer (never naming a member, claim or provider)."""
    return Answer(status, {"error": reason}, RETRY_AFTER if retry else None)


NOT_READY = error(503, "this worker's state is being rebalanced or recovered", retry=True)


def parse_date(text: str) -> date | None:
    """A date of service from YYYY-MM-DD, or None."""
    if DATE.fullmatch(text) is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_line_number(text: str) -> int | None:
    """A line number (1-9999), or None."""
    return int(text) if LINE_NUMBER.fullmatch(text) else None


class Lookups:
    """Reads a worker's share of the members table and routes to the other workers."""

    def __init__(
        self, app: faust.App, rules: RuleSet, members: TableT[bytes, bytes], partitions: int
    ) -> None:
        self.app = app
        self.rules = rules
        self.table_name = members.name
        self.store = FaustMemberTable(members)
        self.changelog = self.store.changelog_topic
        self.owner = owner_function(partitions)

    # -- this worker's partitions ---------------------------------------------------------------

    def local_partitions(self) -> set[int] | None:
        """The members partitions this worker serves; None while a rebalance or a recovery
        is under way (the local store may then miss state)."""
        if self.app.rebalancing or self.app.in_recovery:
            return None
        return {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.changelog
        }

    def local_day(self, member_id: str, dos: date) -> Answer:
        """The member-day from this worker's store (its partition must be local)."""
        stored = self.store.get(self.owner(member_id), member_id.encode())
        if stored is None:
            return error(404, "no state for this member")
        lines = MemberView(self.rules, member_id, stored).day(dos)
        if not lines:
            return error(404, "no lines of this member on this date of service")
        body = {
            "member_id": member_id,
            "date_of_service": dos.isoformat(),
            "lines": [decision_json(d) for d in lines],
        }
        return Answer(200, body)

    def local_lines(self, claim_id: str, line_number: int, partitions: set[int]) -> list[Decision]:
        """The line in every local partition's members holding `claim_id` (normally one)."""
        found = []
        prefix = claim_index_prefix(claim_id)
        for partition in sorted(partitions):
            for key in list(self.store.keys_with_prefix(partition, prefix)):
                member_id = indexed_member(key, claim_id)
                if member_id is None or self.owner(member_id) != partition:
                    continue
                stored = self.store.get(partition, member_id.encode())
                if stored is None:
                    continue
                decision = MemberView(self.rules, member_id, stored).line(claim_id, line_number)
                if decision is not None:
                    found.append(decision_json(decision))
        return found

    # -- the other workers ----------------------------------------------------------------------

    def hosts(self) -> dict[str, set[int]]:
        """Every worker's canonical URL → the members partitions it holds, per the group's
        assignment metadata."""
        metadata = self.app.router.table_metadata(self.table_name)
        return {
            url: {p for topic, held in topics.items() if topic == self.changelog for p in held}
            for url, topics in metadata.items()
        }

    def is_self(self, url: str) -> bool:
        """True when `url` is this worker's canonical URL."""
        own, other = URL(str(self.app.conf.canonical_url)), URL(url)
        return (own.host, own.port) == (other.host, other.port)

    async def ask(self, url: str, request: Request) -> Answer | None:
        """The answer of the worker at `url` to the same request, forwarded (None: it did not
        answer)."""
        target = URL(url).with_path(request.rel_url.raw_path, encoded=True)
        headers = {FORWARDED: "1"}
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            headers["Authorization"] = authorization
        try:
            async with self.app.http_client.get(
                target,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S),
                allow_redirects=False,
            ) as response:
                body = await response.read()
                passed = {
                    name: response.headers[name]
                    for name in ("WWW-Authenticate", "Retry-After")
                    if name in response.headers
                }
                return Answer(response.status, body, passed, response.content_type)
        except (aiohttp.ClientError, TimeoutError) as failure:
            # The URL's path names a member or claim: only the worker and the error's kind.
            log.warning("look-up: worker %s did not answer (%s)", url, type(failure).__name__)
            return None

    # -- the look-ups ---------------------------------------------------------------------------

    async def day(self, member_id: str, dos: date, request: Request) -> Answer:
        """The member-day, from here or from the worker holding the member's partition."""
        partition = self.owner(member_id)
        local = self.local_partitions()
        if local is not None and partition in local:
            return self.local_day(member_id, dos)
        if local is None or request.headers.get(FORWARDED):  # never forwarded twice
            return NOT_READY
        owners = [url for url, held in self.hosts().items() if partition in held]
        if not owners or self.is_self(owners[0]):
            return NOT_READY  # unassigned, or the metadata is ahead of this worker's assignment
        answer = await self.ask(owners[0], request)
        if answer is None:
            return error(503, "the worker holding this member did not answer", retry=True)
        return answer

    async def line(self, claim_id: str, line_number: int, request: Request) -> Answer:
        """The line, from this worker's partitions and every other worker's: the same answer
        on every worker (several members holding the claim id are found wherever they are)."""
        local = self.local_partitions()
        if local is None:
            return NOT_READY
        found = self.local_lines(claim_id, line_number, local)
        matches, unanswered = len(found), 0
        if not request.headers.get(FORWARDED):
            others = [url for url in self.hosts() if not self.is_self(url)]
            answers = await asyncio.gather(*(self.ask(url, request) for url in others))
            for answer in answers:
                if answer is None or answer.status == 503:
                    unanswered += 1
                elif answer.status == 200:
                    found.append(orjson.loads(answer.body))
                    matches += 1
                elif answer.status == 409:  # that worker alone holds several
                    matches += 2
                elif answer.status != 404:
                    return answer  # e.g. 401 from a worker configured with another token
        if matches > 1:
            return error(409, "more than one member holds this claim id")
        if found:  # even if a worker did not answer: it would only make the claim id ambiguous
            return Answer(200, found[0])
        if unanswered:
            return error(503, "a worker that may hold this line did not answer", retry=True)
        return error(404, "no such line")


def add_lookups(
    app: faust.App, settings: Settings, rules: RuleSet, members: TableT[bytes, bytes]
) -> Lookups:
    """Register the look-ups (guarded by STREAM_EDITS_WEB_TOKEN) and advertise this worker's
    URL for routing them (STREAM_EDITS_WEB_URL). Raises when the token is too short."""
    guard = BearerGuard(settings.web_token)
    if settings.web_url is not None:
        app.conf.canonical_url = settings.web_url  # type: ignore[assignment]
    elif guard.enabled and settings.web_host in WILDCARD_HOSTS:
        log.warning(
            "web_host %r is not an address other workers can reach: set STREAM_EDITS_WEB_URL so "
            "look-ups asked of another worker can be routed to this one",
            settings.web_host,
        )
    lookups = Lookups(app, rules, members, settings.partitions)

    @app.page("/members/{member_id}/days/{date}/")
    class MemberDayView(View):
        """A patient-day's lines with their current decisions (PHI: token required)."""

        async def get(self, request: Request, member_id: str, date: str) -> Response:
            denied = guard.deny(self, request)
            if denied is not None:
                return denied
            dos = parse_date(date)
            if dos is None:
                return error(400, "the date must be YYYY-MM-DD").respond(self)
            return (await lookups.day(member_id, dos, request)).respond(self)

    @app.page("/lines/{claim_id}/{line_number}/")
    class LineView(View):
        """One line's current decision, found by claim id (PHI: token required)."""

        async def get(self, request: Request, claim_id: str, line_number: str) -> Response:
            denied = guard.deny(self, request)
            if denied is not None:
                return denied
            number = parse_line_number(line_number)
            if number is None:
                return error(400, "the line number must be an integer from 1 to 9999").respond(self)
            return (await lookups.line(claim_id, number, request)).respond(self)

    return lookups
