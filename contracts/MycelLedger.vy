# pragma version 0.4.3
# @title mycelnet settlement ledger
# @notice Node registry, client escrow, and claims backed by the client's EIP-712
#         JobPayment. The client signs one only after it holds the node's verified result
#         and receipt, for exactly the amount that receipt's usage and the node's price give,
#         bound to the receipt's hash and the result. A claim pays exactly that amount, for
#         exactly that receipt and result, once per (client, nonce), only before expiry, only
#         to the named node. The job's earlier JobCommitment (what an offer carries) has no
#         claim path here: nothing a node holds before delivering moves money.
# @dev Withdrawal rule (so a withdrawal never undercuts an authorisation a node accepted):
#      a client first announces a withdrawal, which unlocks WITHDRAW_DELAY later. Nodes
#      accept only authorisations expiring within MAX_AUTH_WINDOW, and the contract refuses
#      claims of any that expire further ahead, so everything a node accepted before the
#      announcement expires (and can be claimed) before the money can leave, because
#      WITHDRAW_DELAY > MAX_AUTH_WINDOW. Claims keep working during the delay; the
#      withdrawal then takes what is left, up to the announced amount.
# @dev Claims are packed to keep gas per settled job low: amount (128 bits), expiry (64)
#      and nonce (64) share one word; the signature is EIP-2098 compact (r, vs); a job's result
#      is a UnixFS directory, CIDv1 dag-pb sha2-256, so its CID travels as the 32-byte digest
#      (the CID is 0x01 0x70 0x12 0x20 || digest). The EIP-712 message still has full uint256s.
# @dev Per-client state is one storage word, so a batch that mixes clients pays one cold read and
#      one write per client (5k gas), not two (10k), and a new client writes no zero slot (20k):
#      balance (128 bits) | hot nonce page (64 bits) | bitmap of that page's 64 nonces (64 bits).
#      A claim in the hot page sets its bit there; one in a higher page makes that page hot and
#      moves the old bitmap into usedNonces (once per 64 consecutive nonces; four pages share
#      one word of 256 nonces, so three of four moves write a word that is no longer zero); one
#      in a lower page is checked and set in usedNonces. A page above the hot one never has bits
#      in usedNonces, so each nonce's bit lives in exactly one place and a replay is refused
#      wherever it is.
# @dev Each payment is logged as the ABI event Settled, indexed by job id, client and node, so
#      any EVM tool (ethers, web3, an explorer) decodes it from the ABI and a node or a client
#      can filter its own payments. A packed raw log would save ~0.9k gas per claim but is
#      invisible to those tools; the ledger's record is meant to be checked by anyone.

MAX_AUTH_WINDOW: constant(uint256) = 7 * 86400
WITHDRAW_DELAY: constant(uint256) = 8 * 86400
MAX_BATCH: constant(uint256) = 128
UNSTAKE_DELAY: constant(uint256) = 8 * 86400  # a node's stake outlives every payment it could hold
MASK64: constant(uint256) = 18446744073709551615
EIP191_PREFIX: constant(bytes2) = 0x1901

PAYMENT_TYPEHASH: constant(bytes32) = keccak256(
    "JobPayment(bytes32 jobId,address client,address node,uint256 amount,bytes32 receiptHash,bytes32 resultCid,uint256 expiry,uint256 nonce)"
)
DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)

struct Claim:
    jobId: bytes32
    client: address
    terms: uint256  # amount (128 bits) | expiry (64 bits) | nonce (64 bits), all signed
    r: bytes32
    vs: bytes32  # EIP-2098 compact signature: v folded into the top bit of s
    resultDigest: bytes32  # sha2-256 digest of the result's CIDv1 (dag-pb)
    receiptHash: bytes32

event Settled:
    jobId: indexed(bytes32)
    client: indexed(address)
    node: indexed(address)
    amount: uint256
    resultCid: bytes32  # the sha2-256 digest of the result's CIDv1 dag-pb (see the header)
    receiptHash: bytes32

event NodeRegistered:
    node: indexed(address)
    peerId: Bytes[64]
    binding: Bytes[64]

event NodeDeregistered:
    node: indexed(address)

event Deposited:
    client: indexed(address)
    amount: uint256

event WithdrawalRequested:
    client: indexed(address)
    amount: uint256
    unlocksAt: uint256

event Withdrawn:
    account: indexed(address)
    amount: uint256

event Staked:
    node: indexed(address)
    amount: uint256
    total: uint256

event UnstakeRequested:
    node: indexed(address)
    amount: uint256
    unlocksAt: uint256

DOMAIN_SEPARATOR: public(immutable(bytes32))

peerIdOf: public(HashMap[address, Bytes[64]])
accounts: HashMap[address, uint256]  # client -> balance | hot nonce page | its bitmap (see the header)
earnings: public(HashMap[address, uint256])
pendingWithdrawal: public(HashMap[address, uint256])
withdrawalUnlocksAt: public(HashMap[address, uint256])
usedNonces: HashMap[address, HashMap[uint256, uint256]]  # client -> nonce >> 8 -> bitmap of 256 nonces, but the hot page's
stakeOf: public(HashMap[address, uint256])  # locked: what a job's minimum stake is compared with
unstaking: public(HashMap[address, uint256])  # no longer counted as stake, not yet withdrawable
unstakeUnlocksAt: public(HashMap[address, uint256])


@deploy
def __init__():
    DOMAIN_SEPARATOR = keccak256(
        abi_encode(DOMAIN_TYPEHASH, keccak256("mycelnet"), keccak256("1"), chain.id, self)
    )


@external
def register(peer_id: Bytes[64], binding_signature: Bytes[64]):
    """@notice Bind the caller's address to a libp2p peer ID. The Ed25519 signature over the
    binding is stored and emitted; nodes and sdk.verify check it off chain (the EVM has no Ed25519)."""
    assert len(peer_id) > 0, "empty peer id"
    self.peerIdOf[msg.sender] = peer_id
    log NodeRegistered(node=msg.sender, peerId=peer_id, binding=binding_signature)


@external
def deregister():
    assert len(self.peerIdOf[msg.sender]) > 0, "not registered"
    self.peerIdOf[msg.sender] = b""
    log NodeDeregistered(node=msg.sender)


@external
@payable
def stake():
    """@notice Lock ETH as the caller's registration stake. A fresh identity costs what it stakes,
    and a job may ask for executors staking at least a given amount."""
    assert msg.value > 0, "nothing staked"
    self.stakeOf[msg.sender] += msg.value
    log Staked(node=msg.sender, amount=msg.value, total=self.stakeOf[msg.sender])


@external
def request_unstake(amount: uint256):
    """@notice Stop counting ``amount`` as stake at once; it can leave UNSTAKE_DELAY later."""
    assert amount > 0 and amount <= self.stakeOf[msg.sender], "amount exceeds stake"
    self.stakeOf[msg.sender] -= amount
    self.unstaking[msg.sender] += amount
    unlocks: uint256 = block.timestamp + UNSTAKE_DELAY
    self.unstakeUnlocksAt[msg.sender] = unlocks
    log UnstakeRequested(node=msg.sender, amount=amount, unlocksAt=unlocks)


@external
def unstake():
    amount: uint256 = self.unstaking[msg.sender]
    assert amount > 0, "no unstake requested"
    assert block.timestamp >= self.unstakeUnlocksAt[msg.sender], "stake still locked"
    self.unstaking[msg.sender] = 0
    send(msg.sender, amount)
    log Withdrawn(account=msg.sender, amount=amount)


@external
@payable
def deposit():
    assert msg.value > 0, "nothing deposited"
    assert (self.accounts[msg.sender] >> 128) + msg.value < 2**128, "balance would exceed 2**128 wei"
    self.accounts[msg.sender] += msg.value << 128
    log Deposited(client=msg.sender, amount=msg.value)


@external
def request_withdrawal(amount: uint256):
    """@notice Start the withdrawal delay; see the rule at the top."""
    assert amount > 0 and amount <= self.accounts[msg.sender] >> 128, "amount exceeds balance"
    unlocks: uint256 = block.timestamp + WITHDRAW_DELAY
    self.pendingWithdrawal[msg.sender] = amount
    self.withdrawalUnlocksAt[msg.sender] = unlocks
    log WithdrawalRequested(client=msg.sender, amount=amount, unlocksAt=unlocks)


@external
def withdraw():
    amount: uint256 = self.pendingWithdrawal[msg.sender]
    assert amount > 0, "no withdrawal requested"
    assert block.timestamp >= self.withdrawalUnlocksAt[msg.sender], "withdrawal still locked"
    amount = min(amount, self.accounts[msg.sender] >> 128)  # claims made during the delay come first
    self.pendingWithdrawal[msg.sender] = 0
    self.accounts[msg.sender] -= amount << 128
    send(msg.sender, amount)
    log Withdrawn(account=msg.sender, amount=amount)


@external
def withdraw_earnings():
    amount: uint256 = self.earnings[msg.sender]
    assert amount > 0, "no earnings"
    self.earnings[msg.sender] = 0
    send(msg.sender, amount)
    log Withdrawn(account=msg.sender, amount=amount)


@view
@external
def payment_digest(job_id: bytes32, client: address, node: address, amount: uint256, receipt_hash: bytes32, result_cid: bytes32, expiry: uint256, nonce: uint256) -> bytes32:
    return self._digest(job_id, client, node, amount, receipt_hash, result_cid, expiry, nonce)


@view
@external
def balanceOf(client: address) -> uint256:
    return self.accounts[client] >> 128


@view
@external
def nonce_used(client: address, nonce: uint256) -> bool:
    page: uint256 = nonce >> 6
    bit: uint256 = 1 << (nonce & 63)
    state: uint256 = self.accounts[client]
    if page == (state >> 64) & MASK64 and state & bit != 0:
        return True
    return (self.usedNonces[client][nonce >> 8] >> (nonce & 255)) & 1 == 1


@external
def claim(c: Claim):
    amount: uint256 = self._check(c)
    self._debit(c.client, self._use_nonce(c.client, self.accounts[c.client], c.terms & MASK64), amount)
    self.earnings[msg.sender] += amount


@external
def claim_batch(claims: DynArray[Claim, MAX_BATCH]):
    """@notice Many claims in one transaction. Consecutive claims of one client share one read and
    one write of its state word; the node's earnings are written once."""
    total: uint256 = 0
    client: address = empty(address)
    state: uint256 = 0
    owed: uint256 = 0
    for c: Claim in claims:
        amount: uint256 = self._check(c)  # a claim of the zero address never passes this
        if c.client != client:
            if client != empty(address):
                self._debit(client, state, owed)
            client = c.client
            state = self.accounts[client]
            owed = 0
        state = self._use_nonce(client, state, c.terms & MASK64)
        owed += amount
        total += amount
    if client != empty(address):
        self._debit(client, state, owed)
    self.earnings[msg.sender] += total


@view
@internal
def _digest(job_id: bytes32, client: address, node: address, amount: uint256, receipt_hash: bytes32, result_cid: bytes32, expiry: uint256, nonce: uint256) -> bytes32:
    struct_hash: bytes32 = keccak256(abi_encode(PAYMENT_TYPEHASH, job_id, client, node, amount, receipt_hash, result_cid, expiry, nonce))
    return keccak256(concat(EIP191_PREFIX, DOMAIN_SEPARATOR, struct_hash))


@internal
def _check(c: Claim) -> uint256:
    """Signature and expiry; returns the claim's amount and logs the settlement. The amount,
    receipt hash and result are inside the signed digest, so a claim that changes any of them
    (more than the receipt's usage, another receipt) recovers another signer and is refused."""
    amount: uint256 = c.terms >> 128
    expiry: uint256 = (c.terms >> 64) & MASK64
    nonce: uint256 = c.terms & MASK64
    assert block.timestamp <= expiry, "authorisation expired"
    assert expiry <= block.timestamp + MAX_AUTH_WINDOW, "authorisation expires too far ahead"
    digest: bytes32 = self._digest(c.jobId, c.client, msg.sender, amount, c.receiptHash, c.resultDigest, expiry, nonce)
    vs: uint256 = convert(c.vs, uint256)
    signer: address = ecrecover(digest, 27 + (vs >> 255), convert(c.r, uint256), vs & (max_value(uint256) >> 1))
    assert signer != empty(address) and signer == c.client, "not signed by the client for this node, amount, receipt and result"
    log Settled(jobId=c.jobId, client=c.client, node=msg.sender, amount=amount, resultCid=c.resultDigest, receiptHash=c.receiptHash)
    return amount


@internal
def _use_nonce(client: address, state: uint256, nonce: uint256) -> uint256:
    """Mark ``nonce`` used (refusing it if it already is); returns the client's new state word."""
    page: uint256 = nonce >> 6
    bit: uint256 = 1 << (nonce & 63)
    hot: uint256 = (state >> 64) & MASK64
    if page == hot:
        assert state & bit == 0, "authorisation already claimed"
        return state | bit
    if page > hot:
        if state & MASK64 != 0:
            self.usedNonces[client][hot >> 2] |= (state & MASK64) << ((hot & 3) << 6)
        return (state >> 128 << 128) | (page << 64) | bit
    word: uint256 = self.usedNonces[client][nonce >> 8]
    old: uint256 = 1 << (nonce & 255)
    assert word & old == 0, "authorisation already claimed"
    self.usedNonces[client][nonce >> 8] = word | old
    return state


@internal
def _debit(client: address, state: uint256, owed: uint256):
    """Take what one run of a client's claims owes from its balance and store its state word."""
    assert owed <= state >> 128, "client balance too low"
    self.accounts[client] = state - (owed << 128)
