// The read-only viewer of a shared link: the chain id and read keys come after `#` (never sent
// to the server). It imports only `@blindstore/sdk/reader`: no accounts, no OPAQUE.
import { BlindstoreReader, ChainKeys } from "@blindstore/sdk/reader";
import { ZONE, count, show, status } from "./notes";

const reader = new BlindstoreReader({ url: location.origin, zone: ZONE });
const list = document.getElementById("notes") as HTMLUListElement;

try {
  const keys = await ChainKeys.fromJSON(JSON.parse(atob(location.hash.slice(1))));
  const chain = reader.openChain(keys);
  let next = 0;
  for await (const entry of chain.entries()) {
    show(list, entry);
    next = entry.index + 1;
  }
  status(`${count(next)}, verified. New ones appear as they are written.`);
  chain.follow({ from: next, onEntry: (entry) => show(list, entry), onError: (error) => status(`Live updates stopped: ${(error as Error).message}`) });
} catch (error) {
  status(`This link cannot be opened: ${(error as Error).message}`);
}
