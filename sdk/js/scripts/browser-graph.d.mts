/** Types of browser-graph.mjs, for the TypeScript tests that use it. */
export declare const files: string[];
export declare function staticClosure(entries: string[]): Set<string>;
export declare function onDemand(loaded: Set<string>): Set<string>;
export declare function bytesOf(path: string): Buffer;
export declare function externalImports(): string[];
