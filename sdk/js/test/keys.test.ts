import assert from "node:assert/strict";
import { test } from "node:test";
import { ChainKeys } from "../lib/keys.js";
import { InvalidInputError, UnsupportedVersionError } from "../lib/errors.js";
import { IndexedDbHeadStore, UnsupportedEnvironmentError } from "../lib/index.js";

test("chain keys survive JSON, and a reader's copy holds no write key", async () => {
  const keys = await ChainKeys.generate();
  assert.match(keys.chainId, /^[0-9a-f]{64}$/);
  assert.ok(keys.writable);
  const again = await ChainKeys.fromJSON(JSON.parse(JSON.stringify(keys)));
  assert.deepEqual(again.toJSON(), keys.toJSON());

  const reader = keys.forReader();
  assert.equal(reader.writable, false);
  assert.equal(reader.toJSON().write_key, undefined);
  const readerAgain = await ChainKeys.fromJSON(JSON.parse(JSON.stringify(reader)));
  assert.equal(readerAgain.writable, false);
  assert.deepEqual(readerAgain.readKey(0), keys.readKey(0));
});

test("rotation adds an epoch; readers get the epochs they are given", async () => {
  const keys = await ChainKeys.generate();
  const rotated = keys.rotateReadKey();
  assert.equal(keys.epoch, 0);
  assert.equal(rotated.epoch, 1);
  assert.deepEqual(rotated.epochs, [0, 1]);
  assert.notDeepEqual(rotated.readKey(1), rotated.readKey(0));
  const oldReader = rotated.forReader([0]);
  assert.equal(oldReader.readKey(1), undefined);
  const upgraded = oldReader.withReadKeys(new Map([[1, rotated.readKey(1)!]]));
  assert.equal(upgraded.epoch, 1);
  assert.deepEqual(upgraded.readKey(1), rotated.readKey(1));
});

test("malformed or unknown key bundles are refused", async () => {
  const json = (await ChainKeys.generate()).toJSON();
  await assert.rejects(ChainKeys.fromJSON({ ...json, v: 2 }), UnsupportedVersionError);
  await assert.rejects(ChainKeys.fromJSON({ ...json, read_keys: { "0": "short" } }), InvalidInputError);
  await assert.rejects(ChainKeys.fromJSON({ ...json, read_keys: { "01": json.read_keys["0"] } }), InvalidInputError);
  await assert.rejects(ChainKeys.fromJSON({ ...json, chain_id: "00".repeat(32) }), InvalidInputError);
  await assert.rejects(ChainKeys.fromJSON({ ...json, epoch: 3 }), InvalidInputError);
  assert.throws(() => ChainKeys.readOnly("not hex", new Map()), InvalidInputError);
});

test("the IndexedDB head store says so where there is no IndexedDB", async () => {
  await assert.rejects(IndexedDbHeadStore.open(), UnsupportedEnvironmentError);
});
