# Generated from src/shells/sdk/_async/resources.py by scripts/unasync.py; edit that file and run the script.
"""What lives beside shells: templates, private networks and snapshots (``client.templates`` ...)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ...domain.errors import Unavailable
from ..models import (
    BucketCredential,
    BuildDone,
    BuildEvent,
    Network,
    Secret,
    Snapshot,
    Template,
    Volume,
    from_wire,
)
from ..wire import BUILD_EVENTS, Json
from .http import HTTP, Options


class Templates:
    """Templates: the root filesystems shells start from (``client.templates``)."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def list(self) -> builtins.list[Template]:
        """Every template this server has, built or not."""
        answer = self._http.call("GET", "/v1/templates")
        return [from_wire(Template, t) for t in answer["templates"]]

    def presets(self) -> dict[str, str]:
        """The template each language uses when ``create`` names none: ``{"python": "python:1"}``."""
        answer = self._http.call("GET", "/v1/templates")
        return dict(answer["presets"])

    def get(self, name: str) -> Template:
        """One template by ``name:tag`` (or ``name``, for its newest tag).

        Raises:
            TemplateNotFound: there is no such template.
        """
        return from_wire(Template, self._http.call("GET", f"/v1/templates/{name}"))

    def delete(self, name: str) -> None:
        """Delete a template.

        Raises:
            TemplateNotFound: there is no such template.
            TemplateInUse: shells or other templates are built on it.
        """
        self._http.call("DELETE", f"/v1/templates/{name}")

    def build(
        self,
        spec: str | None = None,
        *,
        builtin: str | None = None,
        on_event: Callable[[BuildEvent], object] | None = None,
    ) -> Template:
        """Build a template from a TOML ``spec`` (text) or a ``builtin`` one (``"rust:1"``) and return
        it. A template with the same content is not built again. ``on_event`` receives the steps and
        their output as they happen.

        Raises:
            InvalidTemplateSpec: the spec does not parse or check; the message names the key.
            TemplateExists: the name is taken by a template with other content.
            TemplateBuildFailed: a step failed; its output is in the message.
        """
        return self._streamed("/v1/templates/build", _build_body(spec, builtin), on_event)

    def import_image(
        self,
        image: str,
        name: str,
        *,
        credentials: tuple[str, str] | None = None,
        on_event: Callable[[BuildEvent], object] | None = None,
    ) -> Template:
        """Import the OCI image ``image`` (``"registry.example.com/team/app:1.2"`` or ``…@sha256:…``)
        from its registry as template ``name`` (``"app:1"``); ``credentials`` is ``(username,
        password)`` for a private registry. ``on_event`` receives the steps and download progress.

        Raises:
            InvalidImageReference: ``image`` does not parse.
            RegistryDenied: the registry refused the credentials (or needs some).
            ImageNotFound: the registry has no such image.
            ImageRejected: a layer is unsafe or does not match its digest, or no manifest fits.
            TemplateExists: the name is taken.
        """
        body: Json = {"image": image, "name": name}
        if credentials is not None:
            body["credentials"] = {"username": credentials[0], "password": credentials[1]}
        return self._streamed("/v1/templates/import", body, on_event)

    def export(
        self,
        template: str,
        image: str,
        *,
        credentials: tuple[str, str] | None = None,
        on_event: Callable[[BuildEvent], object] | None = None,
    ) -> Template:
        """Push ``template`` to a registry as the OCI image ``image`` (``registry/repo:tag``), which
        ``docker run`` or ``podman run`` can start. Returns the template; the pushed digest is in the
        last step's name.

        Raises:
            RegistryDenied: the registry refused the credentials.
            TemplateNotFound: there is no such template.
        """
        body: Json = {"template": template, "image": image}
        if credentials is not None:
            body["credentials"] = {"username": credentials[0], "password": credentials[1]}
        return self._streamed("/v1/templates/export", body, on_event)

    def build_dockerfile(
        self,
        name: str,
        context: bytes,
        *,
        dockerfile: str = "Dockerfile",
        on_event: Callable[[BuildEvent], object] | None = None,
    ) -> Template:
        """Build template ``name`` from a Dockerfile. ``context`` is the build context as a tar (plain
        or gzip) holding the Dockerfile at ``dockerfile``; steps whose inputs did not change since an
        earlier build are taken from the step cache.

        Raises:
            InvalidDockerfile: a line does not parse or is unsupported; the message names it.
            TemplateBuildFailed: a step failed; the message names its line and has its output.
            TemplateExists: the name is taken.
        """
        params = {"name": name, "dockerfile": dockerfile}
        return self._streamed("/v1/templates/dockerfile", None, on_event, content=context, params=params)

    def _streamed(
        self,
        path: str,
        body: Json | None,
        on_event: Callable[[BuildEvent], object] | None,
        *,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> Template:
        """POST a build-like request: one JSON answer, or its event stream passed to ``on_event``."""
        if on_event is None:
            options: Options = {"params": {**(params or {}), "wait": "true"}, "unbounded": True}
            if content is not None:
                options["content"] = content
            elif body is not None:
                options["body"] = body
            answer = self._http.call("POST", path, **options)
            return from_wire(Template, answer)
        with self._http.ndjson(
            "POST", path, BUILD_EVENTS, body=body, content=content, params=params
        ) as events:
            for event in events:
                on_event(event)
                if isinstance(event, BuildDone):
                    return event.template
        raise Unavailable("The event stream ended before it finished; the server may have restarted.")

    @contextmanager
    def build_stream(
        self, spec: str | None = None, *, builtin: str | None = None
    ) -> Iterator[Iterator[BuildEvent]]:
        """Start a build and hand over its events: ``BuildStep``, ``BuildOutput``, then ``BuildDone``.

        Raises:
            The errors of :meth:`build`; a failing step raises from the iteration.
        """
        body = _build_body(spec, builtin)
        with self._http.ndjson("POST", "/v1/templates/build", BUILD_EVENTS, body=body) as events:
            yield events

    def save(self, shell_id: str, name: str, *, include_workspace: bool = False) -> Template:
        """Save a shell's system (and ``/workspace`` too with ``include_workspace``) as template
        ``name`` (``"myenv:1"``).

        Raises:
            ShellNotFound: there is no such shell.
            InvalidTemplateName: ``name`` is not ``name:tag``.
            TemplateExists: the name is taken.
        """
        body = {"from_shell": shell_id, "name": name, "include_workspace": include_workspace}
        return from_wire(Template, self._http.call("POST", "/v1/templates", body=body))


def _build_body(spec: str | None, builtin: str | None) -> Json:
    return {"spec": spec} if spec is not None else {"builtin": builtin}


class Secrets:
    """Your tenant's secrets (``client.secrets``): values go in, never come out."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def create(
        self, name: str, value: str, hosts: builtins.list[str], *, header: str | None = None
    ) -> Secret:
        """Store a secret that shells created with ``secrets=[name]`` may use on HTTPS requests to
        ``hosts`` (names such as ``api.github.com`` or wildcards such as ``*.example.org``).

        Raises:
            InvalidRequest: a field is wrong (an empty host list or a bare ``*`` included).
            Conflict: the name is taken.
            PermissionDenied: writing secrets needs ``tenant.admin``.
        """
        body: Json = {"name": name, "value": value, "hosts": list(hosts)}
        if header is not None:
            body["header"] = header
        return from_wire(Secret, self._http.call("POST", "/v1/secrets", body=body))

    def list(self) -> builtins.list[Secret]:
        """Every secret of your tenant (names and hosts; never values)."""
        answer = self._http.call("GET", "/v1/secrets")
        return [from_wire(Secret, s) for s in answer["secrets"]]

    def get(self, name: str) -> Secret:
        """One secret, without its value.

        Raises:
            NotFound: there is no such secret.
        """
        return from_wire(Secret, self._http.call("GET", f"/v1/secrets/{name}"))

    def update(
        self,
        name: str,
        *,
        value: str | None = None,
        hosts: builtins.list[str] | None = None,
        header: str | None = None,
    ) -> Secret:
        """Rotate the value and/or change the hosts or the header; running shells use the change
        on their next request.

        Raises:
            NotFound: there is no such secret.
        """
        body: Json = {}
        if value is not None:
            body["value"] = value
        if hosts is not None:
            body["hosts"] = list(hosts)
        if header is not None:
            body["header"] = header
        return from_wire(Secret, self._http.call("PUT", f"/v1/secrets/{name}", body=body))

    def delete(self, name: str) -> None:
        """Delete a secret; shells that had it send their placeholder unchanged from then on.

        Raises:
            NotFound: there is no such secret.
        """
        self._http.call("DELETE", f"/v1/secrets/{name}")


class Volumes:
    """Your tenant's volumes (``client.volumes``); attach one at create: ``volumes=[VolumeAttach(...)]``."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def create(self, name: str, size_gib: int) -> Volume:
        """A new, empty volume of ``size_gib`` GiB (enforced on the host).

        Raises:
            InvalidRequest: a bad name or size.
            Conflict: the name is taken (``VolumeExists``).
        """
        body: Json = {"name": name, "size_gib": size_gib}
        return from_wire(Volume, self._http.call("POST", "/v1/volumes", body=body))

    def list(self) -> builtins.list[Volume]:
        """Every volume of your tenant, with the shells that hold each."""
        answer = self._http.call("GET", "/v1/volumes")
        return [from_wire(Volume, v) for v in answer["volumes"]]

    def get(self, name: str) -> Volume:
        """One volume.

        Raises:
            VolumeNotFound: there is no such volume.
        """
        return from_wire(Volume, self._http.call("GET", f"/v1/volumes/{name}"))

    def delete(self, name: str) -> None:
        """Delete a volume and its data.

        Raises:
            VolumeNotFound: there is no such volume.
            VolumeInUse: a shell that may start again holds it; delete that shell first.
        """
        self._http.call("DELETE", f"/v1/volumes/{name}")


class Networks:
    """Private networks between shells (``client.networks``)."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def create(self, name: str) -> Network:
        """Create a private network with an address range of its own.

        Raises:
            InvalidRequest: the name is not allowed.
            Conflict: the name is taken.
        """
        return Network.parse(self._http.call("POST", "/v1/networks", body={"name": name}))

    def list(self) -> builtins.list[Network]:
        """Every private network of yours."""
        answer = self._http.call("GET", "/v1/networks")
        return [Network.parse(n) for n in answer["networks"]]

    def get(self, name: str) -> Network:
        """One network, with the shells attached to it.

        Raises:
            NotFound: there is no such network.
        """
        return Network.parse(self._http.call("GET", f"/v1/networks/{name}"))

    def delete(self, name: str) -> None:
        """Delete a network.

        Raises:
            NotFound: there is no such network.
            Conflict: shells are still attached.
        """
        self._http.call("DELETE", f"/v1/networks/{name}")

    def attach(self, name: str, shell_id: str) -> Network:
        """Put a shell on the network (at once if it runs, at its next start otherwise) and return
        the network with its members.

        Raises:
            NotFound: there is no such network or shell.
        """
        body = {"shell_id": shell_id}
        return Network.parse(self._http.call("POST", f"/v1/networks/{name}/shells", body=body))

    def detach(self, name: str, shell_id: str) -> None:
        """Detach a shell from the network.

        Raises:
            NotFound: there is no such network, or the shell is not attached.
        """
        self._http.call("DELETE", f"/v1/networks/{name}/shells/{shell_id}")


class Snapshots:
    """Snapshots of your shells (``client.snapshots``); take one with ``shell.snapshot()``."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def list(self, shell_id: str | None = None) -> builtins.list[Snapshot]:
        """Your snapshots, or those of one shell."""
        params = {"shell_id": shell_id} if shell_id else {}
        answer = self._http.call("GET", "/v1/snapshots", params=params)
        return [from_wire(Snapshot, s) for s in answer["snapshots"]]

    def delete(self, snapshot_id: str) -> None:
        """Delete one of your snapshots, here and in the object store; shells already created from it
        keep running with their own files.

        Raises:
            SnapshotNotFound: there is no such snapshot (or it is another tenant's).
            PermissionDenied: you do not own the shell it was taken of.
        """
        self._http.call("DELETE", f"/v1/snapshots/{snapshot_id}")


class BucketCredentials:
    """Your tenant's bucket credentials (``client.bucket_credentials``): an S3 key pair stored once
    and named by mounts and syncs (``BucketMount(..., credentials="name")``, ``sync={...,
    "credentials": "name"}``). Secrets go in, never come out."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def create(self, name: str, access_key_id: str, secret_access_key: str) -> BucketCredential:
        """Store a key pair under ``name`` (the secret sealed at rest).

        Raises:
            AlreadyExists: the name is taken (delete it first to replace it).
            PermissionDenied: storing credentials needs ``tenant.admin``.
        """
        body = {"name": name, "access_key_id": access_key_id, "secret_access_key": secret_access_key}
        answer = self._http.call("POST", "/v1/bucket-credentials", body=body)
        return from_wire(BucketCredential, answer)

    def list(self) -> builtins.list[BucketCredential]:
        """Every stored credential of your tenant: names and key ids, never secrets."""
        answer = self._http.call("GET", "/v1/bucket-credentials")
        return [from_wire(BucketCredential, c) for c in answer["bucket_credentials"]]

    def delete(self, name: str) -> None:
        """Forget them; shells created with them keep their own copy.

        Raises:
            BucketCredentialsNotFound: there are none of that name.
        """
        self._http.call("DELETE", f"/v1/bucket-credentials/{name}")
