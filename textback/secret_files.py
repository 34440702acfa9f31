"""Who may read a file that holds a secret: one model for the code, the unit and the docs.

The daemon runs as the service user (``User=textback``, ``Group=textback`` in
systemd/textback.service; ``useradd --user-group`` gives that user a group of its own). A
secret file (the PBX secret, a SIM PIN, or the config file when it holds one inline) is
accepted when nobody but that user can read it, in one of two ways:

- ``root:textback`` mode ``0640``: root owns it, the service reads it through its *own*
  group, others have no access. This is what docs/deploy.md sets up: the admin edits it as
  root, the daemon cannot change it.
- owned by the service user, mode ``0600``.

A group other than the service's own group, group write, or any access for others is
refused. When the check runs as root (``sudo textback check-config``) the service user is the
unit's ``textback`` when that user exists, and a file the service could not read is refused
too, because root reads anything and would otherwise say OK to a file the daemon cannot
open. Every refusal names the user and group that need what and the exact chown/chmod.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "textback"  # User= and Group= of systemd/textback.service


@dataclass(frozen=True, slots=True)
class ServiceIdentity:
    """The user and primary group the daemon runs as."""

    user: str
    uid: int
    group: str
    gid: int


def _name_of_group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _name_of_user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def service_identity() -> ServiceIdentity | None:
    """The current user, or as root the unit's ``textback`` user (None when it does not
    exist: then only mode 0600 is accepted, as nobody's group can be trusted)."""
    uid = os.geteuid()
    if uid != 0:
        gid = os.getegid()
        return ServiceIdentity(_name_of_user(uid), uid, _name_of_group(gid), gid)
    try:
        pw = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None
    return ServiceIdentity(pw.pw_name, pw.pw_uid, _name_of_group(pw.pw_gid), pw.pw_gid)


def _fix(path: Path, ident: ServiceIdentity | None) -> str:
    user = ident.user if ident else SERVICE_USER
    group = ident.group if ident else SERVICE_USER
    return (f"fix: chown root:{group} {path} && chmod 0640 {path} "
            f"(or chown {user} {path} && chmod 600 {path})")


def access_problem(path: Path, st: os.stat_result | None,
                   ident: ServiceIdentity | None) -> str | None:
    """Why the secret file at ``path`` (with stat ``st``) is not private to the service user
    ``ident``, with the fix; None when it is fine (or ``st`` is unknown)."""
    if st is None:
        return None
    mode = stat.S_IMODE(st.st_mode)
    owner, group = _name_of_user(st.st_uid), _name_of_group(st.st_gid)
    who = f"mode {mode:04o}, owner {owner}, group {group}"
    service = (f"the service user {ident.user} (group {ident.group})" if ident
               else f"the service user {SERVICE_USER}")
    own_group = ident is not None and st.st_gid == ident.gid
    if mode & stat.S_IRWXO or mode & stat.S_IWGRP or (mode & stat.S_IRWXG and not own_group):
        return (f"{path} holds a secret and can be read or changed by group or others "
                f"({who}); only {service} may read it: {_fix(path, ident)}")
    if ident is not None and os.geteuid() == 0:
        readable = ((st.st_uid == ident.uid and mode & stat.S_IRUSR)
                    or (own_group and mode & stat.S_IRGRP))
        if not readable:
            return (f"{path} cannot be read by {service} ({who}); {_fix(path, ident)}")
    return None


def unreadable_hint(path: Path, ident: ServiceIdentity | None) -> str:
    """What to say after a PermissionError reading ``path``."""
    try:
        st = path.stat()
        mode = stat.S_IMODE(st.st_mode)
        who = (f" (mode {mode:04o}, owner {_name_of_user(st.st_uid)}, "
               f"group {_name_of_group(st.st_gid)})")
    except OSError:
        who = ""
    service = (f"the service user {ident.user} (group {ident.group})" if ident
               else f"the service user {SERVICE_USER}")
    return f"{service} needs to read it{who}; {_fix(path, ident)}"
