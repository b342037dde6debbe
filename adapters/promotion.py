"""Promotion: a mode may point at an adapter version only if that version passed a gate.

The registry records every mode change; this is the check the operator's paths (the CLI's
`tenants set-mode`, `PUT /admin/tenants/{t}/modes/{m}`, `lorag train --promote`) make first.
A version that failed its gate, was never gated (an import), or had too few test examples
to be judged is refused unless the operator forces it; a forced promotion is recorded as
such in the mode's history. The base model needs no gate. Rolling back to a target the mode
had before needs none either: it was live already.
"""

from __future__ import annotations

from adapters.errors import Conflict, NotFound
from adapters.registry import Registry
from lorag.names import BASE_TARGET, parse_ref

__all__ = ["check_promotion"]


def check_promotion(
    registry: Registry, tenant_id: str, mode: str, target: str, *, force: bool
) -> bool:
    """Whether pointing the tenant's `mode` at `target` is forced (its gate did not pass,
    `force` given); Conflict when its gate did not pass and `force` is not given. A mode that
    already points there (only its settings change) needs nothing."""
    if target == BASE_TARGET:
        return False
    ref = parse_ref(target, param="target")
    version = registry.get_version(ref.name, ref.version)
    if version.owner not in (None, tenant_id):
        return False  # another tenant's: the registry refuses it as if it did not exist
    status = version.gate_status
    try:
        current = registry.get_mode(tenant_id, mode).target
    except NotFound:
        current = None
    if status == "passed" or current == version.served_name:
        return False
    if force:
        return True
    reason = {
        "failed": "failed its gate",
        "not judged": "was not judged by its gate (too few test examples)",
        "never gated": "never passed a gate",
    }[status]
    raise Conflict(
        f"{version.served_name} {reason}: gate it with `lorag adapters gate "
        f"{version.served_name} --golden FILE`, or promote it anyway with --force (API: "
        '"force": true); a forced promotion is recorded in the mode\'s history',
        param="target",
    )
