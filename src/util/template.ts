/** A name fit for one path segment: anything but letters, digits, dot, dash and underscore becomes "_". */
export function safeSegment(value: string): string {
  const safe = value.replace(/[^A-Za-z0-9._-]/g, '_');
  return safe === '.' || safe === '..' ? safe.replace(/\./g, '_') : safe;
}

/** Fills {name} placeholders with path-safe values; unknown placeholders are left as written. */
export function renderPathTemplate(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{([a-z_]+)\}/g, (whole, name: string) =>
    Object.hasOwn(values, name) ? safeSegment(values[name]!) : whole,
  );
}
