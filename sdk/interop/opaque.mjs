// Registers or logs in to a Blindstore zone with @serenity-kit/opaque, the browser OPAQUE
// library, from Node. Used by the Rust test suite to prove that accounts interoperate:
//
//   node opaque.mjs register <base-url> <zone> <account> <password>
//   node opaque.mjs login    <base-url> <zone> <account> <password>
//
// Prints one JSON line: {"export_key": "..."} (plus "token" after a login), base64url.
// Exit status: 0 on success, 2 when the login fails (wrong password or unknown account),
// 1 on any other error.
import * as opaque from "@serenity-kit/opaque";

const [command, base, zone, account, password] = process.argv.slice(2);
if (!["register", "login"].includes(command) || !password) {
  console.error("usage: node opaque.mjs register|login <base-url> <zone> <account> <password>");
  process.exit(1);
}

async function post(path, body) {
  const response = await fetch(`${base}/v1/zones/${zone}/auth/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`${path}: ${response.status} ${text}`);
  }
  return text ? JSON.parse(text) : {};
}

await opaque.ready;
if (command === "register") {
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
  const { registration_response } = await post("register/start", {
    account,
    registration_request: registrationRequest,
  });
  const { registrationRecord, exportKey } = opaque.client.finishRegistration({
    clientRegistrationState,
    registrationResponse: registration_response,
    password,
  });
  await post("register/finish", { account, registration_record: registrationRecord });
  console.log(JSON.stringify({ export_key: exportKey }));
} else {
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
  const { login_response, login_ticket } = await post("login/start", {
    account,
    start_login_request: startLoginRequest,
  });
  const finished = opaque.client.finishLogin({ clientLoginState, loginResponse: login_response, password });
  if (!finished) {
    console.log(JSON.stringify({ error: "login failed" }));
    process.exit(2);
  }
  const session = await post("login/finish", {
    login_ticket,
    finish_login_request: finished.finishLoginRequest,
    label: "node interop",
  });
  console.log(JSON.stringify({ export_key: finished.exportKey, token: session.token }));
}
