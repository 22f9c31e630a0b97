"""A client's refusal of an instruction, as plain data (no Flower).

A client whose policy (``config/policy.py``, enforced by
``clientapp/policy.py``) does not allow an instruction answers it with one
refusal instead of a reply: the rule it applied and one line saying why.
:meth:`Refusal.checked` is the schema both sides apply (the client before it
sends, the server before it logs): the rule is a ``policy.`` key, the reason
one printable line of bounded length. ``wire/protocol.py`` carries it in
Flower's records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: record (and its two keys) of a refusal reply
REFUSAL = "refusal"
RULE = "rule"
REASON = "reason"
#: a policy key: ``policy.uploads``, ``policy.caps.reply-mb``, ...
RULE_PATTERN = re.compile(r"policy(\.[a-z][a-z0-9-]{0,31}){1,3}")
#: longest reason, characters
MAX_REASON = 400


class RefusalError(ValueError):
    """A refusal record that breaks the schema."""


@dataclass(frozen=True)
class Refusal:
    """An instruction the client will not compute: the rule and why (one line).

    ``rule`` is the policy key (``policy.uploads``, ``policy.caps.dim``, ...);
    ``reason`` says what the instruction asked and what the policy allows. Both
    go to the server, so neither may hold a local path or a private value.
    """

    rule: str
    reason: str

    def line(self) -> str:
        """``refused by client policy: <rule>: <reason>`` (the log line)."""
        return f"refused by client policy: {self.rule}: {self.reason}"

    def clipped(self) -> Refusal:
        """The refusal, its reason made one printable line of bounded length.

        Reasons quote what the server sent (an algorithm's name, a run name):
        control characters become ``?`` and the text is cut to
        :data:`MAX_REASON` characters, so the client never fails its own schema.
        """
        text = "".join(c if c.isprintable() else "?" for c in self.reason.strip())
        if len(text) > MAX_REASON:
            text = text[: MAX_REASON - 3] + "..."
        return Refusal(self.rule, text or "refused")

    @classmethod
    def checked(cls, rule: object, reason: object) -> Refusal:
        """A refusal from untrusted values; :class:`RefusalError` names the fault."""
        if not isinstance(rule, str) or not RULE_PATTERN.fullmatch(rule):
            shown = repr(rule)[:48]
            raise RefusalError(f"refusal rule {shown} is not a policy key")
        if not isinstance(reason, str) or not reason.strip():
            raise RefusalError("refusal reason must be a non-empty string")
        if len(reason) > MAX_REASON:
            raise RefusalError(
                f"refusal reason has {len(reason)} characters (at most {MAX_REASON})"
            )
        if not reason.isprintable():
            raise RefusalError("refusal reason holds control characters")
        return cls(rule, reason)
