import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { createHash } from 'node:crypto'

// deterministic content: concatenated sha256(ascii(seed + ':' + j)) digests
function content (seed, size) {
  const out = Buffer.alloc(size)
  let off = 0, j = 0
  while (off < size) {
    const d = createHash('sha256').update(`${seed}:${j++}`).digest()
    d.copy(out, off, 0, Math.min(32, size - off)); off += 32
  }
  return out
}
async function add (entries, opts) {
  const bs = new MemoryBlockstore()
  let last
  for await (const e of importer(entries, bs, opts)) last = e
  return last.cid.toString()
}
const kuboV1 = { profile: 'unixfs-v0-2015', cidVersion: 1, rawLeaves: true }
const kuboV0 = { profile: 'unixfs-v0-2015' }
const C = 262144
const files = []
for (const [name, size] of [['chunks-174', 174 * C], ['chunks-175', 175 * C], ['chunks-353-plus', 353 * C + 17]]) {
  const data = content(name, size)
  files.push({ name, seed: name, size, chunk_size: C, max_links: 174,
    cid_v1: await add([{ content: data }], kuboV1), cid_v0: await add([{ content: data }], kuboV0) })
}
// deep trees with small chunks and fan-out, to exercise 3+ levels cheaply
for (const [size, chunk, links] of [[5000, 100, 3], [100000, 1000, 7], [26 * 1000 + 1, 1000, 5], [125 * 64, 64, 5]]) {
  const name = `small-${size}-${chunk}-${links}`
  const data = content(name, size)
  const opts = { cidVersion: 1, rawLeaves: true, chunker: fixedSize({ chunkSize: chunk }), layout: balanced({ maxChildrenPerNode: links }) }
  const opts0 = { cidVersion: 0, rawLeaves: false, chunker: fixedSize({ chunkSize: chunk }), layout: balanced({ maxChildrenPerNode: links }) }
  files.push({ name, seed: name, size, chunk_size: chunk, max_links: links, cid_v1: await add([{ content: data }], opts), cid_v0: await add([{ content: data }], opts0) })
}
// directory trees: path -> size (null = empty dir)
const trees = {
  'empty-dir': { 'root': null },
  'flat': { 'root/a.txt': 11, 'root/b.bin': 300000, 'root/empty': 0 },
  'nested': { 'root/z': 5, 'root/sub/x': 1, 'root/sub/deeper/y': 262145, 'root/sub/emptydir': null, 'root/Ä-unicode ✓.txt': 42, 'root/A': 3, 'root/a': 4, 'root/_': 1, 'root/aa': 2 },
}
const dirs = []
for (const [name, tree] of Object.entries(trees)) {
  const mk = () => Object.entries(tree).map(([p, size]) => size === null ? { path: p } : { path: p, content: content(p, size) })
  dirs.push({ name, tree, cid_v1: await add(mk(), kuboV1), cid_v0: await add(mk(), kuboV0) })
}
console.log(JSON.stringify({ generator: 'ipfs-unixfs-importer 17.1.1, profile unixfs-v0-2015 (== ipfs add; --cid-version=1 implies raw leaves)', content: 'bytes = concat(sha256(utf8(seed + ":" + j)) for j = 0,1,...) truncated to size; for directory entries the seed is the entry path', files, directories: dirs }, null, 1))
