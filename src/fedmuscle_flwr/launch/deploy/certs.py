"""Demo certificates and SuperNode keys for a TLS + authenticated deployment.

Everything is made with the ``cryptography`` package (a Flower dependency):

* ``ca.crt`` / ``ca.key``: a self-signed demo certificate authority;
* ``server.pem`` / ``server.key``: the SuperLink's certificate, signed by the CA,
  with a subject alternative name (SAN) for every host name or IP address that
  clients use to reach the server;
* ``nodes/node-<i>`` / ``nodes/node-<i>.pub``: ECDSA (NIST P-384) key pairs for
  SuperNode authentication, in the OpenSSH formats Flower 1.39 expects
  (``flower-supernode --auth-supernode-private-key`` reads the private key with
  ``load_ssh_private_key``; ``flwr supernode register`` reads the public key
  with ``load_ssh_public_key`` and only accepts NIST curves);
* ``authorized-nodes.txt``: the public keys, one per line, which is what
  ``fedmuscle server --auth-keys`` registers with the SuperLink.

These are *demo* credentials: the CA key sits next to the certificates.
:func:`generate` refuses a folder that already holds a CA (every deployed
``ca.crt`` would stop matching) unless ``force``; :func:`add_nodes` adds node
keys to an existing folder and extends ``authorized-nodes.txt``. Private keys
are created with mode 0600 from the start (never readable by others, not even
for a moment).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

#: file names inside a TLS directory (what ``fedmuscle server --tls-dir`` reads)
CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
NODES_DIR, KEY_LIST = "nodes", "authorized-nodes.txt"
_DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class CertBundle:
    """Paths of the generated files.

    Parameters
    ----------
    out : Path
        The output directory.
    node_keys : list of Path
        The private key of each SuperNode (the ``.pub`` file lies beside it).
    """

    out: Path
    node_keys: list[Path] = field(default_factory=list)

    @property
    def ca(self) -> Path:
        """The CA certificate every client and the ``flwr`` CLI trust."""
        return self.out / CA_CERT

    @property
    def key_list(self) -> Path:
        """The authorised public keys, one OpenSSH line each."""
        return self.out / KEY_LIST


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "FedMuscle demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    """One SAN entry per host: an IP address when it parses as one, else a DNS name."""
    entries: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):  # keep order, drop duplicates
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


class CertsError(ValueError):
    """The certificate folder cannot be written as asked (names the file)."""


def _write(path: Path, data: bytes, private: bool = False) -> None:
    """Write ``path`` (replacing it); a private file is created 0600 (``os.open``)."""
    mode = 0o600 if private else 0o644
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)  # the umask may have taken bits off a public file
    tmp.replace(path)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(
    out: Path, days: int
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Create the demo CA (``ca.crt``, ``ca.key``) in ``out`` and return it."""
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("FedMuscle demo CA"))
        .issuer_name(_name("FedMuscle demo CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA384())
    )
    _write(out / CA_CERT, cert.public_bytes(serialization.Encoding.PEM))
    _write(out / CA_KEY, _pem_key(key), private=True)
    return cert, key


def make_server_cert(
    out: Path,
    hosts: Sequence[str],
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    days: int,
) -> Path:
    """Create ``server.pem``/``server.key`` for ``hosts`` (SANs), signed by ``ca``."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )
    _write(out / SERVER_CERT, cert.public_bytes(serialization.Encoding.PEM))
    _write(out / SERVER_KEY, _pem_key(key), private=True)
    return out / SERVER_CERT


def make_node_key(path: Path) -> str:
    """Write an ECDSA P-384 key pair (OpenSSH formats) at ``path`` and ``path.pub``.

    Returns
    -------
    str
        The public key as one OpenSSH line (``ecdsa-sha2-nistp384 AAAA... name``).
    """
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    line = f"{public.decode()} {path.name}"
    _write(path, private, private=True)
    _write(path.with_suffix(".pub"), (line + "\n").encode())
    return line


def generate(
    out: Path,
    hosts: Sequence[str] = (),
    nodes: int = 0,
    days: int = 365,
    force: bool = False,
) -> CertBundle:
    """Generate the CA, the server certificate and ``nodes`` SuperNode key pairs.

    Parameters
    ----------
    out : Path
        Output directory (created).
    hosts : sequence of str
        Host names and IP addresses clients use to reach the server; ``localhost``,
        ``127.0.0.1`` and ``::1`` are always added.
    nodes : int
        Number of SuperNode key pairs (``nodes/node-1`` ...).
    days : int
        Validity of the certificates.
    force : bool
        Replace an existing CA (and drop the folder's node keys).

    Returns
    -------
    CertBundle
        The paths written.

    Raises
    ------
    CertsError
        ``out`` holds a CA already and ``force`` is false.
    """
    existing = [out / f for f in (CA_CERT, CA_KEY) if (out / f).exists()]
    if existing and not force:
        raise CertsError(
            f"{existing[0]} exists: a new CA would invalidate every deployed "
            f"{CA_CERT}; use --add-nodes to add node keys, or --force to replace all"
        )
    out.mkdir(parents=True, exist_ok=True)
    all_hosts = [*hosts, *_DEFAULT_HOSTS]
    ca = make_ca(out, days)
    make_server_cert(out, all_hosts, ca, days)
    bundle = CertBundle(out)
    if force:
        (out / KEY_LIST).unlink(missing_ok=True)
        for old in (out / NODES_DIR).glob("node-*"):
            old.unlink()
    if nodes:
        bundle.node_keys.extend(add_nodes(out, nodes).node_keys)
    log.info("certificates for %s written to %s", ", ".join(all_hosts), out)
    return bundle


def add_nodes(out: Path, count: int) -> CertBundle:
    """Add ``count`` SuperNode key pairs to ``out`` and extend its key list.

    New keys are numbered after the highest existing ``nodes/node-<i>``; the
    folder's CA and server certificate are kept (SuperNode keys are not signed:
    Flower authenticates them by the registered public key, ``--auth-keys``).
    """
    if count < 1:
        raise CertsError(f"add {count} nodes: give a positive number")
    nodes_dir = out / NODES_DIR
    nodes_dir.mkdir(parents=True, exist_ok=True)
    numbers = [
        int(m.group(1))
        for f in nodes_dir.iterdir()
        if (m := re.fullmatch(r"node-(\d+)(\.pub)?", f.name))
    ]
    first = max(numbers, default=0) + 1
    bundle = CertBundle(out)
    lines = []
    for i in range(first, first + count):
        path = nodes_dir / f"node-{i}"
        lines.append(make_node_key(path))
        bundle.node_keys.append(path)
    key_list = out / KEY_LIST
    before = key_list.read_text() if key_list.is_file() else ""
    if before and not before.endswith("\n"):
        before += "\n"
    _write(key_list, (before + "\n".join(lines) + "\n").encode())
    log.info("%d node keys added to %s (node-%d ...)", count, nodes_dir, first)
    return bundle


def read_public_keys(source: Path) -> list[str]:
    """OpenSSH public key lines from a key-list file, a ``.pub`` file or a folder.

    A folder contributes every ``*.pub`` file in it (and in ``nodes/``); blank
    lines and ``#`` comments are skipped. Every key is checked to be an ECDSA key
    on a NIST curve, which is what ``flwr supernode register`` accepts.
    """
    if source.is_dir():
        files = sorted([*source.glob("*.pub"), *(source / NODES_DIR).glob("*.pub")])
    else:
        files = [source]
    lines = [
        line.strip()
        for f in files
        for line in f.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for line in lines:
        key = serialization.load_ssh_public_key(line.encode())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(f"{source}: not an ECDSA public key: {line[:40]}...")
    if not lines:
        raise ValueError(f"{source}: no public keys found")
    return lines
