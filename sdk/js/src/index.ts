/**
 * Blindstore browser SDK: end-to-end encrypted, verified chains and files over the Blindstore
 * HTTP API, with WebCrypto only. See README.md for a quick start and docs/sdk-format.md for the
 * formats.
 */

export { Blindstore, type BlindstoreOptions } from "./client.js";
export {
  Accounts,
  Session,
  Vault,
  type ChangePasswordOptions,
  type CredentialsChange,
  type FreshProof,
  type LogoutOptions,
  type PasskeyInfo,
  type PasskeyLogin,
  type PasswordCredentials,
  type Registration,
} from "./accounts.js";
export { DeviceKeyring } from "./device-keys.js";
export { accountIdOf, normalizeUsername } from "./escrow.js";
export { Chain } from "./chain.js";
export type { AppendOptions, AppendResult, ChainHead, Entry, ReadOptions, RetryOptions } from "./chain-types.js";
export { ChainKeys, type ChainKeysJson } from "./keys.js";
export { type FollowOptions, type Subscription } from "./follow.js";
export {
  DEFAULT_CHUNK_SIZE,
  FILE_MANIFEST_KIND,
  FileUpload,
  MAX_CHUNK_SIZE,
  MAX_FILE_CHUNKS,
  fileManifestOf,
  type DownloadOptions,
  type FileData,
  type FileManifest,
  type PrepareOptions,
  type ProgressCallback,
  type SendOptions,
  type UploadState,
} from "./files.js";
export { type HeadStore, MemoryHeadStore, type RememberedHead } from "./heads.js";
export { IndexedDbHeadStore } from "./idb.js";
export { type EntryStore, MemoryEntryStore } from "./cache.js";
export { IndexedDbEntryStore, IndexedDbOutboxStore, IndexedDbUploadStore } from "./offline-idb.js";
export {
  MemoryOutboxStore,
  Outbox,
  type OutboxEvent,
  type OutboxRecord,
  type OutboxStore,
  type PendingWrite,
  type QueuedWrite,
} from "./outbox.js";
export { LiveHub, type LiveFollowOptions } from "./live.js";
export { MemoryUploadStore, type UploadRecord, type UploadStore } from "./uploads.js";
export { type FetchLike, type SessionTokenSource } from "./http.js";
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
// The error classes are listed by name, as http.ts imports them, on purpose: this file is the
// package's public surface, every name written out.
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
