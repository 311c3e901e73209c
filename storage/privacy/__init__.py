"""Private data: owner-signed dataset policies, delegable grants and job access proofs.

Pure records (dag-cbor in the repo's one signed-envelope format, :mod:`storage.privacy.envelope`),
so the SDK can sign them on the owner's machine and a node can check them; enforcement
(which peer gets which block, which job runs) lives in ``node.privacy``.
"""
