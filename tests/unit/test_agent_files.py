"""The files demo: a sandbox that cannot be left, and an offline planner that speaks it."""

import os
import time
from pathlib import Path

import pytest
from hitl_agent.adapters.offline import OfflinePlanner
from hitl_demo.files import files_tools
from hitl_demo.offline import banking_plan, files_plan
from hitl_demo.sandbox import Sandbox, SandboxError
from hitl_sdk import ToolContext

DAY = 86_400


def make(root: Path, name: str, age_days: float) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(name)
    when = time.time() - age_days * DAY
    os.utime(path, (when, when))
    return path


def names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


async def test_match_by_pattern_and_age(tmp_path: Path) -> None:
    make(tmp_path, "old.log", 10)
    make(tmp_path, "new.log", 1)
    make(tmp_path, "old.txt", 10)
    make(tmp_path, "sub/deep.log", 30)
    sandbox = Sandbox(tmp_path)
    assert [f.path for f in await sandbox.match("*.log", older_than_days=7)] == ["old.log"]
    assert [f.path for f in await sandbox.match("**/*.log", older_than_days=7)] == [
        "old.log",
        "sub/deep.log",
    ]


@pytest.mark.parametrize("pattern", ["../*", "/etc/*", "a/../../x", ""])
async def test_patterns_that_leave_the_sandbox_are_refused(tmp_path: Path, pattern: str) -> None:
    with pytest.raises(SandboxError):
        await Sandbox(tmp_path / "box").match(pattern)


async def test_a_symlink_out_of_the_sandbox_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    make(outside, "secret.log", 30)
    box = tmp_path / "box"
    box.mkdir()
    (box / "link").symlink_to(outside)
    assert await Sandbox(box).match("**/*.log") == []
    with pytest.raises(SandboxError):
        await Sandbox(box).delete(["link/secret.log"])
    assert (outside / "secret.log").exists()


async def test_approved_deletion_removes_exactly_the_listed_files(tmp_path: Path) -> None:
    make(tmp_path, "a.log", 10)
    make(tmp_path, "b.log", 10)
    (delete,) = [t for t in files_tools(Sandbox(tmp_path)) if t.name == "delete_files"]
    assert delete.preview is not None
    assert delete.approval == "always"
    args = delete.args.model_validate({"pattern": "*.log", "older_than_days": 7})
    preview = await delete.preview(args)
    assert preview["files"] == ["a.log", "b.log"]
    make(tmp_path, "c.log", 10)  # appeared after the reviewer saw the list
    approved = ToolContext(
        agent="files", run_id="r", tool_call_id="c", idempotency_key="r:c", preview=preview
    )
    result = await delete.fn(args, approved)
    assert result == "Deleted 2 files: a.log, b.log."
    assert names(tmp_path) == ["c.log"]
    again = await delete.fn(args, approved)
    assert again == "Deleted 0 files: none. Already gone: a.log, b.log."


def test_offline_planner_understands_file_housekeeping() -> None:
    assert files_plan("Delete all log files older than 7 days") == [
        ("delete_files", {"pattern": "*.log", "older_than_days": 7.0})
    ]
    assert files_plan("List files") == [("list_files", {"pattern": "**/*"})]
    assert banking_plan("List files") == []


async def test_offline_planner_answers_structured_output_requests() -> None:
    schema = {
        "properties": {
            "actions": {"items": {"anyOf": [{"properties": {"tool": {"const": "delete_files"}}}]}}
        }
    }
    planner = OfflinePlanner(rules=[banking_plan, files_plan])
    reply = await planner.plan(
        [{"role": "user", "content": "Delete all log files older than 7 days"}], schema
    )
    assert '"tool": "delete_files"' in reply.content
    done = await planner.plan(
        [
            {"role": "user", "content": "Delete all log files older than 7 days"},
            {"role": "assistant", "content": reply.content},
            {
                "role": "user",
                "content": "Results of your action plan:\n1. delete_files: Deleted 1 files: a.log.",
            },
        ],
        schema,
    )
    assert (
        '"final_answer": "[offline planner] 1. delete_files: Deleted 1 files: a.log."'
        in done.content
    )
