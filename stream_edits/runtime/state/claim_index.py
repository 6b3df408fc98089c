"""The claim index: one key per (claim id, member) beside the member records, value empty.

`claim_index_key` = 0xFF "c" claim_id 0xFF member_id. It lets a look-up by claim id
(stream_edits/runtime/web/lookups.py) find the member without the member id, which is the partition
key.
The byte 0xFF never occurs in UTF-8, so no member id (a member key is its UTF-8) and no claim id
can be mistaken for part of one; `is_member_key` tells them apart, and everything that reads the
table's keys as member ids skips index keys. An index key is written in the member's partition,
in the same batch's changelog messages as the member's record (right after it, so normally in
the same record batch) and through the same delivery path, so recovery restores it with the
table:
- a claim put in a batch whose index key is neither in the local store nor on its way there gets
  it written (first sight, and self-healing: a claim whose index key was lost, e.g. a batch whose
  record reached the changelog but whose index key did not, gets it the next time it is put);
- a claim entry dropped by expiry (`MemberRecord.expire`) gets its index key deleted.
A claim entry stored before the index existed is indexed when one of its lines next arrives.
`MemberCache.writes` (cache.py) writes and deletes the keys.
"""

from __future__ import annotations

INDEX_PREFIX = b"\xffc"  # 0xFF: never in UTF-8, so never in a member key
INDEX_SEPARATOR = b"\xff"
INDEX_VALUE = b""


def is_member_key(key: bytes) -> bool:
    """True for a member record's key, False for a claim index key."""
    return not key.startswith(INDEX_PREFIX)


def claim_index_prefix(claim_id: str) -> bytes:
    """The prefix of every index key of `claim_id` (one per member with that claim id)."""
    return INDEX_PREFIX + claim_id.encode() + INDEX_SEPARATOR


def claim_index_key(claim_id: str, member_id: str) -> bytes:
    """The index key saying that `member_id` has a claim entry `claim_id`."""
    return claim_index_prefix(claim_id) + member_id.encode()


def indexed_member(key: bytes, claim_id: str) -> str | None:
    """The member id an index key of `claim_id` names (None when it is not one of its keys)."""
    prefix = claim_index_prefix(claim_id)
    if not key.startswith(prefix) or len(key) == len(prefix):
        return None
    try:
        return key[len(prefix) :].decode()
    except UnicodeDecodeError:
        return None
