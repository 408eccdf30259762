/**
 * `@blindstore/sdk/reader`: the reading surface — a client that reads, verifies, follows and
 * downloads (`BlindstoreReader`), chain keys, verification, and every error. The main entry
 * point (`@blindstore/sdk`) exports all of this too, with writing, accounts, the outbox and
 * uploads. This file is part of the package's public surface: every name is written out.
 */

export { BlindstoreReader, type ReaderOptions } from "./reader.js";
export { Chain } from "./chain.js";
export type { AppendOptions, AppendResult, ChainHead, Entry, ReadOptions, RetryOptions } from "./chain-types.js";
export { ChainKeys, type ChainKeysJson } from "./keys.js";
export { type FollowOptions, type Subscription } from "./follow.js";
export { FILE_MANIFEST_KIND, fileManifestOf, type DownloadOptions, type FileManifest } from "./files.js";
export { type HeadStore, MemoryHeadStore, type RememberedHead } from "./heads.js";
export {
  type CheckpointStore,
  DefaultCheckpointStore,
  type FoldOptions,
  IndexedDbCheckpointStore,
  MemoryCheckpointStore,
  type StoredCheckpoint,
} from "./checkpoint.js";
export { Fold } from "./fold.js";
export { DefaultHeadStore, IndexedDbHeadStore } from "./idb.js";
export { type EntryStore, MemoryEntryStore } from "./cache.js";
export { IndexedDbEntryStore } from "./offline-idb.js";
export { LiveHub, type LiveFollowOptions } from "./live.js";
export { type FetchLike } from "./http.js";
export { type EntryContent, PAYLOAD_VERSION, decryptPayload, encryptPayload, type PayloadKeys, type PayloadPlace } from "./payload.js";
export {
  type ChainIdentity,
  type EntryFields,
  chainIdOf,
  chainIdentity,
  entryHashOf,
  entryMessage,
  genesisOf,
  importWriteKey,
  parseWireEntry,
  signEntry,
  verifyEntry,
  verifyLinks,
  type WireEntry,
  type WriteKey,
} from "./entry.js";
export {
  AbortedError,
  AccountExistsError,
  InvalidInviteError,
  RegistrationClosedError,
  BlindstoreError,
  ConflictError,
  DecryptionError,
  EnvelopeConflictError,
  EscrowError,
  FileChangedError,
  ForkError,
  HttpError,
  InvalidInputError,
  InvalidLoginError,
  MissingKeyError,
  NetworkError,
  NotExportableError,
  OutcomeUnknownError,
  PasskeyError,
  PasskeysOffError,
  RateLimitedError,
  ReadOnlyError,
  ReauthenticationRequiredError,
  RollbackError,
  SessionExpiredError,
  UnsupportedEnvironmentError,
  UnsupportedVersionError,
  VerificationError,
  type VerificationReason,
  WriteDiscardedError,
} from "./errors.js";
export { fromBase64Url, fromHex, toBase64Url, toHex } from "./bytes.js";
