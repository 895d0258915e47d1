"""The mapping form is one row per source field, so it is read from POST by hand:
``target__<key>`` ("" = don't sync, "__new__" = create), ``new__<key>``, ``empty__<key>``,
and ``first__<target>`` (which source wins when several go to one target).

Both readers return the choices in precedence order: the first source with a value wins."""

from __future__ import annotations

from django.http import QueryDict

from field_mapping.models import FieldMapping
from field_mapping.services import RowChoice, SourceField, order_by_precedence, shared_targets, suggest_target

NEW = "__new__"


def choices_from_post(post: QueryDict, sources: list[SourceField]) -> tuple[list[RowChoice], bool]:
    choices = []
    for source in sources:
        picked = post.get(f"target__{source.key}", "")
        create_new = picked == NEW
        target = post.get(f"new__{source.key}", "").strip() if create_new else picked
        choices.append(RowChoice(source.key, target, create_new, bool(post.get(f"empty__{source.key}"))))
    winners = {target: post.get(f"first__{target}", "") for target in shared_targets(choices)}
    return order_by_precedence(choices, winners), bool(post.get("confirm_shared"))


def initial_choices(
    sources: list[SourceField],
    saved: list[FieldMapping],
    available: dict[str, str],
    suggested: dict[str, str] | None = None,
) -> list[RowChoice]:
    """The saved mapping; rows without one (new fields on a flow, or a first visit) get a suggestion."""
    by_key = {m.source_key: m for m in saved}
    choices = []
    # Saved rows in their saved order (the precedence), then the rest.
    sources = sorted(sources, key=lambda s: by_key[s.key].position if s.key in by_key else len(saved))
    for source in sources:
        mapping = by_key.get(source.key)
        if mapping is not None:
            create_new = mapping.create_new and mapping.target not in available
            choices.append(RowChoice(source.key, mapping.target, create_new, mapping.send_empty))
        else:
            choices.append(RowChoice(source.key, suggest_target(source, available, suggested or {})))
    return choices


def initial_confirmation(choices: list[RowChoice], saved: list[FieldMapping]) -> bool:
    """Whether the precedence of ``choices`` (from ``initial_choices``) stands confirmed.

    Saving refuses shared targets unconfirmed, so those of the saved mapping were confirmed: they
    reopen confirmed. A suggestion for a row saved without a mapping (a field added to a flow since)
    that joins or makes a shared target is a new question, asked again."""
    saved_keys = {m.source_key for m in saved}
    shared = shared_targets(choices)
    return bool(shared) and shared == shared_targets([c for c in choices if c.source_key in saved_keys])
