"""The simulated PLC's OPC UA face (asyncua 2.1 server).

Address space: namespace ``urn:kilnwatch:simulator`` (index 2), a folder per asset under Objects,
string node ids from the tag map. Measurements are AnalogItemType variables (Double) with
EngineeringUnits (EUInformation, UN/CEFACT codes) and EURange properties; counters are UInt32,
run states Boolean; all read-only. Each tick every value is written through
``server.write_attribute_value`` with the model's status (Good, Uncertain_LastUsableValue,
Uncertain_EngineeringUnitsExceeded, Bad_SensorFailure) and a source timestamp, as a PLC scan would;
subscriptions only notify on value/status change.

Security: ``None`` always; with ``security=True`` also Basic256Sha256 Sign and SignAndEncrypt with a
self-signed application certificate generated at first start (kept for restarts, like a PLC). Any
client certificate is accepted (no trust list), which suits commissioning and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulator.listen import ListenError, quiet_bind_failure, reason_of
from simulator.plant import SensorStatus
from simulator.tagmap import NAMESPACE_INDEX, NAMESPACE_URI, UNECE_CODES, Tag, TagMap

log = logging.getLogger(__name__)

APPLICATION_URI = "urn:kilnwatch:simulator:server"
CLIENT_APPLICATION_URI = "urn:kilnwatch:agent"
ENDPOINT_PATH = "/kilnwatch"
_UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"

STATUS_CODES: dict[int, int] = {
    SensorStatus.GOOD: StatusCodes.Good,
    SensorStatus.UNCERTAIN_LAST_USABLE: StatusCodes.UncertainLastUsableValue,
    SensorStatus.UNCERTAIN_EU_EXCEEDED: StatusCodes.UncertainEngineeringUnitsExceeded,
    SensorStatus.BAD_SENSOR_FAILURE: StatusCodes.BadSensorFailure,
}


@dataclass(frozen=True, slots=True)
class CertFiles:
    """A certificate (DER) and its private key (PEM) on disk."""

    cert: Path
    key: Path


def _der_of(path: Path) -> bytes:
    """A certificate file's DER bytes (the file may be DER or PEM)."""
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)


def generate_certificate(directory: Path, *, name: str, application_uri: str, client: bool) -> CertFiles:
    """Write a self-signed OPC UA application certificate (OPC 10000-6 §6.2.2) and key to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    hosts = {"localhost", socket.gethostname()}
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    alt_names += [x509.DNSName(h) for h in sorted(hosts)]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    cert = generate_self_signed_app_certificate(
        key, name, {"organizationName": "kilnwatch"}, alt_names, [usage], days=3650
    )
    files = CertFiles(directory / f"{name}-cert.der", directory / f"{name}-key.pem")
    files.cert.write_bytes(cert.public_bytes(Encoding.DER))
    files.key.write_bytes(dump_private_key_as_pem(key))
    files.key.chmod(0o600)
    return files


def _nid(identifier: str | int, namespace: int = 0) -> ua.NodeId:
    """A typed NodeId (asyncua's constructor wants its own int/str subclasses)."""
    ident = ua.String(identifier) if isinstance(identifier, str) else ua.Int32(identifier)
    return ua.NodeId(ident, ua.Int16(namespace))


def _eu_information(unit: str) -> ua.EUInformation:
    code = UNECE_CODES.get(unit, "")
    eu = ua.EUInformation()
    eu.NamespaceUri = _UNECE_NAMESPACE
    eu.UnitId = int.from_bytes(code.encode("ascii"), "big") if code else -1
    eu.DisplayName = ua.LocalizedText(unit)
    eu.Description = ua.LocalizedText(unit)
    return eu


class OpcuaPlc:
    """An OPC UA server serving the plant's values; restartable on the same port."""

    def __init__(
        self,
        tagmap: TagMap,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        security: bool = False,
        cert_dir: Path | None = None,
        trusted_certs: Sequence[Path] = (),
    ) -> None:
        if security and cert_dir is None:
            raise ValueError("security needs a cert_dir for the generated certificate")
        self.tagmap = tagmap
        self.host = host
        self.port = port
        self.security = security
        self.cert_dir = cert_dir
        self.server_cert: CertFiles | None = None
        #: client application certificates (DER or PEM) a secure session may present
        self.trusted_certs = list(trusted_certs)
        self._server: Server | None = None
        self._node_ids = [_nid(t.node_string_id, NAMESPACE_INDEX) for t in tagmap.tags]
        self._kinds = np.array([_variant_kind(t) for t in tagmap.tags], dtype=np.int8)
        self._last: tuple[npt.NDArray[np.float64], npt.NDArray[np.int8], datetime] | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{ENDPOINT_PATH}"

    async def start(self) -> int:
        """Build the address space and listen (port 0 = ephemeral, kept for restarts)."""
        if self._server is not None:
            return self.port
        server = Server()
        await server.init()
        # CurrentTime is written with every scan (update) instead of by asyncua's 1 s clock task,
        # whose sleep would otherwise delay every stop (PLC restart) by up to a second.
        server.disable_clock(True)
        server.set_server_name("kilnwatch simulated cement plant")
        server.set_endpoint(self.endpoint)
        await server.set_application_uri(APPLICATION_URI)
        if self.security:
            assert self.cert_dir is not None
            if self.server_cert is None:
                self.server_cert = generate_certificate(
                    self.cert_dir, name="simulator", application_uri=APPLICATION_URI, client=False
                )
            await server.load_certificate(str(self.server_cert.cert))
            await server.load_private_key(str(self.server_cert.key))
            server.set_security_policy(
                [
                    ua.SecurityPolicyType.NoSecurity,
                    ua.SecurityPolicyType.Basic256Sha256_Sign,
                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ]
            )
            server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
            server.set_certificate_validator(self._trust_list_validator())
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            server.set_identity_tokens([ua.AnonymousIdentityToken])
        idx = await server.register_namespace(NAMESPACE_URI)
        if idx != NAMESPACE_INDEX:
            raise RuntimeError(f"namespace {NAMESPACE_URI} got index {idx}, expected {NAMESPACE_INDEX}")
        await self._build_address_space(server)
        self._server = server
        # the last scan first, then listen: a client reconnecting at once after a restart must
        # read the plant's values, never the address space's initial ones
        try:
            if self._last is not None:
                await self.update(*self._last)
            with quiet_bind_failure("asyncua.server.server", "error starting server"):
                await server.start()
        except OSError as exc:
            self._server = None
            raise ListenError(self.host, self.port, "OPC UA", reason_of(exc)) from exc
        except BaseException:
            self._server = None
            raise
        if server.bserver is not None and self.port == 0:
            self.port = int(server.bserver.port)
            server.set_endpoint(self.endpoint)
            for edp in server.iserver.endpoints:
                edp.EndpointUrl = self.endpoint
                edp.Server.DiscoveryUrls = [self.endpoint]
        log.info("OPC UA listening on %s (security %s)", self.endpoint, "on" if self.security else "None")
        return self.port

    def _trust_list_validator(
        self,
    ) -> Callable[[x509.Certificate, ua.ApplicationDescription], Awaitable[None]]:
        """Only clients whose certificate is on the trust list get a session (like a PLC's
        "trusted" folder); anyone else is refused with BadCertificateUntrusted."""
        trusted = {_der_of(p) for p in self.trusted_certs}

        async def validate(cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
            if cert.public_bytes(Encoding.DER) not in trusted:
                log.warning(
                    "OPC UA: refused untrusted client certificate %s (%s)",
                    cert.subject.rfc4514_string(),
                    app.ApplicationUri,
                )
                raise ServiceError(StatusCodes.BadCertificateUntrusted)

        return validate

    async def stop(self) -> None:
        """Stop the server: sessions and subscriptions are lost, as in a PLC restart."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
            log.info("OPC UA on port %d stopped", self.port)

    async def _build_address_space(self, server: Server) -> None:
        """Add folders, variables and their properties in a few bulk AddNodes calls."""
        folders: dict[str, ua.NodeId] = {}
        items: list[ua.AddNodesItem] = []
        objects = _nid(ObjectIds.ObjectsFolder)
        for t in self.tagmap.tags:
            parent = objects
            path = ""
            for part in t.folder.split("."):
                path = f"{path}.{part}" if path else part
                if path not in folders:
                    folders[path] = _nid(path, NAMESPACE_INDEX)
                    items.append(_folder_item(folders[path], part, parent))
                parent = folders[path]
        await _add(server, items)
        variables: list[ua.AddNodesItem] = []
        properties: list[ua.AddNodesItem] = []
        for t, node_id in zip(self.tagmap.tags, self._node_ids, strict=True):
            variables.append(_variable_item(t, node_id, folders[t.folder]))
            if t.asset_type != "filler" and not t.counter and not t.is_bool:
                properties.extend(_analog_properties(t, node_id))
        await _add(server, variables)
        await _add(server, properties)

    async def update(
        self, values: npt.NDArray[np.float64], statuses: npt.NDArray[np.int8], ts: datetime
    ) -> None:
        """Write every value with its status and source timestamp (a PLC scan)."""
        self._last = (values, statuses, ts)
        server = self._server
        if server is None:
            return
        stamp = cast(ua.DateTime, ts)
        await server.write_attribute_value(
            _CURRENT_TIME, ua.DataValue(ua.Variant(stamp, ua.VariantType.DateTime), SourceTimestamp=stamp)
        )
        for i, (node_id, kind, value, status) in enumerate(
            zip(self._node_ids, self._kinds.tolist(), values.tolist(), statuses.tolist(), strict=True)
        ):
            if i and i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let requests in between: a 10k-node scan must not stall the server
            code = ua.StatusCode(ua.UInt32(STATUS_CODES[status]))
            if kind == _DOUBLE:
                variant = ua.Variant(value, ua.VariantType.Double)
            elif kind == _UINT32:
                variant = ua.Variant(int(value), ua.VariantType.UInt32)
            else:
                variant = ua.Variant(value > 0.5, ua.VariantType.Boolean)
            dv = ua.DataValue(variant, StatusCode=code, SourceTimestamp=stamp, ServerTimestamp=stamp)
            await server.write_attribute_value(node_id, dv)


_DOUBLE, _UINT32, _BOOL = 0, 1, 2
_YIELD_EVERY = 500
_CURRENT_TIME = _nid(ObjectIds.Server_ServerStatus_CurrentTime)


def _variant_kind(t: Tag) -> int:
    if t.is_bool:
        return _BOOL
    return _UINT32 if t.counter else _DOUBLE


async def _add(server: Server, items: list[ua.AddNodesItem]) -> None:
    results = await server.iserver.isession.add_nodes(items)
    bad = [r for r in results if not r.StatusCode.is_good()]
    if bad:
        raise RuntimeError(f"{len(bad)} OPC UA nodes could not be added: {bad[0].StatusCode}")


def _folder_item(node_id: ua.NodeId, name: str, parent: ua.NodeId) -> ua.AddNodesItem:
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = node_id
    item.BrowseName = ua.QualifiedName(name, NAMESPACE_INDEX)
    item.NodeClass = ua.NodeClass.Object
    item.ParentNodeId = parent
    item.ReferenceTypeId = _nid(ObjectIds.Organizes)
    item.TypeDefinition = _nid(ObjectIds.FolderType)
    attrs = ua.ObjectAttributes()
    attrs.DisplayName = ua.LocalizedText(name)
    attrs.Description = ua.LocalizedText(name)
    attrs.EventNotifier = 0
    item.NodeAttributes = attrs
    return item


def _variable_item(t: Tag, node_id: ua.NodeId, parent: ua.NodeId) -> ua.AddNodesItem:
    kind = _variant_kind(t)
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = node_id
    item.BrowseName = ua.QualifiedName(t.ua_name, NAMESPACE_INDEX)
    item.NodeClass = ua.NodeClass.Variable
    item.ParentNodeId = parent
    item.ReferenceTypeId = _nid(ObjectIds.HasComponent)
    analog = kind == _DOUBLE and t.asset_type != "filler"
    item.TypeDefinition = _nid(ObjectIds.AnalogItemType if analog else ObjectIds.BaseDataVariableType)
    attrs = ua.VariableAttributes()
    attrs.DisplayName = ua.LocalizedText(t.ua_name)
    attrs.Description = ua.LocalizedText(f"{t.name}: {t.description}")
    if kind == _DOUBLE:
        attrs.DataType = _nid(ObjectIds.Double)
        attrs.Value = ua.Variant(0.0, ua.VariantType.Double)
    elif kind == _UINT32:
        attrs.DataType = _nid(ObjectIds.UInt32)
        attrs.Value = ua.Variant(0, ua.VariantType.UInt32)
    else:
        attrs.DataType = _nid(ObjectIds.Boolean)
        attrs.Value = ua.Variant(False, ua.VariantType.Boolean)
    attrs.ValueRank = ua.ValueRank.Scalar
    read_only = ua.AccessLevel.CurrentRead.mask
    attrs.AccessLevel = read_only
    attrs.UserAccessLevel = read_only
    attrs.MinimumSamplingInterval = 100.0
    attrs.Historizing = False
    item.NodeAttributes = attrs
    return item


def _property_item(parent: ua.NodeId, name: str, value: ua.Variant, data_type: int) -> ua.AddNodesItem:
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = _nid(f"{parent.Identifier!s}.{name}", NAMESPACE_INDEX)
    item.BrowseName = ua.QualifiedName(name, 0)
    item.NodeClass = ua.NodeClass.Variable
    item.ParentNodeId = parent
    item.ReferenceTypeId = _nid(ObjectIds.HasProperty)
    item.TypeDefinition = _nid(ObjectIds.PropertyType)
    attrs = ua.VariableAttributes()
    attrs.DisplayName = ua.LocalizedText(name)
    attrs.DataType = _nid(data_type)
    attrs.Value = value
    attrs.ValueRank = ua.ValueRank.Scalar
    attrs.AccessLevel = ua.AccessLevel.CurrentRead.mask
    attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
    item.NodeAttributes = attrs
    return item


def _analog_properties(t: Tag, node_id: ua.NodeId) -> list[ua.AddNodesItem]:
    """EngineeringUnits and EURange (the transmitter range) of an AnalogItemType variable."""
    lo, hi = t.instrument if t.instrument is not None else t.normal
    eu_range = ua.Range(Low=float(lo), High=float(hi))
    return [
        _property_item(
            node_id,
            "EngineeringUnits",
            ua.Variant(_eu_information(t.unit), ua.VariantType.ExtensionObject),
            ObjectIds.EUInformation,
        ),
        _property_item(
            node_id, "EURange", ua.Variant(eu_range, ua.VariantType.ExtensionObject), ObjectIds.Range
        ),
    ]
