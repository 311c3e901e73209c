"""The bulk path: a provider streams a whole DAG to a peer as one CAR over HTTP(S).

Pieces, one job each: :mod:`~node.bulk.ticket` (the short-lived signed token a provider hands
over the libp2p connection, which authenticates the HTTP request by peer ID),
:mod:`~node.bulk.tls` (the self-signed certificate whose fingerprint the ticket pins),
:mod:`~node.bulk.carstream` (the receiver's incremental CAR check: order, hash, completeness),
:mod:`~node.bulk.server` (the provider's listeners) and :mod:`~node.bulk.client` (the fetcher's
block source, used by :class:`node.exchange.BlockExchange` before the ``/mycel/blocks`` walk).
"""
