// A real Helia node (js-libp2p 3 over TCP + @libp2p/noise + @libp2p/yamux + identify, bitswap 1.2.0) that talks to a
// mycelnet node process over Bitswap only: no bootstrap, no DHT, no delegated routing, no HTTP,
// nothing beyond 127.0.0.1. Used by tests/node/bitswap/test_helia_interop.py and bench/bitswap.py.
//
// It reads one JSON command per stdin line and prints one JSON line per answer, so a test can
// interleave steps with its own calls to the node:
//   {"op": "dial", "addr": "/ip4/127.0.0.1/tcp/P/p2p/ID"}           -> {"ok": true}
//   {"op": "cat", "cid": C, "timeoutMs": N}                          -> {"ok": true, "size", "sha256", "ms"}
//   {"op": "get", "cid": C, "timeoutMs": N}   (one block)            -> {"ok": true, "size", "sha256"} or {"ok": false, "error"}
//   {"op": "add", "size": N, "seed": S}  (UnixFS, 256 KiB raw leaves, CIDv1, as `ipfs add --cid-version=1`) -> {"ok": true, "cid", "sha256"}
//   {"op": "stop"}
// At start it prints {"ready": true, "addrs": [...], "peerId": ...}.
//
// Node 20: js-libp2p 3 needs Promise.withResolvers; Helia's 'helia' index pulls in the HTTP
// parts, so the Helia class is composed here from its light form, @helia/libp2p's light mixin
// and @helia/bitswap.

import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createHeliaLight } from 'helia'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'

if (Promise.withResolvers == null) {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const hex = (bytes) => createHash('sha256').update(bytes).digest('hex')

function seeded (seed, size) {
  const out = Buffer.alloc(size)
  let j = 0
  for (let pos = 0; pos < size; j++) {
    const digest = createHash('sha256').update(`${seed}:${j}`).digest()
    pos += digest.copy(out, pos)
  }
  return out
}

const helia = withBitswap(withLibp2pLight(createHeliaLight(), {
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() },
  peerDiscovery: []
}))
await helia.start()
const fs = unixfs(helia)
const print = (value) => process.stdout.write(JSON.stringify(value) + '\n')
print({ ready: true, addrs: helia.libp2p.getMultiaddrs().map(String), peerId: helia.libp2p.peerId.toString() })

async function run (command) {
  const signal = AbortSignal.timeout(command.timeoutMs ?? 30_000)
  switch (command.op) {
    case 'dial':
      await helia.libp2p.dial(multiaddr(command.addr), { signal })
      return { ok: true }
    case 'cat': {
      const started = performance.now()
      const hash = createHash('sha256')
      let size = 0
      for await (const chunk of fs.cat(CID.parse(command.cid), { signal })) {
        hash.update(chunk)
        size += chunk.length
      }
      return { ok: true, size, sha256: hash.digest('hex'), ms: performance.now() - started }
    }
    case 'get': {
      const parts = []
      for await (const chunk of helia.blockstore.get(CID.parse(command.cid), { signal })) parts.push(chunk)
      const bytes = Buffer.concat(parts)
      return { ok: true, size: bytes.length, sha256: hex(bytes) }
    }
    case 'add': {
      const data = seeded(command.seed, command.size)
      const cid = await fs.addBytes(data, { cidVersion: 1, rawLeaves: true, chunker: fixedSize({ chunkSize: 262144 }) })
      return { ok: true, cid: cid.toString(), sha256: hex(data) }
    }
    case 'stop':
      await helia.stop()
      print({ ok: true })
      process.exit(0)
      break
    default:
      return { ok: false, error: `unknown op ${command.op}` }
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue
  try {
    print(await run(JSON.parse(line)))
  } catch (error) {
    print({ ok: false, error: String(error?.message ?? error) })
  }
}
await helia.stop()
process.exit(0)
