"""What admins do to a member's storage: delete it once they have left. The host work runs on
the storage host's worker (storage.tasks.member_storage_delete_task, by name)."""

from __future__ import annotations

from django.db import transaction

from portal.audit import AuditContext, audit_record
from portal.models import Host, Operation, User
from portal.operations import (
    operation_claim,
    operation_create,
    operation_enqueue,
    operation_fail,
    operation_progress,
    operation_succeed,
)
from storage import layout
from storage.models import MemberStorage
from workspaces.models import Workspace

DELETE_TASK = "storage.tasks.member_storage_delete_task"
DELETE_KIND = "storage.member_delete"


class StorageRefused(Exception):
    """A refused request, in words for the admin; nothing was changed."""


def member_storage_delete(
    *, member: User, confirmation: str, actor: User, context: AuditContext | None = None
) -> Operation:
    """Delete a departed member's home and scratch, confirmed by typing their username. Only
    for a suspended member without workspaces (a container would still have the folders
    mounted); their backups are not touched."""
    with transaction.atomic():
        row = _deletable(member, MemberStorage.objects.select_for_update().filter(user=member).first(), confirmation)
        row.state = MemberStorage.State.DELETING
        row.save(update_fields=["state"])
        operation = operation_create(
            kind=DELETE_KIND,
            actor=actor,
            owner=actor,
            target=member,
            message=f"Deleting {member}'s home and scratch",
        )
        audit_record(
            action="storage.member_delete",
            actor=actor,
            target=member,
            context=context,
            home=row.home_path,
            scratch=row.scratch_path,
        )

        def undo() -> None:
            MemberStorage.objects.filter(pk=row.pk).update(state=MemberStorage.State.PRESENT)

        operation_enqueue(operation, task=DELETE_TASK, queue=Host.local().queue, on_unsent=undo)
    return operation


def _deletable(member: User, row: MemberStorage | None, confirmation: str) -> MemberStorage:
    if row is None or row.state == MemberStorage.State.DELETED:
        raise StorageRefused(f"{member} has no storage to delete.")
    if row.state == MemberStorage.State.DELETING:
        raise StorageRefused(f"{member}'s storage is being deleted already.")
    if member.status != User.Status.SUSPENDED:
        raise StorageRefused(f"{member} is still a member: suspend them first, then delete their storage.")
    names = list(Workspace.objects.filter(owner=member).values_list("name", flat=True))
    if names:
        shown = ", ".join(name or "the default workspace" for name in names)
        raise StorageRefused(f"{member} still has workspaces ({shown}) that mount these folders: remove them first.")
    if confirmation.strip() != member.username:
        raise StorageRefused(f"The confirmation does not match: type {member.username} exactly. Nothing was deleted.")
    return row


def member_storage_delete_run(operation_id: int) -> None:
    """The worker's half: delete the folders, record the outcome (safe to run twice)."""
    if not operation_claim(operation_id):
        return
    operation = Operation.objects.get(pk=operation_id)
    member = User.objects.get(pk=int(operation.target_id))
    try:
        operation_progress(operation_id, percent=10, message=f"Deleting {member}'s home and scratch")
        deleted = layout.delete_member_data(member)
    except Exception as exc:
        MemberStorage.objects.filter(user=member, state=MemberStorage.State.DELETING).update(
            state=MemberStorage.State.PRESENT
        )
        operation_fail(operation_id, message="The folders could not be deleted", error=str(exc))
        raise
    operation_progress(operation_id, log="\n".join(f"deleted {path}" for path in deleted) or "nothing was left")
    operation_succeed(operation_id, message=f"Deleted {member}'s home and scratch")
