"""The one definition of each identifier: agency ids, child (subject) and person ids.

Why one place: an identifier is checked by the JSON Schemas (for agencies in any language), by
the key store (it becomes a file name), by the CLI and by the alerter (it reaches an email
header). Each used to carry its own regex, and Python's ``re`` ``$`` matches *before* a final
newline, so ``police/x\\n`` registered (a key file name with a newline) and ``C-1\\n`` became a
second child whose id ended an email's headers early. Here every check is ``fullmatch`` with a
length bound, and the schema files carry the same pattern as ECMA-262 ``^...$`` (where ``$`` is a
true end: ``ledger.validation`` gives Python's validator those semantics).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ledger.vocabulary import AGENCY_KINDS


class InvalidIdentifier(ValueError):
    """A value that is not a well-formed identifier of its kind; ``str`` is one line."""


@dataclass(frozen=True)
class Identifier:
    """A kind of identifier: the body of its pattern (no anchors) and its longest length
    (the database column that holds it)."""

    name: str
    body: str
    max_length: int
    example: str
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.body))

    @property
    def schema_pattern(self) -> str:
        """The pattern as the schema files spell it (ECMA-262, anchored)."""
        return f"^{self.body}$"

    def matches(self, value: object) -> bool:
        return (
            isinstance(value, str)
            and 0 < len(value) <= self.max_length
            and self._compiled.fullmatch(value) is not None
        )

    def check(self, value: str) -> str:
        """``value`` if well formed, else InvalidIdentifier saying what one looks like."""
        if not self.matches(value):
            raise InvalidIdentifier(
                f"{value!r} is not a valid {self.name}: expected at most {self.max_length} characters "
                f"matching {self.schema_pattern} (e.g. {self.example})"
            )
        return value


AGENCY_ID = Identifier(
    "agency id",
    "(" + "|".join(AGENCY_KINDS) + ")/[A-Za-z0-9][A-Za-z0-9._-]*",
    200,
    "police/avon-somerset",
)
CHILD_ID = Identifier("child id (event subject)", "[A-Za-z0-9][A-Za-z0-9._:/-]*", 128, "C-1")
PERSON_ID = Identifier("person id", "[A-Za-z0-9][A-Za-z0-9._:-]*", 128, "P-f")


def agency_kind(agency: str) -> str:
    """The kind of a well-formed agency id ("police" of "police/avon-somerset")."""
    return AGENCY_ID.check(agency).split("/", 1)[0]


def uuid_text(raw: bytes, version: int) -> str:
    """16 bytes as the text of a UUID of ``version`` with the RFC 9562 (RFC 4122) variant,
    exactly as ``str(uuid.UUID(...))`` writes it once those bits are set, without building a
    ``UUID`` object (a third of the cost): the gateway makes an event id per draft
    (``ledger.envelope.new_event_id``), the rules engine and the flag sync a name-based id per
    flag and per flag change (``policies.engine.name_uuid``)."""
    data = bytearray(raw)
    data[6] = data[6] & 0x0F | version << 4
    data[8] = data[8] & 0x3F | 0x80
    text = data.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
