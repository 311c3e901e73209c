# pragma version 0.4.3
# @title mycelnet settlement ledger
# @notice Node registry, client escrow, and claims backed by the client's EIP-712
#         JobAuthorization. A claim pays the node from the client's escrow at most
#         maxAmount, once per (client, nonce), only before expiry, only to the named node.
# @dev Withdrawal rule (so a withdrawal never undercuts an authorisation a node accepted):
#      a client first announces a withdrawal, which unlocks WITHDRAW_DELAY later. Nodes
#      accept only authorisations expiring within MAX_AUTH_WINDOW, and the contract refuses
#      claims of any that expire further ahead, so everything a node accepted before the
#      announcement expires (and can be claimed) before the money can leave, because
#      WITHDRAW_DELAY > MAX_AUTH_WINDOW. Claims keep working during the delay; the
#      withdrawal then takes what is left, up to the announced amount.

MAX_AUTH_WINDOW: constant(uint256) = 7 * 86400
WITHDRAW_DELAY: constant(uint256) = 8 * 86400
MAX_BATCH: constant(uint256) = 128

AUTH_TYPEHASH: constant(bytes32) = keccak256(
    "JobAuthorization(bytes32 jobId,address client,address node,uint256 maxAmount,uint256 expiry,uint256 nonce)"
)
DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)

struct Claim:
    jobId: bytes32
    client: address
    maxAmount: uint256
    expiry: uint256
    nonce: uint256
    amount: uint256
    v: uint8
    r: bytes32
    s: bytes32
    resultCid: Bytes[64]
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

event Settled:
    jobId: indexed(bytes32)
    client: indexed(address)
    node: indexed(address)
    amount: uint256
    resultCid: Bytes[64]
    receiptHash: bytes32

DOMAIN_SEPARATOR: public(immutable(bytes32))

peerIdOf: public(HashMap[address, Bytes[64]])
balanceOf: public(HashMap[address, uint256])
earnings: public(HashMap[address, uint256])
pendingWithdrawal: public(HashMap[address, uint256])
withdrawalUnlocksAt: public(HashMap[address, uint256])
usedNonces: HashMap[address, HashMap[uint256, uint256]]  # client -> word -> bitmap of 256 nonces


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
def deposit():
    assert msg.value > 0, "nothing deposited"
    self.balanceOf[msg.sender] += msg.value
    log Deposited(client=msg.sender, amount=msg.value)


@external
def request_withdrawal(amount: uint256):
    """@notice Start the withdrawal delay; see the rule at the top."""
    assert amount > 0 and amount <= self.balanceOf[msg.sender], "amount exceeds balance"
    unlocks: uint256 = block.timestamp + WITHDRAW_DELAY
    self.pendingWithdrawal[msg.sender] = amount
    self.withdrawalUnlocksAt[msg.sender] = unlocks
    log WithdrawalRequested(client=msg.sender, amount=amount, unlocksAt=unlocks)


@external
def withdraw():
    amount: uint256 = self.pendingWithdrawal[msg.sender]
    assert amount > 0, "no withdrawal requested"
    assert block.timestamp >= self.withdrawalUnlocksAt[msg.sender], "withdrawal still locked"
    amount = min(amount, self.balanceOf[msg.sender])  # claims made during the delay come first
    self.pendingWithdrawal[msg.sender] = 0
    self.balanceOf[msg.sender] -= amount
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
def authorization_digest(job_id: bytes32, client: address, node: address, max_amount: uint256, expiry: uint256, nonce: uint256) -> bytes32:
    return self._digest(job_id, client, node, max_amount, expiry, nonce)


@view
@external
def nonce_used(client: address, nonce: uint256) -> bool:
    return (self.usedNonces[client][nonce >> 8] >> (nonce & 255)) & 1 == 1


@external
def claim(c: Claim):
    self.earnings[msg.sender] += self._settle(c)


@external
def claim_batch(claims: DynArray[Claim, MAX_BATCH]):
    """@notice Many claims in one transaction; the node's earnings are written once."""
    total: uint256 = 0
    for c: Claim in claims:
        total += self._settle(c)
    self.earnings[msg.sender] += total


@view
@internal
def _digest(job_id: bytes32, client: address, node: address, max_amount: uint256, expiry: uint256, nonce: uint256) -> bytes32:
    struct_hash: bytes32 = keccak256(abi_encode(AUTH_TYPEHASH, job_id, client, node, max_amount, expiry, nonce))
    return keccak256(concat(b"\x19\x01", DOMAIN_SEPARATOR, struct_hash))


@internal
def _settle(c: Claim) -> uint256:
    assert block.timestamp <= c.expiry, "authorisation expired"
    assert c.expiry <= block.timestamp + MAX_AUTH_WINDOW, "authorisation expires too far ahead"
    assert c.amount <= c.maxAmount, "amount above the authorised maximum"
    digest: bytes32 = self._digest(c.jobId, c.client, msg.sender, c.maxAmount, c.expiry, c.nonce)
    signer: address = ecrecover(digest, c.v, c.r, c.s)
    assert signer != empty(address) and signer == c.client, "signature is not the client's for this node"
    word: uint256 = c.nonce >> 8
    bit: uint256 = 1 << (c.nonce & 255)
    bitmap: uint256 = self.usedNonces[c.client][word]
    assert bitmap & bit == 0, "authorisation already claimed"
    self.usedNonces[c.client][word] = bitmap | bit
    assert c.amount <= self.balanceOf[c.client], "client balance too low"
    self.balanceOf[c.client] -= c.amount
    log Settled(jobId=c.jobId, client=c.client, node=msg.sender, amount=c.amount, resultCid=c.resultCid, receiptHash=c.receiptHash)
    return c.amount
