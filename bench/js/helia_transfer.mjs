// Baseline (c) of bench/network.py: Helia-to-Helia bitswap of one file between two Helia
// processes over real TCP + Noise + Yamux on 127.0.0.1.
//
// Offline by construction: each node has only those transport/encrypter/muxer plus identify
// (bitswap learns a peer's protocols from it); no bootstrap, no delegated routing, no HTTP
// gateways, no DHT. The fetcher dials the provider directly and asks for the root by bitswap,
// its only block broker. Blocks live in Helia's default in-memory blockstore, so this baseline
// writes nothing to disk: it flatters Helia, if anything. The fetcher hashes the bytes it gets
// (every block is also verified by Helia on arrival).
//
// Speaks the line protocol of bench/network.py's helper pairs, so CPU is read per process:
//   node bench/js/helia_transfer.mjs provide FILE
//       imports FILE (256 KiB raw leaves, as mycelnet), prints "ready MULTIADDR CID SHA256",
//       serves until stdin closes, then exits
//   node bench/js/helia_transfer.mjs fetch
//       prints "ready", reads the provider's ready line from stdin, dials, fetches the whole
//       file, checks its length and sha256, prints "done BYTES", exits when stdin closes

import { readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { createInterface } from 'node:readline'
import { createHeliaLight } from 'helia'
import { withLibp2pLight } from '@helia/libp2p'
import { withBitswap } from '@helia/bitswap'
import { unixfs } from '@helia/unixfs'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'

// Node 20 (this machine's) lacks Promise.withResolvers, which Helia 7's queues call at run time
Promise.withResolvers ??= function () {
  let resolve, reject
  const promise = new Promise((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}
setMaxListeners(Infinity) // one abort listener per wanted block is Helia's normal, not a leak

async function node () {
  const helia = withBitswap(withLibp2pLight(createHeliaLight(), {
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services: { identify: identify() }
  }))
  await helia.start()
  return helia
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const untilEof = async () => { while (!(await lines.next()).done);}
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')

const helia = await node()
if (process.argv[2] === 'provide') {
  const file = new Uint8Array(await readFile(process.argv[3]))
  const cid = await unixfs(helia).addBytes(file, { rawLeaves: true })
  console.log(`ready ${helia.libp2p.getMultiaddrs()[0]} ${cid} ${sha256(file)}`)
} else {
  console.log('ready')
  const [, address, root, expected] = (await lines.next()).value.split(' ')
  await helia.libp2p.dial(multiaddr(address))
  const hash = createHash('sha256')
  let bytes = 0
  for await (const chunk of unixfs(helia).cat(CID.parse(root), { signal: AbortSignal.timeout(600_000) })) {
    hash.update(chunk)
    bytes += chunk.length
  }
  if (hash.digest('hex') !== expected) throw new Error(`fetched ${bytes} bytes that differ from the file`)
  console.log(`done ${bytes}`)
}
await untilEof()
// nothing to keep (blocks in memory): exit without Helia's graceful stop, which takes seconds
// and is no part of the figure; an error above exits non-zero with its stack, as Node does
process.exit(0)
