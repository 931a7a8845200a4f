"""Which children a child-projection process owns: a stable hash of the child id, ``i/n``."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_SHARD = re.compile(r"^([1-9][0-9]{0,2})/([1-9][0-9]{0,2})$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based, as operators write it: ``--shard 2/3``).

    SHA-256 rather than Python's ``hash``: that one is salted per process, and every process,
    release and machine must agree on which shard owns a child, or a child would be written by
    two shards (or none) after a restart.
    """

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count <= 999:
            raise ValueError(f"shard {self.index}/{self.count}: want i/n with 1 <= i <= n <= 999")

    @classmethod
    def parse(cls, text: str) -> Shard:
        found = _SHARD.match(text.strip())
        if found is None:
            raise ValueError(f"shard {text!r}: want i/n, e.g. 1/2 (this process owns part i of n)")
        return cls(int(found.group(1)), int(found.group(2)))

    def owns(self, child: str) -> bool:
        if self.count == 1:
            return True
        digest = hashlib.sha256(child.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    @property
    def tracking_name(self) -> str:
        """The shard's position in the notification log (<= 32 characters: the tracking
        table's limit). A different ``count`` is a different partition of the children, so it
        starts from the beginning of the log (docs/stages.md, "changing the shard count")."""
        return f"children:{self.index}/{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
