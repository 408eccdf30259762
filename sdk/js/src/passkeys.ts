/**
 * The browser side of passkey ceremonies: WebAuthn `create()` and `get()` with the PRF
 * extension, evaluated at the SDK's fixed salt. The PRF output is the passkey's secret: it is
 * returned to the caller to derive a wrapping key and removed from every credential before the
 * credential is handed back for sending (`credential` below never holds it).
 */

import { type Bytes, fromBase64Url } from "./bytes.js";
import { PasskeyError, UnsupportedEnvironmentError } from "./errors.js";
import { passkeyPrfSalt } from "./escrow.js";

/** A credential ready to send (its JSON form without the PRF results) and the PRF output kept here. */
export interface PasskeyCeremony {
  /** base64url, as `credential.id` and the server's `passkey_id`. */
  credentialId: string;
  rawCredentialId: Bytes;
  /** `credential.toJSON()` without `clientExtensionResults.prf`. */
  credential: unknown;
  prfOutput: Bytes;
}

/**
 * Creates a passkey from the server's creation options (JSON form) with the PRF extension. When
 * the authenticator enables PRF at creation without evaluating it (some do), one assertion with
 * the new credential gets the output.
 */
export async function createPasskey(publicKey: unknown, userName: string): Promise<PasskeyCeremony> {
  const salt = await passkeyPrfSalt();
  const options = webAuthn().parseCreationOptionsFromJSON(publicKey as PublicKeyCredentialCreationOptionsJSON);
  // Only the authenticator shows these; the server's placeholder tells the user nothing.
  options.user.name = userName;
  options.user.displayName = userName;
  options.extensions = { ...options.extensions, prf: { eval: { first: salt } } };
  const credential = await ceremony(() => navigator.credentials.create({ publicKey: options }));
  const results = credential.getClientExtensionResults().prf;
  if (results?.enabled === false) {
    throw new PasskeyError("the authenticator does not support the PRF extension, which passkey logins need");
  }
  const rawCredentialId = new Uint8Array(credential.rawId);
  let prfOutput = prfBytes(results?.results?.first);
  if (prfOutput === undefined) {
    const assertion = await ceremony(() =>
      navigator.credentials.get({
        publicKey: {
          challenge: crypto.getRandomValues(new Uint8Array(32)),
          rpId: options.rp.id,
          allowCredentials: [{ type: "public-key", id: rawCredentialId }],
          userVerification: "required",
          extensions: { prf: { eval: { first: salt } } },
        },
      }),
    );
    prfOutput = prfBytes(assertion.getClientExtensionResults().prf?.results?.first);
  }
  if (prfOutput === undefined) {
    throw new PasskeyError("the authenticator gave no PRF output, which passkey logins need");
  }
  return { credentialId: credential.id, rawCredentialId, credential: withoutPrf(credential), prfOutput };
}

/** Asserts with one of the account's passkeys (server's request options, JSON form), evaluating the PRF. */
export async function assertPasskey(publicKey: unknown): Promise<PasskeyCeremony> {
  const options = webAuthn().parseRequestOptionsFromJSON(publicKey as PublicKeyCredentialRequestOptionsJSON);
  options.extensions = { ...options.extensions, prf: { eval: { first: await passkeyPrfSalt() } } };
  const assertion = await ceremony(() => navigator.credentials.get({ publicKey: options }));
  const prfOutput = prfBytes(assertion.getClientExtensionResults().prf?.results?.first);
  if (prfOutput === undefined) {
    throw new PasskeyError("the passkey gave no PRF output: its authenticator does not support PRF");
  }
  return {
    credentialId: assertion.id,
    rawCredentialId: fromBase64Url(assertion.id),
    credential: withoutPrf(assertion),
    prfOutput,
  };
}

/** `PublicKeyCredential` with the JSON parsers (Chromium 129+, Firefox 119+, Safari 18+). */
function webAuthn(): typeof PublicKeyCredential {
  if (typeof PublicKeyCredential === "undefined" || typeof PublicKeyCredential.parseCreationOptionsFromJSON !== "function") {
    throw new UnsupportedEnvironmentError("passkeys need a browser with WebAuthn and its JSON options parsers");
  }
  return PublicKeyCredential;
}

async function ceremony(run: () => Promise<Credential | null>): Promise<PublicKeyCredential> {
  let credential: Credential | null;
  try {
    credential = await run();
  } catch (error) {
    throw new PasskeyError(`the passkey ceremony failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
  if (!(credential instanceof PublicKeyCredential)) {
    throw new PasskeyError("the browser returned no passkey credential");
  }
  return credential;
}

function prfBytes(value: BufferSource | undefined): Bytes | undefined {
  if (value === undefined) {
    return undefined;
  }
  return ArrayBuffer.isView(value) ? new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength)) : new Uint8Array(value);
}

/** The credential's JSON form without the PRF results: the PRF output never leaves the page. */
function withoutPrf(credential: PublicKeyCredential): unknown {
  const json = credential.toJSON() as { clientExtensionResults?: Record<string, unknown> };
  if (json.clientExtensionResults !== undefined) {
    delete json.clientExtensionResults["prf"];
  }
  return json;
}
