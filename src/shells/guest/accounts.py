"""The Linux users of a shell that a request may run as, and files handed to them."""

from __future__ import annotations

import os
import pwd

from .loop import RequestError
from .protocol import get_str


class Account:
    """A Linux user of the shell that a request runs as: ``"user"`` is a name or a uid, optionally
    with ``:group`` (a name or gid), as an image's ``User`` is written. A numeric uid needs no
    entry in the shell's /etc/passwd (its HOME is then ``/``). A plain class: the agent imports
    neither typing nor dataclasses, to start fast."""

    __slots__ = ("gid", "groups", "home", "name", "shell", "uid")

    def __init__(self, name: str, uid: int, gid: int, home: str, shell: str, groups: tuple[int, ...]) -> None:
        self.name, self.uid, self.gid = name, uid, gid
        self.home, self.shell, self.groups = home, shell, groups

    @classmethod
    def named(cls, user: str) -> Account:
        import grp

        name, _, group = user.partition(":")
        try:
            entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
        except (KeyError, ValueError):
            if not name.isdigit():
                raise RequestError("invalid_request", f"There is no user {name!r} in this shell.") from None
            entry = None
        gid = 0 if entry is None else entry.pw_gid
        if group:
            try:
                gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
            except (KeyError, ValueError):
                raise RequestError("invalid_request", f"There is no group {group!r} in this shell.") from None
        if entry is None:
            return cls(name, int(name), gid, "/", "/bin/sh", ())
        groups = tuple(os.getgrouplist(entry.pw_name, gid))
        return cls(entry.pw_name, entry.pw_uid, gid, entry.pw_dir, entry.pw_shell or "/bin/sh", groups)

    def environment(self) -> dict[str, str]:
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name, "SHELL": self.shell}


def account_of(message: dict[str, object]) -> Account | None:
    name = get_str(message, "user", "")
    return Account.named(name) if name else None


def chown_to(path: str, account: Account | None) -> None:
    if account is not None:
        os.chown(path, account.uid, account.gid, follow_symlinks=False)
