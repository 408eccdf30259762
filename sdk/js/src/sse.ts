/**
 * A server-sent events parser (the `text/event-stream` format of the HTML standard) for streams
 * read through `fetch` rather than `EventSource`: it works the same in browsers and Node, can
 * carry a session header, and leaves reconnection to the caller, who resumes from the last entry
 * it verified rather than from the last event `EventSource` received.
 *
 * One deliberate difference from `EventSource`: an event's `id` is the `id:` field of that event
 * only (the standard carries the last one over), so an event without one is seen as such.
 */

/** One dispatched event. */
export interface ServerSentEvent {
  /** `event:` field; "message" when absent. */
  event: string;
  /** `data:` lines joined with "\n". */
  data: string;
  /** `id:` field of this event, or undefined when it had none. */
  id: string | undefined;
}

/** Incremental parser: feed it text as it arrives, get the complete events. */
export class SseParser {
  #buffer = "";
  #event = "";
  #data: string[] = [];
  #id: string | undefined;
  #sawCarriageReturn = false;
  /** The last `retry:` value, in milliseconds. */
  retryMs: number | undefined;

  /** Parses `text` (the next piece of the stream) and returns the events it completes. */
  push(text: string): ServerSentEvent[] {
    // A "\r\n" split across two pieces must count as one line end, not two.
    if (this.#sawCarriageReturn && text.startsWith("\n")) {
      text = text.slice(1);
    }
    this.#sawCarriageReturn = text.endsWith("\r");
    this.#buffer += text;
    const events: ServerSentEvent[] = [];
    const lines = this.#buffer.split(/\r\n|\r|\n/);
    this.#buffer = lines.pop()!;
    for (const line of lines) {
      const event = this.#line(line);
      if (event !== undefined) {
        events.push(event);
      }
    }
    return events;
  }

  #line(line: string): ServerSentEvent | undefined {
    if (line === "") {
      return this.#dispatch();
    }
    if (line.startsWith(":")) {
      return undefined;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    switch (field) {
      case "event":
        this.#event = value;
        break;
      case "data":
        this.#data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) {
          this.#id = value;
        }
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) {
          this.retryMs = Number(value);
        }
        break;
      default:
        // Unknown fields are ignored, as the standard says.
        break;
    }
    return undefined;
  }

  #dispatch(): ServerSentEvent | undefined {
    const hadData = this.#data.length > 0;
    const event = { event: this.#event === "" ? "message" : this.#event, data: this.#data.join("\n"), id: this.#id };
    this.#event = "";
    this.#data = [];
    this.#id = undefined;
    return hadData ? event : undefined;
  }
}
