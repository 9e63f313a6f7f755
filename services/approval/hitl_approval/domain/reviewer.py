"""Who decides: a reviewer is a principal of the shared token directory (identity, no I/O).

`hitl_shared.directory` defines the one directory format every hitl API reads; the
approval service acts on the roles `reviewer` (lists and decides), `agent` (an agent's
service account: creates and cancels approvals) and `admin` (every role, and cancels).
"""

from hitl_shared.directory import Principal as Reviewer
from hitl_shared.directory import Role

__all__ = ["Reviewer", "Role"]
