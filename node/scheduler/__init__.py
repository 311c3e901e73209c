"""Scheduling near data: job specs and lifecycle, placement, the job protocol, dispatch and verification.

The requester drives a job through three steps: :mod:`.decide` (candidates from signed
announcements, the rules in :mod:`.rules`, the data-gravity score), :mod:`.dispatch`
(offer, run and failover under an explicit :class:`.dispatch.DispatchPolicy`) and
:mod:`.verify` (receipts checked against the job, redundant results judged by CID, a
mismatch kept as evidence). What the requester observes of each executor (completed,
matched, disagreed, declined, timed out, died, late) is its local :mod:`.reputation`, which
ranks executors through the reputation rule. Redundancy counts operators, not peer IDs (:mod:`.operator`);
a spot check re-runs a job on a node the client trusts. Both sides
speak the typed messages of :mod:`.protocol`; the executing side (:mod:`.execution`)
answers offers with the same placement rules run against its own candidate, runs only
what it accepted, and stops a run when its requester cancels. A job's effective limits
are computed in one place, :mod:`.limits`.

Settlement of a cancelled job: nothing is claimable for a cancelled run. A node claims
only for a run that ended ``ok`` with a result and a signed receipt; a run that had already
finished that way when the cancel arrived was delivered, and is claimed as usual.
"""
