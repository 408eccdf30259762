/**
 * `chain.fold`: a chain folded into the app's state, from its last checkpoint (checkpoint.ts)
 * and the entries after it; `Fold.add` folds what arrives live and keeps checkpoints as it goes.
 */

import type { Entry } from "./chain-types.js";
import type { Chain } from "./chain.js";
import {
  type CheckpointPlace,
  type CheckpointStore,
  type FoldOptions,
  checkedFoldOptions,
  checkpointKey,
  openCheckpoint,
  sealCheckpoint,
} from "./checkpoint.js";
import { ForkError, InvalidInputError, RollbackError } from "./errors.js";

/** A chain folded into state up to `next`. */
export class Fold<S> {
  /** The state after entries 0..next-1. */
  state: S;
  /** The next entry to fold. */
  next: number;
  /** Entry hash of entry next-1 (the genesis before any). */
  head: string;
  /** How many entries the checkpoint it started from covered (0: folded from the start). */
  readonly fromCheckpoint: number;
  readonly #chain: Chain;
  readonly #options: FoldOptions<S>;
  readonly #store: CheckpointStore;
  readonly #place: CheckpointPlace;
  readonly #every: number;
  /** `next` when the last checkpoint was kept (or loaded). */
  #saved: number;
  #saving: Promise<void> = Promise.resolve();

  /** Internal: `chain.fold`. */
  constructor(chain: Chain, options: FoldOptions<S>, store: CheckpointStore, place: CheckpointPlace, every: number, start: { state: S; next: number; head: string }) {
    this.#chain = chain;
    this.#options = options;
    this.#store = store;
    this.#place = place;
    this.#every = every;
    this.state = start.state;
    this.next = start.next;
    this.head = start.head;
    this.fromCheckpoint = start.next;
    this.#saved = start.next;
  }

  /**
   * Folds `entry` (from `chain.follow`, the live hub, or a read) when it is the next one: returns
   * true. An entry already folded is passed over (false); one past the next, or one that does
   * not link to the entry before it, is refused (`InvalidInputError`). Keeps a checkpoint once
   * `every` entries were folded since the last one (in the background; see `save`).
   */
  add(entry: Entry): boolean {
    if (entry.index < this.next) {
      return false;
    }
    if (entry.index > this.next || entry.prev !== this.head) {
      throw new InvalidInputError(`entry ${entry.index} does not follow the fold's entry ${this.next - 1}: fold the entries in order`);
    }
    this.state = this.#options.apply(this.state, entry);
    this.next = entry.index + 1;
    this.head = entry.entryHash;
    if (this.next - this.#saved >= this.#every) {
      void this.save().catch(() => undefined);
    }
    return true;
  }

  /** Keeps a checkpoint of the state now (sealed; one at a time, the latest wins). */
  save(): Promise<void> {
    const at = { next: this.next, head: this.head, json: (this.#options.toJSON ?? ((state: S) => state))(this.state) };
    if (at.next === 0 || at.next <= this.#saved) {
      return this.#saving;
    }
    this.#saved = at.next;
    const secrets = this.#chain.secrets();
    this.#saving = this.#saving
      .catch(() => undefined)
      .then(async () => {
        const sealed = await sealCheckpoint(secrets, secrets.epoch, this.#place, at.next, at.head, at.json);
        await this.#store.put(checkpointKey(this.#place), sealed);
      });
    return this.#saving;
  }

  /** Forgets the fold's checkpoint (the next `fold` starts from the first entry). */
  async forget(): Promise<void> {
    await this.#saving.catch(() => undefined);
    await this.#store.delete(checkpointKey(this.#place));
  }
}

/**
 * Folds `chain` into state: from the fold's checkpoint when there is one that opens and the
 * chain as served still holds, else from the first entry; then every entry after it.
 */
export async function foldChain<S>(chain: Chain, options: FoldOptions<S>, defaultStore: CheckpointStore, genesis: string): Promise<Fold<S>> {
  const { version, every } = checkedFoldOptions(options);
  const store = options.store ?? defaultStore;
  const place: CheckpointPlace = { zone: chain.zone, chainId: chain.chainId, name: options.name, version };
  let start = { state: options.initial(), next: 0, head: genesis };
  const opened = await openCheckpoint(chain.secrets(), place, await store.get(checkpointKey(place)).catch(() => undefined));
  if (opened !== undefined) {
    // The chain as served must still hold what the checkpoint covers.
    const served = await chain.head({ signal: options.signal });
    if (served.length < opened.index) {
      throw new RollbackError(opened.index, served.length);
    }
    if (served.length === opened.index && served.head !== opened.head) {
      throw new ForkError(opened.index - 1, opened.head, served.head);
    }
    start = { state: (options.fromJSON ?? ((json: unknown) => json as S))(opened.json), next: opened.index, head: opened.head };
  }
  const fold = new Fold(chain, options, store, place, every, start);
  // The entries after it link to its head, or the read fails (a ForkError or VerificationError).
  for await (const entry of chain.entries({ from: start.next, prev: start.head, signal: options.signal })) {
    fold.add(entry);
  }
  if (fold.next - fold.fromCheckpoint >= every) {
    await fold.save();
  }
  return fold;
}
