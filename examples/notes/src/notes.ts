// What both pages share: the zone, and how a note is shown.
import type { Entry } from "@blindstore/sdk/reader";

/** The zone this app keeps its data in (`VITE_BLINDSTORE_ZONE` at build time; default `notes`). */
export const ZONE: string = import.meta.env.VITE_BLINDSTORE_ZONE ?? "notes";

/** A note as written: `{ text }` as a JSON entry. */
export interface Note {
  text: string;
}

/** Appends a note's row to the list. */
export function show(list: HTMLElement, entry: Entry): void {
  const value = entry.content.kind === "json" ? (entry.content.value as Partial<Note>) : undefined;
  const item = document.createElement("li");
  item.textContent = typeof value?.text === "string" ? value.text : "(not a note)";
  item.dataset.index = String(entry.index);
  list.append(item);
}

/** Sets the status line (a live region: screen readers announce it). */
export function status(text: string): void {
  document.getElementById("status")!.textContent = text;
}

/** "1 note", "2 notes". */
export function count(notes: number): string {
  return `${notes} ${notes === 1 ? "note" : "notes"}`;
}

/** An entry as JSON for a checkpoint: what `show` needs (its content holds only JSON here). */
export function plain(entry: Entry): Entry {
  return { index: entry.index, entryHash: entry.entryHash, prev: entry.prev, chunks: [], keyEpoch: entry.keyEpoch, content: entry.content };
}
