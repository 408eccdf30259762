import assert from "node:assert/strict";
import { test } from "node:test";
import { concat, fromBase64Url, fromHex, fromUtf8, readU32, readU64, toBase64Url, toHex, u32, u64, u8, utf8 } from "../lib/bytes.js";

test("hex round-trips and refuses what toHex never writes", () => {
  const bytes = Uint8Array.from([0, 1, 0x7f, 0x80, 0xff]);
  assert.equal(toHex(bytes), "00017f80ff");
  assert.deepEqual(fromHex("00017f80ff"), bytes);
  for (const bad of ["0", "0g", "AB", " 00"]) {
    assert.throws(() => fromHex(bad), SyntaxError, bad);
  }
  assert.throws(() => fromHex("00", 2), SyntaxError);
});

test("base64url round-trips every length and refuses non-canonical text", () => {
  for (let length = 0; length < 70; length++) {
    const bytes = Uint8Array.from({ length }, (_, i) => (i * 37 + length) & 0xff);
    const text = toBase64Url(bytes);
    assert.equal(text, Buffer.from(bytes).toString("base64url"));
    assert.deepEqual(fromBase64Url(text), bytes);
  }
  // Padding, the standard alphabet, an impossible length, set trailing bits.
  for (const bad of ["aGk=", "a+b/", "abcde", "aGl"]) {
    assert.throws(() => fromBase64Url(bad), SyntaxError, bad);
  }
  assert.throws(() => fromBase64Url("aGk", 3), SyntaxError);
});

test("big-endian integers: exact up to 2^53-1, refused beyond", () => {
  assert.equal(toHex(u8(255)), "ff");
  assert.equal(toHex(u32(0x01020304)), "01020304");
  assert.equal(toHex(u64(0)), "0000000000000000");
  assert.equal(toHex(u64(2 ** 32 + 5)), "0000000100000005");
  assert.equal(toHex(u64(Number.MAX_SAFE_INTEGER)), "001fffffffffffff");
  assert.equal(readU64(u64(Number.MAX_SAFE_INTEGER), 0), Number.MAX_SAFE_INTEGER);
  assert.equal(readU32(concat(u8(9), u32(77)), 1), 77);
  assert.throws(() => u64(2 ** 53), RangeError);
  assert.throws(() => u64(-1), RangeError);
  assert.throws(() => u64(1.5), RangeError);
  assert.throws(() => u32(2 ** 32), RangeError);
  assert.throws(() => u8(256), RangeError);
  assert.throws(() => readU64(fromHex("0020000000000000"), 0), RangeError);
});

test("utf8 round-trips and refuses invalid bytes", () => {
  assert.equal(fromUtf8(utf8("💶 ok")), "💶 ok");
  assert.throws(() => fromUtf8(Uint8Array.of(0xff)), TypeError);
});
