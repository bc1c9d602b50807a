"""``requests`` adapters whose every new connection obeys an ``AddressPolicy``.

urllib3 opens sockets in ``HTTPConnection._new_conn``: on a connection's first use and again
whenever a pooled connection is reconnected after it dropped. Overriding that one method puts
the check on every socket, pooled or not, before TLS or any request byte: the resolver's
answers are filtered by the policy and the peer actually reached is checked again
(``AddressPolicy.connect``). A refusal propagates as ``AddressRefused``, which urllib3 and
``requests`` neither retry nor wrap, so callers can tell it from an unreachable provider.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from shared.net.addresses import AddressPolicy

if TYPE_CHECKING:
    from requests.adapters import HTTPAdapter


def guarded_adapter(
    policy: AddressPolicy, *, pool_connections: int, pool_maxsize: int
) -> HTTPAdapter:
    """An HTTPAdapter (no retries, non-blocking pool) whose connections obey ``policy``."""
    from requests.adapters import HTTPAdapter
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    http_pool = type(
        "GuardedHTTPConnectionPool",
        (HTTPConnectionPool,),
        {"ConnectionCls": _guarded(HTTPConnectionPool.ConnectionCls, policy)},
    )
    https_pool = type(
        "GuardedHTTPSConnectionPool",
        (HTTPSConnectionPool,),
        {"ConnectionCls": _guarded(HTTPSConnectionPool.ConnectionCls, policy)},
    )

    class GuardedAdapter(HTTPAdapter):
        """Pools whose connections are checked against the address policy."""

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}

    return GuardedAdapter(
        pool_connections=pool_connections,
        pool_maxsize=pool_maxsize,
        max_retries=0,
        pool_block=False,
    )


def _guarded(base: type[Any], policy: AddressPolicy) -> type[Any]:
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

    def _new_conn(self: Any) -> socket.socket:
        timeout = self.timeout if isinstance(self.timeout, int | float) else None
        if timeout is None and not isinstance(self.timeout, type(None)):
            timeout = socket.getdefaulttimeout()  # urllib3's "default timeout" sentinel
        try:
            return policy.connect(
                self._dns_host,
                self.port,
                timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        except TimeoutError as error:
            raise ConnectTimeoutError(self, "connection timed out") from error
        except OSError as error:
            raise NewConnectionError(self, "failed to establish a new connection") from error

    return type(f"Guarded{base.__name__}", (base,), {"_new_conn": _new_conn})
