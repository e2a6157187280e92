"""Checks of single create-room parameters with rules of their own: UniqueName, StatusCallback,
VideoCodecs and RecordingRules. Pure; each raises TwilioError (400) with the parameter's code."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any, Sequence
from urllib.parse import unquote, urlsplit

from service.rooms.limits import (
    E_CALLBACK,
    E_NAME_CHARS,
    E_NAME_INVALID,
    E_NAME_TOO_LONG,
    E_RECORDING_RULES,
    MAX_UNIQUE_NAME_LENGTH,
    RECORDING_RULE_KINDS,
    RECORDING_RULE_TYPES,
    VIDEO_CODECS,
    error,
    invalid,
    show,
)

_SID_RE = re.compile(r"RM[0-9a-fA-F]{32}")


def _bad_name_char(ch: str) -> bool:
    # Cs: lone surrogates (undecodable input); Cc: C0/C1 controls; U+FFFD: replacement character
    # left by a lenient UTF-8 decoder, i.e. the client sent invalid UTF-8.
    return ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs")


def unique_name(name: str | None) -> str | None:
    if name is None:
        return None
    if len(name) > MAX_UNIQUE_NAME_LENGTH:
        raise error(E_NAME_TOO_LONG, f"UniqueName has {len(name)} characters, the maximum is {MAX_UNIQUE_NAME_LENGTH}")
    if any(_bad_name_char(ch) for ch in name):
        raise error(E_NAME_CHARS, "UniqueName must be valid UTF-8 text without control characters")
    if _SID_RE.fullmatch(name):
        raise error(E_NAME_INVALID, "UniqueName must not have the form of a Room SID (RM followed by 32 hex digits)")
    return name


def status_callback(url: str | None) -> str | None:
    if url is None:
        return None
    url = url.strip()
    if url == "":
        return None
    problem = None
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cs") for ch in url):
        problem = "contains whitespace or control characters"
    else:
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises ValueError on a malformed port
        except ValueError:
            problem = "is not a valid URL"
        else:
            if parts.scheme.lower() not in ("http", "https"):
                problem = "must be an absolute http or https URL"
            elif not parts.hostname:
                problem = "must name a host"
    if problem:
        raise error(E_CALLBACK, f"StatusCallback {show(url)} {problem}")
    return url


def video_codecs(values: Sequence[str] | None) -> tuple[str, ...]:
    codecs: list[str] = []
    for value in values or ():
        for part in value.split(","):
            part = part.strip()
            if part == "":
                continue
            codec = part.upper()
            if codec not in VIDEO_CODECS:
                raise invalid(f"VideoCodecs value {show(part)} is not one of {', '.join(VIDEO_CODECS)}")
            if codec not in codecs:
                codecs.append(codec)
    return tuple(codecs)


def recording_rules(text: str | None) -> dict | list | None:
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = _NOT_JSON
        if text.lstrip().startswith("%"):
            try:
                parsed = json.loads(unquote(text))
            except ValueError:
                pass
    if parsed is _NOT_JSON:
        raise error(E_RECORDING_RULES, "RecordingRules is not valid JSON")
    if isinstance(parsed, dict):
        extra = sorted(set(parsed) - {"rules"})
        if extra or "rules" not in parsed:
            raise error(
                E_RECORDING_RULES, 'RecordingRules must be an array of rules or an object with only a "rules" array'
            )
        rules = parsed["rules"]
    else:
        rules = parsed
    if not isinstance(rules, list):
        raise error(E_RECORDING_RULES, 'RecordingRules must be an array of rules or an object with a "rules" array')
    for index, rule in enumerate(rules):
        _check_rule(index, rule)
    return parsed


_NOT_JSON = object()
_RULE_FILTERS = ("all", "publisher", "track", "kind")


def _check_rule(index: int, rule: Any) -> None:
    where = f"rule {index}"
    if not isinstance(rule, dict):
        raise error(E_RECORDING_RULES, f"{where} must be an object")
    unknown = sorted(set(rule) - {"type", *_RULE_FILTERS})
    if unknown:
        raise error(E_RECORDING_RULES, f"{where} has unknown key(s) {', '.join(unknown)}")
    if rule.get("type") not in RECORDING_RULE_TYPES:
        raise error(E_RECORDING_RULES, f'{where} needs "type" include or exclude')
    filters = [name for name in _RULE_FILTERS if name in rule]
    if not filters:
        raise error(E_RECORDING_RULES, f"{where} needs a filter: all, publisher, track or kind")
    if "all" in rule:
        if rule["all"] is not True:
            raise error(E_RECORDING_RULES, f'{where}: "all" must be true')
        if len(filters) > 1:
            raise error(E_RECORDING_RULES, f'{where}: "all" cannot be combined with other filters')
    for name in ("publisher", "track"):
        if name in rule and (not isinstance(rule[name], str) or rule[name] == ""):
            raise error(E_RECORDING_RULES, f'{where}: "{name}" must be a non-empty string')
    if "kind" in rule and rule["kind"] not in RECORDING_RULE_KINDS:
        raise error(E_RECORDING_RULES, f'{where}: "kind" must be audio, video or data')
