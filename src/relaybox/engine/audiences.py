"""Who is in an audience now: its filter evaluated over the stored profiles, page by page.

Shared by the Audiences API (members listing) and sends to an ``audience_id`` recipient.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from relaybox.domain import audiences
from relaybox.storage.base import Store

#: ``Resource.kind`` of stored audiences.
KIND = "audience"
#: Profiles read per database round trip while evaluating an audience.
SCAN = 200


async def members(
    store: Store, workspace_id: str, audience: dict[str, Any], after: str | None = None
) -> AsyncIterator[str]:
    """User ids of the audience's members after ``after``, in id order."""
    while True:
        page = await store.list_profiles(workspace_id, after=after, limit=SCAN)
        for user_id, profile in page:
            if audiences.matches(audience, profile):
                yield user_id
        if len(page) < SCAN:
            return
        after = page[-1][0]
