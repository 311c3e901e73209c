"""The bulk path: a provider streams a whole DAG to a peer as one CAR over HTTP(S).

Pieces, one job each: :mod:`~node.bulk.peerauth` (libp2p's ``libp2p-PeerID`` HTTP
authentication, which proves each side's peer ID to the other), :mod:`~node.bulk.ticket` (what
the provider hands over the libp2p connection: the URL, the certificate pin and a signed token
the server also accepts),
:mod:`~node.bulk.tls` (the self-signed certificate whose fingerprint the ticket pins),
:mod:`~node.bulk.carstream` (the receiver's incremental CAR check: order, hash, completeness),
:mod:`~node.bulk.server` (the provider's listeners) and :mod:`~node.bulk.client` (the fetcher's
block source, used by :class:`node.exchange.BlockExchange` before the ``/mycel/blocks`` walk).
"""
