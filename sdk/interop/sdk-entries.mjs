// Entries across implementations: verifies, with the browser SDK's own checks (sdk/js, built
// into sdk/js/lib), a chain the Rust client wrote, then writes a chain with the SDK for the
// Rust client to verify. Used by the Rust test suite:
//
//   node sdk-entries.mjs <base-url> <zone> <rust-chain-id> <rust-public-key-hex> <entries>
//
// Prints one JSON line: the Rust chain's head as the SDK verified it, and the SDK chain's id,
// public key, head and length. Exit status 1 on any error.
import {
  Blindstore,
  chainIdentity,
  fromBase64Url,
  fromHex,
  genesisOf,
  importWriteKey,
  parseWireEntry,
  toHex,
  verifyEntry,
  verifyLinks,
} from "../js/lib/index.js";

const [base, zone, rustChain, rustKey, count] = process.argv.slice(2);
if (!count) {
  console.error("usage: node sdk-entries.mjs <base-url> <zone> <rust-chain-id> <rust-public-key-hex> <entries>");
  process.exit(1);
}
setTimeout(() => {
  console.error("sdk-entries.mjs: timed out after 60 s");
  process.exit(1);
}, 60_000).unref();

// The Rust chain, straight from the API, through the SDK's verifier.
const answer = await fetch(`${base}/v1/zones/${zone}/chains/${rustChain}/entries?from=0&limit=1000`);
if (!answer.ok) throw new Error(`reading the Rust chain: ${answer.status} ${await answer.text()}`);
const entries = (await answer.json()).entries.map(parseWireEntry);
const identity = await chainIdentity(zone, rustChain, fromHex(rustKey, 32));
for (const entry of entries) await verifyEntry(identity, entry);
verifyLinks(entries, 0, toHex(await genesisOf(identity.chainIdBytes)));
if (entries.length !== Number(count)) throw new Error(`the Rust chain has ${entries.length} entries, not ${count}`);

// A chain written by the SDK: encrypted JSON entries, one with a payload of every size class.
const client = new Blindstore({ url: base, zone });
const chain = await client.createChain();
let last;
for (let i = 0; i < Number(count); i++) {
  last = await chain.appendJson({ n: i, text: "x".repeat(i * 97) });
}
const { publicKey } = await importWriteKey(fromBase64Url(chain.keys.toJSON().write_key));
console.log(
  JSON.stringify({
    rust_head: entries.at(-1).entryHash,
    sdk_chain: chain.chainId,
    sdk_public_key: toHex(publicKey),
    sdk_head: last.entryHash,
    sdk_length: last.length,
  }),
);
