// Fetch content from a running mycelnet node's trustless gateway with real IPFS client code
// (Helia's @helia/verified-fetch, which verifies every block it receives), then fetch a CAR of a
// directory directly and check it independently: parsed with @ipld/car, every block re-hashed
// against its CID, and the files read back out of the CAR's blocks with ipfs-unixfs-exporter.
//
// Node 20 runs it: the lock pins undici to 7.x (undici 8, which Helia's libp2p parts want, needs
// Node 22), and only the HTTP parts of Helia are started.
//
// Offline by construction: the only gateway is the node's, with no delegated routers, no DNS
// resolvers and no libp2p (a Helia "light" node with only the trustless-gateway block broker).
//
// Usage: node tests/js/gateway_check.mjs '<json>' where json is
//   {"gateway": "http://127.0.0.1:PORT", "file": {"cid": C, "sha256": H},
//    "dir": {"cid": C, "entries": {"a.txt": H, "sub/b.bin": H}}}
// Prints one JSON line {"ok": true, ...} and exits 0, or prints the failure and exits 1.

import { createHash } from 'node:crypto'
import { createHeliaLight } from 'helia'
import { withHTTP } from '@helia/http'
import { fallbackRouter } from '@helia/fallback-router'
import { createVerifiedFetchWithHelia } from '@helia/verified-fetch'
import { CarBlockIterator } from '@ipld/car'
import { exporter } from 'ipfs-unixfs-exporter'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { identity } from 'multiformats/hashes/identity'

const spec = JSON.parse(process.argv[2])
const hex = (bytes) => createHash('sha256').update(bytes).digest('hex')

function check (condition, message) {
  if (!condition) throw new Error(message)
}

async function viaVerifiedFetch (fetcher, url, expected) {
  const response = await fetcher(url, { signal: AbortSignal.timeout(60_000) })
  if (!response.ok) throw new Error(`${url}: verified-fetch answered ${response.status} ${await response.text()}`)
  const body = new Uint8Array(await response.arrayBuffer())
  check(hex(body) === expected, `${url}: ${body.length} bytes with the wrong sha256`)
  return body.length
}

async function verifiedCar (url) {
  const response = await fetch(url, { headers: { Accept: 'application/vnd.ipld.car; version=1; order=dfs; dups=n' } })
  check(response.status === 200, `${url}: status ${response.status}`)
  const type = response.headers.get('content-type') ?? ''
  check(type.startsWith('application/vnd.ipld.car') && type.includes('version=1'), `${url}: content-type ${type}`)
  const bytes = new Uint8Array(await response.arrayBuffer())
  const checked = await verifyCar(bytes)
  // the check itself must catch a bad block: flip the CAR's last byte (inside its last block)
  const tampered = bytes.slice()
  tampered[tampered.length - 1] ^= 1
  const caught = await verifyCar(tampered).then(() => false, (error) => /does not hash/.test(error.message))
  check(caught, 'a CAR with a flipped byte passed the block check')
  return checked
}

async function verifyCar (bytes) {
  const iterator = await CarBlockIterator.fromBytes(bytes)
  const roots = await iterator.getRoots()
  const blocks = new Map()
  for await (const { cid, bytes: data } of iterator) {
    const hasher = cid.multihash.code === sha256.code ? sha256 : cid.multihash.code === identity.code ? identity : null
    check(hasher !== null, `${cid}: unexpected hash function ${cid.multihash.code}`)
    const digest = await hasher.digest(data)
    check(Buffer.from(digest.digest).equals(Buffer.from(cid.multihash.digest)), `${cid}: block does not hash to its CID`)
    check(!blocks.has(cid.toString()), `${cid}: sent twice although dups=n`)
    blocks.set(cid.toString(), data)
  }
  return { roots: roots.map(String), blocks }
}

async function main () {
  const helia = withHTTP(createHeliaLight(), {
    delegatedRouters: [],
    recursiveGateways: [],
    allowInsecure: true,
    allowLocal: true
  })
  // The node's gateway as the one provider of everything. Helia only asks "fallback" routers after
  // its regular ones and waits forever when there are none, so this one is a regular router.
  const gateway = fallbackRouter({ gateways: [spec.gateway], shuffle: false })
  gateway.capabilities = () => []
  helia.addRouter(gateway)
  await helia.start()
  const fetcher = await createVerifiedFetchWithHelia(helia)
  try {
    const fileBytes = await viaVerifiedFetch(fetcher, `ipfs://${spec.file.cid}`, spec.file.sha256)
    let dirBytes = 0
    for (const [path, expected] of Object.entries(spec.dir.entries)) {
      dirBytes += await viaVerifiedFetch(fetcher, `ipfs://${spec.dir.cid}/${path}`, expected)
    }

    const { roots, blocks } = await verifiedCar(`${spec.gateway}/ipfs/${spec.dir.cid}?format=car`)
    check(roots.length === 1 && CID.parse(roots[0]).equals(CID.parse(spec.dir.cid)), `CAR roots ${roots}`)
    const store = {
      get: async function * (cid) {
        const data = blocks.get(cid.toString())
        check(data !== undefined, `${cid} is not in the CAR`)
        yield data
      }
    }
    for (const [path, expected] of Object.entries(spec.dir.entries)) {
      const entry = await exporter(`${spec.dir.cid}/${path}`, store)
      const parts = []
      for await (const chunk of entry.content()) parts.push(chunk)
      check(hex(Buffer.concat(parts)) === expected, `${path} read from the CAR has the wrong sha256`)
    }
    console.log(JSON.stringify({ ok: true, fileBytes, dirBytes, carBlocks: blocks.size }))
  } finally {
    await fetcher.stop()
    await helia.stop()
  }
}

main().then(() => process.exit(0), (error) => {
  console.log(JSON.stringify({ ok: false, error: String(error?.stack ?? error) }))
  process.exit(1)
})
