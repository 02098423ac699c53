"""Fingerprints of training runs: one short hash of everything that determines a checkpoint.

A fingerprint is the SHA-256 (first 12 hex digits) of a JSON object with sorted keys, so
it depends on values, not on the order the fields were collected in.  The fields
themselves are stored beside it in the checkpoint, so that a mismatch can be explained
field by field (:func:`differing_fields`).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

__all__ = ["fingerprint", "canonical", "differing_fields", "field_changes", "mask_hash"]


def canonical(fields: dict) -> dict:
    """``fields`` as plain JSON values (tuples become lists, numpy scalars numbers, others ``str``)."""
    return json.loads(json.dumps(fields, sort_keys=True, default=_plain))


def _plain(value):
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return str(value)


def fingerprint(fields: dict) -> str:
    """12 hex digits of the SHA-256 of ``canonical(fields)`` (sorted-key JSON)."""
    blob = json.dumps(canonical(fields), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def differing_fields(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields whose values differ between two field dicts, e.g.
    ``["data.nside", "train.epochs"]`` (missing on one side counts as different)."""
    a, b = canonical(a), canonical(b)
    out = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += differing_fields(va, vb, prefix=f"{name}.")
        elif va != vb:
            out.append(name)
    return out


def field_changes(a: dict, b: dict, a_word: str, b_word: str, most: int | None = None,
                  notes: dict | None = None) -> list[str]:
    """The fields that differ between two field dicts, for messages: ``"train.epochs (3 in the file, 4 now)"``
    (``a_word`` "in the file", ``b_word`` "now"), ``notes[name]`` appended after a semicolon where given; the
    first ``most`` of them and "..." where more differ (``most`` None: all)."""
    names, notes = differing_fields(a, b), notes or {}
    out = [f"{n} ({field_value(a, n)} {a_word}, {field_value(b, n)} {b_word}{f'; {notes[n]}' if n in notes else ''})"
           for n in names[:most]]
    return out + (["..."] if most is not None and len(names) > most else [])


def fingerprint_meta(fields: dict) -> dict:
    """``{"fingerprint": fingerprint(fields), "fields": fields}``: what ``training.fit(meta=...)`` stores in a
    checkpoint and checks before resuming it (``training.check_fingerprint`` names the differing fields)."""
    return {"fingerprint": fingerprint(fields), "fields": fields}


def field_value(fields: dict, name: str, width: int = 40) -> str:
    """The value of the dotted field ``name`` in ``fields`` as a short string (``repr``, cut to ``width``
    characters; "missing" where it is absent): for messages that name a differing field."""
    value = canonical(fields)
    for key in name.split("."):
        if not isinstance(value, dict) or key not in value:
            return "missing"
        value = value[key]
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def mask_hash(mask) -> str | None:
    """16 hex digits identifying a footprint mask by its content (None for no mask)."""
    if mask is None:
        return None
    return hashlib.sha256(np.packbits(np.asarray(mask, dtype=bool)).tobytes()).hexdigest()[:16]
