import assert from "node:assert/strict";
import { test } from "node:test";
import { SseParser } from "../lib/sse.js";

test("events split anywhere across pieces parse the same", () => {
  const stream = "retry: 1000\r\n\r\n: keep-alive\r\nevent: entry\r\nid: 7\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nevent: end\ndata: {}\n\n";
  const expected = [
    { event: "entry", data: '{"a":\n1}', id: "7" },
    { event: "end", data: "{}", id: undefined },
  ];
  for (let cut = 0; cut <= stream.length; cut++) {
    const parser = new SseParser();
    const events = [...parser.push(stream.slice(0, cut)), ...parser.push(stream.slice(cut))];
    assert.deepEqual(events, expected, `cut at ${cut}`);
    assert.equal(parser.retryMs, 1000);
  }
});

test("every character in its own piece, with bare CR line ends", () => {
  const parser = new SseParser();
  const events = [..."data:x\r\rdata: y\r\r"].flatMap((c) => parser.push(c));
  assert.deepEqual(events, [
    { event: "message", data: "x", id: undefined },
    { event: "message", data: "y", id: undefined },
  ]);
});

test("comments, unknown fields and events without data dispatch nothing", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push(": hello\n\nfoo: bar\n\nevent: entry\nid: 3\n\nretry: soon\n\n"), []);
  assert.equal(parser.retryMs, undefined);
  // The id of an event without data does not leak into the next event.
  assert.deepEqual(parser.push("data: z\n\n"), [{ event: "message", data: "z", id: undefined }]);
});
