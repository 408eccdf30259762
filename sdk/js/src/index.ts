/**
 * Blindstore browser SDK: end-to-end encrypted, verified chains and files over the Blindstore
 * HTTP API, with WebCrypto only. See README.md for a quick start and docs/sdk-format.md for the
 * formats.
 *
 * The package's public surface: the reading surface (reader-entry.ts, also the entry point
 * `@blindstore/sdk/reader`) and, written out here, writing, accounts, the outbox and uploads.
 * OPAQUE, the largest part, is loaded on the first account operation that needs it.
 */

export * from "./reader-entry.js";
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
  type SessionChange,
  type SignalOptions,
} from "./accounts.js";
export { DeviceKeyring } from "./device-keys.js";
export { accountIdOf, normalizeUsername } from "./escrow.js";
export {
  DEFAULT_CHUNK_SIZE,
  FileUpload,
  MAX_CHUNK_SIZE,
  MAX_FILE_CHUNKS,
  type FileData,
  type PrepareOptions,
  type ProgressCallback,
  type SendOptions,
  type UploadState,
} from "./files.js";
export { IndexedDbOutboxStore, IndexedDbUploadStore } from "./offline-idb.js";
export {
  MemoryOutboxStore,
  Outbox,
  type OutboxEvent,
  type OutboxRecord,
  type OutboxStore,
  type PendingWrite,
  type RefusedWrite,
  type QueuedWrite,
} from "./outbox.js";
export { MemoryUploadStore, type UploadRecord, type UploadStore } from "./uploads.js";
export { type SessionTokenSource } from "./http.js";
