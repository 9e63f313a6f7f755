"""The files demo agent: list and delete files in a sandbox; deleting always needs a human.

The approval request lists the files that would go. Approved as asked, exactly
those files are deleted (not whatever matches by the time the human answers);
with edited arguments the match is worked out afresh.
"""

import time

from hitl_sdk import RiskLevel, Tool, ToolArgs, ToolContext, ToolError
from pydantic import Field

from hitl_demo.sandbox import FileInfo, Sandbox, SandboxError

SYSTEM_PROMPT = (
    "You are a file housekeeping assistant working in a sandbox directory. Use list_files "
    "to look around and delete_files to remove files by glob pattern and age. Patterns are "
    "relative to the sandbox, e.g. '*.log' or 'logs/**/*.log'. Deleting always waits for a "
    "human's approval; if they reject it, do not retry, explain to the user. When you are "
    "stuck or unsure, call request_human_intervention."
)

# The reviewer sees at most this many names; the count is always exact.
MAX_LISTED = 500


class ListArgs(ToolArgs):
    pattern: str = Field(default="**/*", description="Glob relative to the sandbox.")


class DeleteArgs(ToolArgs):
    pattern: str = Field(description="Glob relative to the sandbox, e.g. '*.log'.", min_length=1)
    older_than_days: float = Field(
        default=0, ge=0, description="Only files last modified more than this many days ago."
    )


def files_tools(sandbox: Sandbox) -> list[Tool]:
    async def matching(pattern: str, older_than_days: float | None) -> list[FileInfo]:
        try:
            return await sandbox.match(pattern, older_than_days=older_than_days)
        except SandboxError as exc:
            raise ToolError(str(exc)) from None

    async def list_files(args: ListArgs, run: ToolContext) -> str:
        found = await matching(args.pattern, None)
        if not found:
            return f"No files match {args.pattern!r}."
        now = time.time()
        listed = ", ".join(
            f"{f.path} ({f.size} bytes, {f.age_days(now):.1f} days old)" for f in found
        )
        return f"{len(found)} files match {args.pattern!r}: {listed}"

    async def preview_delete(args: DeleteArgs) -> dict[str, object]:
        found = await matching(args.pattern, args.older_than_days)
        return {
            "files": [f.path for f in found[:MAX_LISTED]],
            "file_count": len(found),
            "sandbox": str(sandbox.root),
        }

    async def delete_files(args: DeleteArgs, run: ToolContext) -> str:
        if run.preview is not None and "files" in run.preview:
            targets = [str(name) for name in run.preview["files"]]
        else:
            targets = [f.path for f in await matching(args.pattern, args.older_than_days)]
        if not targets:
            return (
                f"No files match {args.pattern!r} older than {args.older_than_days:g} days; "
                "nothing was deleted."
            )
        try:
            deleted, gone = await sandbox.delete(targets)
        except SandboxError as exc:
            raise ToolError(str(exc)) from None
        text = f"Deleted {len(deleted)} files: {', '.join(deleted) or 'none'}."
        if gone:
            text += f" Already gone: {', '.join(gone)}."
        return text

    return [
        Tool(
            "list_files",
            "List files in the sandbox matching a glob pattern, with size and age.",
            ListArgs,
            list_files,
            risk=RiskLevel.LOW,
            idempotent=True,
        ),
        Tool(
            "delete_files",
            "Delete files in the sandbox matching a glob pattern and older than N days.",
            DeleteArgs,
            delete_files,
            approval="always",
            risk=RiskLevel.HIGH,
            # Deleting a fixed list again only finds the files already gone.
            idempotent=True,
            preview=preview_delete,
        ),
    ]
