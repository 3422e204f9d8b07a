/** One set of options for the runtime validator and the one generated at build time, so both report the same errors. */
export const AJV_OPTIONS = { allErrors: true, strict: false, verbose: true } as const;
